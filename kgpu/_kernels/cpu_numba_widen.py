"""Half-precision rows converted to float32 in the working frame, compiled with numba.

One pass over a block of float16 or bfloat16 rows writes
``[(float32(x) - origin) * 2**-exponent, 1]`` into a float32 block: the
conversion, the frame and the column of ones that the array-API reference
(:func:`kgpu._stream.widen_rows_reference`) does in four passes over the
block, with the same arithmetic, so the same bits.

NumPy has no bfloat16 and numba no float16, so the rows are read as their
16-bit patterns (a NumPy ``uint16`` view of a NumPy float16 array or of a
PyTorch CPU tensor's storage, no copy) and widened exactly: bfloat16 is the
high half of a float32; float16 is rebuilt field by field (sign, exponent
rebiased from 15 to 127, subnormals normalised, infinities and NaNs kept).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from .dispatch import register


@njit(fastmath=False, cache=True, nogil=True, inline="always")
def _float16_to_float32_bits(half):
    sign = (half & np.uint32(0x8000)) << np.uint32(16)
    exponent = (half >> np.uint32(10)) & np.uint32(0x1F)
    mantissa = half & np.uint32(0x3FF)
    if exponent == 0:
        if mantissa == 0:
            return sign
        # Subnormal: shift the mantissa up to its leading one.
        shift = np.uint32(0)
        while (mantissa & np.uint32(0x400)) == 0:
            mantissa = mantissa << np.uint32(1)
            shift += np.uint32(1)
        mantissa = mantissa & np.uint32(0x3FF)
        return sign | ((np.uint32(113) - shift) << np.uint32(23)) | (mantissa << np.uint32(13))
    if exponent == 31:
        return sign | np.uint32(0x7F800000) | (mantissa << np.uint32(13))
    return sign | ((exponent + np.uint32(112)) << np.uint32(23)) | (mantissa << np.uint32(13))


@njit(fastmath=False, cache=True, nogil=True)
def _widen(bits, is_bfloat16, origin, factors, homogeneous, out):
    """``out[:, :d] = (float32(bits) - origin) * factors...``; ``out[:, d] = 1`` when homogeneous.

    ``origin`` (float32 or float64; empty for none) is subtracted and the
    result rounded to float32, then multiplied by each float32 factor in
    turn: the reference's operations in its order.
    """
    n_rows, n_features = bits.shape
    out_bits = out.view(np.uint32)
    has_origin = origin.shape[0] > 0
    for r in range(n_rows):
        if is_bfloat16:
            for f in range(n_features):
                out_bits[r, f] = np.uint32(bits[r, f]) << np.uint32(16)
        else:
            for f in range(n_features):
                out_bits[r, f] = _float16_to_float32_bits(np.uint32(bits[r, f]))
        if has_origin:
            for f in range(n_features):
                out[r, f] = np.float32(out[r, f] - origin[f])
        for factor in factors:
            for f in range(n_features):
                out[r, f] = out[r, f] * factor
        if homogeneous:
            out[r, n_features] = np.float32(1.0)


def _sixteen_bits(rows: Any) -> tuple[np.ndarray, bool] | None:
    """The ``uint16`` NumPy view of half-precision ``rows`` and whether they are bfloat16, or None."""
    if isinstance(rows, np.ndarray):
        if rows.dtype == np.float16 and rows.ndim == 2:
            return rows.view(np.uint16), False
        return None
    import sys

    torch = sys.modules.get("torch")
    if torch is None or not isinstance(rows, torch.Tensor) or rows.device.type != "cpu" or rows.ndim != 2:
        return None
    if rows.dtype not in (torch.float16, torch.bfloat16) or rows.layout != torch.strided:
        return None
    return rows.detach().view(torch.int16).numpy().view(np.uint16), rows.dtype == torch.bfloat16


def _host_view(array: Any) -> np.ndarray | None:
    """The NumPy view of a NumPy array or a PyTorch CPU tensor, or None."""
    if isinstance(array, np.ndarray):
        return array
    import sys

    torch = sys.modules.get("torch")
    if torch is not None and isinstance(array, torch.Tensor) and array.device.type == "cpu":
        return array.detach().numpy()
    return None


def _widen_rows_applies(rows: Any, frame: Any, homogeneous: bool, out: Any, **_: Any) -> bool:
    if _sixteen_bits(rows) is None:
        return False
    target = _host_view(out)
    if target is None or target.dtype != np.float32 or not target.flags.c_contiguous:
        return False
    return frame.origin is None or _host_view(frame.origin) is not None


def widen_rows_numba(rows: Any, frame: Any, homogeneous: bool, out: Any, *, xp: Any) -> Any:
    """:func:`kgpu._stream.widen_rows_reference` in one compiled pass; fills and returns ``out``."""
    from .._stream import power_of_two_factors

    bits, is_bfloat16 = _sixteen_bits(rows)
    bits = np.ascontiguousarray(bits)
    if frame.origin is None:
        origin = np.empty(0, dtype=np.float32)
    else:
        origin = _host_view(frame.origin)
        origin = origin.astype(np.float32) if origin.dtype == np.float16 else np.ascontiguousarray(origin)
    factors = np.asarray(power_of_two_factors(-frame.exponent), dtype=np.float32)
    _widen(bits, is_bfloat16, origin, factors, bool(homogeneous), _host_view(out))
    return out


def _widen_rows_self_check(xp: Any, device: Any) -> bool:
    import array_api_compat.numpy as numpy_namespace

    from .._scale import Frame
    from .._stream import widen_rows_reference

    xp = numpy_namespace  # the check runs on NumPy arrays, whichever backend asked

    rng = np.random.default_rng(5)
    rows = (rng.standard_normal((97, 5)) * 3).astype(np.float16)
    rows[0, :] = [0.0, -0.0, 6e-8, -3e-5, 65504.0]  # zeros, subnormals, the largest float16
    ok = True
    for origin in (None, rows[1].astype(np.float32), rows[2].astype(np.float64)):
        for exponent in (0, 3, 140, -20):
            for homogeneous in (False, True):
                frame = Frame(origin, exponent)
                got = np.empty((rows.shape[0], 5 + homogeneous), dtype=np.float32)
                want = np.empty_like(got)
                widen_rows_numba(rows, frame, homogeneous, got, xp=xp)
                widen_rows_reference(rows, frame, homogeneous, want, xp=xp)
                ok = ok and np.array_equal(got, want, equal_nan=True)
    return bool(ok)


register("widen_rows", "numpy", name="numba", self_check=_widen_rows_self_check, applies=_widen_rows_applies)(
    widen_rows_numba
)
register("widen_rows", "torch", name="numba", self_check=_widen_rows_self_check, applies=_widen_rows_applies)(
    widen_rows_numba
)
