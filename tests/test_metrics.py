"""kgpu.metrics against scikit-learn, on every backend.

On float64 every score must agree with :mod:`sklearn.metrics` to 1e-6
relative (SPEC §2), with and without a silhouette sample drawn from the same
seed. The kernels also run under array-api-strict, which proves they use the
standard only.
"""

from __future__ import annotations

import functools

import numpy as np
import pytest
import sklearn.metrics
from sklearn.datasets import load_digits, make_blobs

from kgpu import metrics
from kgpu._backend import namespace_of
from kgpu.metrics import (
    calinski_harabasz_score,
    compact_codes,
    davies_bouldin_score,
    encode_labels,
    inertia,
    silhouette_samples,
    silhouette_score,
)

from ._helpers import asarray, assert_close, assert_equal, assert_namespace, dtype_name, to_numpy

RTOL = 1e-6
SILHOUETTE_METRICS = ["euclidean", "sqeuclidean", "manhattan", "cosine"]


@functools.lru_cache(maxsize=None)
def _blobs(n_samples=240, n_features=4, centers=4, seed=0):
    """Overlapping blobs, so silhouettes take both signs."""
    X, y = make_blobs(n_samples=n_samples, n_features=n_features, centers=centers, cluster_std=2.5, random_state=seed)
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


@functools.lru_cache(maxsize=None)
def _digits():
    data = load_digits()
    X, y = data.data.astype(np.float64), data.target
    X.setflags(write=False)
    y.setflags(write=False)
    return X, y


# ----------------------------------------------------------- against sklearn
@pytest.mark.parametrize("metric", SILHOUETTE_METRICS)
def test_silhouette_matches_sklearn_on_blobs(xp, metric):
    X, y = _blobs()
    X_xp, y_xp = asarray(xp, X), asarray(xp, y)
    expected = sklearn.metrics.silhouette_samples(X, y, metric=metric)
    samples = silhouette_samples(X_xp, y_xp, metric=metric)
    assert_namespace(samples, xp)
    assert_close(samples, expected, rtol=RTOL, atol=1e-12)
    score = silhouette_score(X_xp, y_xp, metric=metric)
    assert isinstance(score, float)
    assert score == pytest.approx(sklearn.metrics.silhouette_score(X, y, metric=metric), rel=RTOL)


def test_silhouette_matches_sklearn_on_digits(xp):
    X, y = _digits()
    X_xp, y_xp = asarray(xp, X), asarray(xp, y)
    assert silhouette_score(X_xp, y_xp) == pytest.approx(sklearn.metrics.silhouette_score(X, y), rel=RTOL)


@pytest.mark.parametrize("seed", [0, 7])
def test_sampled_silhouette_matches_sklearn_with_same_seed(xp, seed):
    X, y = _digits()
    X_xp, y_xp = asarray(xp, X), asarray(xp, y)
    expected = sklearn.metrics.silhouette_score(X, y, sample_size=300, random_state=seed)
    actual = silhouette_score(X_xp, y_xp, sample_size=300, random_state=seed)
    assert actual == pytest.approx(expected, rel=RTOL)
    # A different seed draws different rows, hence a different score.
    other = sklearn.metrics.silhouette_score(X, y, sample_size=300, random_state=seed + 1)
    assert actual != pytest.approx(other, rel=RTOL)


def test_sampled_silhouette_reencodes_labels_missing_from_the_sample(xp):
    # A cluster of 2 rows out of 200 is often missing from a 20-row sample:
    # the score must then count only the clusters present, as sklearn does.
    X, y = _blobs(n_samples=200)
    y = np.array(y)
    y[:2] = 9
    for seed in range(4):
        expected = sklearn.metrics.silhouette_score(X, y, sample_size=20, random_state=seed)
        actual = silhouette_score(asarray(xp, X), asarray(xp, y), sample_size=20, random_state=seed)
        assert actual == pytest.approx(expected, rel=RTOL)


@pytest.mark.parametrize("data", ["blobs", "digits"])
def test_calinski_harabasz_and_davies_bouldin_match_sklearn(xp, data):
    X, y = _blobs() if data == "blobs" else _digits()
    X_xp, y_xp = asarray(xp, X), asarray(xp, y)
    ch = calinski_harabasz_score(X_xp, y_xp)
    db = davies_bouldin_score(X_xp, y_xp)
    assert isinstance(ch, float) and isinstance(db, float)
    assert ch == pytest.approx(sklearn.metrics.calinski_harabasz_score(X, y), rel=RTOL)
    assert db == pytest.approx(sklearn.metrics.davies_bouldin_score(X, y), rel=RTOL)


def test_degenerate_scores_follow_sklearn(xp):
    # Every cluster a single repeated point: no within-cluster dispersion.
    X = np.repeat(np.array([[0.0, 0.0], [5.0, 1.0], [2.0, 9.0]]), 4, axis=0)
    y = np.repeat(np.arange(3), 4)
    X_xp, y_xp = asarray(xp, X), asarray(xp, y)
    assert calinski_harabasz_score(X_xp, y_xp) == sklearn.metrics.calinski_harabasz_score(X, y) == 1.0
    assert davies_bouldin_score(X_xp, y_xp) == sklearn.metrics.davies_bouldin_score(X, y) == 0.0
    assert_close(silhouette_samples(X_xp, y_xp), sklearn.metrics.silhouette_samples(X, y), rtol=RTOL, atol=1e-12)


def test_singleton_cluster_gets_zero_silhouette(xp):
    X = np.array([[0.0], [0.5], [1.0], [10.0], [10.5], [30.0]])
    y = np.array([0, 0, 0, 1, 1, 2])
    samples = to_numpy(silhouette_samples(asarray(xp, X), asarray(xp, y)))
    assert samples[-1] == 0.0
    assert_close(samples, sklearn.metrics.silhouette_samples(X, y), rtol=RTOL, atol=1e-12)


# ------------------------------------------------------------ memory budget
@pytest.mark.parametrize("metric", ["euclidean", "cosine"])
def test_silhouette_tiles_do_not_change_the_result(xp, metric):
    # 0.02 MiB forces query blocks of 64 rows and chunks of a few dozen rows,
    # so self-distances fall in tiles that are not on the block diagonal.
    X, y = _blobs(n_samples=300)
    X_xp, y_xp = asarray(xp, X), asarray(xp, y)
    whole = silhouette_samples(X_xp, y_xp, metric=metric, working_memory=64)
    tiled = silhouette_samples(X_xp, y_xp, metric=metric, working_memory=0.02)
    assert_close(tiled, whole, rtol=1e-12, atol=1e-14)
    assert_close(whole, sklearn.metrics.silhouette_samples(X, y, metric=metric), rtol=RTOL, atol=1e-12)


def test_kernel_tiles_are_within_budget(monkeypatch):
    import array_api_compat.numpy as xp

    from kgpu import _distances

    X, y = _blobs(n_samples=400)
    largest = []
    original = _distances.pairwise_distances

    def recording(x_block, centers, metric, **kwargs):
        out = original(x_block, centers, metric, **kwargs)
        largest.append(out.shape[0] * out.shape[1] * 8)
        return out

    monkeypatch.setattr(metrics, "pairwise_distances", recording)
    encoded = encode_labels(y, X.shape[0], xp=xp)
    metrics.silhouette_reference(xp.asarray(X), encoded.codes, encoded.n_labels, metrics.check_metric("euclidean"), xp=xp, budget_mib=0.05)
    assert len(largest) > 4
    assert max(largest) <= 0.05 * 2**20


# ------------------------------------------------------- dtypes, namespaces
def test_float32_stays_float32(xp):
    X, y = _blobs()
    X32 = asarray(xp, X.astype(np.float32))
    samples = silhouette_samples(X32, asarray(xp, y))
    assert dtype_name(samples) == "float32"
    expected = sklearn.metrics.silhouette_samples(X, y)
    assert_close(samples, expected, rtol=1e-4, atol=1e-5)
    assert calinski_harabasz_score(X32, asarray(xp, y)) == pytest.approx(
        sklearn.metrics.calinski_harabasz_score(X, y), rel=1e-4
    )


def test_backend_parameter_computes_elsewhere_and_returns_input_type(xp_name):
    pytest.importorskip("torch")
    X, y = _blobs()
    samples = silhouette_samples(X, y, backend="torch")
    assert isinstance(samples, np.ndarray)
    assert_close(samples, sklearn.metrics.silhouette_samples(X, y), rtol=RTOL, atol=1e-12)
    assert davies_bouldin_score(X, y, backend="array_api_strict") == pytest.approx(
        sklearn.metrics.davies_bouldin_score(X, y), rel=RTOL
    )


@pytest.mark.parametrize(
    "labels",
    [
        pytest.param(lambda y: np.array(["abc"[v % 3] + str(v) for v in y]), id="strings"),
        pytest.param(lambda y: y * 10 - 7, id="gaps-and-negatives"),
        pytest.param(lambda y: y.astype(np.float64) + 0.5, id="floats"),
        pytest.param(lambda y: list(y), id="list"),
    ],
)
def test_labels_are_encoded_like_sklearn(labels):
    X, y = _blobs()
    values = labels(np.array(y))
    assert silhouette_score(X, values) == pytest.approx(sklearn.metrics.silhouette_score(X, values), rel=RTOL)
    assert calinski_harabasz_score(X, values) == pytest.approx(
        sklearn.metrics.calinski_harabasz_score(X, values), rel=RTOL
    )


def test_labels_of_another_namespace_than_X(xp):
    X, y = _blobs()
    expected = sklearn.metrics.davies_bouldin_score(X, y)
    assert davies_bouldin_score(asarray(xp, X), y) == pytest.approx(expected, rel=RTOL)
    assert davies_bouldin_score(X, asarray(xp, y)) == pytest.approx(expected, rel=RTOL)


def test_encode_and_compact_labels(xp):
    encoded = encode_labels(asarray(xp, np.array([7, -1, 7, 3])), 4, xp=xp)
    assert encoded.n_labels == 3
    assert_equal(encoded.codes, np.array([2, 0, 2, 1]))
    compact = compact_codes(asarray(xp, np.array([4, 0, 4, 2])), 6, xp=xp)
    assert compact.n_labels == 3
    assert_equal(compact.codes, np.array([2, 0, 2, 1]))
    assert namespace_of(compact.codes) is not None


def test_inputs_are_not_modified(xp):
    X, y = _blobs()
    X_xp, y_xp = asarray(xp, X), asarray(xp, y)
    silhouette_samples(X_xp, y_xp)
    silhouette_score(X_xp, y_xp, sample_size=50, random_state=0)
    calinski_harabasz_score(X_xp, y_xp)
    davies_bouldin_score(X_xp, y_xp)
    assert_equal(X_xp, X)
    assert_equal(y_xp, y)


# ----------------------------------------------------------------- inertia
def test_inertia_matches_reference(xp):
    X, y = _blobs()
    rng = np.random.default_rng(0)
    centers = rng.normal(size=(4, X.shape[1]))
    weights = rng.uniform(0.5, 2.0, size=X.shape[0])
    expected = float(weights @ ((X - centers[y]) ** 2).sum(axis=1))
    actual = inertia(asarray(xp, X), asarray(xp, y), asarray(xp, centers), asarray(xp, weights))
    assert isinstance(actual, float)
    assert actual == pytest.approx(expected, rel=1e-12)
    assert inertia(asarray(xp, X), asarray(xp, y), asarray(xp, centers)) == pytest.approx(
        float(((X - centers[y]) ** 2).sum()), rel=1e-12
    )


def test_inertia_equals_kmeans_inertia(xp):
    from kgpu import KMeans

    X, _ = _blobs()
    model = KMeans(n_clusters=4, random_state=0).fit(asarray(xp, X))
    assert inertia(asarray(xp, X), model.labels_, model.cluster_centers_) == pytest.approx(model.inertia_, rel=1e-10)


def test_inertia_bad_input():
    X, y = _blobs()
    centers = np.zeros((4, X.shape[1]))
    with pytest.raises(ValueError, match="index the 4 centers"):
        inertia(X, y + 1, centers)
    with pytest.raises(TypeError, match="integer indices"):
        inertia(X, y.astype(float), centers)
    with pytest.raises(ValueError, match="features"):
        inertia(X, y, np.zeros((4, 2)))
    with pytest.raises(ValueError, match="sample_weight"):
        inertia(X, y, centers, sample_weight=np.ones(3))


# --------------------------------------------------------------- bad input
SCORES = [
    pytest.param(silhouette_score, id="silhouette_score"),
    pytest.param(silhouette_samples, id="silhouette_samples"),
    pytest.param(calinski_harabasz_score, id="calinski_harabasz"),
    pytest.param(davies_bouldin_score, id="davies_bouldin"),
]


@pytest.mark.parametrize("score", SCORES)
def test_bad_labels(xp, score):
    X, y = _blobs(n_samples=40)
    X_xp = asarray(xp, X)
    with pytest.raises(ValueError, match="labels has 39 entries but X has 40 samples"):
        score(X_xp, asarray(xp, y[:-1]))
    with pytest.raises(ValueError, match="Number of labels is 1. Valid values are 2 to n_samples - 1"):
        score(X_xp, asarray(xp, np.zeros(40, dtype=np.int64)))
    with pytest.raises(ValueError, match="Number of labels is 40. Valid values are 2 to n_samples - 1"):
        score(X_xp, asarray(xp, np.arange(40)))
    with pytest.raises(ValueError, match="1-D"):
        score(X_xp, asarray(xp, y.reshape(-1, 1)))
    labels_with_nan = y.astype(np.float64)
    labels_with_nan[3] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        score(X_xp, asarray(xp, labels_with_nan))


@pytest.mark.parametrize("score", SCORES)
def test_bad_data(xp, score):
    X, y = _blobs(n_samples=40)
    X_nan = np.array(X)
    X_nan[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        score(asarray(xp, X_nan), asarray(xp, y))
    with pytest.raises(ValueError, match="2D"):
        score(asarray(xp, X[:, 0]), asarray(xp, y))


def test_bad_silhouette_parameters():
    X, y = _blobs(n_samples=40)
    # Minkowski of order 2 is the Euclidean distance, as in sklearn.
    assert silhouette_score(X, y, metric="minkowski") == pytest.approx(
        sklearn.metrics.silhouette_score(X, y, metric="minkowski"), rel=RTOL
    )
    with pytest.raises(ValueError, match="metric must be one of"):
        silhouette_score(X, y, metric="hamming")
    with pytest.raises(ValueError, match="sample_size must be >= 1"):
        silhouette_score(X, y, sample_size=0)
    with pytest.raises(TypeError, match="sample_size"):
        silhouette_score(X, y, sample_size=0.5)
    with pytest.raises(ValueError, match="working_memory"):
        silhouette_samples(X, y, working_memory=-1)
    # A sample of 1 row has a single label: the same rule as sklearn.
    with pytest.raises(ValueError, match="Number of labels is 1"):
        silhouette_score(X, y, sample_size=1, random_state=0)
