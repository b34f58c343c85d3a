"""Contract of the ``"bisect"`` operation (one 2-means split of Bisecting K-Means).

Each native implementation is compared with the array-API reference from the
same seedings: labels and sizes identical, centers, side weights and
inertias within 1e-6 relative, the same iteration count.
"""

from __future__ import annotations

import array_api_compat.numpy as xp_numpy
import numpy as np
import pytest

from kgpu._bisecting import bisect_reference
from kgpu._kernels import dispatch

from ._contract import native_implementations, require_applies

IMPLEMENTATIONS = native_implementations("bisect")


def _two_blobs(n_rows, n_features, dtype, seed=0, offset=0.0):
    rng = np.random.default_rng(seed)
    left = rng.normal(-3.0, 1.0, size=(n_rows // 2, n_features))
    right = rng.normal(3.0, 1.0, size=(n_rows - n_rows // 2, n_features))
    X = np.concatenate([left, right])[rng.permutation(n_rows)] + offset
    return X.astype(dtype)


def _seeder(seed=0):
    """Seeding from its own random state: the same draws for each implementation."""
    random_state = np.random.RandomState(seed)

    def seed_centers(X_work, sample_weight, offset):
        chosen = random_state.choice(X_work.shape[0], size=2, replace=False)
        return X_work[np.sort(chosen)].copy()

    return seed_centers


def _weights(kind, n_rows, dtype):
    rng = np.random.default_rng(5)
    if kind == "none":
        return np.ones(n_rows, dtype=dtype)
    weights = rng.uniform(0.2, 3.0, n_rows)
    weights[::7] = 0.0  # zero weights: never seeds, never counted
    return weights.astype(dtype)


def _compare(entry, X, weights, **options):
    options = {"n_init": 1, "max_iter": 300, "tol": 0.0, "center_rows": True, **options}
    require_applies(entry, X, weights, xp=xp_numpy, **options)
    X_before, weights_before = X.copy(), weights.copy()
    got = entry.function(X, weights, seed=_seeder(), xp=xp_numpy, **options)
    np.testing.assert_array_equal(X, X_before)
    np.testing.assert_array_equal(weights, weights_before)
    want = bisect_reference(X, weights, seed=_seeder(), xp=xp_numpy, **options)
    np.testing.assert_array_equal(np.asarray(got.labels), np.asarray(want.labels))
    np.testing.assert_array_equal(got.sizes, want.sizes)
    assert got.n_iter == want.n_iter
    scale = float(np.abs(np.asarray(want.centers, dtype=np.float64)).max()) or 1.0
    rtol = 1e-6 if X.dtype == np.float64 else 1e-5
    np.testing.assert_allclose(got.centers, want.centers, rtol=rtol, atol=rtol * scale)
    np.testing.assert_allclose(got.weights, want.weights, rtol=1e-6)
    np.testing.assert_allclose(got.inertias, want.inertias, rtol=rtol, atol=rtol * max(1.0, float(want.inertias.max())))
    assert np.asarray(got.centers).dtype == X.dtype
    return got


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "n_rows, n_features", [(300, 5), (9000, 3), (50, 1), (2, 4), (3, 2)],
    ids=["plain", "several-chunks", "d1", "two-rows", "three-rows"],
)
@pytest.mark.parametrize("weighting", ["none", "random"])
def test_matches_reference(backend, entry, dtype, n_rows, n_features, weighting):
    X = _two_blobs(n_rows, n_features, dtype, seed=n_rows)
    _compare(entry, X, _weights(weighting, n_rows, dtype))


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
@pytest.mark.parametrize("options", [
    {"tol": 1e-3}, {"n_init": 3}, {"max_iter": 2}, {"center_rows": False},
], ids=["tol", "n_init-3", "max_iter-2", "not-centered"])
def test_options_match_reference(backend, entry, options):
    X = _two_blobs(2000, 4, np.float64, seed=3, offset=50.0)
    _compare(entry, X, _weights("random", 2000, np.float64), **options)


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
def test_ties_go_to_the_first_center(backend, entry):
    # The last two rows are exactly as far from both seeds: they go left, as argmin does.
    X = np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 5.0], [0.0, -5.0]])

    def seed(X_work, sample_weight, offset):
        return np.array([[-1.0, 0.0], [1.0, 0.0]])

    options = dict(seed=seed, n_init=1, max_iter=1, tol=0.0, center_rows=False, xp=xp_numpy)
    got = entry.function(X, np.ones(4), **options)
    want = bisect_reference(X, np.ones(4), **options)
    assert np.asarray(got.labels).tolist() == np.asarray(want.labels).tolist() == [0, 1, 0, 0]


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
def test_identical_rows_empty_a_side_as_the_reference(backend, entry):
    # Every row equal: one side is left empty, and the reference's policy applies.
    X = np.ones((40, 3))
    X[0] += 1e-3
    _compare(entry, X, np.ones(40))


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
def test_thread_pool_gives_the_same_bits(backend, entry, monkeypatch):
    module = pytest.importorskip("kgpu._kernels.cpu_numba_bisect")
    X = _two_blobs(3 * module.CHUNK_ROWS + 11, 6, np.float32, seed=9)
    weights = _weights("random", X.shape[0], np.float32)
    in_order = entry.function(X, weights, seed=_seeder(), n_init=1, max_iter=50, tol=0.0, center_rows=True, xp=xp_numpy)
    monkeypatch.setattr(module, "POOLED_ROWS", 1)
    monkeypatch.setattr(module, "CHUNKS_PER_JOB", 1)
    pooled = entry.function(X, weights, seed=_seeder(), n_init=1, max_iter=50, tol=0.0, center_rows=True, xp=xp_numpy)
    np.testing.assert_array_equal(np.asarray(pooled.labels), np.asarray(in_order.labels))
    np.testing.assert_array_equal(pooled.centers, in_order.centers)
    np.testing.assert_array_equal(pooled.inertias, in_order.inertias)


def test_numba_bisect_is_registered():
    pytest.importorskip("numba")
    assert [entry.name for backend, entry in dispatch.registered("bisect") if backend == "numpy"] == ["numba"]
