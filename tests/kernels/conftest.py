"""Contract tests of the native kernels: each registered implementation against its array-API reference.

Triton reads ``TRITON_INTERPRET`` when ``@triton.jit`` decorates a kernel, so
the variable is set here, before anything imports
:mod:`kgpu._kernels.gpu_triton`, whenever no CUDA device is present: Triton's
interpreter then runs the very same kernels on CPU tensors. With a GPU the
kernels compile and run on CUDA tensors instead.

The kernel table's guards only send CUDA (or CuPy) arrays to Triton, so the
interpreter never runs outside these tests' direct calls.
"""

from __future__ import annotations

import importlib.util
import os

from kgpu._backend import torch_cuda_available

if importlib.util.find_spec("torch") is not None and not torch_cuda_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest  # noqa: E402

from ._contract import Target  # noqa: E402


@pytest.fixture
def target(request):
    """The :class:`Target` of the ``backend`` parameter."""
    return Target(request.getfixturevalue("backend"))
