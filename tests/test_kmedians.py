"""KMedians at the estimator level, on every backend.

The reference is a plain NumPy K-Medians written here from the documented
algorithm (``cdist`` L1 assignment, per-cluster medians by the rule of
:func:`kgpu._segment.segment_median`, the shared empty-cluster policy, the
same convergence test); backends are compared with NumPy (SPEC §3 parity).
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

import kgpu
from kgpu import KMeans, KMedians
from kgpu._init import plusplus_indices
from kgpu._kmedians import MANHATTAN, mean_absolute_deviation

from ._helpers import asarray, assert_close, assert_equal, assert_namespace, dtype_name, rtol_for, to_numpy
from .test_segment_median import _reference_median

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


@functools.cache
def _blobs(n_samples=300, n_features=3, centers=4, cluster_std=2.0, seed=0):
    """Overlapping blobs: several iterations, labels not trivial."""
    X, _ = make_blobs(n_samples=n_samples, n_features=n_features, centers=centers, cluster_std=cluster_std, random_state=seed)
    X.setflags(write=False)
    return X


def _init_rows(X, n_clusters, seed=0):
    rows = np.random.default_rng(seed).choice(X.shape[0], size=n_clusters, replace=False)
    return np.array(X[rows], copy=True)


def _reference_kmedians(X, init, sample_weight=None, max_iter=300, tol=0.0):
    """Coordinate-wise median Lloyd in NumPy, as documented in kgpu._kmedians."""
    n_samples, n_clusters = X.shape[0], init.shape[0]
    weights = np.ones(n_samples) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    centers = np.array(init, copy=True)
    labels_old, strict = None, False
    for n_iter in range(1, max_iter + 1):
        distances = cdist(X, centers, "cityblock")
        labels = distances.argmin(axis=1)
        cost = distances[np.arange(n_samples), labels]
        cluster_weights = np.bincount(labels, weights, minlength=n_clusters)
        empty = np.flatnonzero(cluster_weights <= 0)
        n_reseeded = 0
        if empty.size:
            eligible = np.where(weights > 0, cost, -1.0)
            donors = [d for d in np.argsort(-eligible, kind="stable")[: empty.size] if eligible[d] >= 0]
            for cluster, donor in zip(empty, donors):
                labels[donor] = cluster
                n_reseeded += 1
            cluster_weights = np.bincount(labels, weights, minlength=n_clusters)
        medians = _reference_median(X, labels, n_clusters, weights).astype(X.dtype)
        new_centers = np.where((cluster_weights > 0)[:, None], medians, centers)
        shift = float(np.abs(new_centers.astype(np.float64) - centers).sum())
        centers = new_centers
        n_changed = n_samples if labels_old is None else int(np.sum(labels != labels_old))
        if labels_old is not None and n_changed == 0 and n_reseeded == 0:
            strict = True
            break
        if shift <= tol:
            break
        labels_old = labels
    if not strict:
        distances = cdist(X, centers, "cityblock")
        labels = distances.argmin(axis=1)
        cost = distances[np.arange(n_samples), labels]
    return centers, labels, float(weights @ cost), n_iter


# ----------------------------------------------------- reference and parity


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_same_init_equals_numpy_reference(xp, dtype, weighted):
    X_np = np.array(_blobs(), dtype=dtype)
    init = _init_rows(X_np, 4)
    sample_weight = np.random.default_rng(1).uniform(0.5, 2.0, X_np.shape[0]) if weighted else None
    expected_centers, expected_labels, expected_inertia, expected_n_iter = _reference_kmedians(
        X_np, init, sample_weight
    )
    assert expected_n_iter > 2, "precondition: several iterations"

    km = KMedians(n_clusters=4, init=asarray(xp, init), tol=0).fit(
        asarray(xp, X_np), sample_weight=None if sample_weight is None else asarray(xp, sample_weight)
    )

    assert_equal(km.labels_, expected_labels)
    assert_close(km.cluster_centers_, expected_centers, rtol=rtol_for(dtype), atol=rtol_for(dtype))
    assert km.inertia_ == pytest.approx(expected_inertia, rel=rtol_for(dtype))
    assert km.n_iter_ == expected_n_iter


def test_tolerance_is_relative_to_mean_absolute_deviation(xp):
    X_np = np.array(_blobs(cluster_std=3.0))
    init = _init_rows(X_np, 4, seed=2)
    median = np.median(X_np, axis=0)
    mad = float(np.mean(np.mean(np.abs(X_np - median), axis=0)))
    assert mean_absolute_deviation(asarray(xp, X_np), asarray(xp, np.ones(X_np.shape[0])), xp=xp) == pytest.approx(mad, rel=1e-12)

    tol = 0.05
    expected = _reference_kmedians(X_np, init, tol=tol * mad)
    full = _reference_kmedians(X_np, init)
    assert expected[3] < full[3], "precondition: the tolerance stops the run early"
    km = KMedians(n_clusters=4, init=asarray(xp, init), tol=tol).fit(asarray(xp, X_np))
    assert km.n_iter_ == expected[3]
    assert_equal(km.labels_, expected[1])
    assert_close(km.cluster_centers_, expected[0], rtol=1e-12)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("init", ["k-medians++", "random"])
def test_parity_with_numpy_backend(xp, dtype, init):
    X_np = np.array(_blobs(n_samples=250, cluster_std=2.5, seed=3), dtype=dtype)
    sample_weight = np.random.default_rng(4).integers(1, 4, X_np.shape[0]).astype(dtype)
    params = dict(n_clusters=5, init=init, n_init=2, random_state=7)
    reference = KMedians(**params).fit(X_np, sample_weight=sample_weight)
    km = KMedians(**params).fit(asarray(xp, X_np), sample_weight=asarray(xp, sample_weight))

    assert_equal(km.labels_, reference.labels_)
    assert_close(km.cluster_centers_, reference.cluster_centers_, rtol=rtol_for(dtype), atol=rtol_for(dtype))
    assert km.inertia_ == pytest.approx(reference.inertia_, rel=rtol_for(dtype))
    assert km.n_iter_ == reference.n_iter_


def _reference_plusplus_l1(X, n_clusters, weights, random_state):
    """Greedy k-medians++ in NumPy: the k-means++ draws with L1 distances, not squared."""
    n_samples = X.shape[0]
    n_trials = 2 + int(np.log(n_clusters))
    indices = [random_state.choice(n_samples, p=weights / weights.sum())]
    closest = cdist(X, X[indices], "cityblock")[:, 0]
    potential = float(weights @ closest)
    for _ in range(1, n_clusters):
        thresholds = random_state.uniform(size=n_trials) * potential
        candidates = np.minimum(np.searchsorted(np.cumsum(weights * closest), thresholds), n_samples - 1)
        trial = np.minimum(closest[:, None], cdist(X, X[candidates], "cityblock"))
        potentials = weights @ trial
        best = int(np.argmin(potentials))
        potential, closest = float(potentials[best]), trial[:, best]
        indices.append(int(candidates[best]))
    return np.asarray(indices)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_kmedians_plusplus_matches_reference(xp, seed):
    X_np = np.array(_blobs(n_samples=200, seed=seed))
    weights = np.random.default_rng(seed).uniform(0.0, 2.0, X_np.shape[0])
    expected = _reference_plusplus_l1(X_np, 6, weights, np.random.RandomState(seed))
    indices = plusplus_indices(
        asarray(xp, X_np), 6, asarray(xp, weights), np.random.RandomState(seed), xp=xp, metric=MANHATTAN
    )
    assert_equal(indices, expected)
    assert np.all(weights[indices] > 0)


# ----------------------------------------------------------- robustness


def test_robust_to_outliers_where_kmeans_is_not(xp):
    rng = np.random.default_rng(0)
    true_centers = np.array([[0.0, 0.0], [20.0, 0.0], [0.0, 20.0]])
    X_np = np.concatenate([c + rng.normal(size=(100, 2)) for c in true_centers])
    # Far outliers, all nearest to the first center.
    outliers = np.array([0.0, -200.0]) + rng.normal(size=(10, 2))
    X_np = np.concatenate([X_np, outliers])
    init = true_centers + 0.5

    medians = KMedians(n_clusters=3, init=asarray(xp, init)).fit(asarray(xp, X_np))
    means = KMeans(n_clusters=3, init=asarray(xp, init)).fit(asarray(xp, X_np))

    median_error = np.linalg.norm(to_numpy(medians.cluster_centers_) - true_centers, axis=1)
    mean_error = np.linalg.norm(to_numpy(means.cluster_centers_) - true_centers, axis=1)
    assert np.all(median_error < 0.5), median_error
    assert mean_error[0] > 10, "precondition: the outliers drag the K-Means center"
    assert np.all(to_numpy(medians.labels_)[-10:] == 0), "the outliers stay with the nearest cluster"


# ----------------------------------------------------------- weights


def test_weight_two_equals_duplicate_row(xp):
    X_np = np.array(_blobs(n_samples=120))
    init = _init_rows(X_np, 3, seed=5)
    sample_weight = np.ones(X_np.shape[0])
    sample_weight[[3, 40]] = 2.0
    weighted = KMedians(n_clusters=3, init=asarray(xp, init)).fit(asarray(xp, X_np), sample_weight=asarray(xp, sample_weight))
    duplicated = KMedians(n_clusters=3, init=asarray(xp, init)).fit(asarray(xp, np.concatenate([X_np, X_np[[3, 40]]])))

    assert_equal(weighted.cluster_centers_, duplicated.cluster_centers_)
    assert_equal(weighted.labels_, to_numpy(duplicated.labels_)[: X_np.shape[0]])
    assert weighted.inertia_ == pytest.approx(duplicated.inertia_, rel=1e-12)


def test_zero_weight_equals_removed_row(xp):
    X_np = np.array(_blobs(n_samples=120, seed=2))
    init = _init_rows(X_np, 3, seed=6)
    sample_weight = np.ones(X_np.shape[0])
    sample_weight[7] = 0.0
    weighted = KMedians(n_clusters=3, init=asarray(xp, init)).fit(asarray(xp, X_np), sample_weight=asarray(xp, sample_weight))
    removed = KMedians(n_clusters=3, init=asarray(xp, init)).fit(asarray(xp, np.delete(X_np, 7, axis=0)))
    assert_equal(weighted.cluster_centers_, removed.cluster_centers_)
    assert weighted.inertia_ == pytest.approx(removed.inertia_, rel=1e-12)


# -------------------------------------------------------- empty clusters


def test_empty_cluster_reseeded_at_farthest_l1_point(xp):
    X_np = np.array(_blobs(n_samples=150, centers=2, seed=4))
    near = _init_rows(X_np, 2, seed=1)
    init = np.concatenate([near[:1], [[500.0, 500.0, 500.0]], near[1:]])  # the middle one gets nothing
    expected_centers, _, _, _ = _reference_kmedians(X_np, init, max_iter=1)

    one_step = KMedians(n_clusters=3, init=asarray(xp, init), max_iter=1).fit(asarray(xp, X_np))

    distances = cdist(X_np, init, "cityblock")
    donor = int(np.argmax(distances.min(axis=1)))
    assert_close(to_numpy(one_step.cluster_centers_)[1], X_np[donor], rtol=0, atol=0)
    assert_close(one_step.cluster_centers_, expected_centers, rtol=1e-12)
    assert one_step.history_[0].n_reseeded == 1


def test_empty_cluster_full_fit_uses_every_cluster(xp):
    X_np = np.array(_blobs(n_samples=150, centers=3, seed=4))
    init = np.concatenate([_init_rows(X_np, 3, seed=1), [[1e3, 1e3, 1e3]]])
    km = KMedians(n_clusters=4, init=asarray(xp, init)).fit(asarray(xp, X_np))
    centers = to_numpy(km.cluster_centers_)
    assert np.all(np.isfinite(centers)) and np.max(np.abs(centers)) < 100, "the far center was never moved"
    assert np.array_equal(np.unique(to_numpy(km.labels_)), np.arange(4))


def test_fewer_distinct_points_than_clusters_warns(xp):
    X_np = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]), 10, axis=0)
    with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(3\).*n_clusters \(5\)"):
        KMedians(n_clusters=5, random_state=0).fit(asarray(xp, X_np))


# ------------------------------------------------------------- methods


@pytest.mark.parametrize("dtype", DTYPES)
def test_methods_return_input_namespace_dtype_and_agree(xp, dtype):
    X_np = np.array(_blobs(n_samples=200), dtype=dtype)
    X = asarray(xp, X_np)
    km = KMedians(n_clusters=4, random_state=0).fit(X)

    for result in (km.cluster_centers_, km.labels_, km.predict(X), km.transform(X), km.fit_predict(X), km.fit_transform(X)):
        assert_namespace(result, xp)
    assert dtype_name(km.cluster_centers_) == np.dtype(dtype).name
    assert dtype_name(km.transform(X)) == np.dtype(dtype).name
    assert isinstance(km.inertia_, float) and isinstance(km.n_iter_, int)

    assert_equal(km.predict(X), km.labels_)
    centers = to_numpy(km.cluster_centers_).astype(np.float64)
    expected_distances = cdist(X_np.astype(np.float64), centers, "cityblock")
    assert_close(km.transform(X), expected_distances, rtol=rtol_for(dtype) * 10, atol=rtol_for(dtype) * 10)
    assert km.inertia_ == pytest.approx(expected_distances.min(axis=1).sum(), rel=rtol_for(dtype) * 10)
    assert km.score(X) == pytest.approx(-km.inertia_, rel=rtol_for(dtype) * 10)
    assert km.backend_ == kgpu._backend.backend_name(xp)


def test_integer_input_is_clustered_in_float64(xp):
    X_np = np.array([[0, 0], [0, 1], [10, 10], [10, 11]], dtype=np.int64)
    km = KMedians(n_clusters=2, random_state=0).fit(asarray(xp, X_np))
    assert dtype_name(km.cluster_centers_) == "float64"
    assert sorted(to_numpy(km.cluster_centers_).tolist()) == [[0.0, 0.5], [10.0, 10.5]]


def test_caller_array_not_modified(xp):
    X_np = np.array(_blobs(n_samples=100))
    weights_np = np.random.default_rng(0).uniform(0.5, 1.5, 100)
    X, weights = asarray(xp, X_np), asarray(xp, weights_np)
    km = KMedians(n_clusters=3, random_state=0).fit(X, sample_weight=weights)
    km.predict(X), km.transform(X), km.score(X, sample_weight=weights)
    assert_equal(X, X_np)
    assert_equal(weights, weights_np)


def test_result_independent_of_working_memory(xp):
    X_np = np.array(_blobs(n_samples=300, seed=6))
    params = dict(n_clusters=4, random_state=3)
    small = KMedians(**params, working_memory=0.001).fit(asarray(xp, X_np))
    default = KMedians(**params).fit(asarray(xp, X_np))
    assert_equal(small.labels_, default.labels_)
    assert_close(small.cluster_centers_, default.cluster_centers_, rtol=1e-12)
    assert small.inertia_ == pytest.approx(default.inertia_, rel=1e-12)


# ---------------------------------------------------------------- init


@pytest.mark.parametrize("init", ["k-medians++", "random", "array", "callable"])
def test_every_init_works(xp, init):
    X_np = np.array(_blobs(n_samples=200, cluster_std=1.0))
    init_centers = _init_rows(X_np, 4)
    calls = []

    def init_callable(X, n_clusters, random_state):
        calls.append((X.shape, n_clusters))
        return init_centers

    chosen = {"array": asarray(xp, init_centers), "callable": init_callable}.get(init, init)
    km = KMedians(n_clusters=4, init=chosen, random_state=0).fit(asarray(xp, X_np))
    assert to_numpy(km.cluster_centers_).shape == (4, 3)
    assert np.unique(to_numpy(km.labels_)).size == 4
    if init == "callable":
        assert calls == [((200, 3), 4)] * 10  # n_init="auto" runs a callable 10 times
        direct = KMedians(n_clusters=4, init=asarray(xp, init_centers)).fit(asarray(xp, X_np))
        assert_equal(km.labels_, direct.labels_)


def test_n_init_auto_and_explicit():
    X_np = np.array(_blobs(n_samples=100))
    calls = []

    def counting(X, n_clusters, random_state):
        calls.append(1)
        return _init_rows(X_np, 3, seed=len(calls))

    assert KMedians(n_clusters=3, init="k-medians++")._resolve_n_init() == 1
    assert KMedians(n_clusters=3, init="random")._resolve_n_init() == 10
    KMedians(n_clusters=3, init=counting, n_init=4).fit(X_np)
    assert len(calls) == 4
    with pytest.warns(RuntimeWarning, match="performing only one init"):
        KMedians(n_clusters=3, init=_init_rows(X_np, 3), n_init=3).fit(X_np)


def test_more_runs_never_worse():
    X_np = np.array(_blobs(n_samples=200, cluster_std=3.0, seed=8))
    one = KMedians(n_clusters=6, init="random", n_init=1, random_state=0).fit(X_np)
    many = KMedians(n_clusters=6, init="random", n_init=8, random_state=0).fit(X_np)
    assert many.inertia_ <= one.inertia_


# ------------------------------------------------------------ bad input


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"init": "k-means++"}, ValueError, "init must be one of"),
        ({"init": np.zeros((2, 3))}, ValueError, r"initial centers.*\(2, 3\).*\(3, 3\)"),
        ({"init": np.zeros((3, 2))}, ValueError, r"initial centers.*\(3, 2\)"),
        ({"n_init": 0}, ValueError, "n_init must be >= 1"),
        ({"n_init": "many"}, TypeError, "n_init must be an int"),
        ({"max_iter": 0}, ValueError, "max_iter must be >= 1"),
        ({"tol": -1.0}, ValueError, "tol must be finite and >= 0"),
        ({"n_clusters": 0}, ValueError, "n_clusters must be >= 1"),
        ({"n_clusters": 50}, ValueError, "n_samples=40 should be >= n_clusters=50"),
    ],
)
def test_bad_parameters_are_named(params, error, match):
    X_np = np.array(_blobs(n_samples=40))
    with pytest.raises(error, match=match):
        KMedians(**{"n_clusters": 3, **params}).fit(X_np)


def test_bad_input_is_named():
    X_np = np.array(_blobs(n_samples=40))
    km = KMedians(n_clusters=3, random_state=0).fit(X_np)
    with pytest.raises(ValueError, match="X has 2 features, but KMedians is expecting 3"):
        km.predict(X_np[:, :2])
    with pytest.raises(ValueError, match="sample_weight.shape"):
        KMedians(n_clusters=3).fit(X_np, sample_weight=np.ones(5))
    with pytest.raises(ValueError, match="Negative values"):
        KMedians(n_clusters=3).fit(X_np, sample_weight=-np.ones(40))
    bad = X_np.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        KMedians(n_clusters=3).fit(bad)


def test_verbose_prints_iterations(capsys):
    KMedians(n_clusters=3, random_state=0, verbose=1).fit(np.array(_blobs(n_samples=60)))
    out = capsys.readouterr().out
    assert "run 0 iteration 1: center shift" in out


# --------------------------------------------------- scikit-learn API ---


def test_clone_and_public_name():
    km = KMedians(n_clusters=3, init="random", n_init=4, tol=1e-3, random_state=5, working_memory=2.0)
    copy = clone(km)
    assert copy.get_params() == km.get_params()
    assert "KMedians" in kgpu.__all__ and kgpu.KMedians is KMedians
