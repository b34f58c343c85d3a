"""The numba kernels under memory pressure: a pool job that runs out of memory is split and retried.

An allocation failure is injected into every thread-pool job larger than a
limit (as a host or device allocator would fail); the kernels must finish,
give the same bits as without the failures, and retry O(log n) times.
"""

from __future__ import annotations

import math

import array_api_compat.numpy as NP
import numpy as np
import pytest

from kgpu import KMeans, _blocks
from kgpu._assign import SQEUCLIDEAN
from kgpu._blocks import forget_learned_block_limits
from kgpu._distances import Metric

numba = pytest.importorskip("numba")
cpu_numba = pytest.importorskip("kgpu._kernels.cpu_numba")
cpu_numba_medoids = pytest.importorskip("kgpu._kernels.cpu_numba_medoids")
cpu_numba_skinny = pytest.importorskip("kgpu._kernels.cpu_numba_skinny")


@pytest.fixture
def fresh_limits():
    forget_learned_block_limits()
    yield
    forget_learned_block_limits()


@pytest.fixture
def inject(monkeypatch, fresh_limits):
    """``inject(limit)``: every pool job of more than ``limit`` units fails with MemoryError.

    Returns the list of failed job sizes.
    """

    def start(limit, modules=(cpu_numba, cpu_numba_medoids)):
        failures = []

        def constrained_map_blocks(fn, blocks, xp):
            def job(start, stop):
                if stop - start > limit:
                    failures.append(stop - start)
                    raise MemoryError("injected: unable to allocate")
                return fn(start, stop)

            return _blocks.map_blocks(job, blocks, xp)

        for module in modules:
            monkeypatch.setattr(module, "map_blocks", constrained_map_blocks)
        return failures

    return start


def _assert_few_retries(failures, n_units):
    assert failures, "the injected allocator never failed: the test would prove nothing"
    # Each thread may fail once at a height before the pool learns it.
    assert len(failures) <= 4 * max(1, math.ceil(math.log2(n_units))) * max(2, _blocks.cpu_threads()), failures


def _data(n_rows, n_features, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n_rows, n_features)).astype(dtype)
    return X + rng.integers(0, 6, size=(n_rows, 1)).astype(dtype) * 3


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("homogeneous_rows", [False, True])
def test_lloyd_step_split_by_out_of_memory_gives_the_same_bits(inject, dtype, homogeneous_rows):
    X = _data(150_000, 4, dtype)
    if homogeneous_rows:
        X = np.ascontiguousarray(np.hstack([X, np.ones((X.shape[0], 1), dtype=dtype)]))
    rng = np.random.default_rng(1)
    weights = rng.uniform(0.5, 2.0, X.shape[0]).astype(dtype)
    centers = np.ascontiguousarray(X[:6, :4])
    previous = rng.integers(0, 6, X.shape[0])
    args = (X, weights, centers)
    want = cpu_numba.lloyd_step_numba(*args, xp=NP, rows_per_block=1000, previous_labels=previous)
    failures = inject(1)  # more than one tile per job fails
    got = cpu_numba.lloyd_step_numba(*args, xp=NP, rows_per_block=1000, previous_labels=previous)
    _assert_few_retries(failures, X.shape[0])
    np.testing.assert_array_equal(got.labels, want.labels)
    assert np.array_equal(got.sums, want.sums) and np.array_equal(got.weights, want.weights)
    assert int(got.n_changed) == int(want.n_changed)


def test_lloyd_step_pieces_do_not_depend_on_the_threads(inject, monkeypatch):
    X = _data(150_000, 3, np.float64)
    weights = np.ones(X.shape[0])
    centers = X[:5].copy()
    inject(2)
    results = []
    for cores in (1, 2, 8):
        forget_learned_block_limits()
        monkeypatch.setattr(_blocks, "cpu_threads", lambda cores=cores: cores)
        results.append(cpu_numba.lloyd_step_numba(X, weights, centers, xp=NP, rows_per_block=1000))
    for other in results[1:]:
        assert np.array_equal(other.sums, results[0].sums) and np.array_equal(other.labels, results[0].labels)


@pytest.mark.parametrize(
    "metric", [SQEUCLIDEAN, Metric("euclidean", 2.0), Metric("manhattan", 1.0), Metric("minkowski", 3.0)], ids=str
)
def test_assign_split_by_out_of_memory_gives_the_same_bits(inject, metric):
    X = _data(200_000, 3, np.float32)
    centers = X[:4].copy()
    want = cpu_numba.assign_numba(X, centers, xp=NP, metric=metric)
    failures = inject(1)
    got = cpu_numba.assign_numba(X, centers, xp=NP, metric=metric)
    _assert_few_retries(failures, X.shape[0])
    np.testing.assert_array_equal(got.labels, want.labels)
    np.testing.assert_array_equal(got.min_dist, want.min_dist)


@pytest.mark.parametrize("homogeneous_rows", [False, True])
def test_skinny_kernels_split_by_out_of_memory_give_the_same_bits(inject, homogeneous_rows):
    n_features = cpu_numba_skinny.MIN_FEATURES + 3
    X = _data(20_000, n_features, np.float32)
    if homogeneous_rows:
        X = np.ascontiguousarray(np.hstack([X, np.ones((X.shape[0], 1), dtype=X.dtype)]))
    rng = np.random.default_rng(5)
    weights = rng.uniform(0.5, 2.0, X.shape[0]).astype(X.dtype)
    centers = np.ascontiguousarray(X[:6, :n_features])
    previous = rng.integers(0, 6, X.shape[0])
    want = cpu_numba_skinny.lloyd_step_skinny(X, weights, centers, xp=NP, rows_per_block=1000, previous_labels=previous)
    want_assign = cpu_numba_skinny.assign_skinny(X, centers, xp=NP)
    failures = inject(1, modules=(cpu_numba,))  # more than one tile per job fails
    got = cpu_numba_skinny.lloyd_step_skinny(X, weights, centers, xp=NP, rows_per_block=1000, previous_labels=previous)
    got_assign = cpu_numba_skinny.assign_skinny(X, centers, xp=NP)
    _assert_few_retries(failures, X.shape[0])
    np.testing.assert_array_equal(got.labels, want.labels)
    assert np.array_equal(got.sums, want.sums) and np.array_equal(got.weights, want.weights)
    assert int(got.n_changed) == int(want.n_changed)
    np.testing.assert_array_equal(got_assign.labels, want_assign.labels)
    np.testing.assert_array_equal(got_assign.min_dist, want_assign.min_dist)


def test_weighted_segment_median_split_by_out_of_memory_gives_the_same_bits(inject):
    rng = np.random.default_rng(3)
    values = rng.standard_normal((20_000, 3))
    labels = rng.integers(0, 40, values.shape[0])
    weights = rng.integers(0, 4, values.shape[0]).astype(np.float64)
    want = cpu_numba.segment_median_numba(values, labels, 40, weights, xp=NP)
    failures = inject(3)
    got = cpu_numba.segment_median_numba(values, labels, 40, weights, xp=NP)
    _assert_few_retries(failures, 40 * 3)
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("metric", [Metric("euclidean", 2.0), Metric("manhattan", 1.0)], ids=str)
def test_silhouette_split_by_out_of_memory_gives_the_same_bits(inject, metric):
    X = _data(3000, 3, np.float64)
    codes = np.random.default_rng(4).integers(0, 5, X.shape[0])
    want = cpu_numba.silhouette_numba(X, codes, 5, metric, xp=NP)
    failures = inject(40)
    got = cpu_numba.silhouette_numba(X, codes, 5, metric, xp=NP)
    _assert_few_retries(failures, X.shape[0])
    np.testing.assert_array_equal(got, want)


def test_distance_matrix_split_by_out_of_memory_gives_the_same_bits(inject):
    X = _data(1500, 3, np.float64)
    metric = Metric("euclidean", 2.0)
    want = cpu_numba_medoids.distance_matrix_numba(X, metric, xp=NP)
    failures = inject(20)
    got = cpu_numba_medoids.distance_matrix_numba(X, metric, xp=NP)
    _assert_few_retries(failures, X.shape[0])
    np.testing.assert_array_equal(got, want)


def test_a_numba_fit_under_injected_out_of_memory_equals_the_unconstrained_fit(inject, monkeypatch):
    monkeypatch.setenv("KGPU_FAST", "1")
    X = _data(120_000, 5, np.float64)
    expected = KMeans(n_clusters=6, n_init=1, random_state=0, max_iter=20).fit(X)
    failures = inject(1)
    model = KMeans(n_clusters=6, n_init=1, random_state=0, max_iter=20).fit(X)
    _assert_few_retries(failures, X.shape[0])
    np.testing.assert_array_equal(model.labels_, expected.labels_)
    np.testing.assert_array_equal(model.cluster_centers_, expected.cluster_centers_)
    assert model.inertia_ == expected.inertia_
    assert model.n_iter_ == expected.n_iter_
