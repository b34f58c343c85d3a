"""k-means|| (kgpu/_init_parallel.py): quality, determinism across backends and splits, weights, streaming.

The Dask side of k-means|| (same candidates and centers as in memory for a
seed) is tested in tests/test_dask.py.
"""

from __future__ import annotations

import functools

import array_api_compat.numpy as NP
import numpy as np
import pytest
from sklearn.datasets import make_blobs

from kgpu import KMeans
from kgpu._init import kmeans_plusplus_indices
from kgpu._init_parallel import (
    BlockRows,
    attracted_weight,
    kmeans_parallel_candidates,
    kmeans_parallel_centers,
    parallel_candidates,
    reduce_candidates,
    row_uniforms,
)
from kgpu._stream import StreamedRows

from ._helpers import asarray, assert_close, assert_equal, rtol_for, to_numpy

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


@functools.lru_cache(maxsize=None)
def _blobs(n_samples=2000, n_features=4, centers=10, cluster_std=1.0, seed=0):
    X, _ = make_blobs(
        n_samples=n_samples, n_features=n_features, centers=centers, cluster_std=cluster_std,
        center_box=(-20, 20), random_state=seed,
    )
    X.setflags(write=False)
    return X


def _potential(X, centers):
    """``sum(min_c ||x - c||^2)`` in float64 NumPy: the seeding's objective."""
    X, centers = to_numpy(X).astype(np.float64), to_numpy(centers).astype(np.float64)
    return float(((X[:, None, :] - centers[None, :, :]) ** 2).sum(axis=2).min(axis=1).sum())


# ------------------------------------------------------------------ quality


def test_seeding_quality_close_to_kmeans_plusplus():
    X = np.array(_blobs())
    weights = np.ones(X.shape[0])
    parallel, plusplus = [], []
    for seed in range(6):
        centers = kmeans_parallel_centers(X, 10, weights, np.random.RandomState(seed), xp=NP)
        parallel.append(_potential(X, centers))
        ids = kmeans_plusplus_indices(X, 10, weights, np.random.RandomState(seed), xp=NP)
        plusplus.append(_potential(X, X[ids]))
    # The reduced oversample is at least as good a seeding as greedy k-means++.
    assert np.mean(parallel) <= 1.05 * np.mean(plusplus)


def test_fitted_inertia_close_to_kmeans_plusplus():
    X = np.array(_blobs(n_samples=1500, n_features=3, centers=8, cluster_std=2.5, seed=3))
    parallel = [KMeans(8, init="k-means||", random_state=seed).fit(X).inertia_ for seed in range(5)]
    plusplus = [KMeans(8, init="k-means++", random_state=seed).fit(X).inertia_ for seed in range(5)]
    assert np.mean(parallel) == pytest.approx(np.mean(plusplus), rel=0.03)


def test_candidates_are_distinct_and_about_l_per_round():
    X = np.array(_blobs())
    ids = kmeans_parallel_candidates(X, 10, np.ones(X.shape[0]), np.random.RandomState(0), xp=NP, n_rounds=5)
    assert np.unique(ids).shape == ids.shape
    # 1 + 5 rounds x l = 2k expected picks: far more than k, far fewer than n.
    assert 40 <= ids.shape[0] <= 160


# -------------------------------------------------------------- determinism


@pytest.mark.parametrize("dtype", DTYPES)
def test_same_candidates_and_centers_on_every_backend(xp, dtype):
    X_np = np.array(_blobs(), dtype=dtype)
    weights_np = np.linspace(0.5, 2.0, X_np.shape[0]).astype(dtype)
    expected_ids = kmeans_parallel_candidates(X_np, 10, weights_np, np.random.RandomState(7), xp=NP)
    expected_centers = kmeans_parallel_centers(X_np, 10, weights_np, np.random.RandomState(7), xp=NP)

    X, weights = asarray(xp, X_np), asarray(xp, weights_np)
    ids = kmeans_parallel_candidates(X, 10, weights, np.random.RandomState(7), xp=xp)
    centers = kmeans_parallel_centers(X, 10, weights, np.random.RandomState(7), xp=xp)
    assert_equal(ids, expected_ids)
    rtol = rtol_for(dtype)
    assert_close(centers, expected_centers, rtol=100 * rtol, atol=100 * rtol)


def test_candidates_do_not_depend_on_the_row_blocks():
    X = np.array(_blobs(n_samples=3000))
    weights = np.ones(X.shape[0])
    one_block = kmeans_parallel_candidates(X, 10, weights, np.random.RandomState(1), xp=NP, budget_mib=1000)
    tiny_blocks = kmeans_parallel_candidates(X, 10, weights, np.random.RandomState(1), xp=NP, budget_mib=0.01)
    assert_equal(tiny_blocks, one_block)


def test_row_uniforms_of_a_slice_are_that_slice_of_the_stream():
    key = 123456789
    stream = np.random.Generator(np.random.Philox(key=key)).random(103)
    for start, stop in [(0, 103), (1, 2), (3, 17), (4, 8), (5, 103), (102, 103)]:
        assert_equal(row_uniforms(key, start, stop), stream[start:stop])
    assert not np.array_equal(row_uniforms(key + 1, 0, 10), stream[:10])


def test_the_seed_decides_the_candidates():
    X = np.array(_blobs())
    weights = np.ones(X.shape[0])
    first = kmeans_parallel_candidates(X, 10, weights, np.random.RandomState(0), xp=NP)
    again = kmeans_parallel_candidates(X, 10, weights, np.random.RandomState(0), xp=NP)
    other = kmeans_parallel_candidates(X, 10, weights, np.random.RandomState(1), xp=NP)
    assert_equal(again, first)
    assert not np.array_equal(other, first)


# ------------------------------------------------------------------ weights


def test_zero_weight_rows_are_never_candidates(xp):
    X_np = np.array(_blobs())
    weights_np = np.ones(X_np.shape[0])
    weights_np[::3] = 0.0
    X, weights = asarray(xp, X_np), asarray(xp, weights_np)
    for seed in range(5):
        ids = kmeans_parallel_candidates(X, 10, weights, np.random.RandomState(seed), xp=xp)
        assert np.all(weights_np[ids] > 0)


def test_a_heavy_outlier_gets_its_own_center():
    X = np.vstack([np.array(_blobs()), [[500.0, 500.0, 500.0, 500.0]]])
    weights = np.ones(X.shape[0])
    weights[-1] = 1e4
    centers = to_numpy(kmeans_parallel_centers(X, 10, weights, np.random.RandomState(0), xp=NP))
    assert np.min(np.linalg.norm(centers - X[-1], axis=1)) < 1e-9
    unweighted = KMeans(10, init="k-means||", random_state=0).fit(X)
    weighted = KMeans(10, init="k-means||", random_state=0).fit(X, sample_weight=weights)
    assert weighted.labels_[-1] != weighted.labels_[0]
    assert weighted.inertia_ != pytest.approx(unweighted.inertia_)


def test_attracted_weight_sums_the_weight_of_the_nearest_rows(xp):
    X_np = np.array([[0.0], [0.1], [0.2], [5.0], [5.1], [9.0]])
    weights_np = np.array([1.0, 2.0, 3.0, 4.0, 0.0, 6.0])
    candidates_np = np.array([[0.0], [5.0], [9.0]])
    weight = attracted_weight(asarray(xp, X_np), asarray(xp, candidates_np), asarray(xp, weights_np), xp=xp)
    assert_close(weight, np.array([6.0, 4.0, 6.0]), rtol=0)


def test_fewer_distinct_points_than_clusters():
    X = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]), 20, axis=0)
    weights = np.ones(X.shape[0])
    weights[:20] = 0.0  # only two distinct points carry weight
    centers = to_numpy(kmeans_parallel_centers(X, 4, weights, np.random.RandomState(0), xp=NP))
    assert centers.shape == (4, 2)
    assert np.all(np.isfinite(centers))
    # The two points with weight are centers; the other rows fill in.
    for point in ([1.0, 1.0], [5.0, 5.0]):
        assert np.any(np.all(centers == point, axis=1))


def test_reduce_without_lloyd_returns_weighted_plusplus_seeds():
    candidates = np.array(_blobs(n_samples=200))
    weights = np.linspace(1.0, 3.0, 200)
    seeds = reduce_candidates(candidates, weights, 5, np.random.RandomState(0), xp=NP, max_iter=0)
    ids = kmeans_plusplus_indices(candidates, 5, weights, np.random.RandomState(0), xp=NP)
    assert_equal(seeds, candidates[ids])
    refined = reduce_candidates(candidates, weights, 5, np.random.RandomState(0), xp=NP, max_iter=30)
    assert _potential(candidates, refined) < _potential(candidates, seeds)


# ---------------------------------------------------------------- streaming


class _CountingRows(StreamedRows):
    """Streamed rows that count how many rows were read from the host."""

    rows_read = 0

    def _to_device(self, host_rows):
        type(self).rows_read += host_rows.shape[0]
        return super()._to_device(host_rows)


def test_streamed_rows_give_the_same_centers(tmp_path):
    X = np.array(_blobs(n_samples=3000), dtype=np.float32)
    path = tmp_path / "X.npy"
    np.save(path, X)
    streamed = StreamedRows(np.load(path, mmap_mode="r"), NP, "cpu")
    weights = np.ones(X.shape[0], dtype=np.float32)
    expected = kmeans_parallel_centers(X, 10, weights, np.random.RandomState(4), xp=NP)
    centers = kmeans_parallel_centers(streamed, 10, weights, np.random.RandomState(4), xp=NP, budget_mib=0.05)
    assert_equal(centers, expected)


def test_one_pass_per_round_plus_one_for_the_weights():
    X = np.array(_blobs(n_samples=3000))
    counting = _CountingRows(X, NP, "cpu")
    _CountingRows.rows_read = 0
    rows = BlockRows(counting, np.ones(X.shape[0]), xp=NP, budget_mib=0.05)
    ids, candidates = parallel_candidates(rows, 10, np.random.RandomState(0), n_rounds=5)
    rows.attracted_weight(candidates)
    full_passes, rows_taken = divmod(_CountingRows.rows_read, X.shape[0])
    # 5 rounds (the last round's picks cost no pass) + the weighting pass;
    # the candidate rows themselves are read with take.
    assert full_passes == 6
    assert rows_taken == ids.shape[0]
