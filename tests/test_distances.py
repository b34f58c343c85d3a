"""Distance blocks (kgpu._distances) against scipy.spatial.distance.cdist, on every backend.

Tolerances: the Euclidean pair and cosine go through a GEMM (the expansion
``||x||^2 - 2 x.c + ||c||^2``), whose rounding error is a few ulps of
``||x||^2 + ||c||^2``, so those get an absolute tolerance on that scale; the
L1 / Minkowski sums are accumulated feature by feature and are compared
relatively.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from kgpu._distances import METRICS, Metric, check_metric, pairwise_distances, sq_euclidean, unit_rows

from ._helpers import asarray, assert_close, assert_namespace, dtype_name, to_numpy

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]

# (metric, p, scipy's name, scipy's keyword arguments)
METRIC_CASES = [
    pytest.param("sqeuclidean", None, "sqeuclidean", {}, id="sqeuclidean"),
    pytest.param("euclidean", None, "euclidean", {}, id="euclidean"),
    pytest.param("manhattan", None, "cityblock", {}, id="manhattan"),
    pytest.param("minkowski", 3, "minkowski", {"p": 3}, id="minkowski-3"),
    pytest.param("minkowski", 1.5, "minkowski", {"p": 1.5}, id="minkowski-1.5"),
    pytest.param("minkowski", math.inf, "chebyshev", {}, id="minkowski-inf"),
    pytest.param("cosine", None, "cosine", {}, id="cosine"),
]


def _points(dtype, n_rows=40, n_centers=7, n_features=5, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(loc=1.0, scale=2.0, size=(n_rows, n_features)).astype(dtype)
    centers = rng.normal(loc=1.0, scale=2.0, size=(n_centers, n_features)).astype(dtype)
    return X, centers


def _tolerances(metric_name, dtype, X, centers):
    eps = float(np.finfo(dtype).eps)
    if metric_name in ("sqeuclidean", "euclidean", "cosine"):
        scale = float(np.max(np.sum(X.astype(np.float64) ** 2, axis=1)) + np.max(np.sum(centers.astype(np.float64) ** 2, axis=1)))
        if metric_name == "euclidean":
            # sqrt of an absolute error e near 0 is sqrt(e).
            return 16 * eps, math.sqrt(16 * eps * scale)
        if metric_name == "cosine":
            return 16 * eps, 16 * eps
        return 16 * eps, 16 * eps * scale
    return 64 * eps, 64 * eps * float(np.max(np.abs(X)) + np.max(np.abs(centers)))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("metric_name", "p", "scipy_name", "scipy_kwargs"), METRIC_CASES)
def test_pairwise_distances_equal_scipy_cdist(xp, dtype, metric_name, p, scipy_name, scipy_kwargs):
    X_np, centers_np = _points(dtype)
    metric = check_metric(metric_name, p)

    distances = pairwise_distances(asarray(xp, X_np), asarray(xp, centers_np), metric, xp=xp)

    assert_namespace(distances, xp)
    assert dtype_name(distances) == np.dtype(dtype).name
    assert tuple(distances.shape) == (X_np.shape[0], centers_np.shape[0])
    expected = cdist(X_np.astype(np.float64), centers_np.astype(np.float64), scipy_name, **scipy_kwargs)
    rtol, atol = _tolerances(metric_name, dtype, X_np, centers_np)
    assert_close(distances, expected, rtol=rtol, atol=atol)
    assert np.all(to_numpy(distances) >= 0)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("metric_name", "p", "scipy_name", "scipy_kwargs"), METRIC_CASES)
def test_precomputed_norms_change_nothing(xp, dtype, metric_name, p, scipy_name, scipy_kwargs):
    X_np, centers_np = _points(dtype, seed=1)
    X, centers = asarray(xp, X_np), asarray(xp, centers_np)
    metric = check_metric(metric_name, p)
    plain = pairwise_distances(X, centers, metric, xp=xp)
    with_norms = pairwise_distances(
        X, centers, metric, xp=xp,
        x_sq_norms=xp.sum(X * X, axis=1), center_sq_norms=xp.sum(centers * centers, axis=1),
    )
    rtol, atol = _tolerances(metric_name, dtype, X_np, centers_np)
    assert_close(with_norms, plain, rtol=rtol, atol=atol)


@pytest.mark.parametrize("dtype", DTYPES)
def test_sq_euclidean_of_identical_rows_is_clipped_to_zero(xp, dtype):
    # Large offset: the expansion cancels badly, and must never go negative.
    X_np = (np.random.default_rng(2).normal(size=(30, 4)) + 1e3).astype(dtype)
    X = asarray(xp, X_np)
    distances = to_numpy(sq_euclidean(X, X, xp=xp))
    assert np.all(distances >= 0)
    scale = float(np.max(np.sum(X_np.astype(np.float64) ** 2, axis=1)))
    assert np.max(np.abs(np.diag(distances))) <= 16 * np.finfo(dtype).eps * scale


@pytest.mark.parametrize("dtype", DTYPES)
def test_cosine_zero_rows_are_at_distance_one(xp, dtype):
    X_np = np.array([[0.0, 0.0, 0.0], [1.0, 2.0, 3.0], [0.0, 0.0, 0.0]], dtype=dtype)
    centers_np = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [-1.0, -2.0, -3.0]], dtype=dtype)
    distances = to_numpy(pairwise_distances(asarray(xp, X_np), asarray(xp, centers_np), check_metric("cosine"), xp=xp))

    assert np.all(np.isfinite(distances)), "a zero row must not give NaN"
    # Zero rows (rows 0 and 2, center 1) are at distance 1 from everything, zero included.
    assert_close(distances[[0, 2], :], np.ones((2, 3)), rtol=0, atol=0)
    assert_close(distances[:, 1], np.ones(3), rtol=0, atol=0)
    # Non-zero pairs still match scipy: orthogonal-ish and opposite vectors.
    expected = cdist(X_np[1:2].astype(np.float64), centers_np[[0, 2]].astype(np.float64), "cosine")
    assert_close(distances[1:2, [0, 2]], expected, rtol=0, atol=16 * np.finfo(dtype).eps)
    assert float(distances[1, 2]) == pytest.approx(2.0, abs=16 * float(np.finfo(dtype).eps))


def test_unit_rows_keeps_zero_rows(xp):
    X_np = np.array([[3.0, 4.0], [0.0, 0.0]])
    assert_close(unit_rows(asarray(xp, X_np), xp=xp), np.array([[0.6, 0.8], [0.0, 0.0]]), rtol=1e-15)


@pytest.mark.parametrize("p", [1, 2, 3, math.inf])
def test_one_feature_minkowski_is_absolute_difference(xp, p):
    X_np = np.array([[1.0], [-2.5], [4.0]])
    centers_np = np.array([[0.0], [3.0]])
    distances = pairwise_distances(asarray(xp, X_np), asarray(xp, centers_np), check_metric("minkowski", p), xp=xp)
    assert_close(distances, np.abs(X_np - centers_np.T), rtol=1e-15)


# ---------------------------------------------------------- check_metric


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("sqeuclidean", Metric("sqeuclidean", 2.0)),
        ("euclidean", Metric("euclidean", 2.0)),
        ("l2", Metric("euclidean", 2.0)),
        ("manhattan", Metric("manhattan", 1.0)),
        ("l1", Metric("manhattan", 1.0)),
        ("cityblock", Metric("manhattan", 1.0)),
        ("cosine", Metric("cosine", 2.0)),
    ],
)
def test_check_metric_names_and_aliases(name, expected):
    assert check_metric(name) == expected


def test_check_metric_lists_every_metric():
    assert set(METRICS) == {"sqeuclidean", "euclidean", "manhattan", "minkowski", "cosine"}
    for name in METRICS:
        assert check_metric(name).name in METRICS


@pytest.mark.parametrize(
    ("p", "expected"),
    [
        (None, Metric("euclidean", 2.0)),
        (1, Metric("manhattan", 1.0)),
        (2, Metric("euclidean", 2.0)),
        (3, Metric("minkowski", 3.0)),
        (1.5, Metric("minkowski", 1.5)),
        (math.inf, Metric("minkowski", math.inf)),
    ],
)
def test_check_metric_minkowski_order(p, expected):
    assert check_metric("minkowski", p) == expected


def test_check_metric_ignores_p_for_other_metrics():
    assert check_metric("manhattan", 5) == Metric("manhattan", 1.0)


@pytest.mark.parametrize("metric", [None, 2, ["euclidean"], b"euclidean"])
def test_check_metric_rejects_non_strings(metric):
    with pytest.raises(TypeError, match="metric must be a string"):
        check_metric(metric)


@pytest.mark.parametrize("metric", ["hamming", "Euclidean", "", "precomputed"])
def test_check_metric_rejects_unknown_names(metric):
    with pytest.raises(ValueError, match="metric must be one of"):
        check_metric(metric)


@pytest.mark.parametrize("p", [0.5, 0, -1, math.nan, True, "3"])
def test_check_metric_rejects_bad_minkowski_order(p):
    with pytest.raises(ValueError, match="Minkowski p must be a real number >= 1"):
        check_metric("minkowski", p)


@pytest.mark.parametrize("p", [1.0, 1.5, 3.0, math.inf])
@pytest.mark.parametrize("dtype", DTYPES)
def test_lp_fast_paths_equal_the_standard_version(xp, p, dtype):
    # NumPy (SciPy's cdist) and torch (torch.cdist) delegate; the standard
    # accumulation is what every other namespace runs.
    from kgpu._distances import lp_distances, lp_distances_standard

    X, centers = _points(dtype)
    X_xp, centers_xp = asarray(xp, X), asarray(xp, centers)
    fast = lp_distances(X_xp, centers_xp, p, xp=xp)
    standard = lp_distances_standard(X_xp, centers_xp, p, xp=xp)
    assert_namespace(fast, xp)
    assert dtype_name(fast) == np.dtype(dtype).name
    assert_close(fast, standard, rtol=1e-5 if dtype == np.float32 else 1e-12)
