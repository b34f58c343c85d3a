"""KMeans and kmeans_plusplus at the estimator level, on every backend.

Reference results come from scikit-learn (``KMeans(algorithm="lloyd")`` from
the same initial centers, ``kmeans_plusplus`` with the same seed) and from the
NumPy backend (SPEC §3 parity: relative 1e-5 in float32, 1e-10 in float64).
"""

from __future__ import annotations

import functools
import warnings

import numpy as np
import pytest
import sklearn.cluster
from sklearn.base import clone
from sklearn.datasets import load_digits, make_blobs
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import GridSearchCV
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import StandardScaler

import kgpu
from kgpu import KMeans, kmeans_plusplus
from kgpu._backend import cuda_available

from ._helpers import (
    asarray,
    assert_close,
    assert_equal,
    assert_namespace,
    dtype_name,
    reference_inertia,
    rtol_for,
    to_numpy,
)

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


@functools.lru_cache(maxsize=None)
def _blobs(n_samples=1000, n_features=5, centers=5, cluster_std=2.0, seed=0):
    """Overlapping blobs: Lloyd needs several iterations and labels are not trivial."""
    X, _ = make_blobs(
        n_samples=n_samples, n_features=n_features, centers=centers,
        cluster_std=cluster_std, random_state=seed,
    )
    X.setflags(write=False)  # cached: no test may change it
    return X


def _blobs_as(dtype, **kwargs):
    return np.array(_blobs(**kwargs), dtype=dtype)


def _init_rows(X, n_clusters, seed=0):
    """``n_clusters`` distinct rows of ``X`` to use as fixed initial centers."""
    rows = np.random.default_rng(seed).choice(X.shape[0], size=n_clusters, replace=False)
    return np.array(X[rows], copy=True)


def _assert_distances_close(distances, X, centers):
    """``distances`` are the Euclidean distances from the rows of X to the centers.

    The tolerance is the rounding error of the ``||x||^2 - 2 x.c + ||c||^2``
    expansion in the dtype of ``distances``: a few ulps of ``||x||^2 + ||c||^2``
    on the squared distance.
    """
    eps = np.finfo(to_numpy(distances).dtype).eps
    X64, centers64 = to_numpy(X).astype(np.float64), to_numpy(centers).astype(np.float64)
    exact_sq = ((X64[:, None, :] - centers64[None, :, :]) ** 2).sum(axis=2)
    scale = (X64**2).sum(axis=1)[:, None] + (centers64**2).sum(axis=1)[None, :]
    actual_sq = to_numpy(distances).astype(np.float64) ** 2
    assert actual_sq.shape == exact_sq.shape
    np.testing.assert_array_less(np.abs(actual_sq - exact_sq), 16 * eps * scale + 1e-300)


def _sklearn_lloyd(X, init, sample_weight=None, **params):
    """scikit-learn's Lloyd from the given initial centers (float64 reference)."""
    return sklearn.cluster.KMeans(
        n_clusters=init.shape[0], init=init, n_init=1, algorithm="lloyd", **params
    ).fit(X, sample_weight=sample_weight)


# --------------------------------------------------------------- parity ---


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(
    "params",
    [
        pytest.param(dict(init="k-means++"), id="k-means++"),
        pytest.param(dict(init="random", n_init=3), id="random-n_init3"),
        pytest.param(dict(init="random-partition", n_init=2), id="random-partition"),
        pytest.param(dict(init="k-means||"), id="k-means||"),
    ],
)
def test_parity_with_numpy_backend(xp, dtype, params):
    X_np = _blobs_as(dtype)
    estimator = KMeans(n_clusters=5, random_state=0, **params)
    expected = clone(estimator).fit(X_np)
    X = asarray(xp, X_np)
    result = clone(estimator).fit(X)

    rtol = rtol_for(dtype)
    assert_equal(result.labels_, expected.labels_)
    assert result.inertia_ == pytest.approx(expected.inertia_, rel=rtol)
    assert_close(result.cluster_centers_, expected.cluster_centers_, rtol=rtol, atol=rtol)
    assert result.n_iter_ == expected.n_iter_
    # Results come back in the input's namespace, dtype preserved.
    for array in (result.cluster_centers_, result.labels_):
        assert_namespace(array, xp)
    assert dtype_name(result.cluster_centers_) == np.dtype(dtype).name
    assert np.issubdtype(to_numpy(result.labels_).dtype, np.integer)
    assert isinstance(result.inertia_, float)
    assert isinstance(result.n_iter_, int)
    assert result.n_features_in_ == X_np.shape[1]
    # The objective reported is the objective of the returned labels and centers.
    assert result.inertia_ == pytest.approx(
        reference_inertia(X_np, result.cluster_centers_, result.labels_), rel=10 * rtol
    )


@pytest.mark.parametrize("dtype", DTYPES)
def test_methods_return_input_namespace_and_dtype(xp, dtype):
    X_np = _blobs_as(dtype, n_samples=300)
    X = asarray(xp, X_np)
    km = KMeans(n_clusters=4, random_state=0).fit(X)

    labels = km.predict(X)
    distances = km.transform(X)
    assert_namespace(labels, xp)
    assert_namespace(distances, xp)
    assert dtype_name(distances) == np.dtype(dtype).name
    assert tuple(distances.shape) == (300, 4)
    assert np.issubdtype(to_numpy(labels).dtype, np.integer)
    assert isinstance(km.score(X), float)


def test_integer_input_is_clustered_in_float64(xp):
    X_np = np.round(_blobs(n_samples=200) * 10).astype(np.int64)
    km = KMeans(n_clusters=3, random_state=0).fit(asarray(xp, X_np))
    expected = KMeans(n_clusters=3, random_state=0).fit(X_np.astype(np.float64))
    assert dtype_name(km.cluster_centers_) == "float64"
    assert_equal(km.labels_, expected.labels_)
    assert km.inertia_ == pytest.approx(expected.inertia_, rel=1e-10)


# ------------------------------------------- scikit-learn from the same init ---


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_same_as_sklearn_from_same_init_blobs(xp, weighted):
    X_np = _blobs(n_samples=2000, n_features=8, centers=6, cluster_std=3.0)
    init = _init_rows(X_np, 6)
    sample_weight = np.random.default_rng(1).uniform(0.5, 2.0, X_np.shape[0]) if weighted else None

    expected = _sklearn_lloyd(X_np, init, sample_weight=sample_weight)
    result = KMeans(n_clusters=6, init=asarray(xp, init)).fit(
        asarray(xp, X_np), sample_weight=None if sample_weight is None else asarray(xp, sample_weight)
    )

    assert expected.n_iter_ > 3, "the data should need several Lloyd iterations"
    assert_equal(result.labels_, expected.labels_)
    assert result.inertia_ == pytest.approx(expected.inertia_, rel=1e-6)
    assert_close(result.cluster_centers_, expected.cluster_centers_, rtol=1e-8, atol=1e-10)
    assert result.n_iter_ == expected.n_iter_


def test_same_as_sklearn_from_same_init_digits(xp):
    X_np = load_digits().data  # (1797, 64) float64, shipped with scikit-learn
    init = np.array(X_np[:10], copy=True)  # the first ten images are the digits 0..9

    expected = _sklearn_lloyd(X_np, init)
    result = KMeans(n_clusters=10, init=asarray(xp, init)).fit(asarray(xp, X_np))

    assert_equal(result.labels_, expected.labels_)
    assert result.inertia_ == pytest.approx(expected.inertia_, rel=1e-6)
    assert_close(result.cluster_centers_, expected.cluster_centers_, rtol=1e-8, atol=1e-10)
    assert result.n_iter_ == expected.n_iter_


@pytest.mark.parametrize("init", ["k-means++", "random"])
def test_same_seed_same_result_as_sklearn(xp, init):
    # Host draws in scikit-learn's order: the whole fit (init included) matches.
    X_np = _blobs(n_samples=1000, n_features=4, centers=6, cluster_std=2.5)
    expected = sklearn.cluster.KMeans(
        n_clusters=6, init=init, n_init=2, random_state=0, algorithm="lloyd"
    ).fit(X_np)
    result = KMeans(n_clusters=6, init=init, n_init=2, random_state=0).fit(asarray(xp, X_np))
    assert_equal(result.labels_, expected.labels_)
    assert result.inertia_ == pytest.approx(expected.inertia_, rel=1e-6)
    assert result.n_iter_ == expected.n_iter_


# ------------------------------------------------------------- k-means++ ---


@pytest.mark.parametrize("seed", [0, 1, 7])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_kmeans_plusplus_same_indices_as_sklearn(xp, seed, weighted):
    X_np = _blobs(n_samples=800, n_features=3, centers=6)
    sample_weight = np.random.default_rng(2).uniform(0.1, 3.0, X_np.shape[0]) if weighted else None

    expected_centers, expected_indices = sklearn.cluster.kmeans_plusplus(
        X_np, 6, sample_weight=sample_weight, random_state=seed
    )
    centers, indices = kmeans_plusplus(
        asarray(xp, X_np), 6, random_state=seed,
        sample_weight=None if sample_weight is None else asarray(xp, sample_weight),
    )

    assert_namespace(centers, xp)
    assert_namespace(indices, xp)
    assert_equal(indices, expected_indices)
    assert_close(centers, expected_centers, rtol=0)
    assert_close(centers, X_np[to_numpy(indices)], rtol=0)


@pytest.mark.parametrize("seed", [0, 3])
def test_kmeans_plusplus_float32_same_indices_on_every_backend(xp, seed):
    X_np = _blobs_as(np.float32, n_samples=800, n_features=3, centers=6)
    _, expected_indices = kmeans_plusplus(X_np, 6, random_state=seed)
    centers, indices = kmeans_plusplus(asarray(xp, X_np), 6, random_state=seed)
    assert_equal(indices, expected_indices)
    assert dtype_name(centers) == "float32"
    assert_close(centers, X_np[to_numpy(expected_indices)], rtol=0)


@pytest.mark.parametrize("seed", range(4))
def test_kmeans_plusplus_never_picks_zero_weight_rows(xp, seed):
    X_np = _blobs(n_samples=400, n_features=2, centers=4)
    sample_weight = np.ones(X_np.shape[0])
    zero_rows = np.arange(0, X_np.shape[0], 2)  # half of the rows, spread everywhere
    sample_weight[zero_rows] = 0.0
    _, indices = kmeans_plusplus(
        asarray(xp, X_np), 8, random_state=seed, sample_weight=asarray(xp, sample_weight)
    )
    assert not np.isin(to_numpy(indices), zero_rows).any()
    # Without weights the same seed does pick some of those rows (the test can fail).
    if seed == 0:
        _, unweighted = kmeans_plusplus(X_np, 8, random_state=seed)
        assert np.isin(to_numpy(unweighted), zero_rows).any()


# ------------------------------------------------------------------ init ---


def _check_valid_fit(km, X_np, n_clusters):
    labels = to_numpy(km.labels_)
    centers = to_numpy(km.cluster_centers_)
    assert labels.shape == (X_np.shape[0],)
    assert centers.shape == (n_clusters, X_np.shape[1])
    assert np.all(np.isfinite(centers))
    assert np.array_equal(np.unique(labels), np.arange(n_clusters))
    assert km.inertia_ == pytest.approx(reference_inertia(X_np, centers, labels), rel=1e-9)
    # Lloyd's fixed point: every center is the mean of its cluster.
    for j in range(n_clusters):
        assert_close(centers[j], X_np[labels == j].mean(axis=0), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("init", ["k-means++", "k-means||", "random", "random-partition", "array", "callable"])
def test_every_init_works(xp, init):
    X_np = _blobs(n_samples=500, n_features=3, centers=4)
    if init == "array":
        init_param = asarray(xp, _init_rows(X_np, 4))
    elif init == "callable":
        def init_param(X, n_clusters, random_state):
            return _init_rows(to_numpy(X), n_clusters, seed=random_state.randint(1000))
    else:
        init_param = init
    km = KMeans(n_clusters=4, init=init_param, random_state=0).fit(asarray(xp, X_np))
    _check_valid_fit(km, X_np, 4)
    assert_namespace(km.cluster_centers_, xp)


def test_kmeans_parallel_init():
    X = _blobs(n_samples=500, n_features=3, centers=4)
    km = KMeans(n_clusters=4, init="k-means||", random_state=0).fit(X)
    _check_valid_fit(km, X, 4)


def test_callable_init_is_called_and_its_centers_are_used(xp):
    X_np = _blobs(n_samples=500, n_features=3, centers=4)
    X = asarray(xp, X_np)
    init_centers = _init_rows(X_np, 4, seed=5)
    calls = []

    def init(data, n_clusters, random_state):
        calls.append((to_numpy(data).copy(), n_clusters, random_state))
        return asarray(xp, init_centers)

    km = KMeans(n_clusters=4, init=init, n_init=3, random_state=0).fit(X)
    assert len(calls) == 3
    for data, n_clusters, random_state in calls:
        # Called with the data in the caller's coordinates (not centered).
        assert_close(data, X_np, rtol=0)
        assert n_clusters == 4
        assert isinstance(random_state, np.random.RandomState)
    from_array = KMeans(n_clusters=4, init=asarray(xp, init_centers)).fit(X)
    assert_equal(km.labels_, from_array.labels_)
    assert km.inertia_ == pytest.approx(from_array.inertia_, rel=1e-12)


def test_n_init_auto():
    # Documented: "auto" is 1 for "k-means++" and an array, 10 otherwise.
    X = _blobs(n_samples=600, n_features=2, centers=10, cluster_std=1.0, seed=3)

    def fit(**params):
        return KMeans(n_clusters=10, random_state=0, **params).fit(X)

    one, ten, auto = (fit(init="random", n_init=n) for n in (1, 10, "auto"))
    assert ten.inertia_ < one.inertia_, "precondition: more runs find a better optimum here"
    assert auto.inertia_ == ten.inertia_
    assert_equal(auto.labels_, ten.labels_)

    assert fit(init="k-means++", n_init="auto").inertia_ == fit(init="k-means++", n_init=1).inertia_

    calls = []

    def init(data, n_clusters, random_state):
        calls.append(1)
        return _init_rows(to_numpy(data), n_clusters, seed=len(calls))

    fit(init=init, n_init="auto")
    assert len(calls) == 10


def test_array_init_runs_once_and_warns_for_n_init():
    X = _blobs(n_samples=300)
    init = _init_rows(X, 5)
    with pytest.warns(RuntimeWarning, match="Explicit initial center position passed"):
        km = KMeans(n_clusters=5, init=init, n_init=3).fit(X)
    reference = KMeans(n_clusters=5, init=init, n_init=1).fit(X)
    assert km.inertia_ == reference.inertia_
    assert_equal(km.labels_, reference.labels_)


@pytest.mark.parametrize("init", ["random", "k-means++"])
@pytest.mark.parametrize("seed", range(3))
def test_init_never_picks_zero_weight_rows(xp, init, seed):
    # Three unit-weight points and many zero-weight points. An init that honours
    # the weights starts exactly at the three points: the first update moves
    # nothing (zero weights add nothing to the means) and the fit ends at once
    # with inertia 0. A zero-weight row picked as a center would move.
    positive = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
    zero = np.random.default_rng(seed).uniform(-20, 30, size=(200, 2))
    X_np = np.concatenate([zero[:100], positive, zero[100:]])
    sample_weight = np.zeros(X_np.shape[0])
    sample_weight[100:103] = 1.0

    km = KMeans(n_clusters=3, init=init, tol=0.0, random_state=seed).fit(
        asarray(xp, X_np), sample_weight=asarray(xp, sample_weight)
    )
    assert km.n_iter_ == 1
    assert km.inertia_ == 0.0
    centers = to_numpy(km.cluster_centers_)
    assert_close(centers[np.lexsort(centers.T[::-1])], positive[np.lexsort(positive.T[::-1])], rtol=0, atol=1e-12)


# ------------------------------------------------------- memory budget ---


@pytest.mark.parametrize("dtype", DTYPES)
def test_result_independent_of_working_memory(xp, dtype):
    X_np = _blobs_as(dtype, n_samples=3000, n_features=4, centers=5)
    X = asarray(xp, X_np)
    # 0.01 MiB is ~100 rows per block: ~30 blocks for the assignment.
    default = KMeans(n_clusters=5, random_state=0).fit(X)
    tiny = KMeans(n_clusters=5, random_state=0, working_memory=0.01).fit(X)

    rtol = rtol_for(dtype)
    assert_equal(tiny.labels_, default.labels_)
    assert tiny.inertia_ == pytest.approx(default.inertia_, rel=rtol)
    assert_close(tiny.cluster_centers_, default.cluster_centers_, rtol=rtol, atol=rtol)
    assert tiny.n_iter_ == default.n_iter_
    assert_equal(tiny.predict(X), default.predict(X))
    # Distances depend on the block shape only through GEMM rounding.
    _assert_distances_close(tiny.transform(X), X_np, tiny.cluster_centers_)
    _assert_distances_close(default.transform(X), X_np, default.cluster_centers_)
    assert tiny.score(X) == pytest.approx(default.score(X), rel=rtol)


def test_one_row_per_block():
    X = _blobs(n_samples=200, n_features=3, centers=3)
    default = KMeans(n_clusters=3, random_state=0).fit(X)
    # 1e-5 MiB is 10 bytes: less than one row, so every block is a single row.
    tiny = KMeans(n_clusters=3, random_state=0, working_memory=1e-5).fit(X)
    assert_equal(tiny.labels_, default.labels_)
    assert tiny.inertia_ == pytest.approx(default.inertia_, rel=1e-10)
    assert_close(tiny.transform(X), default.transform(X), rtol=1e-10)


# ---------------------------------------------------------- sample_weight ---


def test_integer_weights_equal_repeated_rows(xp):
    X_np = _blobs(n_samples=300, n_features=3, centers=4, cluster_std=2.5)
    sample_weight = np.random.default_rng(0).integers(1, 4, size=X_np.shape[0]).astype(np.float64)
    X_repeated = np.repeat(X_np, sample_weight.astype(np.int64), axis=0)
    first_copy = np.concatenate([[0], np.cumsum(sample_weight.astype(np.int64))[:-1]])
    init = _init_rows(X_np, 4)

    weighted = KMeans(n_clusters=4, init=asarray(xp, init)).fit(
        asarray(xp, X_np), sample_weight=asarray(xp, sample_weight)
    )
    repeated = KMeans(n_clusters=4, init=asarray(xp, init)).fit(asarray(xp, X_repeated))

    assert weighted.inertia_ == pytest.approx(repeated.inertia_, rel=1e-10)
    assert_close(weighted.cluster_centers_, repeated.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert_equal(weighted.labels_, to_numpy(repeated.labels_)[first_copy])
    assert weighted.n_iter_ == repeated.n_iter_
    # The weights matter here: the unweighted fit ends elsewhere.
    unweighted = KMeans(n_clusters=4, init=asarray(xp, init)).fit(asarray(xp, X_np))
    assert not np.allclose(to_numpy(unweighted.cluster_centers_), to_numpy(weighted.cluster_centers_))


def test_weight_two_equals_duplicate_row(xp):
    X_np = _blobs(n_samples=100, n_features=2, centers=3, cluster_std=3.0)
    init = _init_rows(X_np, 3)
    sample_weight = np.ones(X_np.shape[0])
    sample_weight[7] = 2.0
    X_dup = np.concatenate([X_np, X_np[7:8]])

    weighted = KMeans(n_clusters=3, init=asarray(xp, init)).fit(asarray(xp, X_np), sample_weight=sample_weight)
    duplicated = KMeans(n_clusters=3, init=asarray(xp, init)).fit(asarray(xp, X_dup))

    assert weighted.inertia_ == pytest.approx(duplicated.inertia_, rel=1e-10)
    assert_close(weighted.cluster_centers_, duplicated.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert_equal(weighted.labels_, to_numpy(duplicated.labels_)[:-1])


def test_zero_weight_equals_removed_row(xp):
    X_np = _blobs(n_samples=200, n_features=2, centers=3, cluster_std=3.0)
    init = _init_rows(X_np, 3)
    sample_weight = np.ones(X_np.shape[0])
    removed = np.arange(0, 200, 5)
    sample_weight[removed] = 0.0
    kept = np.setdiff1d(np.arange(200), removed)

    weighted = KMeans(n_clusters=3, init=asarray(xp, init)).fit(asarray(xp, X_np), sample_weight=sample_weight)
    subset = KMeans(n_clusters=3, init=asarray(xp, init)).fit(asarray(xp, X_np[kept]))

    assert weighted.inertia_ == pytest.approx(subset.inertia_, rel=1e-10)
    assert_close(weighted.cluster_centers_, subset.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert_equal(to_numpy(weighted.labels_)[kept], subset.labels_)


def test_scalar_sample_weight_scales_inertia_only():
    X = _blobs(n_samples=300)
    init = _init_rows(X, 5)
    plain = KMeans(n_clusters=5, init=init).fit(X)
    scaled = KMeans(n_clusters=5, init=init).fit(X, sample_weight=3.0)
    assert scaled.inertia_ == pytest.approx(3.0 * plain.inertia_, rel=1e-10)
    assert_equal(scaled.labels_, plain.labels_)
    assert_close(scaled.cluster_centers_, plain.cluster_centers_, rtol=1e-10, atol=1e-12)


# -------------------------------------------------------- empty clusters ---


def _shifted_cloud(n_samples=300, seed=0):
    # Away from the origin, so a center wrongly left at zero (or at the data
    # mean, zero in centered coordinates) is detectable.
    return np.random.default_rng(seed).normal(size=(n_samples, 2)) + np.array([10.0, -5.0])


def _expected_one_step_with_relocation(X, init):
    """One Lloyd update with the documented empty-cluster policy, in NumPy."""
    labels = ((X[:, None, :] - init[None, :, :]) ** 2).sum(axis=2).argmin(axis=1)
    cost = ((X - init[labels]) ** 2).sum(axis=1)
    empty = [j for j in range(init.shape[0]) if not np.any(labels == j)]
    donors = np.argsort(-cost, kind="stable")[: len(empty)]
    members = labels.copy()
    for cluster, donor in zip(empty, donors):
        members[donor] = cluster  # the donor leaves its own cluster
    centers = np.array([X[members == j].mean(axis=0) for j in range(init.shape[0])])
    return centers, empty, donors


@pytest.mark.parametrize("n_far", [1, 2])
def test_empty_cluster_relocated_to_farthest_point(xp, n_far):
    X_np = _shifted_cloud()
    near = X_np.mean(axis=0) + np.array([[-1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    far = np.array([[500.0, 500.0], [-400.0, 600.0]])[:n_far]
    init = np.concatenate([near[:1], far, near[1:]])  # an empty cluster in the middle
    expected_centers, empty, donors = _expected_one_step_with_relocation(X_np, init)
    assert len(empty) == n_far, "precondition: the far centers get no points"

    one_step = KMeans(n_clusters=init.shape[0], init=asarray(xp, init), max_iter=1).fit(asarray(xp, X_np))
    centers = to_numpy(one_step.cluster_centers_)
    assert_close(centers, expected_centers, rtol=1e-10, atol=1e-12)
    for cluster, donor in zip(empty, donors):
        assert_close(centers[cluster], X_np[donor], rtol=0, atol=1e-12)

    sklearn_step = _sklearn_lloyd(X_np, init, max_iter=1)
    assert_close(centers, sklearn_step.cluster_centers_, rtol=1e-10, atol=1e-12)


def test_empty_cluster_full_fit(xp):
    X_np = _shifted_cloud()
    init = np.array([[9.0, -5.0], [11.0, -5.0], [10.0, -4.0], [1000.0, 1000.0]])
    km = KMeans(n_clusters=4, init=asarray(xp, init)).fit(asarray(xp, X_np))

    centers = to_numpy(km.cluster_centers_)
    assert np.all(np.isfinite(centers))
    assert not np.any(np.all(centers == 0.0, axis=1)), "a center was left at zero"
    assert np.min(np.linalg.norm(centers - X_np.mean(axis=0), axis=1)) > 1e-6
    assert np.max(np.abs(centers)) < 100, "the far center was never moved"
    assert np.array_equal(np.unique(to_numpy(km.labels_)), np.arange(4))

    expected = _sklearn_lloyd(X_np, init)
    assert_equal(km.labels_, expected.labels_)
    assert km.inertia_ == pytest.approx(expected.inertia_, rel=1e-6)


def test_empty_cluster_never_takes_a_zero_weight_point(xp):
    X_np = _shifted_cloud()
    X_np[17] = [40.0, 40.0]  # by far the farthest point, but it weighs nothing
    sample_weight = np.ones(X_np.shape[0])
    sample_weight[17] = 0.0
    init = np.array([[9.0, -5.0], [11.0, -5.0], [800.0, 800.0]])

    one_step = KMeans(n_clusters=3, init=asarray(xp, init), max_iter=1).fit(
        asarray(xp, X_np), sample_weight=asarray(xp, sample_weight)
    )
    labels = ((X_np[:, None, :] - init[None, :2, :]) ** 2).sum(axis=2).argmin(axis=1)
    cost = ((X_np - init[labels]) ** 2).sum(axis=1)
    cost[17] = -1.0
    donor = int(np.argmax(cost))
    assert_close(to_numpy(one_step.cluster_centers_)[2], X_np[donor], rtol=0, atol=1e-12)


def test_fewer_distinct_points_than_clusters_warns(xp):
    distinct = np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]])
    X_np = np.repeat(distinct, 10, axis=0)
    with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(3\).*n_clusters \(5\)"):
        km = KMeans(n_clusters=5, random_state=0).fit(asarray(xp, X_np))
    assert np.all(np.isfinite(to_numpy(km.cluster_centers_)))
    assert km.inertia_ == 0.0
    # As many distinct points as clusters: no warning.
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        km = KMeans(n_clusters=3, random_state=0).fit(asarray(xp, X_np))
    assert km.inertia_ == 0.0


# ---------------------------------------------- predict, transform, score ---


def test_methods_consistent_with_each_other_and_sklearn(xp):
    X_np = _blobs(n_samples=600, n_features=3, centers=4)
    X_new_np = _blobs(n_samples=200, n_features=3, centers=4, seed=1)
    X, X_new = asarray(xp, X_np), asarray(xp, X_new_np)
    km = KMeans(n_clusters=4, random_state=0).fit(X)

    assert_equal(km.predict(X), km.labels_)
    distances = to_numpy(km.transform(X))
    assert_equal(distances.argmin(axis=1), km.labels_)
    assert km.score(X) == pytest.approx(-km.inertia_, rel=1e-10)
    assert_close((distances.min(axis=1) ** 2).sum(), km.inertia_, rtol=1e-8)

    assert_close(KMeans(n_clusters=4, random_state=0).fit_transform(X), distances, rtol=1e-12, atol=1e-12)
    assert_equal(KMeans(n_clusters=4, random_state=0).fit_predict(X), km.labels_)

    # scikit-learn started on our (converged) centers stays there and agrees.
    reference = _sklearn_lloyd(X_np, to_numpy(km.cluster_centers_))
    assert_close(reference.cluster_centers_, km.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert_equal(km.predict(X_new), reference.predict(X_new_np))
    assert_close(km.transform(X_new), reference.transform(X_new_np), rtol=1e-10, atol=1e-10)
    assert km.score(X_new) == pytest.approx(reference.score(X_new_np), rel=1e-10)
    weights = np.random.default_rng(0).uniform(0.5, 2.0, X_new_np.shape[0])
    assert km.score(X_new, sample_weight=asarray(xp, weights)) == pytest.approx(
        reference.score(X_new_np, sample_weight=weights), rel=1e-10
    )


def test_fit_with_weights_predict_and_transform_shapes(xp):
    X_np = _blobs(n_samples=150, n_features=2, centers=3)
    km = KMeans(n_clusters=3, random_state=0)
    labels = km.fit_predict(asarray(xp, X_np), sample_weight=np.full(150, 2.0))
    assert_equal(labels, km.labels_)
    distances = km.fit_transform(asarray(xp, X_np), sample_weight=np.full(150, 2.0))
    assert tuple(distances.shape) == (150, 3)
    assert km.score(asarray(xp, X_np), sample_weight=np.full(150, 2.0)) == pytest.approx(-km.inertia_, rel=1e-10)


# ------------------------------------------------------------- backend= ---


@pytest.mark.filterwarnings("ignore:The given NumPy array is not writable:UserWarning")
@pytest.mark.parametrize("backend", ["torch", "array_api_strict", "numpy", "auto"])
def test_backend_parameter_returns_numpy_results(backend):
    if backend == "torch":
        pytest.importorskip("torch")
    if backend == "auto" and cuda_available():
        pytest.skip("with a GPU 'auto' computes on CuPy: covered by the cupy parity tests")
    X = _blobs(n_samples=500, n_features=3, centers=4)
    expected = KMeans(n_clusters=4, random_state=0).fit(X)
    km = KMeans(n_clusters=4, random_state=0, backend=backend).fit(X)

    assert km.backend_ == ("numpy" if backend == "auto" else backend)
    for array in (km.cluster_centers_, km.labels_, km.predict(X), km.transform(X)):
        assert isinstance(array, np.ndarray)
    assert_equal(km.labels_, expected.labels_)
    assert km.inertia_ == pytest.approx(expected.inertia_, rel=1e-10)
    assert_close(km.cluster_centers_, expected.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert_equal(km.predict(X), expected.predict(X))
    assert_close(km.transform(X), expected.transform(X), rtol=1e-10, atol=1e-12)

    centers, indices = kmeans_plusplus(X, 4, random_state=0, backend=backend)
    assert isinstance(indices, np.ndarray)
    assert_equal(indices, kmeans_plusplus(X, 4, random_state=0)[1])


def test_backend_numpy_for_foreign_input(xp):
    X_np = _blobs(n_samples=300, n_features=3, centers=3)
    expected = KMeans(n_clusters=3, random_state=0).fit(X_np)
    km = KMeans(n_clusters=3, random_state=0, backend="numpy").fit(asarray(xp, X_np))
    assert km.backend_ == "numpy"
    assert_namespace(km.cluster_centers_, xp)
    assert_namespace(km.labels_, xp)
    assert_namespace(km.predict(asarray(xp, X_np)), xp)
    assert_equal(km.labels_, expected.labels_)


def test_fitted_on_numpy_predicts_in_the_namespace_of_new_data(xp):
    X_np = _blobs(n_samples=300, n_features=3, centers=3)
    km = KMeans(n_clusters=3, random_state=0).fit(X_np)
    X = asarray(xp, X_np)
    labels, distances = km.predict(X), km.transform(X)
    assert_namespace(labels, xp)
    assert_namespace(distances, xp)
    assert_equal(labels, km.labels_)
    assert_close(distances, km.transform(X_np), rtol=1e-10, atol=1e-12)
    assert km.score(X) == pytest.approx(-km.inertia_, rel=1e-10)


@pytest.mark.skipif(cuda_available(), reason="a CUDA device is present: backend='cupy' works here")
def test_backend_cupy_without_gpu_is_a_clear_error():
    X = _blobs(n_samples=50)
    with pytest.raises((RuntimeError, ImportError), match="(?i)cupy"):
        KMeans(n_clusters=2, backend="cupy").fit(X)
    with pytest.raises((RuntimeError, ImportError), match="(?i)cupy"):
        kmeans_plusplus(X, 2, backend="cupy")


def test_unknown_backend_is_rejected():
    with pytest.raises(ValueError, match="backend must be one of"):
        KMeans(n_clusters=2, backend="tensorflow").fit(_blobs(n_samples=50))


# --------------------------------------------------- scikit-learn API ---


def test_clone_and_params():
    km = KMeans(n_clusters=3, init="random", n_init=4, tol=1e-3, random_state=5, working_memory=2.0)
    copy = clone(km)
    assert copy is not km
    assert copy.get_params() == km.get_params()
    copy.set_params(n_clusters=5, backend="numpy")
    assert copy.n_clusters == 5 and copy.backend == "numpy" and km.n_clusters == 3
    fitted = clone(km).fit(_blobs(n_samples=200))
    assert not hasattr(clone(fitted), "cluster_centers_")


def test_pipeline():
    X = _blobs(n_samples=400, n_features=3, centers=4)
    pipe = Pipeline([("scale", StandardScaler()), ("kmeans", KMeans(n_clusters=4, random_state=0))])
    labels = pipe.fit_predict(X)
    X_scaled = StandardScaler().fit_transform(X)
    direct = KMeans(n_clusters=4, random_state=0).fit(X_scaled)
    assert_equal(labels, direct.labels_)
    assert_equal(pipe.predict(X), direct.labels_)
    assert_close(pipe.transform(X), direct.transform(X_scaled), rtol=1e-12)
    assert pipe.score(X) == pytest.approx(direct.score(X_scaled), rel=1e-12)


def test_grid_search_over_n_clusters():
    X = _blobs(n_samples=400, n_features=3, centers=4, cluster_std=1.0)
    search = GridSearchCV(KMeans(random_state=0), {"n_clusters": [1, 2, 4]}, cv=3)
    search.fit(X)
    scores = search.cv_results_["mean_test_score"]
    # score = -inertia on held-out data: more clusters fit it better.
    assert scores[0] < scores[1] < scores[2] < 0
    assert search.best_params_ == {"n_clusters": 4}
    assert to_numpy(search.best_estimator_.cluster_centers_).shape == (4, 3)


def test_public_names():
    assert {"KMeans", "kmeans_plusplus"} <= set(kgpu.__all__)
