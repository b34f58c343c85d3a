"""Helpers shared by the tests: moving arrays between namespaces and comparing them.

Modelled on SciPy's ``xp_assert_close``: every comparison converts both sides
to NumPy on the host, so one assertion serves every backend.
"""

from __future__ import annotations

import tracemalloc
from typing import Any, Callable

import numpy as np

from kgpu import _backend


def to_numpy(x: Any) -> np.ndarray:
    """Any supported array (or a scalar / list) as a NumPy array on the host."""
    if isinstance(x, (int, float, list, tuple, np.generic)):
        return np.asarray(x)
    return _backend.to_numpy(x)


def asarray(xp: Any, np_array: Any) -> Any:
    """A fresh array of namespace ``xp`` (default device) holding ``np_array``.

    The data is copied first, so the new array never shares memory with
    ``np_array`` (``torch.asarray`` would otherwise alias a NumPy buffer).
    """
    host = np.array(np_array, copy=True)
    if _backend.backend_name(xp) == "array_api_strict":
        import array_api_strict

        return array_api_strict.asarray(host)
    return xp.asarray(host)


def namespace_name(x: Any) -> str:
    """Short name of the library that holds the array ``x``."""
    return _backend.backend_name(_backend.namespace_of(x))


def assert_namespace(x: Any, xp: Any) -> None:
    """``x`` is an array of namespace ``xp`` (and on the host for torch)."""
    expected = _backend.backend_name(xp)
    assert _backend.is_array_api_obj(x), f"expected an array of {expected}, got {type(x)!r}"
    assert namespace_name(x) == expected, f"expected an array of {expected}, got {type(x)!r}"
    if expected == "numpy":
        assert isinstance(x, np.ndarray), f"expected numpy.ndarray, got {type(x)!r}"


def dtype_name(x: Any) -> str:
    """``"float32"``, ``"float64"``, ``"int64"``... of an array of any namespace."""
    return str(to_numpy(x).dtype)


def assert_close(actual: Any, expected: Any, rtol: float, atol: float = 0.0, err_msg: str = "") -> None:
    """Both sides converted to NumPy, then ``numpy.testing.assert_allclose``.

    Shapes must match exactly (no broadcasting of one side to the other).
    """
    actual_np = to_numpy(actual)
    expected_np = to_numpy(expected)
    assert actual_np.shape == expected_np.shape, (
        f"shape mismatch: {actual_np.shape} != {expected_np.shape}. {err_msg}"
    )
    np.testing.assert_allclose(actual_np, expected_np, rtol=rtol, atol=atol, err_msg=err_msg)


def assert_equal(actual: Any, expected: Any, err_msg: str = "") -> None:
    """Exact equality after conversion to NumPy (labels, indices)."""
    actual_np = to_numpy(actual)
    expected_np = to_numpy(expected)
    assert actual_np.shape == expected_np.shape, (
        f"shape mismatch: {actual_np.shape} != {expected_np.shape}. {err_msg}"
    )
    np.testing.assert_array_equal(actual_np, expected_np, err_msg=err_msg)


def rtol_for(dtype: Any) -> float:
    """The parity tolerance of SPEC §3: 1e-5 in float32, 1e-10 in float64."""
    return 1e-5 if np.dtype(dtype) == np.float32 else 1e-10


def reference_inertia(X: Any, centers: Any, labels: Any, sample_weight: Any = None) -> float:
    """``sum(w_i * ||x_i - c[label_i]||^2)`` in float64 NumPy: the objective every K-Means test checks against."""
    X, centers = (to_numpy(a).astype(np.float64) for a in (X, centers))
    labels = to_numpy(labels).astype(np.int64)
    weights = np.ones(X.shape[0]) if sample_weight is None else np.asarray(to_numpy(sample_weight), dtype=np.float64)
    return float(weights @ ((X - centers[labels]) ** 2).sum(axis=1))


def peak_traced_bytes(run: Callable[[], Any]) -> int:
    """Peak bytes ``run()`` allocates through Python's allocators (NumPy's included), by ``tracemalloc``."""
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        run()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
