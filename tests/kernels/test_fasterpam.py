"""Contract of the ``"fasterpam"`` operation (FasterPAM's whole swap loop) and of ``"distance_matrix"``.

A native FasterPAM must reach the same medoids, in the same number of
sweeps, as the array-API reference (batched evaluation in Python) from the
same initial medoids; the distance matrix must match the reference's within
1e-6 relative, with exact zeros on the diagonal.
"""

from __future__ import annotations

import array_api_compat.numpy as xp_numpy
import kmedoids
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from kgpu._distances import Metric
from kgpu._kernels import dispatch
from kgpu._kmedoids import distance_matrix_reference, fasterpam_reference

from ._contract import native_implementations, require_applies

FASTERPAM = native_implementations("fasterpam")
DISTANCE_MATRIX = native_implementations("distance_matrix")


def _points(n_points, n_features, seed):
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-5, 5, size=(4, n_features))
    return centers[rng.integers(0, 4, n_points)] + rng.normal(size=(n_points, n_features))


def _run(entry, matrix, weights, init, max_iter=100):
    require_applies(entry, matrix, weights, init, max_iter=max_iter)
    matrix_before, weights_before, init_before = matrix.copy(), weights.copy(), init.copy()
    result = entry.function(matrix, weights, init, max_iter=max_iter, xp=xp_numpy)
    np.testing.assert_array_equal(matrix, matrix_before)
    np.testing.assert_array_equal(weights, weights_before)
    np.testing.assert_array_equal(init, init_before)
    return result


@pytest.mark.parametrize("backend, entry", FASTERPAM)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize(
    "n_points, n_features, n_clusters",
    [(300, 3, 6), (120, 1, 2), (9, 2, 4), (60, 5, 30)],
    ids=["plain", "d1-k2", "n-below-2k", "k-half-n"],
)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_same_medoids_as_reference(backend, entry, dtype, n_points, n_features, n_clusters, weighted):
    X = _points(n_points, n_features, seed=n_points + n_clusters)
    matrix = cdist(X, X).astype(dtype)
    rng = np.random.default_rng(7)
    weights = (rng.uniform(0.2, 3.0, n_points) if weighted else np.ones(n_points)).astype(dtype)
    init = rng.choice(n_points, size=n_clusters, replace=False)
    result = _run(entry, matrix, weights, init)
    expected = fasterpam_reference(matrix, weights, init, max_iter=100, xp=xp_numpy)
    np.testing.assert_array_equal(result.medoids, expected.medoids)
    assert result.n_iter == expected.n_iter


@pytest.mark.parametrize("backend, entry", FASTERPAM)
def test_same_medoids_as_kmedoids_package(backend, entry):
    X = _points(400, 4, seed=11)
    matrix = cdist(X, X)
    init = np.random.default_rng(12).choice(400, size=7, replace=False)
    result = _run(entry, matrix, np.ones(400), init)
    expected = kmedoids.fasterpam(matrix, init.copy(), max_iter=100, n_cpu=1)
    np.testing.assert_array_equal(np.sort(result.medoids), np.sort(expected.medoids))


@pytest.mark.parametrize("backend, entry", FASTERPAM)
@pytest.mark.parametrize("max_iter", [1, 2])
def test_max_iter_bounds_the_sweeps(backend, entry, max_iter):
    X = _points(200, 2, seed=3)
    matrix = cdist(X, X)
    init = np.arange(5)  # poor medoids: the first sweeps keep swapping
    result = _run(entry, matrix, np.ones(200), init, max_iter=max_iter)
    expected = fasterpam_reference(matrix, np.ones(200), init, max_iter=max_iter, xp=xp_numpy)
    np.testing.assert_array_equal(result.medoids, expected.medoids)
    assert result.n_iter == expected.n_iter == max_iter


@pytest.mark.parametrize("backend, entry", FASTERPAM)
def test_ties_keep_the_first_swap_in_row_order(backend, entry):
    # Duplicated points: many swaps of equal gain; the first candidate in row order wins.
    X = np.repeat(np.array([[0.0], [1.0], [10.0], [11.0], [20.0]]), 3, axis=0)
    matrix = cdist(X, X)
    init = np.array([0, 1, 2])
    result = _run(entry, matrix, np.ones(15), init)
    expected = fasterpam_reference(matrix, np.ones(15), init, max_iter=100, xp=xp_numpy)
    np.testing.assert_array_equal(result.medoids, expected.medoids)


METRICS = [Metric("euclidean", 2.0), Metric("sqeuclidean", 2.0), Metric("manhattan", 1.0),
           Metric("minkowski", 3.0), Metric("minkowski", np.inf)]
METRIC_IDS = ["euclidean", "sqeuclidean", "manhattan", "minkowski3", "chebyshev"]


@pytest.mark.parametrize("backend, entry", DISTANCE_MATRIX)
@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("shape", [(50, 3), (7, 1), (300, 20), (1, 4)], ids=["plain", "d1", "several-jobs", "one-row"])
def test_distance_matrix_matches_reference(backend, entry, metric, dtype, shape):
    X = _points(*shape, seed=shape[0]).astype(dtype)
    X[1 % shape[0]] = X[0]  # a duplicated row: exactly 0 apart
    require_applies(entry, X, metric)
    X_before = X.copy()
    matrix = entry.function(X, metric, xp=xp_numpy)
    expected = distance_matrix_reference(X.astype(np.float64), metric, xp=xp_numpy)
    np.testing.assert_array_equal(X, X_before)
    assert matrix.dtype == X.dtype and matrix.shape == (shape[0], shape[0])
    scale = float(expected.max()) if expected.size else 1.0
    rtol = 1e-6 if dtype == np.float64 else 1e-5
    np.testing.assert_allclose(matrix, expected, rtol=rtol, atol=rtol * scale)
    np.testing.assert_array_equal(np.diag(matrix), 0)
    assert matrix[1 % shape[0], 0] == 0
    # Exact where scipy computes directly too.
    scipy_name = {"manhattan": "cityblock", "minkowski": "minkowski"}.get(metric.name, metric.name)
    if dtype == np.float64 and metric.name != "minkowski":
        np.testing.assert_array_equal(matrix, cdist(X, X, scipy_name))


def test_native_kernels_are_registered():
    pytest.importorskip("numba")
    for operation in ("fasterpam", "distance_matrix"):
        assert [entry.name for backend, entry in dispatch.registered(operation) if backend == "numpy"] == ["numba"]
