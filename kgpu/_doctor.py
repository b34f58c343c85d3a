"""``kgpu doctor``: which backends and devices are here, and which kernel each operation runs.

The report answers, on any machine (with or without a GPU):

- the array libraries found, their devices and the free memory of each;
- whether Triton is importable and whether its kernels passed their
  first-use self-check on each CUDA device;
- for every backend and device, which implementation each operation of the
  kernel table takes, and why the array-API path runs where it does.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
from dataclasses import dataclass, field
from typing import Any

from ._backend import backend_name, cuda_available, torch_cuda_available
from ._kernels import dispatch


@dataclass
class DevicePaths:
    """Kernel paths on one device of one backend.

    Attributes
    ----------
    backend : str
    device : str
    free_bytes : int or None
        Free memory of the device (host ``MemAvailable`` for CPU backends).
    paths : dict of str to str
        ``{operation: implementation}`` (``"array-api"``, ``"triton"``, ``"numba"``...).
    why_reference : str or None
        Why the fused GPU kernels, or any native kernel, do not run here.
    """

    backend: str
    device: str
    free_bytes: int | None
    paths: dict
    why_reference: str | None = None


@dataclass
class DoctorReport:
    """What :func:`doctor` found. ``str(report)`` is what ``kgpu doctor`` prints."""

    libraries: dict = field(default_factory=dict)
    triton: str = ""
    fast_enabled: bool = True
    devices: list = field(default_factory=list)
    blas: list = field(default_factory=list)
    blas_advice: str | None = None

    def __str__(self) -> str:
        lines = ["kgpu doctor", "", "Array libraries:"]
        lines += [f"  {name:<17} {version}" for name, version in self.libraries.items()]
        lines += ["", "BLAS libraries (SciPy's computes the CPU score tiles):"]
        lines += [f"  {line}" for line in self.blas] or ["  none found"]
        if self.blas_advice:
            lines.append(f"  advice: {self.blas_advice}")
        lines += ["", f"Triton: {self.triton}"]
        if not self.fast_enabled:
            lines.append("KGPU_FAST=0: every native kernel is off; the array-API path runs everywhere.")
        lines += ["", "Devices and the path each operation takes:"]
        for found in self.devices:
            memory = "free memory unknown" if found.free_bytes is None else f"{found.free_bytes / 2**30:.1f} GiB free"
            lines.append(f"  {found.backend} on {found.device} ({memory})")
            for operation, name in found.paths.items():
                lines.append(f"    {operation:<15} {name}")
            if found.why_reference:
                lines.append(f"    why: {found.why_reference}")
        return "\n".join(lines)


def _version(module_name: str) -> str | None:
    if importlib.util.find_spec(module_name) is None:
        return None
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 - a broken install is worth reporting, not raising
        return f"present but fails to import ({type(exc).__name__}: {exc})"
    return str(getattr(module, "__version__", "present"))


#: OpenBLAS kernel sets that use AVX-512 (``threadpoolctl``'s ``architecture``).
_AVX512_KERNELS = ("skylakex", "cooperlake", "sapphirerapids")


def blas_libraries() -> list[dict]:
    """The BLAS libraries loaded for NumPy and SciPy, as ``threadpoolctl`` describes them.

    SciPy's is loaded first: numba's ``np.dot`` (the CPU score tiles) calls it.
    """
    import scipy.linalg.cython_blas  # noqa: F401
    from threadpoolctl import threadpool_info

    return [info for info in threadpool_info() if info.get("user_api") == "blas"]


def cpu_flags() -> set:
    """The CPU's feature flags (``/proc/cpuinfo``); empty where that is not readable."""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def blas_advice(flags: set, libraries: list[dict], coretype: str | None = None) -> str | None:
    """Advice when OpenBLAS runs kernels without AVX-512 on a CPU that has it, else None.

    OpenBLAS picks its kernels by CPU model when it loads, unless
    ``OPENBLAS_CORETYPE`` (``coretype``, read before Python started) names a
    set: ``Haswell`` holds it to AVX2, which halves its GEMM speed on
    AVX-512 CPUs such as AMD Zen 5.
    """
    if "avx512f" not in flags:
        return None
    slow = [
        info for info in libraries
        if info.get("internal_api") == "openblas" and str(info.get("architecture", "")).lower() not in _AVX512_KERNELS
    ]
    if not slow:
        return None
    kernels = ", ".join(sorted({str(info.get("architecture")) for info in slow}))
    if coretype:
        return (
            f"OPENBLAS_CORETYPE={coretype} holds OpenBLAS to its {kernels} kernels on this AVX-512 CPU; without it "
            "(or with OPENBLAS_CORETYPE=SkylakeX) every GEMM of NumPy, SciPy, scikit-learn and kgpu's CPU score "
            "tiles runs the AVX-512 kernels."
        )
    return (
        f"this CPU has AVX-512 but OpenBLAS runs its {kernels} kernels; OPENBLAS_CORETYPE=SkylakeX, set before "
        "Python starts, selects the AVX-512 ones (every GEMM of NumPy, SciPy, scikit-learn and kgpu's CPU score tiles)."
    )


def blas_lines(libraries: list[dict]) -> list[str]:
    """One line per BLAS library: its kind, version, kernel set and file."""
    return [
        f"{info.get('internal_api')} {info.get('version')}, {info.get('architecture')} kernels "
        f"({str(info.get('filepath', '')).rsplit('/', 1)[-1]})"
        for info in libraries
    ]


def _triton_status() -> tuple[str, bool]:
    version = _version("triton")
    if version is None:
        return "not installed (pip install 'kgpu[cuda12]', or triton with torch): no fused kernels", False
    if _version("torch") is None:
        return f"{version}, but torch is missing: Triton launches through torch's CUDA runtime", False
    try:
        importlib.import_module("kgpu._kernels.gpu_triton")
    except Exception as exc:  # noqa: BLE001
        return f"{version}, but kgpu's kernels failed to load ({type(exc).__name__}: {exc})", False
    return f"{version}, kernels loaded", True


def _free_bytes(xp: Any, device: Any) -> int | None:
    from ._stream import free_memory_bytes

    return free_memory_bytes(xp, device)


def _why_reference(backend: str, triton_ready: bool, device: Any, paths: dict) -> str | None:
    """Why the fused GPU kernels (or any native kernel) do not run on this device, or None when they do."""
    if not dispatch.fast_enabled():
        return "KGPU_FAST=0 turns the native kernels off."
    uses_reference = [operation for operation, name in paths.items() if name == "array-api"]
    on_gpu = backend == "cupy" or (backend == "torch" and "cuda" in str(device).lower())
    if on_gpu:
        if not triton_ready:
            return "Triton is not usable here (see above): the array-API path runs."
        failed = [op for (op, name), ok in dispatch.self_check_results(device).items() if name == backend and not ok]
        if failed:
            return f"the Triton kernels for {', '.join(sorted(failed))} failed their self-check on this device."
        return None
    if backend == "torch":
        on_cpu = "the array-API path runs" if len(uses_reference) == len(paths) else "CPU kernels run where registered"
        return f"no CUDA device here: the Triton kernels take CUDA tensors (or CuPy arrays) only; {on_cpu}."
    if not uses_reference:
        return None
    if backend == "numpy":
        return f"no native CPU kernel for {', '.join(uses_reference)} (numba absent, or none registered)."
    return "the array-API reference serves this library (no native kernel for it)."


def _probe(xp: Any, device: Any) -> Any:
    return xp.zeros((4, 3), dtype=xp.float32, device=device)


def doctor() -> DoctorReport:
    """Inspect this machine. Runs the native kernels' self-checks on each CUDA device found.

    Returns
    -------
    DoctorReport
    """
    report = DoctorReport(fast_enabled=dispatch.fast_enabled())
    for name in ("numpy", "array_api_strict", "torch", "cupy", "triton", "numba"):
        version = _version(name)
        report.libraries[name] = "not installed" if version is None else version
    try:
        libraries = blas_libraries()
    except Exception as exc:  # noqa: BLE001 - a BLAS that cannot be described is worth a line, not an error
        libraries, report.blas = [], [f"not described ({type(exc).__name__}: {exc})"]
    report.blas = report.blas or blas_lines(libraries)
    report.blas_advice = blas_advice(cpu_flags(), libraries, os.environ.get("OPENBLAS_CORETYPE"))
    report.triton, triton_ready = _triton_status()
    if not torch_cuda_available() and not cuda_available():
        report.triton += "; no CUDA device found, so the fused kernels cannot run on this machine"

    targets: list[tuple[Any, Any]] = []
    import array_api_compat.numpy as xp_numpy

    targets.append((xp_numpy, "cpu"))
    if importlib.util.find_spec("array_api_strict") is not None:
        import array_api_strict

        targets.append((array_api_strict, array_api_strict.Device("CPU_DEVICE")))
    if importlib.util.find_spec("torch") is not None:
        import array_api_compat.torch as xp_torch
        import torch

        targets.append((xp_torch, torch.device("cpu")))
        if torch_cuda_available():
            targets += [(xp_torch, torch.device("cuda", index)) for index in range(torch.cuda.device_count())]
    if cuda_available():
        import array_api_compat.cupy as xp_cupy
        import cupy

        targets += [(xp_cupy, cupy.cuda.Device(index)) for index in range(cupy.cuda.runtime.getDeviceCount())]

    for xp, device in targets:
        backend = backend_name(xp)
        try:
            probe = _probe(xp, device) if backend != "cupy" else _cupy_probe(device)
            paths = dispatch.describe(xp, device, probe)
        except Exception as exc:  # noqa: BLE001 - one broken device must not hide the others
            paths = {"(error)": f"{type(exc).__name__}: {exc}"}
        why = _why_reference(backend, triton_ready, device, paths)
        report.devices.append(DevicePaths(backend, str(device), _free_bytes(xp, device), paths, why))
    return report


def _cupy_probe(device: Any) -> Any:
    import cupy

    with device:
        return cupy.zeros((4, 3), dtype=cupy.float32)
