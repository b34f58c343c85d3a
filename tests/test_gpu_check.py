"""``make gpu-check`` on a machine without a GPU: it says that it needs one, runs nothing, and fails fast."""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kgpu._backend import cuda_available, torch_cuda_available

ROOT = Path(__file__).resolve().parents[1]

pytestmark = pytest.mark.skipif(
    cuda_available() or torch_cuda_available(), reason="describes a machine without a GPU (with one, it runs for minutes)"
)


def test_script_says_it_needs_a_gpu_and_exits_non_zero(tmp_path):
    began = time.perf_counter()
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "gpu_check.py"), "--out-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 2
    assert "needs a CUDA GPU" in done.stderr and "Nothing was run" in done.stderr
    assert list(tmp_path.iterdir()) == [], "no results file without a GPU"
    assert time.perf_counter() - began < 60


@pytest.mark.skipif(shutil.which("make") is None, reason="make is not installed")
def test_make_target_fails_the_same_way():
    done = subprocess.run(["make", "-s", "gpu-check"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode != 0
    assert "needs a CUDA GPU" in done.stderr
