"""Contract of the working frame's passes: "find_non_finite", "max_abs", "working_copy", "centered_copy".

Every registered implementation (the array-API reference and the numba
kernels on NumPy arrays and PyTorch CPU tensors) must give the reference's
bits: the same maximum, the same working copy byte for byte, the same
problem named for NaN and infinity. Random data, extreme scales (the frame's
exponent in steps of 2**100, results in the subnormals), both dtypes.
"""

from __future__ import annotations

import array_api_compat.numpy as xp_numpy
import numpy as np
import pytest

from kgpu import KMeans
from kgpu._kernels import dispatch
from kgpu._scale import Frame, centered_copy_reference, fit_frame, fit_frame_and_working_copy, max_abs_reference
from kgpu._stream import working_copy

numba = pytest.importorskip("numba")
cpu_numba_frame = pytest.importorskip("kgpu._kernels.cpu_numba_frame")
torch = pytest.importorskip("torch")
import array_api_compat.torch as xp_torch  # noqa: E402

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
# The reference warns where a scale overflows a value (as the kernels' arithmetic does, silently).
pytestmark = [
    pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning"),
    pytest.mark.filterwarnings("ignore:invalid value encountered:RuntimeWarning"),
]

SCALES = [pytest.param(1.0, id="unit"), pytest.param(1e5, id="far"), pytest.param(1e-30, id="tiny"),
          pytest.param(1e30, id="huge")]


def _implementations(operation):
    """``(function, to_backend, namespace)`` for every registered implementation of ``operation``."""
    found = []
    for backend, entry in dispatch.registered(operation):
        if backend == dispatch.ANY_BACKEND:
            found.append(pytest.param(entry.function, np.asarray, xp_numpy, id="reference-numpy"))
            found.append(pytest.param(entry.function, torch.from_numpy, xp_torch, id="reference-torch"))
        elif backend == "numpy":
            found.append(pytest.param(entry.function, np.asarray, xp_numpy, id=f"numpy-{entry.name}"))
        elif backend == "torch":
            found.append(pytest.param(entry.function, torch.from_numpy, xp_torch, id=f"torch-{entry.name}"))
    return found


def _data(dtype, scale, seed=0, n_rows=1031, n_features=7):
    rng = np.random.default_rng(seed)
    X = ((rng.standard_normal((n_rows, n_features)) + 3) * scale).astype(dtype)
    origin = X[:50].mean(axis=0).astype(dtype)
    return X, origin


def test_native_kernels_are_registered_for_numpy_and_torch():
    for operation in ("find_non_finite", "max_abs", "working_copy", "centered_copy"):
        backends = {backend: entry.name for backend, entry in dispatch.registered(operation)}
        assert backends == {dispatch.ANY_BACKEND: "array-api", "numpy": "numba", "torch": "numba"}


@pytest.mark.parametrize("function, to_backend, xp", _implementations("max_abs"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("with_origin", [False, True])
def test_max_abs_is_the_reference_value(function, to_backend, xp, dtype, scale, with_origin):
    X, origin = _data(dtype, scale)
    before = X.copy()
    expected = max_abs_reference(X, xp=xp_numpy, origin=origin if with_origin else None)
    got = function(to_backend(X), xp=xp, origin=to_backend(origin) if with_origin else None)
    assert isinstance(got, float)
    assert got == expected
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize("function, to_backend, xp", _implementations("max_abs"))
def test_max_abs_of_no_rows_and_of_small_budgets(function, to_backend, xp):
    X, origin = _data(np.float32, 1.0, n_rows=5000)
    assert function(to_backend(X[:0]), xp=xp) == 0.0
    # Many small blocks: the same maximum as one block.
    assert function(to_backend(X), xp=xp, origin=to_backend(origin), budget_mib=0.01) == max_abs_reference(
        X, xp=xp_numpy, origin=origin
    )


@pytest.mark.parametrize("function, to_backend, xp", _implementations("max_abs"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "bad, expected",
    [
        pytest.param({(3, 1): np.nan}, "nan", id="nan-first-block"),
        pytest.param({(2500, 1): np.nan}, "nan", id="nan-middle-block"),
        pytest.param({(4999, 6): -np.inf}, "inf", id="minus-inf-last-block"),
        pytest.param({(0, 0): np.inf, (4000, 3): np.nan}, "nan", id="inf-then-nan"),
    ],
)
def test_max_abs_is_nan_or_infinite_for_non_finite_data(function, to_backend, xp, dtype, bad, expected):
    # A K-Means fit's finiteness check is this value (kgpu._validation.check_finite_largest):
    # a NaN in any block must make it NaN, whatever the largest value of the other blocks.
    X, origin = _data(dtype, 1.0, n_rows=5000)
    for index, value in bad.items():
        X[index] = value
    for chosen_origin in (None, origin):
        got = function(
            to_backend(X), xp=xp, origin=None if chosen_origin is None else to_backend(chosen_origin), budget_mib=0.01
        )
        assert (got != got) if expected == "nan" else got == np.inf


@pytest.mark.parametrize("function, to_backend, xp", _implementations("working_copy"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("exponent", [0, 3, -40, 130, -150, 260])
@pytest.mark.parametrize("with_origin", [False, True])
def test_working_copy_is_the_reference_bits(function, to_backend, xp, dtype, scale, exponent, with_origin):
    X, origin = _data(dtype, scale)
    before = X.copy()
    reference = dispatch.reference("working_copy")
    kwargs = dict(scale_exponent=exponent)
    expected = reference(X, xp=xp_numpy, offset=origin if with_origin else None, **kwargs)
    got = function(to_backend(X), xp=xp, offset=to_backend(origin) if with_origin else None, **kwargs)
    got = np.asarray(got)
    assert got.shape == (X.shape[0], X.shape[1] + 1) and got.dtype == X.dtype
    assert got.tobytes() == expected.tobytes()
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize("function, to_backend, xp", _implementations("working_copy"))
def test_working_copy_with_given_blocks(function, to_backend, xp):
    X, origin = _data(np.float64, 1e3)
    expected = dispatch.reference("working_copy")(X, xp=xp_numpy, offset=origin, rows_per_block=1000)
    got = function(to_backend(X), xp=xp, offset=to_backend(origin), rows_per_block=7)
    assert np.asarray(got).tobytes() == expected.tobytes()


@pytest.mark.parametrize("function, to_backend, xp", _implementations("centered_copy"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", SCALES)
def test_centered_copy_is_the_reference_copy_and_maximum(function, to_backend, xp, dtype, scale):
    X, origin = _data(dtype, scale)
    X[5, 3] = -X[5, 3] * 4  # the largest |x - origin| is a negative difference
    before = X.copy()
    expected, expected_largest = centered_copy_reference(X, origin, xp=xp_numpy)
    got, largest = function(to_backend(X), to_backend(origin), xp=xp)
    assert largest == expected_largest == max_abs_reference(X, xp=xp_numpy, origin=origin)
    assert np.asarray(got).tobytes() == expected.tobytes()
    np.testing.assert_array_equal(X, before)


@pytest.mark.parametrize("to_backend, xp", [(np.asarray, xp_numpy), (torch.from_numpy, xp_torch)], ids=["numpy", "torch"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", SCALES + [pytest.param(1e-300, id="tiniest"), pytest.param(1e300, id="largest")])
@pytest.mark.parametrize("center", [True, False])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("fast", [True, False])
def test_frame_and_working_copy_in_one_pass_equal_the_two_steps(
    monkeypatch, to_backend, xp, dtype, scale, center, weighted, fast
):
    X, _ = _data(dtype, scale)
    weights = np.random.default_rng(2).uniform(0.5, 2, X.shape[0]).astype(dtype) if weighted else None
    X, weights = to_backend(X), None if weights is None else to_backend(weights)
    if not fast:
        monkeypatch.setenv("KGPU_FAST", "0")
    frame, design = fit_frame_and_working_copy(X, weights, xp=xp, center=center)
    expected_frame = fit_frame(X, weights, xp=xp, center=center)
    expected = working_copy(X, xp=xp, frame=expected_frame)
    assert frame.exponent == expected_frame.exponent
    assert (frame.origin is None) == (expected_frame.origin is None)
    if frame.origin is not None:
        assert np.asarray(frame.origin).tobytes() == np.asarray(expected_frame.origin).tobytes()
    assert np.asarray(design).tobytes() == np.asarray(expected).tobytes()


def test_frame_and_working_copy_of_non_finite_or_zero_data():
    zeros = np.zeros((10, 3), dtype=np.float32)
    frame, design = fit_frame_and_working_copy(zeros, xp=xp_numpy)
    assert frame == Frame(None, 0)
    np.testing.assert_array_equal(design, np.hstack([zeros, np.ones((10, 1), np.float32)]))


@pytest.mark.parametrize("function, to_backend, xp", _implementations("find_non_finite"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "bad, expected",
    [
        pytest.param({}, None, id="finite"),
        pytest.param({(3, 1): np.nan}, "NaN", id="nan"),
        pytest.param({(1030, 6): np.inf}, "infinity", id="inf"),
        pytest.param({(2, 0): -np.inf}, "infinity", id="minus-inf"),
        pytest.param({(0, 0): np.inf, (1000, 3): np.nan}, "NaN", id="inf-then-nan"),
    ],
)
def test_find_non_finite_names_the_problem(function, to_backend, xp, dtype, bad, expected):
    X, _ = _data(dtype, 1e30 if dtype == np.float32 else 1e300)  # finite values near the largest
    for index, value in bad.items():
        X[index] = value
    assert function(to_backend(X), xp=xp) == expected


@pytest.mark.parametrize("operation", ["find_non_finite", "max_abs", "working_copy", "centered_copy"])
@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_self_checks_pass(operation, backend):
    [entry] = [entry for name, entry in dispatch.registered(operation) if name == backend]
    xp = xp_torch if backend == "torch" else xp_numpy
    assert entry.self_check(xp, "cpu")


def test_guards_send_other_inputs_to_the_reference():
    X = np.ones((4, 3), dtype=np.float32)
    assert not cpu_numba_frame._max_abs_applies(X.astype(np.float16))
    # An origin of another dtype promotes the difference: the reference handles it.
    assert not cpu_numba_frame._max_abs_applies(X, origin=np.zeros(3))
    assert not cpu_numba_frame._working_copy_applies(X, offset=np.zeros(3))
    assert not cpu_numba_frame._find_non_finite_torch_applies(torch.ones((4, 3), dtype=torch.bfloat16))
    assert not cpu_numba_frame._max_abs_torch_applies(torch.ones((4, 3), requires_grad=True))


@pytest.mark.parametrize("to_backend, xp", [(np.asarray, xp_numpy), (torch.from_numpy, xp_torch)], ids=["numpy", "torch"])
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("scale", SCALES)
@pytest.mark.parametrize("weighted", [False, True])
def test_fit_frame_and_fit_equal_the_reference_passes(monkeypatch, to_backend, xp, dtype, scale, weighted):
    X, _ = _data(dtype, scale, n_rows=2000, n_features=5)
    weights = np.random.default_rng(1).uniform(0.5, 2, X.shape[0]).astype(dtype) if weighted else None
    X, weights = to_backend(X), None if weights is None else to_backend(weights)

    def fit():
        frame = fit_frame(X, weights, xp=xp)
        model = KMeans(4, n_init=1, random_state=0).fit(X, sample_weight=weights)
        return frame, model

    assert dispatch.implementation("max_abs", xp, "cpu", X).__module__ == cpu_numba_frame.__name__
    fast_frame, fast = fit()
    # Only the frame's passes fall back to the reference; Lloyd's kernels stay.
    monkeypatch.setattr(cpu_numba_frame, "_is_matrix", lambda X: False)
    assert dispatch.implementation("max_abs", xp, "cpu", X) is max_abs_reference
    slow_frame, slow = fit()
    assert fast_frame.exponent == slow_frame.exponent
    assert np.asarray(fast_frame.origin).tobytes() == np.asarray(slow_frame.origin).tobytes()
    assert np.asarray(fast.cluster_centers_).tobytes() == np.asarray(slow.cluster_centers_).tobytes()
    np.testing.assert_array_equal(np.asarray(fast.labels_), np.asarray(slow.labels_))
    assert fast.inertia_ == slow.inertia_


@pytest.mark.parametrize("value, problem", [(np.nan, "NaN"), (np.inf, "infinity")])
def test_torch_fit_rejects_non_finite_data_with_the_same_message(value, problem):
    X = torch.ones((20, 3), dtype=torch.float32)
    X[7, 1] = value
    with pytest.raises(ValueError, match=f"Input X contains {problem}: remove or impute"):
        KMeans(2, n_init=1).fit(X)
