"""Data larger than the compute device: rows streamed from host memory a block at a time.

:class:`StreamedRows` wraps a host matrix (a NumPy array or a memory-mapped
``.npy``) and looks enough like an ``(n, d)`` device array for the block
kernels: ``shape``, ``dtype``, ``ndim`` and ``X[start:stop, :]``, which reads
those rows, moves them to the compute device and applies the working-copy
transform (centering, homogeneous coordinates) on the way. Every kernel that
walks row blocks (assignment, Lloyd's fused step, inertia, k-means++) therefore
runs unchanged on streamed data, and the device only ever holds one block (per
worker) plus the centers.

Half-precision data (float16, bfloat16) is read the same way, wherever it
lives: it stays half precision in memory and each block is converted to
float32 as it is read (:func:`half_precision_rows`), so the kernels compute in
float32 without a float32 copy of all of ``X``.
"""

from __future__ import annotations

import math
import threading
from typing import Any

import numpy as np

from ._backend import backend_name, move_to, namespace_of
from ._kernels.dispatch import call, register
from ._validation import is_half_precision

#: Fraction of the free memory the working copy may take before fits stream instead.
RESIDENT_FRACTION = 0.5


class StreamedRows:
    """A matrix read onto the compute device one row block at a time, transformed on the way.

    Parameters
    ----------
    host : array of shape (n, d)
        A NumPy array or memmap on the host, or an array already on the
        compute device (then only the transform is applied per block). Never
        written to. Half precision (float16, bfloat16) is read as float32,
        one block at a time; a half-precision source may also live in
        another library than ``xp`` (a PyTorch bfloat16 tensor read by NumPy).
    xp : namespace
        Compute namespace.
    device : object
        Compute device.
    offset : array of shape (d,) or None
        Subtracted from every row on the way (a device array of ``xp``).
    homogeneous : bool
        Append a column of ones (``[x - offset, 1]``, see
        :func:`kgpu._distances.homogeneous`).
    frame : kgpu._scale.Frame or None
        Working frame applied to every row (instead of ``offset``).

    Attributes
    ----------
    shape : tuple of int
        ``(n, d)`` or ``(n, d + 1)`` when homogeneous.
    dtype : dtype of ``xp``
    """

    ndim = 2

    def __init__(
        self, host: Any, xp: Any, device: Any, *, offset: Any = None, homogeneous: bool = False, frame: Any = None
    ):
        from ._scale import Frame

        self.host = host
        self.xp = xp
        self.device = device
        if frame is None:
            frame = Frame(offset, 0)
        self.frame = frame
        self.offset = frame.origin
        self.homogeneous = homogeneous
        # Per-worker buffers of converted_block, reused by every pass.
        self._buffers = threading.local()
        n_rows, n_features = host.shape
        self.shape = (n_rows, n_features + 1 if homogeneous else n_features)
        #: Whether every block is converted from half precision to float32.
        self.widens = is_half_precision(host.dtype)
        if self.widens:
            self.dtype = xp.float32
        elif isinstance(host, np.ndarray):
            self.dtype = xp.float32 if host.dtype == np.float32 else xp.float64
        else:
            self.dtype = host.dtype

    def __repr__(self) -> str:
        return (
            f"StreamedRows(shape={self.shape}, dtype={self.dtype}, to={backend_name(self.xp)}:{self.device}, "
            f"centered={self.offset is not None}, exponent={self.frame.exponent}, homogeneous={self.homogeneous})"
        )

    def in_frame(self, frame: Any, *, homogeneous: bool | None = None) -> "StreamedRows":
        """The same source rows read in working frame ``frame`` (replacing this one's)."""
        homogeneous = self.homogeneous if homogeneous is None else homogeneous
        return StreamedRows(self.host, self.xp, self.device, frame=frame, homogeneous=homogeneous)

    def without_ones(self) -> "StreamedRows":
        """The same rows without the homogeneous column (``design[:, :-1]``)."""
        return self.in_frame(self.frame, homogeneous=False)

    def __getitem__(self, key: Any) -> Any:
        rows, columns = key if isinstance(key, tuple) else (key, slice(None))
        if rows == slice(None) and self.homogeneous and columns == slice(None, -1):
            return self.without_ones()
        if not isinstance(rows, slice) or rows.step not in (None, 1) or columns != slice(None):
            raise TypeError(f"StreamedRows supports X[start:stop, :] and X[:, :-1], got {key!r}.")
        return self._to_device(self.host[rows, :])

    def take(self, indices: np.ndarray) -> Any:
        """Rows ``indices`` (host integers) on the compute device, transformed."""
        indices = np.asarray(indices, dtype=np.int64)
        if isinstance(self.host, np.ndarray):
            return self._to_device(self.host[indices])
        return self._to_device(_take_device_rows(self.host, indices, namespace_of(self.host)))

    def _to_device(self, host_rows: Any, out: Any = None) -> Any:
        xp = self.xp
        if self.widens and backend_name(namespace_of(host_rows)) != backend_name(xp):
            # Converted where the rows live (NumPy has no bfloat16 to receive them).
            source_xp = namespace_of(host_rows)
            host_rows = source_xp.astype(host_rows, source_xp.float32)
        if isinstance(host_rows, np.ndarray):
            block = move_to(np.ascontiguousarray(host_rows), xp, self.device)
        else:
            block = move_to(host_rows, xp, self.device)
        if not (self.homogeneous or block.dtype != self.dtype):
            return block if self.frame.is_identity else self.frame.apply(block)
        # One array per block, written in place: the conversion to float32,
        # the frame and the column of ones cost one allocation, not four (and
        # one pass, where a compiled kernel applies).
        if out is None:
            out = xp.empty((block.shape[0], self.shape[1]), dtype=self.dtype, device=self.device)
        return call("widen_rows", block, self.frame, self.homogeneous, out, xp=xp)

    def converted_block(self, start: int, stop: int) -> Any:
        """Rows ``start:stop`` like ``X[start:stop, :]``, written into this thread's reused buffer.

        For a pass that uses each block and lets it go before reading the
        next (Lloyd's step): no allocation per block and pass. The block is
        overwritten by this thread's next call on the same ``StreamedRows``;
        the buffers go with it (a fit's working copy: one per worker while
        the fit runs, none after).
        """
        xp = self.xp
        if not self.widens or backend_name(xp) not in ("numpy", "torch"):
            return self[start:stop, :]
        host_rows = self.host[start:stop, :]
        if backend_name(namespace_of(host_rows)) != backend_name(xp):
            return self._to_device(host_rows)
        out = _reused_buffer(self._buffers, xp, self.device, self.dtype, (stop - start, self.shape[1]))
        return self._to_device(host_rows, out=out)


def _reused_buffer(buffers: threading.local, xp: Any, device: Any, dtype: Any, shape: tuple[int, int]) -> Any:
    """An uninitialised ``shape`` array of this thread's buffer in ``buffers``, grown when too small."""
    size = shape[0] * shape[1]
    held = getattr(buffers, "held", None)
    if held is None or held.shape[0] < size:
        held = xp.empty((size,), dtype=dtype, device=device)
        buffers.held = held
    return xp.reshape(held[:size], shape)


def power_of_two_factors(exponent: int) -> list[float]:
    """The factors :func:`kgpu._scale.scale_by_power_of_two` multiplies by, in order."""
    from ._scale import _STEP_EXPONENT

    factors = []
    while exponent != 0:
        step = max(-_STEP_EXPONENT, min(_STEP_EXPONENT, exponent))
        factors.append(math.ldexp(1.0, step))
        exponent -= step
    return factors


@register("widen_rows", "*", name="array-api")
def widen_rows_reference(rows: Any, frame: Any, homogeneous: bool, out: Any, *, xp: Any) -> Any:
    """Fill ``out`` with half-precision ``rows`` in float32 and in the working frame.

    ``out[:, :d] = (float32(rows) - origin) * 2**-exponent``, then
    ``out[:, d] = 1`` when ``homogeneous`` (``out`` is ``(m, d + 1)``).

    Parameters
    ----------
    rows : array of shape (m, d), half precision, in ``xp``
    frame : kgpu._scale.Frame
    homogeneous : bool
    out : array of shape (m, d) or (m, d + 1), float32, in ``xp``
    xp : namespace

    Returns
    -------
    out
    """
    from ._scale import scale_by_power_of_two

    n_features = rows.shape[1]
    out[:, :n_features] = rows
    if frame.origin is not None:
        out[:, :n_features] -= frame.origin
    if frame.exponent:
        out[:, :n_features] = scale_by_power_of_two(out[:, :n_features], -frame.exponent)
    if homogeneous:
        out[:, n_features] = 1
    return out


def half_precision_rows(X: Any, xp: Any, device: Any) -> StreamedRows:
    """Half-precision ``X`` read in float32 row blocks by namespace ``xp`` on ``device``.

    ``X`` is moved to the compute device whole, still in half precision, when
    the compute library has its dtype (PyTorch, CuPy, NumPy for float16), so
    every pass converts on the device; otherwise (array-api-strict, or
    bfloat16 computed by NumPy) it stays where it is and each block is
    converted there and moved.

    Parameters
    ----------
    X : array of shape (n, d), float16 or bfloat16
    xp : namespace
    device : device

    Returns
    -------
    StreamedRows
        Float32 blocks; memory is that of ``X`` plus one block per worker.
    """
    dtype_name = str(X.dtype).rsplit(".", 1)[-1]
    if getattr(xp, dtype_name, None) is not None:
        X = move_to(X, xp, device)
    return StreamedRows(X, xp, device)


def needs_streaming(X: Any) -> bool:
    """Whether ``X`` is streamed because it cannot be held whole (a memmap, or too large).

    Half-precision data in memory is read through :class:`StreamedRows` too,
    but only to convert it block by block: code that needs a full copy of
    the rows anyway (the unit rows of spherical K-Means) may make one.
    """
    return isinstance(X, StreamedRows) and (not X.widens or is_memmap(X.host))


def widened(X: Any) -> Any:
    """A float32 copy of half-precision ``X`` in its own namespace (for kernels that need all of it)."""
    source_xp = namespace_of(X)
    return source_xp.astype(X, source_xp.float32)


def working_copy(X: Any, *, xp: Any, offset: Any = None, frame: Any = None) -> Any:
    """Lloyd's working copy ``[(X - origin) * scale, 1]``: a new device array, or streamed when ``X`` is.

    Parameters
    ----------
    X : array of shape (n, d) or StreamedRows
    xp : namespace
    offset : array of shape (d,) or None
        Origin subtracted from every row (when no ``frame`` is given).
    frame : kgpu._scale.Frame or None
        Working frame of the fit (origin and power-of-two scale).

    Returns
    -------
    design : array of shape (n, d + 1) or StreamedRows
    """
    from ._scale import Frame

    if frame is None:
        frame = Frame(offset, 0)
    if isinstance(X, StreamedRows):
        return X.in_frame(frame, homogeneous=True)
    from ._distances import homogeneous

    return homogeneous(X, xp=xp, offset=frame.origin, scale_exponent=-frame.exponent)


def _take_device_rows(X: Any, indices: np.ndarray, xp: Any) -> Any:
    """``X[indices]`` of a device array without copying all of ``X``.

    NumPy's ``take`` makes a contiguous copy of a strided input (such as the
    view ``design[:, :-1]``) before gathering; fancy indexing reads only the
    rows asked for.
    """
    if isinstance(X, np.ndarray):
        return X[indices]
    from ._backend import device_of

    return xp.take(X, xp.asarray(indices, device=device_of(X)), axis=0)


def take_rows(X: Any, indices: Any, *, xp: Any) -> Any:
    """``X[indices]`` on the compute device, for a device array or :class:`StreamedRows`.

    Only the rows asked for are read: a strided view (``design[:, :-1]``) is
    never copied whole.

    Parameters
    ----------
    X : array of shape (n, d) or StreamedRows
    indices : host integer array, or integer array of ``xp``
    xp : namespace
    """
    if isinstance(X, StreamedRows):
        if not isinstance(indices, np.ndarray):
            from ._backend import to_numpy

            indices = to_numpy(indices)
        return X.take(indices)
    if isinstance(indices, (np.ndarray, list, tuple)):
        return _take_device_rows(X, np.asarray(indices, dtype=np.int64), xp)
    if isinstance(X, np.ndarray):
        return X[np.asarray(indices, dtype=np.int64)]
    return xp.take(X, indices, axis=0)


def is_memmap(X: Any) -> bool:
    """True for a NumPy memmap or a view of one (as ``np.load(mmap_mode="r")`` gives)."""
    while isinstance(X, np.ndarray):
        if isinstance(X, np.memmap):
            return True
        X = X.base
    return isinstance(X, np.memmap)


def free_memory_bytes(xp: Any, device: Any) -> int | None:
    """Free memory of the compute device (host RAM for CPU backends), or None if unknown."""
    name = backend_name(xp)
    try:
        if name == "cupy":
            import cupy

            with cupy.cuda.Device(device if isinstance(device, int) else getattr(device, "id", 0)):
                free, _ = cupy.cuda.runtime.memGetInfo()
            # Blocks cached by CuPy's pool are free to kgpu too.
            return int(free + cupy.get_default_memory_pool().free_bytes())
        if name == "torch" and str(device).startswith("cuda"):
            import torch

            free, _ = torch.cuda.mem_get_info(device)
            return int(free)
        return host_available_memory_bytes()
    except Exception:  # noqa: BLE001 - unknown is a fine answer
        return None


def host_available_memory_bytes() -> int:
    """``MemAvailable`` of the host (bytes): free pages plus reclaimable cache.

    Free pages alone (``SC_AVPHYS_PAGES``) where ``/proc/meminfo`` is not there.
    """
    try:
        with open("/proc/meminfo") as meminfo:
            for line in meminfo:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    import os

    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


def should_stream(X_host: Any, xp: Any, device: Any) -> bool:
    """Whether a fit on host data must stream rather than copy it whole to the device.

    Memory-mapped files always stream (that is why they are memory-mapped).
    Other host arrays stream when the working copy (``n x (d + 1)``) would take
    more than :data:`RESIDENT_FRACTION` of the device's free memory.
    """
    if not isinstance(X_host, np.ndarray):
        return False
    if is_memmap(X_host) or is_half_precision(X_host.dtype):
        return True
    free = free_memory_bytes(xp, device)
    if free is None:
        return False
    n_rows, n_features = X_host.shape
    working_copy = n_rows * (n_features + 1) * X_host.dtype.itemsize
    return working_copy > RESIDENT_FRACTION * free
