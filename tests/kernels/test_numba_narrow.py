"""The row-vectorised kernels for few features and centers (:mod:`kgpu._kernels.cpu_numba_narrow`).

The generic contract modules run every implementation on shapes of their own,
most of them outside this guard; here are the shapes inside it: ``k = 1``,
``n < 2k``, ``d = 1``, ties, weights, float32 and float64, plain and
homogeneous rows, row counts that are not a multiple of a tile. Integer data
keeps every distance exact, so labels, distances and sums must match a
brute-force computation exactly.
"""

from __future__ import annotations

import platform
import re

import array_api_compat.numpy as xp_numpy
import numpy as np
import pytest

from kgpu import KMeans, _blocks
from kgpu._assign import SQEUCLIDEAN, assign_and_accumulate_reference, assign_reference
from kgpu._blocks import forget_learned_block_limits
from kgpu._distances import Metric, homogeneous
from kgpu._kernels import dispatch

from ._data import blobs, exact_ties, weights_for

numba = pytest.importorskip("numba")
cpu_numba = pytest.importorskip("kgpu._kernels.cpu_numba")
narrow = pytest.importorskip("kgpu._kernels.cpu_numba_narrow")

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]

#: (n_rows, n_features, n_clusters) inside the guard.
SHAPES = [
    pytest.param(50, 3, 1, id="k1"),
    pytest.param(7, 4, 4, id="n-lt-2k"),
    pytest.param(300, 1, 5, id="d1"),
    pytest.param(30 * narrow.TILE_ROWS + 7, 8, 8, id="d8-k8-several-tiles"),
    pytest.param(8 * narrow.TILE_ROWS + 1, narrow.MAX_FEATURES, narrow.MAX_CLUSTERS, id="largest"),
]


def _integer_data(n_rows, n_features, n_clusters, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(-4, 5, size=(n_rows, n_features)).astype(dtype)
    centers = rng.integers(-4, 5, size=(n_clusters, n_features)).astype(dtype)
    weights = rng.integers(0, 4, size=n_rows).astype(dtype)
    return X, centers, weights


def _brute_force(X, weights, centers):
    distances = np.sum((X.astype(np.float64)[:, None, :] - centers.astype(np.float64)[None, :, :]) ** 2, axis=2)
    labels = np.argmin(distances, axis=1)  # the lowest index on ties
    sums = np.zeros(centers.shape, dtype=np.float64)
    np.add.at(sums, labels, X.astype(np.float64) * weights.astype(np.float64)[:, None])
    cluster_weights = np.bincount(labels, weights=weights.astype(np.float64), minlength=centers.shape[0])
    return labels, distances.min(axis=1), sums, cluster_weights


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_rows, n_features, n_clusters", SHAPES)
@pytest.mark.parametrize("homogeneous_rows", [True, False], ids=["homogeneous", "plain"])
def test_lloyd_step_and_assign_exact_on_integer_data(dtype, n_rows, n_features, n_clusters, homogeneous_rows):
    X, centers, weights = _integer_data(n_rows, n_features, n_clusters, dtype)
    previous = np.random.default_rng(1).integers(0, n_clusters, n_rows)
    rows = homogeneous(X, xp=xp_numpy) if homogeneous_rows else X
    rows_before, weights_before, previous_before = rows.copy(), weights.copy(), previous.copy()
    assert narrow._lloyd_step_applies(rows, weights, centers, previous_labels=previous)
    assert narrow._assign_applies(rows, centers)
    step = narrow.lloyd_step_narrow(rows, weights, centers, xp=xp_numpy, rows_per_block=97, previous_labels=previous)
    labels, min_dist, sums, cluster_weights = _brute_force(X, weights, centers)
    np.testing.assert_array_equal(step.labels, labels)
    np.testing.assert_array_equal(step.sums, sums)
    np.testing.assert_array_equal(step.weights, cluster_weights)
    assert step.sums.dtype == np.float64 and step.weights.dtype == np.float64
    assert step.n_changed.shape == () and int(step.n_changed) == int(np.count_nonzero(labels != previous))
    assigned = narrow.assign_narrow(rows, centers, xp=xp_numpy)
    np.testing.assert_array_equal(assigned.labels, labels)
    np.testing.assert_array_equal(assigned.min_dist, min_dist.astype(dtype))
    assert assigned.min_dist.dtype == dtype
    wide = narrow.assign_narrow(rows, centers, xp=xp_numpy, float64_distances=True)
    assert wide.min_dist.dtype == np.float64
    np.testing.assert_array_equal(wide.min_dist, assigned.min_dist.astype(np.float64))
    # The caller's data is never modified.
    np.testing.assert_array_equal(rows, rows_before)
    np.testing.assert_array_equal(weights, weights_before)
    np.testing.assert_array_equal(previous, previous_before)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_ties_go_to_the_lowest_index(dtype):
    X, centers = exact_ties(dtype)
    step = narrow.lloyd_step_narrow(X, np.ones(X.shape[0], dtype=dtype), centers, xp=xp_numpy, rows_per_block=2)
    assigned = narrow.assign_narrow(X, centers, xp=xp_numpy)
    labels, *_ = _brute_force(X, np.ones(X.shape[0]), centers)
    np.testing.assert_array_equal(step.labels, labels)
    np.testing.assert_array_equal(assigned.labels, labels)
    # Row 0 is halfway between centers 0 and 1; row 2 sits on the duplicated centers 2 and 3.
    assert step.labels[0] == 0 and step.labels[2] == 2
    assert step.n_changed is None


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("metric", [SQEUCLIDEAN, Metric("euclidean", 2.0)], ids=str)
def test_matches_the_reference_on_blobs(dtype, metric):
    # Rows far from any near-tie: the labels of exact distances and of GEMM scores agree.
    X, centers = blobs(16 * narrow.TILE_ROWS + 13, 8, 8, np.dtype(dtype).name, seed=2)
    weights = weights_for(X.shape[0], "random").astype(dtype)
    rows = homogeneous(X, xp=xp_numpy)
    previous = np.arange(X.shape[0]) % 8
    got = narrow.lloyd_step_narrow(rows, weights, centers, xp=xp_numpy, rows_per_block=100, previous_labels=previous)
    want = assign_and_accumulate_reference(rows, weights, centers, xp=xp_numpy, rows_per_block=100, previous_labels=previous)
    np.testing.assert_array_equal(got.labels, want.labels)
    assert int(got.n_changed) == int(want.n_changed)
    tolerance = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got.sums, want.sums, rtol=tolerance, atol=tolerance * np.abs(want.sums).max())
    np.testing.assert_allclose(got.weights, want.weights, rtol=tolerance)
    assigned = narrow.assign_narrow(X, centers, xp=xp_numpy, metric=metric)
    expected = assign_reference(X, centers, xp=xp_numpy, metric=metric)
    np.testing.assert_array_equal(assigned.labels, expected.labels)
    np.testing.assert_allclose(assigned.min_dist, expected.min_dist, rtol=1e-4 if dtype == np.float32 else 1e-10, atol=1e-5)


def test_in_place_counts_changes_before_overwriting():
    X, centers, weights = _integer_data(1000, 6, 7, np.float32, seed=3)
    previous = (np.arange(1000) * 3) % 7
    expected = narrow.lloyd_step_narrow(X, weights, centers, xp=xp_numpy, rows_per_block=10, previous_labels=previous)
    overwritten = previous.copy()
    result = narrow.lloyd_step_narrow(
        X, weights, centers, xp=xp_numpy, rows_per_block=10, previous_labels=overwritten, in_place=True
    )
    assert result.labels is overwritten
    np.testing.assert_array_equal(result.labels, expected.labels)
    assert int(result.n_changed) == int(expected.n_changed) > 0
    assert result.sums.tobytes() == expected.sums.tobytes()


def test_other_metrics_are_the_numba_kernels():
    X, centers, _ = _integer_data(500, 3, 4, np.float64, seed=4)
    for metric in (Metric("manhattan", 1.0), Metric("minkowski", 3.0)):
        assert not narrow._assign_applies(X, centers, metric=metric)
        got = narrow.assign_narrow(X, centers, xp=xp_numpy, metric=metric)
        want = cpu_numba.assign_numba(X, centers, xp=xp_numpy, metric=metric)
        np.testing.assert_array_equal(got.labels, want.labels)
        np.testing.assert_array_equal(got.min_dist, want.min_dist)


def test_same_bits_whatever_threads(monkeypatch):
    rng = np.random.default_rng(7)
    X = homogeneous(rng.normal(size=(72 * narrow.TILE_ROWS + 3, 8)).astype(np.float32), xp=xp_numpy)
    weights = rng.uniform(0.5, 1.5, X.shape[0]).astype(np.float32)
    centers = X[:8, :-1].copy()
    pooled = narrow.lloyd_step_narrow(X, weights, centers, xp=xp_numpy, rows_per_block=1000)
    pooled_assign = narrow.assign_narrow(X, centers, xp=xp_numpy)
    # One thread: map_blocks runs the tasks in order on the caller's thread;
    # a tiny partials budget makes one round per task.
    monkeypatch.setattr(_blocks, "cpu_threads", lambda: 1)
    monkeypatch.setattr(cpu_numba, "PARTIALS_BUDGET_BYTES", 1)
    serial = narrow.lloyd_step_narrow(X, weights, centers, xp=xp_numpy, rows_per_block=77)
    serial_assign = narrow.assign_narrow(X, centers, xp=xp_numpy)
    np.testing.assert_array_equal(serial.labels, pooled.labels)
    assert serial.sums.tobytes() == pooled.sums.tobytes()
    assert serial.weights.tobytes() == pooled.weights.tobytes()
    np.testing.assert_array_equal(serial_assign.labels, pooled_assign.labels)
    assert serial_assign.min_dist.tobytes() == pooled_assign.min_dist.tobytes()


def test_out_of_memory_pieces_give_the_same_bits(monkeypatch):
    forget_learned_block_limits()
    X = homogeneous(np.random.default_rng(8).normal(size=(150_000, 4)), xp=xp_numpy)
    weights = np.random.default_rng(9).uniform(0.5, 2.0, X.shape[0])
    centers = X[:6, :-1].copy()
    want = narrow.lloyd_step_narrow(X, weights, centers, xp=xp_numpy, rows_per_block=1000)
    want_assign = narrow.assign_narrow(X, centers, xp=xp_numpy)
    failures = []

    def constrained_map_blocks(fn, blocks, xp):
        def job(start, stop):
            if stop - start > 1:  # more than one tile per job fails
                failures.append(stop - start)
                raise MemoryError("injected: unable to allocate")
            return fn(start, stop)

        return _blocks.map_blocks(job, blocks, xp)

    monkeypatch.setattr(cpu_numba, "map_blocks", constrained_map_blocks)
    try:
        got = narrow.lloyd_step_narrow(X, weights, centers, xp=xp_numpy, rows_per_block=1000)
        got_assign = narrow.assign_narrow(X, centers, xp=xp_numpy)
    finally:
        forget_learned_block_limits()
    assert failures
    np.testing.assert_array_equal(got.labels, want.labels)
    assert got.sums.tobytes() == want.sums.tobytes() and got.weights.tobytes() == want.weights.tobytes()
    np.testing.assert_array_equal(got_assign.labels, want_assign.labels)
    assert got_assign.min_dist.tobytes() == want_assign.min_dist.tobytes()


def test_guard_takes_few_features_and_centers_only():
    X, centers, weights = _integer_data(100, 8, 8, np.float32)
    assert narrow._lloyd_step_applies(X, weights, centers)
    assert narrow._assign_applies(X, centers, metric=Metric("euclidean", 2.0))
    wide_X, wide_centers, _ = _integer_data(100, narrow.MAX_FEATURES + 1, 8, np.float32)
    assert not narrow._lloyd_step_applies(wide_X, weights, wide_centers)
    assert not narrow._assign_applies(wide_X, wide_centers)
    many = np.zeros((narrow.MAX_CLUSTERS + 1, 8), dtype=np.float32)
    assert not narrow._lloyd_step_applies(X, weights, many)
    assert not narrow._assign_applies(X, many)
    # A strided view, or float16: not these kernels.
    assert not narrow._assign_applies(X[:, :4], centers[:, :4])
    assert not narrow._assign_applies(X.astype(np.float16), centers.astype(np.float16))


def test_dispatch_tries_narrow_before_the_blas_tile(monkeypatch):
    monkeypatch.delenv("KGPU_FAST", raising=False)
    X, centers, weights = _integer_data(100, 8, 8, np.float32)
    assert dispatch.implementation("lloyd_step", xp_numpy, "cpu", X, weights, centers) is narrow.lloyd_step_narrow
    assert dispatch.implementation("assign", xp_numpy, "cpu", X, centers) is narrow.assign_narrow
    wide_X, wide_centers, _ = _integer_data(100, narrow.MAX_FEATURES + 1, 8, np.float32)
    assert dispatch.implementation("lloyd_step", xp_numpy, "cpu", wide_X, weights, wide_centers) is cpu_numba.lloyd_step_numba
    assert dispatch.implementation("assign", xp_numpy, "cpu", wide_X, wide_centers) is cpu_numba.assign_numba
    manhattan = Metric("manhattan", 1.0)
    assert dispatch.implementation("assign", xp_numpy, "cpu", X, centers, metric=manhattan) is cpu_numba.assign_numba
    for operation in ("lloyd_step", "assign"):
        entry = next(entry for backend, entry in dispatch.registered(operation) if entry.name == "numba-narrow")
        assert entry.self_check(xp_numpy, "cpu")


@pytest.mark.parametrize("dtype", DTYPES)
def test_fit_labels_equal_predict(dtype):
    # Fit and predict both run these kernels: labels_ are predict's labels.
    rng = np.random.default_rng(10)
    X = (rng.normal(scale=3.0, size=(8, 8))[rng.integers(0, 8, 20_000)] + rng.normal(size=(20_000, 8))).astype(dtype)
    model = KMeans(8, n_init=1, random_state=0, max_iter=50).fit(X)
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    np.testing.assert_allclose(-model.score(X), model.inertia_, rtol=1e-5)


def test_torch_tensors_get_the_numpy_bits():
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as xp_torch

    X, centers, weights = _integer_data(3000, 5, 7, np.float32, seed=8)
    X = X + np.random.default_rng(9).normal(size=X.shape).astype(np.float32)
    design = homogeneous(X, xp=xp_numpy)
    previous = np.random.default_rng(10).integers(0, 7, 3000)
    tensors = [torch.from_numpy(array) for array in (design, weights, centers, previous)]
    assert dispatch.implementation("lloyd_step", xp_torch, tensors[0].device, *tensors[:3]) is narrow.lloyd_step_narrow_torch
    assert dispatch.implementation("assign", xp_torch, tensors[0].device, tensors[0], tensors[2]) is narrow.assign_narrow_torch
    step_t = narrow.lloyd_step_narrow_torch(*tensors[:3], xp=xp_torch, rows_per_block=100, previous_labels=tensors[3])
    step = narrow.lloyd_step_narrow(design, weights, centers, xp=xp_numpy, rows_per_block=100, previous_labels=previous)
    for got, want in zip(step_t, step):
        assert isinstance(got, torch.Tensor)
        np.testing.assert_array_equal(got.numpy(), want)
    got = narrow.assign_narrow_torch(torch.from_numpy(X), tensors[2], xp=xp_torch)
    want = narrow.assign_narrow(X, centers, xp=xp_numpy)
    np.testing.assert_array_equal(got.labels.numpy(), want.labels)
    np.testing.assert_array_equal(got.min_dist.numpy(), want.min_dist)
    model = KMeans(7, n_init=1, random_state=0, max_iter=30).fit(torch.from_numpy(X))
    np.testing.assert_array_equal(model.predict(torch.from_numpy(X)).numpy(), model.labels_.numpy())


def test_the_distance_loop_is_vectorised_over_rows():
    # A fresh compilation (numba does not disassemble cached code): on an
    # x86 CPU with AVX2 and FMA, the rows' distances are packed fused
    # multiply-adds, not one row at a time.
    from llvmlite import binding

    features = binding.get_host_cpu_features()
    if platform.machine() not in ("x86_64", "AMD64") or not (features.get("avx2") and features.get("fma")):
        pytest.skip("the instructions checked are x86's AVX2 and FMA")
    fresh = numba.njit(fastmath=False, nogil=True)(narrow._nearest_in_tile.py_func)
    X = np.zeros((64, 9), dtype=np.float32)
    fresh(X, np.zeros((8, 8), np.float32), 0, 64, (0,) * 8, np.empty((8, 64), np.float32), np.empty(64, np.int32),
          np.empty(64, np.float32))
    assembly = fresh.inspect_asm(fresh.signatures[0])
    assert re.search(r"vfmadd\w*ps\s+%[yz]mm", assembly)
    assert re.search(r"vcmp\w*ps\s+%[yz]mm", assembly)
