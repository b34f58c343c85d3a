"""KMedoids at the estimator level, on every backend.

References: ``kmedoids.fasterpam`` (the authors' FasterPAM) for
``method="pam"``, and a brute-force NumPy Voronoi iteration written here for
``method="alternate"``; backends are compared with NumPy (SPEC §3 parity).
"""

from __future__ import annotations

import functools
import math

import kmedoids
import numpy as np
import pytest
from scipy.spatial.distance import cdist
from sklearn.base import clone
from sklearn.datasets import make_blobs
from sklearn.exceptions import ConvergenceWarning

import kgpu
from kgpu import KMedoids, _kmedoids
from kgpu._distances import check_metric
from kgpu._init import plusplus_indices

from ._helpers import asarray, assert_close, assert_equal, assert_namespace, dtype_name, rtol_for, to_numpy

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]

# (metric, p): every metric KMedoids accepts.
METRICS = [
    pytest.param("sqeuclidean", None, id="sqeuclidean"),
    pytest.param("euclidean", None, id="euclidean"),
    pytest.param("manhattan", None, id="manhattan"),
    pytest.param("cosine", None, id="cosine"),
    pytest.param("minkowski", 3, id="minkowski-3"),
]


@functools.cache
def _blobs(n_samples=200, n_features=3, centers=4, cluster_std=2.5, seed=0):
    X, _ = make_blobs(n_samples=n_samples, n_features=n_features, centers=centers, cluster_std=cluster_std, random_state=seed)
    X.setflags(write=False)
    return X


def _cdist(X, Y, metric, p=None):
    """scipy's distances under kgpu's metric names."""
    X, Y = np.asarray(X, dtype=np.float64), np.asarray(Y, dtype=np.float64)
    if metric == "minkowski":
        return cdist(X, Y, "minkowski", p=p)
    return cdist(X, Y, {"manhattan": "cityblock"}.get(metric, metric))


def _init_indices(n_samples, n_clusters, seed=0):
    return np.random.default_rng(seed).choice(n_samples, size=n_clusters, replace=False)


def _reference_alternate(X, medoids, metric, p=None, sample_weight=None, max_iter=300):
    """Voronoi iteration on the full distance matrix, as documented in kgpu._kmedoids."""
    matrix = _cdist(X, X, metric, p)
    n_samples, n_clusters = X.shape[0], len(medoids)
    weights = np.ones(n_samples) if sample_weight is None else np.asarray(sample_weight, dtype=np.float64)
    medoids = np.array(medoids)
    for n_iter in range(1, max_iter + 1):
        labels = matrix[:, medoids].argmin(axis=1)
        cost = matrix[np.arange(n_samples), medoids[labels]]
        cluster_weights = np.bincount(labels, weights, minlength=n_clusters)
        empty = np.flatnonzero(cluster_weights <= 0)
        if empty.size:
            eligible = np.where(weights > 0, cost, -1.0)
            donors = np.argsort(-eligible, kind="stable")[: empty.size]
            for cluster, donor in zip(empty, donors):
                labels[donor] = cluster
                medoids[cluster] = donor
        new_medoids = medoids.copy()
        for cluster in range(n_clusters):
            members = np.flatnonzero(labels == cluster)
            if members.size == 0:
                continue
            costs = matrix[np.ix_(members, members)] @ weights[members]
            best = int(np.argmin(costs))
            current = np.flatnonzero(members == medoids[cluster])
            if current.size and costs[current[0]] <= costs[best]:
                continue
            new_medoids[cluster] = members[best]
        if empty.size == 0 and np.array_equal(new_medoids, medoids):
            break
        medoids = new_medoids
    distances = matrix[:, medoids]
    return medoids, distances.argmin(axis=1), float(weights @ distances.min(axis=1)), n_iter


# ------------------------------------------------------------ alternate


@pytest.mark.parametrize(("metric", "p"), METRICS)
def test_alternate_equals_brute_force_reference(xp, metric, p):
    X_np = np.array(_blobs())
    init = _init_indices(X_np.shape[0], 4, seed=1)
    expected_medoids, expected_labels, expected_inertia, expected_n_iter = _reference_alternate(X_np, init, metric, p)
    assert expected_n_iter > 1, "precondition: the medoids move"

    km = KMedoids(n_clusters=4, metric=metric, p=p, method="alternate", init=init).fit(asarray(xp, X_np))

    assert_equal(km.medoid_indices_, expected_medoids)
    assert_equal(km.labels_, expected_labels)
    assert km.inertia_ == pytest.approx(expected_inertia, rel=1e-10)
    assert km.n_iter_ == expected_n_iter


def test_alternate_weighted_equals_reference(xp):
    X_np = np.array(_blobs(seed=3))
    weights = np.random.default_rng(2).uniform(0.0, 3.0, X_np.shape[0])
    init = _init_indices(X_np.shape[0], 5, seed=4)
    expected = _reference_alternate(X_np, init, "manhattan", sample_weight=weights)

    km = KMedoids(n_clusters=5, metric="manhattan", init=init).fit(asarray(xp, X_np), sample_weight=asarray(xp, weights))

    assert_equal(km.medoid_indices_, expected[0])
    assert_equal(km.labels_, expected[1])
    assert km.inertia_ == pytest.approx(expected[2], rel=1e-10)


def test_alternate_keeps_memory_within_budget(xp):
    # A budget far below one n x n matrix (200 x 200 float64 = 0.3 MiB).
    X_np = np.array(_blobs())
    init = _init_indices(X_np.shape[0], 4, seed=1)
    small = KMedoids(n_clusters=4, init=init, working_memory=0.01).fit(asarray(xp, X_np))
    default = KMedoids(n_clusters=4, init=init).fit(asarray(xp, X_np))
    assert_equal(small.medoid_indices_, default.medoid_indices_)
    assert small.inertia_ == pytest.approx(default.inertia_, rel=1e-12)


# ------------------------------------------------------------------ PAM


@pytest.mark.parametrize(("metric", "p"), METRICS)
def test_pam_from_same_init_equals_fasterpam(xp, metric, p):
    X_np = np.array(_blobs(n_samples=300, seed=1))
    init = _init_indices(X_np.shape[0], 5, seed=2)
    # Sequential FasterPAM (one thread, no shuffling): rows visited in order, as kgpu does.
    expected = kmedoids.fasterpam(_cdist(X_np, X_np, metric, p), init.copy(), max_iter=100, n_cpu=1)

    km = KMedoids(n_clusters=5, metric=metric, p=p, method="pam", init=init, max_iter=100).fit(asarray(xp, X_np))

    assert_equal(km.medoid_indices_, expected.medoids)
    assert km.inertia_ == pytest.approx(float(expected.loss), rel=1e-9)
    assert km.n_iter_ == expected.n_iter


@pytest.mark.parametrize(("metric", "p"), METRICS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pam_objective_within_one_percent_of_fasterpam(metric, p, seed):
    X_np = np.array(_blobs(n_samples=400, n_features=4, centers=6, cluster_std=3.0, seed=seed))
    matrix = _cdist(X_np, X_np, metric, p)
    reference = kmedoids.fasterpam(matrix, 6, max_iter=100, init="random", random_state=seed, n_cpu=1)

    km = KMedoids(n_clusters=6, metric=metric, p=p, method="pam", random_state=seed).fit(X_np)

    # Our objective is FasterPAM's loss: the summed distance to the medoids.
    assert km.inertia_ == pytest.approx(matrix[:, to_numpy(km.medoid_indices_)].min(axis=1).sum(), rel=1e-9)
    assert km.inertia_ <= 1.01 * float(reference.loss)


def test_pam_improves_on_its_init():
    X_np = np.array(_blobs(n_samples=300, cluster_std=3.5, seed=5))
    matrix = _cdist(X_np, X_np, "euclidean")
    for init in (_build_reference(matrix, np.ones(300), 5), _init_indices(300, 5, seed=6)):
        init_cost = matrix[:, init].min(axis=1).sum()
        pam = KMedoids(n_clusters=5, method="pam", init=init).fit(X_np)
        assert pam.inertia_ <= init_cost
        alternate = KMedoids(n_clusters=5, method="alternate", init=init).fit(X_np)
        assert alternate.inertia_ <= init_cost


def test_pam_single_cluster_is_the_exact_optimum(xp):
    X_np = np.array(_blobs(n_samples=120, seed=7))
    weights = np.random.default_rng(0).uniform(0.5, 2.0, 120)
    km = KMedoids(n_clusters=1, method="pam", metric="manhattan").fit(asarray(xp, X_np), sample_weight=asarray(xp, weights))
    expected = int(np.argmin(_cdist(X_np, X_np, "manhattan") @ weights))
    assert_equal(km.medoid_indices_, np.array([expected]))


def _build_reference(matrix, weights, n_clusters):
    """PAM's BUILD on a full matrix, ties to the lowest index."""
    medoids = [int(np.argmin(matrix @ weights))]
    nearest = matrix[medoids[0]].copy()
    for _ in range(1, n_clusters):
        gains = np.clip(nearest[None, :] - matrix, 0, None) @ weights
        gains[medoids] = -np.inf
        medoids.append(int(np.argmax(gains)))
        nearest = np.minimum(nearest, matrix[medoids[-1]])
    return np.asarray(medoids)


@pytest.mark.parametrize("method", ["alternate", "pam"])
def test_build_init_equals_reference(xp, method):
    X_np = np.array(_blobs(n_samples=150, seed=4))
    weights = np.random.default_rng(3).uniform(0.0, 2.0, 150)
    expected = _build_reference(_cdist(X_np, X_np, "cosine"), weights, 4)

    km = KMedoids(n_clusters=4, metric="cosine", method=method, init="build", max_iter=1)
    medoids = km._initial_medoids(
        None, asarray(xp, X_np), asarray(xp, weights), 4, None, check_metric("cosine"),
        lambda start, stop: asarray(xp, _cdist(X_np[start:stop], X_np, "cosine")), xp,
    )
    assert_equal(medoids, expected)


def test_build_on_the_fly_equals_build_on_the_matrix(xp):
    X_np = np.array(_blobs(n_samples=150, seed=6))
    via_matrix = KMedoids(n_clusters=4, method="pam", init="build", max_iter=1).fit(asarray(xp, X_np))
    expected = _build_reference(_cdist(X_np, X_np, "euclidean"), np.ones(150), 4)
    pam_start = KMedoids(n_clusters=4, method="pam", init=expected, max_iter=1).fit(asarray(xp, X_np))
    assert_equal(via_matrix.medoid_indices_, pam_start.medoid_indices_)
    alternate = KMedoids(n_clusters=4, method="alternate", init="build").fit(asarray(xp, X_np))
    from_reference = KMedoids(n_clusters=4, method="alternate", init=expected).fit(asarray(xp, X_np))
    assert_equal(alternate.medoid_indices_, from_reference.medoid_indices_)


def _reference_plusplus(X, n_clusters, weights, random_state, metric):
    """Greedy k-medoids++ in NumPy: k-means++'s draws with D^1 under ``metric``."""
    n_samples = X.shape[0]
    n_trials = 2 + int(np.log(n_clusters))
    indices = [random_state.choice(n_samples, p=weights / weights.sum())]
    closest = _cdist(X, X[indices], metric)[:, 0]
    potential = float(weights @ closest)
    for _ in range(1, n_clusters):
        thresholds = random_state.uniform(size=n_trials) * potential
        candidates = np.minimum(np.searchsorted(np.cumsum(weights * closest), thresholds), n_samples - 1)
        trial = np.minimum(closest[:, None], _cdist(X, X[candidates], metric))
        potentials = weights @ trial
        best = int(np.argmin(potentials))
        potential, closest = float(potentials[best]), trial[:, best]
        indices.append(int(candidates[best]))
    return np.asarray(indices)


@pytest.mark.parametrize("metric", ["cosine", "euclidean"])
def test_kmedoids_plusplus_matches_reference(xp, metric):
    X_np = np.array(_blobs(n_samples=200, seed=2))
    weights = np.random.default_rng(5).uniform(0.0, 2.0, 200)
    expected = _reference_plusplus(X_np, 5, weights, np.random.RandomState(9), metric)
    indices = plusplus_indices(
        asarray(xp, X_np), 5, asarray(xp, weights), np.random.RandomState(9), xp=xp, metric=check_metric(metric)
    )
    assert_equal(indices, expected)


# ------------------------------------------------------------ memory guard


def test_pam_memory_guard_refuses_a_matrix_over_working_memory(xp):
    X_np = np.array(_blobs(n_samples=200))
    # 200 x 200 float64 = 0.31 MiB > 0.1 MiB.
    with pytest.raises(MemoryError, match=r"200 x 200 distance matrix.*working_memory=0\.1 MiB.*method='alternate'"):
        KMedoids(n_clusters=3, method="pam", working_memory=0.1).fit(asarray(xp, X_np))
    # The same budget is enough for "alternate", and for "pam" once it fits.
    KMedoids(n_clusters=3, method="alternate", working_memory=0.1, random_state=0).fit(asarray(xp, X_np))
    KMedoids(n_clusters=3, method="pam", working_memory=0.5, random_state=0).fit(asarray(xp, X_np))


def test_pam_memory_guard_default_budget_is_available_memory(monkeypatch):
    X_np = np.array(_blobs(n_samples=200))
    # float32 halves the matrix: 160,000 bytes; the default budget is half the free memory.
    monkeypatch.setattr(_kmedoids, "free_memory_bytes", lambda xp, device=None: 300_000)
    with pytest.raises(MemoryError, match=r"156\.2 KiB\).*146\.5 KiB.*50% of the 293\.0 KiB available.*sample"):
        KMedoids(n_clusters=3, method="pam").fit(X_np.astype(np.float32))
    monkeypatch.setattr(_kmedoids, "free_memory_bytes", lambda xp, device=None: 400_000)
    KMedoids(n_clusters=3, method="pam", random_state=0).fit(X_np.astype(np.float32))


def test_available_memory_is_positive():
    import array_api_compat.numpy as xp_numpy

    from kgpu import _stream

    assert _stream.free_memory_bytes(xp_numpy, "cpu") > 0


# ---------------------------------------------------------------- parity


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("method", ["alternate", "pam"])
@pytest.mark.parametrize(("metric", "p"), [METRICS[1], METRICS[2], METRICS[3]])
def test_parity_with_numpy_backend(xp, dtype, method, metric, p):
    X_np = np.array(_blobs(n_samples=180, seed=8), dtype=dtype)
    weights = np.random.default_rng(1).integers(1, 4, 180).astype(dtype)
    params = dict(n_clusters=4, metric=metric, p=p, method=method, random_state=3)
    reference = KMedoids(**params).fit(X_np, sample_weight=weights)
    km = KMedoids(**params).fit(asarray(xp, X_np), sample_weight=asarray(xp, weights))

    assert_equal(km.medoid_indices_, reference.medoid_indices_)
    assert_equal(km.labels_, reference.labels_)
    assert km.inertia_ == pytest.approx(reference.inertia_, rel=rtol_for(dtype))
    assert km.n_iter_ == reference.n_iter_


# ------------------------------------------------------------ weights


def test_weight_two_equals_duplicate_row(xp):
    X_np = np.array(_blobs(n_samples=100, seed=9))
    init = _init_indices(100, 3, seed=3)
    weights = np.ones(100)
    weights[[5, 60]] = 2.0
    weighted = KMedoids(n_clusters=3, init=init).fit(asarray(xp, X_np), sample_weight=asarray(xp, weights))
    duplicated = KMedoids(n_clusters=3, init=init).fit(asarray(xp, np.concatenate([X_np, X_np[[5, 60]]])))
    assert_equal(weighted.cluster_centers_, duplicated.cluster_centers_)
    assert weighted.inertia_ == pytest.approx(duplicated.inertia_, rel=1e-12)


# -------------------------------------------------------- empty clusters


@pytest.mark.parametrize("method", ["alternate", "pam"])
def test_duplicate_medoids_are_reseeded(xp, method):
    X_np = np.array(_blobs(n_samples=120, centers=3, seed=10))
    X_np[1] = X_np[0]  # two identical rows as initial medoids: one cluster starts empty
    init = np.array([0, 1, 50])
    km = KMedoids(n_clusters=3, method=method, init=init).fit(asarray(xp, X_np))
    assert np.unique(to_numpy(km.labels_)).size == 3
    assert np.unique(to_numpy(km.medoid_indices_)).size == 3


def test_alternate_empty_cluster_takes_the_farthest_point(xp):
    X_np = np.array(_blobs(n_samples=120, centers=3, seed=10))
    X_np[1] = X_np[0]
    init = np.array([0, 1, 50])
    one_step = KMedoids(n_clusters=3, init=init, max_iter=1).fit(asarray(xp, X_np))
    distances = _cdist(X_np, X_np[init], "euclidean").min(axis=1)
    donor = int(np.argmax(distances))
    assert to_numpy(one_step.medoid_indices_)[1] == donor
    expected = _reference_alternate(X_np, init, "euclidean", max_iter=1)
    assert_equal(one_step.medoid_indices_, expected[0])


def test_fewer_distinct_points_than_clusters_warns(xp):
    X_np = np.repeat(np.array([[0.0, 0.0], [1.0, 1.0], [5.0, 5.0]]), 10, axis=0)
    with pytest.warns(ConvergenceWarning, match=r"distinct clusters \(3\).*n_clusters \(5\)"):
        KMedoids(n_clusters=5, random_state=0, max_iter=20).fit(asarray(xp, X_np))


# ------------------------------------------------------------- methods


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("metric", "p"), METRICS)
def test_attributes_and_methods_agree(xp, dtype, metric, p):
    X_np = np.array(_blobs(n_samples=150), dtype=dtype)
    X = asarray(xp, X_np)
    km = KMedoids(n_clusters=4, metric=metric, p=p, random_state=0).fit(X)

    for result in (km.cluster_centers_, km.labels_, km.medoid_indices_, km.predict(X), km.transform(X)):
        assert_namespace(result, xp)
    assert dtype_name(km.cluster_centers_) == np.dtype(dtype).name
    assert dtype_name(km.transform(X)) == np.dtype(dtype).name
    medoids = to_numpy(km.medoid_indices_)
    assert_equal(km.cluster_centers_, X_np[medoids])
    assert_equal(km.predict(X), km.labels_)
    expected = _cdist(X_np, X_np[medoids], metric, p)
    eps = float(np.finfo(dtype).eps)
    scale = float(np.max(np.sum(X_np.astype(np.float64) ** 2, axis=1)))
    atol = 64 * eps * scale if metric != "cosine" else 64 * eps
    atol = math.sqrt(atol) if metric == "euclidean" else atol
    assert_close(km.transform(X), expected, rtol=64 * eps, atol=atol)
    assert km.inertia_ == pytest.approx(expected.min(axis=1).sum(), rel=1e-4 if dtype == np.float32 else 1e-9)
    assert km.score(X) == pytest.approx(-km.inertia_, rel=1e-12)
    assert isinstance(km.n_iter_, int) and km.n_iter_ >= 1


def test_caller_array_not_modified(xp):
    X_np = np.array(_blobs(n_samples=100))
    weights_np = np.random.default_rng(0).uniform(0.5, 1.5, 100)
    X, weights = asarray(xp, X_np), asarray(xp, weights_np)
    for method in ("alternate", "pam"):
        km = KMedoids(n_clusters=3, method=method, random_state=0).fit(X, sample_weight=weights)
        km.predict(X), km.transform(X), km.score(X, sample_weight=weights)
    assert_equal(X, X_np)
    assert_equal(weights, weights_np)


# ---------------------------------------------------------------- init


@pytest.mark.parametrize("method", ["alternate", "pam"])
@pytest.mark.parametrize("init", ["k-medoids++", "build", "random", "array", "callable"])
def test_every_init_works(xp, method, init):
    X_np = np.array(_blobs(n_samples=150, cluster_std=1.0))
    indices = _init_indices(150, 4)
    calls = []

    def init_callable(X, n_clusters, random_state):
        calls.append(n_clusters)
        return indices

    chosen = {"array": asarray(xp, indices), "callable": init_callable}.get(init, init)
    km = KMedoids(n_clusters=4, method=method, init=chosen, n_init=1, random_state=0).fit(asarray(xp, X_np))
    assert np.unique(to_numpy(km.labels_)).size == 4
    if init == "callable":
        assert calls == [4]
        direct = KMedoids(n_clusters=4, method=method, init=indices).fit(asarray(xp, X_np))
        assert_equal(km.medoid_indices_, direct.medoid_indices_)


def test_n_init():
    X_np = np.array(_blobs(n_samples=150, cluster_std=3.0, seed=11))
    assert KMedoids(init="random")._resolve_n_init() == 10
    assert KMedoids(init="k-medoids++")._resolve_n_init() == 1
    one = KMedoids(n_clusters=6, init="random", n_init=1, random_state=0).fit(X_np)
    many = KMedoids(n_clusters=6, init="random", n_init=6, random_state=0).fit(X_np)
    assert many.inertia_ <= one.inertia_
    with pytest.warns(RuntimeWarning, match="deterministic"):
        KMedoids(n_clusters=3, init="build", n_init=3).fit(X_np)


@pytest.mark.parametrize(
    ("init", "error", "match"),
    [
        (np.array([0.0, 1.0, 2.0]), TypeError, "integer row indices"),
        (np.array([0, 1]), ValueError, r"shape \(2,\); expected \(3,\)"),
        (np.array([[0, 1, 2]]), ValueError, r"shape \(1, 3\)"),
        (np.array([0, 1, 40]), ValueError, r"row indices in \[0, 40\)"),
        (np.array([-1, 1, 2]), ValueError, r"row indices in \[0, 40\)"),
        (np.array([0, 1, 1]), ValueError, "distinct rows"),
    ],
)
def test_bad_init_indices_are_named(init, error, match):
    with pytest.raises(error, match=match):
        KMedoids(n_clusters=3, init=init).fit(np.array(_blobs(n_samples=40)))


@pytest.mark.parametrize(
    ("params", "error", "match"),
    [
        ({"method": "clara"}, ValueError, "method must be one of"),
        ({"metric": "hamming"}, ValueError, "metric must be one of"),
        ({"metric": "minkowski", "p": 0.5}, ValueError, "Minkowski p must be"),
        ({"init": "k-means++"}, ValueError, "init must be one of"),
        ({"max_iter": 0}, ValueError, "max_iter must be >= 1"),
        ({"n_init": 0}, ValueError, "n_init must be >= 1"),
        ({"n_clusters": 41}, ValueError, "n_samples=40 should be >= n_clusters=41"),
    ],
)
def test_bad_parameters_are_named(params, error, match):
    with pytest.raises(error, match=match):
        KMedoids(**{"n_clusters": 3, **params}).fit(np.array(_blobs(n_samples=40)))


def test_predict_checks_feature_count():
    X_np = np.array(_blobs(n_samples=40))
    km = KMedoids(n_clusters=3, random_state=0).fit(X_np)
    with pytest.raises(ValueError, match="X has 2 features, but KMedoids is expecting 3"):
        km.predict(X_np[:, :2])


# --------------------------------------------------- scikit-learn API ---


def test_clone_and_public_name():
    km = KMedoids(n_clusters=3, metric="minkowski", p=3, method="pam", init="build", working_memory=4.0)
    assert clone(km).get_params() == km.get_params()
    assert "KMedoids" in kgpu.__all__ and kgpu.KMedoids is KMedoids
