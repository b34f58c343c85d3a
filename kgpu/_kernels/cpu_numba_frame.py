"""The working frame's passes over the data, compiled with numba.

Before Lloyd's first iteration a fit reads ``X`` several times: a finiteness
check, the largest ``|x|`` (the scale), the largest ``|x - origin|`` once the
origin is known, and the working copy ``[(x - origin) * 2**-exponent, 1]``.
The array-API references (:func:`kgpu._validation.find_non_finite_reference`,
:func:`kgpu._scale.max_abs_reference`,
:func:`kgpu._distances.homogeneous_reference`) make a temporary of each
block for every elementwise step; these kernels read each row once, keep no
temporary and run their blocks on kgpu's thread pool, also for PyTorch CPU
tensors, through zero-copy NumPy views of their memory.

The fit's working copy is written in the same pass that finds the largest
``|x - origin|`` (``"centered_copy"``): the scale that maximum implies is
almost always none, and when it is not, the copy is made again scaled.

The arithmetic is the references' own, in the data's dtype and in the same
order (the difference rounded to the dtype, then each power-of-two factor of
:func:`kgpu._scale.scale_by_power_of_two` in turn), so every value is the
same bits; a maximum and a yes/no answer do not depend on the order in which
the blocks finish.
"""

from __future__ import annotations

from typing import Any

import array_api_compat.numpy as _NUMPY
import numpy as np
from numba import njit

from .._blocks import block_rows, map_blocks, row_blocks
from .dispatch import register

_FLOATS = (np.float32, np.float64)

#: Problem codes of :func:`_non_finite_code` (0: every value finite).
_NAN, _INFINITY = 1, 2


@njit(fastmath=False, cache=True, nogil=True)
def _non_finite_code(X, start, stop):
    """0 when ``X[start:stop]`` is finite, else 1 (a NaN somewhere) or 2 (infinities only)."""
    n_features = X.shape[1]
    # x - x is 0 for a finite x and NaN otherwise: column-wise sums of it
    # vectorise along the row, and only a failing block is read again.
    probe = np.zeros(n_features, dtype=X.dtype)
    for i in range(start, stop):
        for j in range(n_features):
            probe[j] += X[i, j] - X[i, j]
    finite = True
    for j in range(n_features):
        if probe[j] != 0:
            finite = False
    if finite:
        return 0
    for i in range(start, stop):
        for j in range(n_features):
            if X[i, j] != X[i, j]:
                return _NAN
    return _INFINITY


@njit(fastmath=False, cache=True, nogil=True)
def _overall_largest(largest, nan):
    """The largest of the per-column ``largest`` values, as a float; NaN when ``nan`` (a NaN was seen)."""
    if nan:
        return np.nan
    result = 0.0
    for j in range(largest.shape[0]):
        result = max(result, float(largest[j]))
    return result


@njit(fastmath=False, cache=True, nogil=True)
def _max_abs(X, origin, start, stop):
    """Largest ``|X[i] - origin|`` over rows ``start:stop`` (origin empty: none), NaN if any."""
    n_features = X.shape[1]
    has_origin = origin.shape[0] > 0
    largest = np.zeros(n_features, dtype=X.dtype)
    nan = False
    for i in range(start, stop):
        for j in range(n_features):
            value = X[i, j] - origin[j] if has_origin else X[i, j]
            value = abs(value)
            if value != value:
                nan = True
            largest[j] = max(largest[j], value)
    return _overall_largest(largest, nan)


@njit(fastmath=False, cache=True, nogil=True)
def _fill_working_copy(X, origin, factors, start, stop, out):
    """``out[i] = [(X[i] - origin) * factors..., 1]`` for rows ``start:stop``."""
    n_features = X.shape[1]
    has_origin = origin.shape[0] > 0
    for i in range(start, stop):
        for j in range(n_features):
            value = X[i, j] - origin[j] if has_origin else X[i, j]
            for factor in factors:
                value = value * factor
            out[i, j] = value
        out[i, n_features] = 1.0


@njit(fastmath=False, cache=True, nogil=True)
def _fill_centered_copy(X, origin, start, stop, out):
    """``out[i] = [X[i] - origin, 1]`` for rows ``start:stop``; the largest ``|X[i] - origin|``, NaN if any."""
    n_features = X.shape[1]
    largest = np.zeros(n_features, dtype=X.dtype)
    nan = False
    for i in range(start, stop):
        for j in range(n_features):
            value = X[i, j] - origin[j]
            out[i, j] = value
            value = abs(value)
            if value != value:
                nan = True
            largest[j] = max(largest[j], value)
        out[i, n_features] = 1.0
    return _overall_largest(largest, nan)


def _is_matrix(X: Any) -> bool:
    return isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.type in _FLOATS


def _origin_applies(X: np.ndarray, origin: Any) -> bool:
    return origin is None or (
        isinstance(origin, np.ndarray) and origin.shape == (X.shape[1],) and origin.dtype == X.dtype
    )


def _origin_array(X: np.ndarray, origin: Any) -> np.ndarray:
    return np.empty(0, dtype=X.dtype) if origin is None else np.ascontiguousarray(origin)


def _blocks(X: np.ndarray, bytes_per_row: int, budget_mib: float | None = None) -> list[tuple[int, int]]:
    return row_blocks(X.shape[0], block_rows(X.shape[0], bytes_per_row, _NUMPY, budget_mib))


# ---------------------------------------------------------------- find_non_finite


def _find_non_finite_applies(X: Any, **_: Any) -> bool:
    return _is_matrix(X)


def find_non_finite_numba(X: Any, *, xp: Any) -> str | None:
    """:func:`kgpu._validation.find_non_finite_reference` in one compiled pass."""
    if X.shape[0] == 0:
        return None
    codes = map_blocks(lambda start, stop: _non_finite_code(X, start, stop), _blocks(X, X.shape[1] * 8 * 8), _NUMPY)
    if _NAN in codes:
        return "NaN"
    return "infinity" if _INFINITY in codes else None


# ---------------------------------------------------------------- max_abs


def _max_abs_applies(X: Any, *, origin: Any = None, **_: Any) -> bool:
    return _is_matrix(X) and _origin_applies(X, origin)


def max_abs_numba(X: Any, *, xp: Any, origin: Any = None, budget_mib: float | None = None) -> float:
    """:func:`kgpu._scale.max_abs_reference` in one compiled pass, without temporaries."""
    if X.shape[0] == 0:
        return 0.0
    origin_array = _origin_array(X, origin)
    parts = map_blocks(
        lambda start, stop: _max_abs(X, origin_array, start, stop),
        _blocks(X, max(1, X.shape[1]) * 8 * 8, budget_mib),
        _NUMPY,
    )
    if any(part != part for part in parts):
        return float("nan")
    return float(max(parts))


# ---------------------------------------------------------------- working copy


def _power_of_two_factors(exponent: int, dtype: Any) -> np.ndarray:
    """The factors :func:`kgpu._scale.scale_by_power_of_two` multiplies by, in order, in ``dtype``."""
    from .._scale import _STEP_EXPONENT

    factors = []
    while exponent != 0:
        step = max(-_STEP_EXPONENT, min(_STEP_EXPONENT, exponent))
        factors.append(np.ldexp(1.0, step))
        exponent -= step
    return np.asarray(factors, dtype=dtype)


def _working_copy_applies(X: Any, *, offset: Any = None, **_: Any) -> bool:
    return _is_matrix(X) and _origin_applies(X, offset)


def _fill(X: np.ndarray, design: np.ndarray, offset: Any, rows_per_block: int | None, scale_exponent: int) -> None:
    origin = _origin_array(X, offset)
    factors = _power_of_two_factors(scale_exponent, X.dtype)
    if rows_per_block is None:
        blocks = _blocks(X, (X.shape[1] + 1) * 8 * 8)
    else:
        blocks = row_blocks(X.shape[0], rows_per_block)
    map_blocks(lambda start, stop: _fill_working_copy(X, origin, factors, start, stop, design), blocks, _NUMPY)


def working_copy_numba(
    X: Any, *, xp: Any, offset: Any = None, rows_per_block: int | None = None, scale_exponent: int = 0
) -> Any:
    """:func:`kgpu._distances.homogeneous_reference`, written row by row straight into the copy."""
    design = np.empty((X.shape[0], X.shape[1] + 1), dtype=X.dtype)
    _fill(X, design, offset, rows_per_block, scale_exponent)
    return design


# ---------------------------------------------------------------- centered_copy


def _centered_copy_applies(X: Any, origin: Any, **_: Any) -> bool:
    return _is_matrix(X) and origin is not None and _origin_applies(X, origin)


def centered_copy_numba(X: Any, origin: Any, *, xp: Any, budget_mib: float | None = None) -> tuple[Any, float]:
    """:func:`kgpu._scale.centered_copy_reference` in one compiled pass over ``X``."""
    design = np.empty((X.shape[0], X.shape[1] + 1), dtype=X.dtype)
    if X.shape[0] == 0:
        return design, 0.0
    origin_array = np.ascontiguousarray(origin)
    parts = map_blocks(
        lambda start, stop: _fill_centered_copy(X, origin_array, start, stop, design),
        _blocks(X, (X.shape[1] + 1) * 8 * 8, budget_mib),
        _NUMPY,
    )
    if any(part != part for part in parts):
        return design, float("nan")
    return design, float(max(parts))


# ---------------------------------------------------------------- torch CPU tensors


def _is_host_tensor(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.layout == torch.strided and not x.requires_grad


def _view(x: Any) -> Any:
    return None if x is None else x.detach().numpy()


def _host(*arrays: Any) -> bool:
    """Host tensors (or None) of a dtype NumPy can view (not bfloat16)."""
    import torch

    return all(
        array is None or (_is_host_tensor(array) and array.dtype in (torch.float32, torch.float64)) for array in arrays
    )


def _find_non_finite_torch_applies(X: Any, **_: Any) -> bool:
    return _host(X) and _find_non_finite_applies(_view(X))


def find_non_finite_torch(X: Any, *, xp: Any) -> str | None:
    """:func:`find_non_finite_numba` on the NumPy view of a host tensor."""
    return find_non_finite_numba(_view(X), xp=_NUMPY)


def _max_abs_torch_applies(X: Any, *, origin: Any = None, **_: Any) -> bool:
    return _host(X, origin) and _max_abs_applies(_view(X), origin=_view(origin))


def max_abs_torch(X: Any, *, xp: Any, origin: Any = None, budget_mib: float | None = None) -> float:
    """:func:`max_abs_numba` on the NumPy views of host tensors."""
    return max_abs_numba(_view(X), xp=_NUMPY, origin=_view(origin), budget_mib=budget_mib)


def _working_copy_torch_applies(X: Any, *, offset: Any = None, **_: Any) -> bool:
    return _host(X, offset) and _working_copy_applies(_view(X), offset=_view(offset))


def working_copy_torch(
    X: Any, *, xp: Any, offset: Any = None, rows_per_block: int | None = None, scale_exponent: int = 0
) -> Any:
    """:func:`working_copy_numba`, handed back as a host tensor sharing the copy's memory.

    NumPy allocates the copy: it asks the kernel for huge pages on large
    arrays, where a ``torch.empty`` of the same size faults its pages in 4 KiB
    at a time while it is filled (measured: about five times the time of
    the fill itself at 1,000,000 x 33 float32).
    """
    import torch

    return torch.from_numpy(working_copy_numba(_view(X), xp=_NUMPY, offset=_view(offset),
                                               rows_per_block=rows_per_block, scale_exponent=scale_exponent))


def _centered_copy_torch_applies(X: Any, origin: Any, **_: Any) -> bool:
    return _host(X, origin) and _centered_copy_applies(_view(X), _view(origin))


def centered_copy_torch(X: Any, origin: Any, *, xp: Any, budget_mib: float | None = None) -> tuple[Any, float]:
    """:func:`centered_copy_numba` on the NumPy views of host tensors; the copy as a tensor sharing its memory."""
    import torch

    design, largest = centered_copy_numba(_view(X), _view(origin), xp=_NUMPY, budget_mib=budget_mib)
    return torch.from_numpy(design), largest


# ---------------------------------------------------------------- self-checks


def _check_data(dtype: Any) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    X = (rng.standard_normal((97, 5)) * 3).astype(dtype)
    return X, X[3].copy()


def _self_check(operation: str, kernel: Any, to_xp: Any) -> Any:
    """``self_check(xp, device)``: ``kernel`` against the reference on a small problem, both dtypes."""

    def check(xp: Any, device: Any) -> bool:
        from .dispatch import reference

        expected = reference(operation)
        for dtype in _FLOATS:
            X, origin = _check_data(dtype)
            X_in, origin_in = to_xp(X), to_xp(origin)
            if operation == "find_non_finite":
                X[50, 2] = np.inf
                agree = kernel(X_in, xp=xp) == expected(X_in, xp=xp) == "infinity"
            elif operation == "centered_copy":
                mine, mine_largest = kernel(X_in, origin_in, xp=xp)
                theirs, theirs_largest = expected(X_in, origin_in, xp=xp)
                agree = mine_largest == theirs_largest and np.asarray(mine).tobytes() == np.asarray(theirs).tobytes()
            elif operation == "max_abs":
                agree = kernel(X_in, xp=xp, origin=origin_in) == expected(X_in, xp=xp, origin=origin_in)
            else:
                mine = np.asarray(kernel(X_in, xp=xp, offset=origin_in, scale_exponent=-3))
                theirs = np.asarray(expected(X_in, xp=xp, offset=origin_in, scale_exponent=-3))
                agree = mine.dtype == theirs.dtype and mine.tobytes() == theirs.tobytes()
            if not agree:
                return False
        return True

    return check


def _identity(array: np.ndarray) -> np.ndarray:
    return array


def _to_torch(array: np.ndarray) -> Any:
    import torch

    return torch.from_numpy(array)


#: Per operation, the (kernel, guard) pair for NumPy arrays and for torch CPU tensors.
_KERNELS = {
    "find_non_finite": ((find_non_finite_numba, _find_non_finite_applies),
                        (find_non_finite_torch, _find_non_finite_torch_applies)),
    "max_abs": ((max_abs_numba, _max_abs_applies), (max_abs_torch, _max_abs_torch_applies)),
    "working_copy": ((working_copy_numba, _working_copy_applies), (working_copy_torch, _working_copy_torch_applies)),
    "centered_copy": ((centered_copy_numba, _centered_copy_applies),
                      (centered_copy_torch, _centered_copy_torch_applies)),
}



def _register_kernels() -> None:
    # The torch entries are registered whether or not torch is installed: the
    # "torch" backend is only looked up for torch arrays, and the adapters
    # import torch when they run.
    for operation, (on_numpy, on_torch) in _KERNELS.items():
        for backend, (kernel, applies), to_xp in (("numpy", on_numpy, _identity), ("torch", on_torch, _to_torch)):
            register(operation, backend, name="numba", self_check=_self_check(operation, kernel, to_xp),
                     applies=applies)(kernel)


_register_kernels()
