"""Row blocks: the same bits whatever the core count, and adaptive out-of-memory retries."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from kgpu import KMeans, _blocks
from kgpu._blocks import (
    PARALLEL_BLOCKS,
    block_rows,
    forget_learned_block_limits,
    is_out_of_memory,
    map_blocks,
    row_blocks,
)

import array_api_compat.numpy as NP


# ------------------------------------------------------------ layout
def test_block_layout_does_not_depend_on_the_core_count(monkeypatch):
    layouts = []
    for cores in (1, 2, 64):
        monkeypatch.setattr(_blocks, "cpu_threads", lambda cores=cores: cores)
        layouts.append([block_rows(n, 64, NP) for n in (100, 5000, 40_000, 1_000_000)])
    assert layouts[0] == layouts[1] == layouts[2]
    # Enough blocks for a pool of PARALLEL_BLOCKS cores once there are enough rows.
    assert -(-1_000_000 // layouts[0][3]) >= PARALLEL_BLOCKS


_PINNED_FIT = textwrap.dedent(
    """
    import hashlib, json, os, sys, warnings
    os.sched_setaffinity(0, {cpus})
    import numpy as np
    from kgpu import BisectingKMeans, KMeans, KMedians, KMedoids, MiniBatchKMeans

    warnings.simplefilter("ignore")
    rng = np.random.default_rng(0)
    X = (rng.normal(size=(40_000, 8)) + rng.integers(0, 6, size=(40_000, 1)) * 3).astype(np.float32)
    estimators = {{
        "KMeans": (KMeans(n_clusters=8, n_init=1, random_state=0), X),
        "KMeans-elkan": (KMeans(n_clusters=8, n_init=1, algorithm="elkan", random_state=0), X),
        "MiniBatchKMeans": (MiniBatchKMeans(n_clusters=8, n_init=1, max_iter=5, random_state=0), X),
        "KMedians": (KMedians(n_clusters=8, n_init=1, max_iter=20, random_state=0), X),
        "BisectingKMeans": (BisectingKMeans(n_clusters=8, random_state=0), X),
        "KMedoids-alternate": (KMedoids(n_clusters=8, method="alternate", random_state=0), X[:6000]),
        "KMedoids-pam": (KMedoids(n_clusters=8, method="pam", random_state=0), X[:3000]),
        "KMeans-float16": (KMeans(n_clusters=8, n_init=1, random_state=0), X.astype(np.float16)),
        "KMeans-elkan-float16": (KMeans(n_clusters=8, n_init=1, algorithm="elkan", random_state=0), X.astype(np.float16)),
        "MiniBatchKMeans-float16": (MiniBatchKMeans(n_clusters=8, n_init=1, max_iter=5, random_state=0), X.astype(np.float16)),
    }}
    digests = {{}}
    for name, (model, data) in estimators.items():
        model.fit(data)
        labels = np.ascontiguousarray(np.asarray(model.labels_))
        centers = np.ascontiguousarray(np.asarray(model.cluster_centers_))
        digests[name] = hashlib.sha256(labels.tobytes() + centers.tobytes()).hexdigest()
    print(json.dumps({{"cpus": sorted(os.sched_getaffinity(0)), "digests": digests}}))
    """
)


def _pinned_fit(cpus: set[int]) -> dict:
    env = dict(os.environ)
    env.pop("OMP_NUM_THREADS", None)
    result = subprocess.run(
        [sys.executable, "-c", _PINNED_FIT.format(cpus=sorted(cpus))],
        capture_output=True, text=True, env=env, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="needs os.sched_setaffinity (Linux)")
def test_one_core_and_two_cores_give_bit_identical_fits():
    available = sorted(os.sched_getaffinity(0))
    if len(available) < 2:
        pytest.skip("needs at least two CPUs to pin to")
    one = _pinned_fit({available[0]})
    two = _pinned_fit(set(available[:2]))
    assert one["cpus"] == available[:1] and two["cpus"] == available[:2]
    different = [name for name in one["digests"] if one["digests"][name] != two["digests"][name]]
    assert not different, f"labels or centers differ between 1 and 2 cores for {different}"


# ----------------------------------------------------- out of memory
class _DeviceOutOfMemory(RuntimeError):
    pass


@pytest.mark.parametrize(
    "error",
    [
        MemoryError("Unable to allocate 3.2 GiB"),
        type("OutOfMemoryError", (MemoryError,), {})("Out of memory allocating 1,000,000 bytes"),  # CuPy
        type("OutOfMemoryError", (RuntimeError,), {})("CUDA out of memory. Tried to allocate 2.00 GiB"),  # torch
        RuntimeError("CUDA error: CUBLAS_STATUS_ALLOC_FAILED when calling `cublasCreate(handle)`"),
        RuntimeError("CUDA error: CUBLAS_STATUS_NOT_INITIALIZED when calling `cublasCreate(handle)`"),
        type("CUBLASError", (RuntimeError,), {})("CUBLAS_STATUS_ALLOC_FAILED"),  # CuPy's cuBLAS
        type("CUDARuntimeError", (RuntimeError,), {})("cudaErrorMemoryAllocation: out of memory"),
        RuntimeError("CUSOLVER_STATUS_ALLOC_FAILED"),
    ],
)
def test_allocation_failures_of_every_library_are_recognised(error):
    assert is_out_of_memory(error)


@pytest.mark.parametrize("error", [RuntimeError("shape mismatch"), ValueError("bad value"), TypeError("memory")])
def test_other_errors_are_not_taken_for_out_of_memory(error):
    assert not is_out_of_memory(error)


@pytest.fixture
def fresh_limits():
    forget_learned_block_limits()
    yield
    forget_learned_block_limits()


def test_a_failed_block_height_is_kept_for_the_rest_of_the_pass_and_the_next(fresh_limits):
    n_rows, fits = 1 << 16, 1000
    failures = []

    def block_sum(start, stop):
        if stop - start > fits:
            failures.append(stop - start)
            raise MemoryError("injected")
        return stop - start

    blocks = row_blocks(n_rows, 8192)
    for _ in range(5):  # five passes, as five iterations would make
        assert sum(map_blocks(block_sum, blocks, NP)) == n_rows
    # Halving from 8192 to <= 1000 fails at 8192, 4096, 2048 and 1024 only:
    # O(log n) retries in all, not one per block and pass.
    assert len(failures) <= math.ceil(math.log2(8192 / fits)) + 1
    assert len(failures) < len(blocks)


def test_a_fit_under_injected_out_of_memory_equals_the_unconstrained_fit(monkeypatch, fresh_limits):
    """Blocks taller than a limit fail as a device allocator would; the fit adapts."""
    from kgpu import _assign

    monkeypatch.setenv("KGPU_FAST", "0")  # the array-API kernels, whose blocks we constrain
    rng = np.random.default_rng(1)
    X = rng.normal(size=(30_000, 6)) + rng.integers(0, 5, size=(30_000, 1)) * 4.0
    expected = KMeans(n_clusters=5, n_init=1, random_state=0, max_iter=30).fit(X)

    limit = 1500
    failures = []
    original = _assign.nearest_centers

    def constrained(x_block, operand, *, xp):
        if x_block.shape[0] > limit:
            failures.append(x_block.shape[0])
            raise type("OutOfMemoryError", (MemoryError,), {})("injected: out of device memory")
        return original(x_block, operand, xp=xp)

    monkeypatch.setattr(_assign, "nearest_centers", constrained)
    model = KMeans(n_clusters=5, n_init=1, random_state=0, max_iter=30).fit(X)
    assert failures, "the injected allocator never failed: the test would prove nothing"
    assert len(failures) <= 4 * math.ceil(math.log2(X.shape[0])), failures
    np.testing.assert_array_equal(model.labels_, expected.labels_)
    np.testing.assert_allclose(model.cluster_centers_, expected.cluster_centers_, rtol=1e-12, atol=1e-12)
    assert model.inertia_ == pytest.approx(expected.inertia_, rel=1e-12)
    assert model.n_iter_ == expected.n_iter_


def test_a_single_row_that_does_not_fit_names_the_setting(fresh_limits):
    def never_fits(start, stop):
        raise MemoryError("injected")

    with pytest.raises(MemoryError, match="working_memory"):
        map_blocks(never_fits, row_blocks(64, 64), NP)
