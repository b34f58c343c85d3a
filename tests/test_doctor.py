"""``kgpu doctor``: backends, devices, Triton, and the path of every operation, with or without a GPU."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kgpu._backend import cuda_available, torch_cuda_available
from kgpu._doctor import doctor
from kgpu._kernels import dispatch

OPERATIONS = {"assign", "lloyd_step", "plusplus_step", "segment_median"}


def _device(report, backend, device_prefix):
    found = [d for d in report.devices if d.backend == backend and d.device.startswith(device_prefix)]
    assert found, f"no {backend} device {device_prefix!r} in the report:\n{report}"
    return found[0]


def test_reports_every_backend_device_and_operation(monkeypatch):
    monkeypatch.delenv("KGPU_FAST", raising=False)
    report = doctor()
    numpy_cpu = _device(report, "numpy", "cpu")
    assert numpy_cpu.free_bytes is not None and numpy_cpu.free_bytes > 0
    for found in report.devices:
        assert OPERATIONS <= set(found.paths), found
    text = str(report)
    assert "Triton:" in text and "lloyd_step" in text and "GiB free" in text


@pytest.mark.skipif(torch_cuda_available() or cuda_available(), reason="describes a machine without a GPU")
def test_without_a_gpu_it_says_the_array_api_path_runs_and_why(monkeypatch):
    pytest.importorskip("torch")
    monkeypatch.delenv("KGPU_FAST", raising=False)
    report = doctor()
    torch_cpu = _device(report, "torch", "cpu")
    assert "triton" not in set(torch_cpu.paths.values())
    assert "no CUDA device" in torch_cpu.why_reference
    strict = _device(report, "array_api_strict", "")
    assert set(strict.paths.values()) == {"array-api"} and strict.why_reference
    assert "no CUDA device found" in report.triton or "not installed" in report.triton


@pytest.mark.skipif(not torch_cuda_available(), reason="needs a CUDA device")
def test_with_a_gpu_the_fused_kernels_run(monkeypatch):
    pytest.importorskip("triton")
    monkeypatch.delenv("KGPU_FAST", raising=False)
    cuda = _device(doctor(), "torch", "cuda")
    assert cuda.paths["lloyd_step"] == "triton", cuda


def test_kgpu_fast_0_is_reported(monkeypatch):
    monkeypatch.setenv("KGPU_FAST", "0")
    report = doctor()
    assert not report.fast_enabled
    assert all(set(found.paths.values()) == {"array-api"} for found in report.devices)
    assert all("KGPU_FAST=0" in found.why_reference for found in report.devices)
    assert "KGPU_FAST=0" in str(report)
    assert dispatch.fast_enabled() is False


def test_command_line():
    env = dict(os.environ)
    env.pop("KGPU_FAST", None)
    done = subprocess.run([sys.executable, "-m", "kgpu", "doctor"], capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Devices and the path each operation takes" in done.stdout
    assert "numpy on cpu" in done.stdout


def test_reports_the_blas_kernels():
    report = doctor()
    assert report.blas, "SciPy's BLAS is loaded by the CPU kernels, so at least one library is listed"
    text = str(report)
    assert "BLAS libraries" in text and "kernels (" in text


@pytest.mark.parametrize(
    "flags, architecture, advised",
    [
        ({"avx2", "avx512f"}, "Haswell", True),
        ({"avx2", "avx512f"}, "Zen", True),
        ({"avx2", "avx512f"}, "SkylakeX", False),
        ({"avx2", "avx512f"}, "Cooperlake", False),
        ({"avx2"}, "Haswell", False),
        (set(), "Haswell", False),
    ],
)
def test_blas_advice_only_where_openblas_leaves_avx512_unused(flags, architecture, advised):
    from kgpu._doctor import blas_advice

    libraries = [{"user_api": "blas", "internal_api": "openblas", "version": "0.3.30", "architecture": architecture}]
    advice = blas_advice(flags, libraries)
    assert (advice is not None) == advised
    if advised:
        assert "OPENBLAS_CORETYPE=SkylakeX" in advice and architecture in advice
    # Kernels forced by the environment: the advice names the variable that holds them.
    forced = blas_advice(flags, libraries, "Haswell")
    assert (forced is not None) == advised
    if advised:
        assert "OPENBLAS_CORETYPE=Haswell holds OpenBLAS" in forced
    # Another BLAS (MKL, BLIS) picks its own kernels: no advice about OpenBLAS.
    assert blas_advice(flags, [{"user_api": "blas", "internal_api": "mkl", "version": "2024"}]) is None
