"""Helpers of the kernel contract tests: which implementations exist, and where their inputs live."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from kgpu._backend import cuda_available
from kgpu._kernels import dispatch


def _torch_target():
    """(namespace, device) on which torch implementations are checked, or a reason to skip."""
    import torch

    if torch.cuda.is_available():
        return torch.device("cuda"), None
    triton_module = sys.modules.get("kgpu._kernels.gpu_triton")
    if triton_module is not None and not triton_module.INTERPRETED:
        return None, "kgpu._kernels.gpu_triton was imported before TRITON_INTERPRET=1 was set"
    return torch.device("cpu"), None


def native_implementations(operation: str) -> list:
    """``pytest.param(backend, entry)`` for every native implementation of ``operation``.

    The reference itself (backend ``"*"``) is what they are compared with.
    """
    params = []
    for backend, entry in dispatch.registered(operation):
        if backend == dispatch.ANY_BACKEND:
            continue
        marks = []
        if backend == "cupy" and not cuda_available():
            marks.append(pytest.mark.skip(reason="CuPy with a CUDA device not found"))
        params.append(pytest.param(backend, entry, id=f"{backend}-{entry.name}", marks=marks))
    return params


class Target:
    """Where an implementation's inputs live: namespace ``xp`` and a converter from NumPy."""

    def __init__(self, backend: str):
        self.backend = backend
        if backend == "numpy":
            import array_api_compat.numpy as xp

            self.xp, self.device = xp, None
        elif backend == "torch":
            import array_api_compat.torch as xp

            device, reason = _torch_target()
            if device is None:
                pytest.skip(reason)
            self.xp, self.device = xp, device
        elif backend == "cupy":
            import array_api_compat.cupy as xp

            self.xp, self.device = xp, None
        else:
            pytest.skip(f"no test inputs for backend {backend!r}")

    def array(self, values):
        """A fresh array of this target holding the NumPy array ``values``."""
        values = np.array(values, copy=True)
        if self.backend == "torch":
            import torch

            return torch.from_numpy(values).to(self.device)
        return self.xp.asarray(values)


def require_applies(entry, *args, **kwargs) -> None:
    """Skip a case whose inputs the implementation's guard sends to the reference (e.g. float16 to numba).

    The kernel table never runs an implementation on such inputs, so there is
    no contract to check. Triton's guards ask for CUDA arrays; under the
    interpreter, CPU tensors stand in for them here.
    """
    if entry.applies is None:
        return
    triton_module = sys.modules.get("kgpu._kernels.gpu_triton")
    if triton_module is not None and triton_module.INTERPRETED:
        original = triton_module._runs_here
        triton_module._runs_here = lambda x: hasattr(x, "is_cuda") and x.ndim == 2 and x.is_floating_point()
        try:
            applies = entry.applies(*args, **kwargs)
        finally:
            triton_module._runs_here = original
    else:
        applies = entry.applies(*args, **kwargs)
    if not applies:
        pytest.skip(f"the {entry.name} kernel's guard sends these inputs to the array-API reference")
