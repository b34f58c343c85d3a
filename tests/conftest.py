"""Shared fixtures: ``xp`` runs a test once per array backend present.

Backends: NumPy (through array-api-compat), array-api-strict (the standard and
nothing else), PyTorch on the CPU and CuPy (only with a CUDA device).
"""

from __future__ import annotations

import importlib.util

import pytest

from kgpu._backend import cuda_available

# Skips are summarised by reason at the end of the run (see tests/_skip_summary.py).
pytest_plugins = ["tests._skip_summary"]

_TORCH_FOUND = importlib.util.find_spec("torch") is not None
_STRICT_FOUND = importlib.util.find_spec("array_api_strict") is not None

BACKENDS = [
    pytest.param("numpy", id="numpy"),
    pytest.param(
        "array_api_strict",
        id="array_api_strict",
        marks=pytest.mark.skipif(not _STRICT_FOUND, reason="array-api-strict not installed"),
    ),
    pytest.param(
        "torch",
        id="torch",
        marks=pytest.mark.skipif(not _TORCH_FOUND, reason="PyTorch not installed"),
    ),
    pytest.param(
        "cupy",
        id="cupy",
        marks=pytest.mark.skipif(not cuda_available(), reason="CuPy with a CUDA device not found"),
    ),
]


def _namespace(name: str):
    if name == "numpy":
        import array_api_compat.numpy as xp
    elif name == "array_api_strict":
        import array_api_strict as xp
    elif name == "torch":
        import array_api_compat.torch as xp
    else:
        import array_api_compat.cupy as xp
    return xp


@pytest.fixture(params=BACKENDS)
def xp(request):
    """The array namespace of one backend (compat-wrapped where needed)."""
    return _namespace(request.param)


@pytest.fixture
def xp_name(xp):
    """Short name of the ``xp`` backend: ``"numpy"``, ``"torch"``..."""
    from kgpu._backend import backend_name

    return backend_name(xp)
