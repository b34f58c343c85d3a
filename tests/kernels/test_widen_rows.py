"""Half-precision rows widened to float32 in the working frame: the compiled pass against the reference."""

from __future__ import annotations

import array_api_compat.numpy as NP
import numpy as np
import pytest

from kgpu import KMeans
from kgpu._scale import Frame
from kgpu._stream import StreamedRows, widen_rows_reference

numba = pytest.importorskip("numba")
cpu_numba_widen = pytest.importorskip("kgpu._kernels.cpu_numba_widen")


def _half_rows(seed=0):
    rng = np.random.default_rng(seed)
    rows = (rng.standard_normal((301, 7)) * 4).astype(np.float16)
    # Signed zeros, subnormals, the extremes, an infinity and a NaN.
    rows[0] = [0.0, -0.0, 6e-8, -3e-5, 65504.0, -65504.0, 1e-7]
    rows[1, :2] = [np.inf, np.nan]
    return rows


FRAMES = [
    pytest.param(lambda rows: Frame(None, 0), id="identity"),
    pytest.param(lambda rows: Frame(rows[5].astype(np.float32), 0), id="float32-origin"),
    pytest.param(lambda rows: Frame(rows[6].astype(np.float64), 4), id="float64-origin-scaled"),
    pytest.param(lambda rows: Frame(rows[7].astype(np.float32), 140), id="scaled-into-subnormals"),
    pytest.param(lambda rows: Frame(None, -20), id="scaled-up"),
]


@pytest.mark.parametrize("frame_of", FRAMES)
@pytest.mark.parametrize("homogeneous", [False, True])
def test_float16_rows_widen_to_the_reference_bits(frame_of, homogeneous):
    rows = _half_rows()
    frame = frame_of(rows)
    before = rows.copy()
    got = np.full((rows.shape[0], rows.shape[1] + homogeneous), -1.0, dtype=np.float32)
    want = got.copy()
    with np.errstate(all="ignore"):
        cpu_numba_widen.widen_rows_numba(rows, frame, homogeneous, got, xp=NP)
        widen_rows_reference(rows, frame, homogeneous, want, xp=NP)
    np.testing.assert_array_equal(got.view(np.uint32), want.view(np.uint32))
    np.testing.assert_array_equal(rows.view(np.uint16), before.view(np.uint16))


def test_every_float16_value_widens_exactly():
    everything = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16).reshape(256, 256)
    got = np.empty((256, 256), dtype=np.float32)
    cpu_numba_widen.widen_rows_numba(everything, Frame(None, 0), False, got, xp=NP)
    np.testing.assert_array_equal(got.view(np.uint32), everything.astype(np.float32).view(np.uint32))


@pytest.mark.parametrize("frame_of", FRAMES)
@pytest.mark.parametrize("dtype_name", ["bfloat16", "float16"])
def test_torch_half_rows_widen_to_the_reference_bits(frame_of, dtype_name):
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as TORCH

    rows = torch.from_numpy(_half_rows().astype(np.float32)).to(getattr(torch, dtype_name))
    frame = frame_of(_half_rows())
    frame = Frame(None if frame.origin is None else torch.from_numpy(frame.origin), frame.exponent)
    got = torch.full((rows.shape[0], rows.shape[1] + 1), -1.0, dtype=torch.float32)
    want = got.clone()
    cpu_numba_widen.widen_rows_numba(rows, frame, True, got, xp=TORCH)
    widen_rows_reference(rows, frame, True, want, xp=TORCH)
    np.testing.assert_array_equal(got.numpy().view(np.uint32), want.numpy().view(np.uint32))


def test_converted_blocks_reuse_one_buffer_per_thread():
    rows = _half_rows()[2:]
    streamed = StreamedRows(rows, NP, "cpu", frame=Frame(rows[0].astype(np.float32), 0), homogeneous=True)
    first = streamed.converted_block(0, 100)
    np.testing.assert_array_equal(first, streamed[0:100, :])
    first_copy = first.copy()
    second = streamed.converted_block(100, 180)
    assert np.shares_memory(first, second), "a second block allocated a new buffer"
    np.testing.assert_array_equal(second, streamed[100:180, :])
    assert not np.array_equal(first[:80], first_copy[:80])  # overwritten, as documented
    other = streamed.in_frame(Frame(None, 0)).converted_block(0, 100)
    assert not np.shares_memory(other, second), "another view of the rows wrote into this one's buffer"


@pytest.mark.parametrize("library", ["numpy", "torch"])
def test_a_half_fit_gives_the_same_bits_with_the_compiled_conversion_or_the_reference(monkeypatch, library):
    rng = np.random.default_rng(3)
    X = (rng.standard_normal((40_000, 6)) + rng.integers(0, 4, (40_000, 1)) * 5).astype(np.float16)
    if library == "torch":
        torch = pytest.importorskip("torch")
        X = torch.from_numpy(X.astype(np.float32)).to(torch.bfloat16)

    def fit():
        return KMeans(n_clusters=4, n_init=1, random_state=0, max_iter=15, tol=0).fit(X)

    calls = []
    original = cpu_numba_widen.widen_rows_numba
    monkeypatch.setattr(cpu_numba_widen, "_widen_rows_applies", lambda *a, **k: False)
    reference = fit()
    monkeypatch.undo()
    from kgpu._kernels import dispatch

    for backend in ("numpy", "torch"):
        for entry in dispatch._TABLE.get(("widen_rows", backend), ()):
            monkeypatch.setattr(entry, "function", lambda *a, **k: calls.append(1) or original(*a, **k))
    compiled = fit()
    assert calls, "the compiled conversion never ran"
    np.testing.assert_array_equal(np.asarray(compiled.labels_), np.asarray(reference.labels_))
    np.testing.assert_array_equal(np.asarray(compiled.cluster_centers_), np.asarray(reference.cluster_centers_))
    assert compiled.inertia_ == reference.inertia_
