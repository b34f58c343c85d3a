"""Array namespaces and devices: which library computes, and moving arrays to it.

The namespace of the caller's input is resolved once at the edge (the estimator)
and passed down to every kernel as ``xp``; kernels never look it up themselves.
"""

from __future__ import annotations

import functools
from typing import Any

import array_api_compat as aac
import numpy as np

#: Names accepted by the ``backend=`` parameter of every estimator.
BACKEND_NAMES = ("auto", "numpy", "cupy", "torch", "array_api_strict")


def backend_name(xp: Any) -> str:
    """Short name of an array namespace: ``"numpy"``, ``"cupy"``, ``"torch"``...

    Parameters
    ----------
    xp : namespace
        An array-API namespace (as returned by :func:`array_api_compat.array_namespace`).

    Returns
    -------
    name : str
    """
    if aac.is_numpy_namespace(xp):
        return "numpy"
    if aac.is_cupy_namespace(xp):
        return "cupy"
    if aac.is_torch_namespace(xp):
        return "torch"
    if aac.is_array_api_strict_namespace(xp):
        return "array_api_strict"
    return getattr(xp, "__name__", repr(xp))


def is_array_api_obj(x: Any) -> bool:
    """True for an array of any namespace array-api-compat knows (numpy included)."""
    return aac.is_array_api_obj(x)


def namespace_of(*arrays: Any) -> Any:
    """The (compat-wrapped) array-API namespace of ``arrays``."""
    return aac.array_namespace(*arrays)


def device_of(x: Any) -> Any:
    """The device an array lives on (``"cpu"`` for NumPy)."""
    return aac.device(x)


def is_host(xp: Any, device: Any = None) -> bool:
    """True when arrays of ``xp`` on ``device`` live in host memory."""
    name = backend_name(xp)
    if name in ("numpy", "array_api_strict"):
        return True
    if name == "torch":
        return device is None or str(device).startswith("cpu")
    return False


def to_host(x: Any) -> np.ndarray:
    """Copy (or view) any supported array as a NumPy array in host memory.

    This is the one way data leaves a device: every host copy in kgpu goes
    through it, so the copies can be counted (tests/test_syncs.py) and none
    is made implicitly by ``np.asarray`` on a device array, which CuPy and
    ``array_api_strict`` on a non-default device refuse. The array is first
    moved with the standard's ``to_device`` (``.get()`` for CuPy), then
    viewed through DLPack.
    """
    if isinstance(x, np.ndarray):
        return x
    return _copy_to_host(x)


#: The name most of the package already uses for :func:`to_host`.
to_numpy = to_host


def _copy_to_host(x: Any) -> np.ndarray:
    if aac.is_cupy_array(x):
        return x.get()
    if aac.is_torch_array(x):
        return x.detach().cpu().numpy()
    if type(x).__module__.startswith("array_api_strict"):
        import array_api_strict

        cpu = array_api_strict.Device("CPU_DEVICE")
        if x.device != cpu:
            x = x.to_device(cpu)
        return np.from_dlpack(x)
    return np.asarray(x)


def host_scalars(*values: Any, xp: Any) -> list:
    """Several 0-d device arrays as Python floats, in one host copy.

    Loops that must look at a few device scalars per iteration (a center
    shift, a count of changed labels, an "any cluster empty" flag) pack them
    here so that the iteration costs one device-to-host sync, not one per
    scalar. ``None`` entries pass through as ``None``.

    Parameters
    ----------
    *values : 0-d arrays of ``xp`` (numeric or bool) or None
    xp : namespace

    Returns
    -------
    list of float or None, one per value
    """
    present = [value for value in values if value is not None]
    if not present:
        return [None] * len(values)
    packed = xp.concat([xp.reshape(xp.astype(value, xp.float64), (1,)) for value in present])
    host = iter(to_host(packed).tolist())
    return [None if value is None else next(host) for value in values]


def from_host(host: Any, xp: Any, device: Any = None) -> Any:
    """A host (NumPy) array as an array of ``xp`` on ``device``: the way data enters a device.

    The counterpart of :func:`to_host`; small host results (random draws,
    chosen indices) go back to the device through it.
    """
    host = np.asarray(host)
    if not host.flags.writeable and backend_name(xp) == "torch":
        # torch would share a read-only buffer (and warn); a tensor must own writable memory.
        host = host.copy()
    if device is None:
        return xp.asarray(host)
    return xp.asarray(host, device=device)


def move_to(x: Any, xp: Any, device: Any = None) -> Any:
    """Return ``x`` as an array of namespace ``xp`` on ``device``.

    No copy is made when ``x`` already is such an array. Device-to-device moves
    between GPU libraries go through DLPack; everything else through host memory.
    """
    source_xp = aac.array_namespace(x)
    same_library = backend_name(source_xp) == backend_name(xp)
    if same_library and (device is None or _same_device(aac.device(x), device)):
        return x
    if same_library:
        return aac.to_device(x, device)
    if not is_host(source_xp, aac.device(x)) and not is_host(xp, device):
        try:
            return xp.from_dlpack(x)
        except Exception:  # noqa: BLE001 - fall back to the always-working host route
            pass
    return from_host(to_host(x), xp, device)


def _same_device(a: Any, b: Any) -> bool:
    return str(a) == str(b)


@functools.lru_cache(maxsize=None)
def cuda_available() -> bool:
    """True when CuPy is importable and sees at least one CUDA device."""
    try:
        import cupy

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 - any failure means "no usable GPU"
        return False


@functools.lru_cache(maxsize=None)
def torch_cuda_available() -> bool:
    """True when PyTorch is importable and sees a CUDA device."""
    try:
        import torch

        return bool(torch.cuda.is_available())
    except Exception:  # noqa: BLE001
        return False


def best_backend() -> str:
    """The fastest backend present: ``"cupy"`` on a GPU, else ``"numpy"``."""
    if cuda_available():
        return "cupy"
    if torch_cuda_available():
        return "torch"
    return "numpy"


def resolve_compute(backend: str | None, device: Any, x: Any) -> tuple[Any, Any]:
    """Choose the namespace and device that will compute on ``x``.

    Parameters
    ----------
    backend : {None, "auto", "numpy", "cupy", "torch", "array_api_strict"}
        ``None`` computes where ``x`` lives. ``"auto"`` picks the fastest
        backend present (CuPy when a CUDA GPU is found, else PyTorch on CUDA,
        else NumPy). A name forces that library.
    device : object or None
        Device for the chosen library (e.g. ``"cuda:1"`` for torch, ``1`` for
        CuPy). ``None`` keeps the input's device when the library is unchanged,
        else the library's default device.
    x : array
        The validated input.

    Returns
    -------
    xp, device
    """
    if backend is None:
        xp = aac.array_namespace(x)
        return xp, aac.device(x) if device is None else device
    if backend not in BACKEND_NAMES:
        raise ValueError(
            f"backend must be one of {BACKEND_NAMES} or None, got {backend!r}."
        )
    if backend == "auto":
        backend = best_backend()
        input_name = backend_name(aac.array_namespace(x))
        if backend == "numpy" and input_name != "numpy":
            # Nothing faster is present: stay where the data already is.
            xp = aac.array_namespace(x)
            return xp, aac.device(x) if device is None else device
    if backend == "numpy":
        import array_api_compat.numpy as xp_numpy

        return xp_numpy, "cpu"
    if backend == "array_api_strict":
        import array_api_strict

        return array_api_strict, device
    if backend == "torch":
        try:
            import array_api_compat.torch as xp_torch
            import torch
        except ImportError as exc:
            raise ImportError(
                "backend='torch' needs PyTorch: pip install 'kgpu[torch]'."
            ) from exc
        if device is None:
            device = torch.device("cuda") if torch_cuda_available() else torch.device("cpu")
        return xp_torch, torch.device(device)
    # backend == "cupy"
    try:
        import array_api_compat.cupy as xp_cupy
        import cupy
    except ImportError as exc:
        raise ImportError(
            "backend='cupy' needs CuPy: pip install 'kgpu[cuda12]' (or kgpu[cuda13])."
        ) from exc
    if not cuda_available():
        raise RuntimeError("backend='cupy' was asked for, but CuPy finds no CUDA device.")
    return xp_cupy, cupy.cuda.Device(0 if device is None else device)


def synchronize(backend: str) -> None:
    """Wait for work queued on a GPU backend, so that a timing is honest."""
    if backend == "cupy":
        import cupy

        cupy.cuda.Device().synchronize()
    elif backend == "torch" and torch_cuda_available():
        import torch

        torch.cuda.synchronize()
