"""The working frame (kgpu._scale): extreme magnitudes and float32 far from the origin.

Three blobs multiplied by a constant, or shifted far from zero in float32, must
be clustered exactly as the same blobs near 1, by every estimator, the
k-means++ seeding, the metrics and ``choose_k``. With a power-of-two factor the
arithmetic in the working frame is the same, bit for bit, so labels are equal
and centers are the scaled centers exactly.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
from sklearn import metrics as sk_metrics
from sklearn.datasets import make_blobs
from sklearn.metrics import adjusted_rand_score

from kgpu import BisectingKMeans, KMeans, KMedians, KMedoids, MiniBatchKMeans, kmeans_plusplus, metrics, select
from kgpu._scale import Frame, fit_frame, scale_by_power_of_two, working_exponent

from ._helpers import asarray, assert_close, assert_equal, to_numpy

ESTIMATORS = {
    "KMeans": lambda: KMeans(n_clusters=3, random_state=0),
    "KMeans-elkan": lambda: KMeans(n_clusters=3, algorithm="elkan", random_state=0),
    "KMeans-random": lambda: KMeans(n_clusters=3, init="random", n_init=10, random_state=0),
    "MiniBatchKMeans": lambda: MiniBatchKMeans(n_clusters=3, n_init=3, random_state=0),
    "KMedians": lambda: KMedians(n_clusters=3, random_state=0),
    "KMedoids-pam": lambda: KMedoids(n_clusters=3, method="pam", random_state=0),
    "KMedoids-alternate": lambda: KMedoids(n_clusters=3, method="alternate", random_state=0),
    "BisectingKMeans": lambda: BisectingKMeans(n_clusters=3, random_state=0),
}


@pytest.fixture(scope="module")
def blobs():
    X, y = make_blobs(n_samples=300, n_features=4, centers=3, cluster_std=1.0, center_box=(-20, 20), random_state=0)
    return X, y


def _fit(name, X):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ESTIMATORS[name]().fit(X)


# ------------------------------------------------------------- the frame
def test_working_exponent_leaves_ordinary_data_alone():
    assert working_exponent(1.0, 8) == 0 and working_exponent(1e30, 8) == 0 and working_exponent(1e-30, 8) == 0
    assert working_exponent(1e4, 4) == 0 and working_exponent(1e-4, 4) == 0
    assert working_exponent(2.0**1000, 8) == 1001 and working_exponent(2.0**-1000, 8) == -999
    assert working_exponent(1e30, 4) > 0 and working_exponent(1e-30, 4) < 0
    assert working_exponent(0.0, 8) == 0 and working_exponent(math.inf, 8) == 0


def test_scaling_and_restoring_is_exact(xp):
    host = np.array([[1.5, -3.25], [2.0**-60, 7.0]])
    X = asarray(xp, host * 2.0**900)
    frame = Frame(None, 901)
    working = frame.apply(X)
    assert_equal(working, host * 2.0**-1)
    assert_equal(frame.restore(working), host * 2.0**900)
    assert frame.restore_distances(3.0, 1) == math.ldexp(3.0, 901)
    assert frame.restore_distances(3.0, 2) == math.inf  # beyond float64: inf, not an error
    assert frame.restore_distances(3.0, 0) == 3.0
    # A float32 factor beyond float32's range is applied in steps, never as inf.
    tiny32 = asarray(xp, np.array([[1e-40, -2e-40]], dtype=np.float32))
    assert_equal(scale_by_power_of_two(scale_by_power_of_two(tiny32, 150), -150), np.array([[1e-40, -2e-40]], dtype=np.float32))


def test_fit_frame_centers_on_the_weighted_mean_and_scales_extremes(xp):
    host = np.array([[1.0, 10.0], [3.0, 14.0]]) * 2.0**700
    X = asarray(xp, host)
    weights = asarray(xp, np.array([1.0, 3.0]))
    frame = fit_frame(X, weights, xp=xp)
    assert_close(frame.origin, np.array([2.5, 13.0]) * 2.0**700, rtol=1e-15)
    assert frame.exponent == working_exponent(3 * 2.0**700, 8)  # largest |x - origin|
    assert np.abs(to_numpy(frame.apply(X))).max() < 1.0
    assert fit_frame(asarray(xp, np.array([[1.0, 2.0], [3.0, 5.0]])), xp=xp).exponent == 0


# ---------------------------------------------- extreme magnitudes, exact
@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize("dtype,exponent", [("float64", 1000), ("float64", -1000), ("float32", 100), ("float32", -100)])
def test_every_estimator_is_exact_under_a_power_of_two_scale(blobs, name, dtype, exponent):
    X, y = blobs
    X = X.astype(dtype)
    reference = _fit(name, X)
    assert adjusted_rand_score(y, reference.labels_) == 1.0
    factor = 2.0**exponent
    X_scaled = (X.astype(np.float64) * factor).astype(dtype)
    scaled = _fit(name, X_scaled)
    assert_equal(scaled.labels_, reference.labels_)
    assert_equal(scaled.predict(X_scaled), scaled.labels_)
    assert np.all(np.isfinite(to_numpy(scaled.cluster_centers_)))
    assert_close(
        to_numpy(scaled.cluster_centers_).astype(np.float64) / factor,
        to_numpy(reference.cluster_centers_).astype(np.float64),
        rtol=1e-6 if dtype == "float32" else 1e-12,
    )


@pytest.mark.parametrize("name", list(ESTIMATORS))
@pytest.mark.parametrize("dtype,scale", [("float64", 1e300), ("float64", 1e-300), ("float64", 1e200), ("float64", 1e-170),
                                         ("float32", 1e30), ("float32", 1e-30)])
def test_every_estimator_finds_the_blobs_at_extreme_scales(blobs, name, dtype, scale):
    X, y = blobs
    X_scaled = (X * scale).astype(dtype)
    model = _fit(name, X_scaled)
    assert adjusted_rand_score(y, model.labels_) == 1.0
    assert_equal(model.predict(X_scaled), model.labels_)


@pytest.mark.parametrize("scale", [2.0**1000, 2.0**-1000])
def test_kmeans_transform_and_score_come_back_in_the_data_units(blobs, xp, scale):
    X, _ = blobs
    reference = KMeans(n_clusters=3, random_state=0).fit(asarray(xp, X))
    X_scaled = asarray(xp, X * scale)
    model = KMeans(n_clusters=3, random_state=0).fit(X_scaled)
    assert_close(model.transform(X_scaled), to_numpy(reference.transform(asarray(xp, X))) * scale, rtol=1e-12)
    expected_score = reference.score(asarray(xp, X)) * scale * scale
    if math.isfinite(expected_score) and expected_score != 0:
        assert model.score(X_scaled) == pytest.approx(expected_score, rel=1e-12)
        assert model.inertia_ == pytest.approx(reference.inertia_ * scale * scale, rel=1e-12)
    else:  # the true value is beyond float64: inf or 0, never NaN
        assert model.inertia_ in (math.inf, 0.0)


def test_minibatch_no_longer_fails_on_huge_values(blobs):
    X, y = blobs
    model = MiniBatchKMeans(n_clusters=3, random_state=0, n_init=3).fit(X * 1e300)
    assert adjusted_rand_score(y, model.labels_) == 1.0


@pytest.mark.parametrize("exponent", [1000, -1000])
def test_kmeans_plusplus_picks_the_same_rows_at_any_scale(blobs, xp, exponent):
    X, _ = blobs
    centers, indices = kmeans_plusplus(asarray(xp, X), 3, random_state=0)
    scaled_centers, scaled_indices = kmeans_plusplus(asarray(xp, X * 2.0**exponent), 3, random_state=0)
    assert_equal(scaled_indices, indices)
    assert_equal(scaled_centers, X[to_numpy(indices)] * 2.0**exponent)


def test_kmeans_plusplus_seeds_one_center_per_blob_at_1e300(blobs):
    X, y = blobs
    for scale in (1e300, 1e-300):
        _, indices = kmeans_plusplus(X * scale, 3, random_state=0)
        assert sorted(y[indices]) == [0, 1, 2]


# -------------------------------------------------- float32 far from zero
@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_float32_far_from_the_origin_gives_the_same_partition(blobs, name):
    X, y = blobs
    near = _fit(name, X.astype(np.float32))
    X_far = (X + 1e5).astype(np.float32)
    far = _fit(name, X_far)
    assert adjusted_rand_score(near.labels_, far.labels_) == 1.0
    assert adjusted_rand_score(y, far.labels_) == 1.0
    assert_equal(far.predict(X_far), far.labels_)


def test_predict_equals_labels_far_from_the_origin_on_every_backend(blobs, xp):
    X, _ = blobs
    X_far = asarray(xp, (X + 1e5).astype(np.float32))
    for model in (KMeans(n_clusters=3, random_state=0), BisectingKMeans(n_clusters=3, random_state=0),
                  KMedoids(n_clusters=3, random_state=0)):
        model.fit(X_far)
        assert_equal(model.predict(X_far), model.labels_)


# ---------------------------------------------------------- Dask arrays
# A Dask fit computes in the in-memory fit's working frame (origin and scale
# from its first pass): the same partition at any scale and far from the
# origin, and predict / transform / score of a Dask array read the rows in it.
# Dask's local scheduler here; tests/test_dask.py runs the same on a cluster.


def _dask(X, rows=70):
    da = pytest.importorskip("dask.array")
    return da.from_array(X, chunks=(rows, X.shape[1]))


@pytest.mark.parametrize("dtype,scale", [("float64", 1e300), ("float64", 1e-300), ("float64", 1e200), ("float64", 1e-170),
                                         ("float32", 1e30), ("float32", 1e-30)])
@pytest.mark.parametrize("init", ["k-means||", "random"])
def test_kmeans_on_dask_finds_the_blobs_at_extreme_scales(blobs, dtype, scale, init):
    X, y = blobs
    X_scaled = (X * scale).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = KMeans(n_clusters=3, init=init, n_init=10, random_state=0).fit(_dask(X_scaled))
    labels = model.labels_.compute()
    assert adjusted_rand_score(y, labels) == 1.0
    assert np.all(np.isfinite(model.cluster_centers_))
    assert_equal(model.predict(_dask(X_scaled, rows=110)).compute(), labels)
    assert_equal(model.predict(X_scaled), labels)  # in memory, in the same frame


@pytest.mark.parametrize("dtype,exponent", [("float64", 1000), ("float64", -1000), ("float32", 100), ("float32", -100)])
def test_kmeans_on_dask_is_exact_under_a_power_of_two_scale(blobs, dtype, exponent):
    X, _ = blobs
    X = X.astype(dtype)
    init = X[[0, 100, 200]]
    reference = KMeans(n_clusters=3, init=init, n_init=1).fit(_dask(X))
    factor = 2.0**exponent
    X_scaled = (X.astype(np.float64) * factor).astype(dtype)
    scaled = KMeans(n_clusters=3, init=(init.astype(np.float64) * factor).astype(dtype), n_init=1).fit(_dask(X_scaled))
    in_memory = KMeans(n_clusters=3, init=(init.astype(np.float64) * factor).astype(dtype), n_init=1).fit(X_scaled)
    assert_equal(scaled.labels_.compute(), reference.labels_.compute())
    assert_equal(scaled.labels_.compute(), in_memory.labels_)
    assert scaled.n_iter_ == reference.n_iter_ == in_memory.n_iter_
    # A power-of-two scale is exact: the same bits, scaled.
    assert_equal(scaled.cluster_centers_.astype(np.float64) / factor, reference.cluster_centers_.astype(np.float64))
    rtol = 1e-5 if dtype == "float32" else 1e-12
    assert_close(scaled.cluster_centers_.astype(np.float64) / factor, in_memory.cluster_centers_.astype(np.float64) / factor,
                 rtol=rtol, atol=rtol)


@pytest.mark.parametrize("scale", [2.0**1000, 2.0**-1000])
def test_kmeans_on_dask_transform_and_score_come_back_in_the_data_units(blobs, scale):
    X, _ = blobs
    init = X[[0, 100, 200]]
    reference = KMeans(n_clusters=3, init=init, n_init=1).fit(X)
    X_scaled = X * scale
    model = KMeans(n_clusters=3, init=init * scale, n_init=1).fit(_dask(X_scaled))
    assert_close(model.transform(_dask(X_scaled)).compute(), reference.transform(X) * scale, rtol=1e-12)
    expected_score = reference.score(X) * scale * scale
    if math.isfinite(expected_score) and expected_score != 0:
        assert model.score(_dask(X_scaled)) == pytest.approx(expected_score, rel=1e-12)
        assert model.inertia_ == pytest.approx(reference.inertia_ * scale * scale, rel=1e-12)
    else:  # the true value is beyond float64: inf or 0, never NaN
        assert model.inertia_ in (math.inf, 0.0)
        assert model.score(_dask(X_scaled)) in (-math.inf, 0.0)


@pytest.mark.parametrize("init", ["k-means||", "random", "array"])
def test_kmeans_on_dask_far_from_the_origin_gives_the_same_partition(blobs, init):
    X, y = blobs
    X_far = (X + 1e5).astype(np.float32)
    start = X_far[[0, 100, 200]] if init == "array" else init
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = KMeans(n_clusters=3, init=start, n_init=1 if init == "array" else 10, random_state=0).fit(_dask(X_far))
        in_memory = KMeans(n_clusters=3, init=start, n_init=1 if init == "array" else 10, random_state=0).fit(X_far)
    labels = model.labels_.compute()
    assert adjusted_rand_score(y, labels) == 1.0
    assert_equal(labels, in_memory.labels_)
    assert_equal(model.predict(_dask(X_far, rows=110)).compute(), labels)
    assert_equal(model.predict(X_far), labels)
    # A model fitted in memory predicts a Dask array in its own frame too.
    assert_equal(in_memory.predict(_dask(X_far)).compute(), in_memory.labels_)


# ----------------------------------------------------------------- metrics
@pytest.mark.parametrize("metric", ["euclidean", "sqeuclidean", "manhattan"])
def test_silhouette_of_float32_far_from_zero_matches_scikit_learn_float64(blobs, xp, metric):
    X, y = blobs
    X_far = (X + 1e5).astype(np.float32)
    expected = sk_metrics.silhouette_score(X_far.astype(np.float64), y, metric=metric)
    assert abs(metrics.silhouette_score(asarray(xp, X_far), asarray(xp, y), metric=metric) - expected) < 1e-6


def test_dispersion_scores_of_float32_far_from_zero_match_scikit_learn(blobs, xp):
    X, y = blobs
    X_far = (X + 1e5).astype(np.float32)
    X64 = X_far.astype(np.float64)
    assert metrics.calinski_harabasz_score(asarray(xp, X_far), asarray(xp, y)) == pytest.approx(
        sk_metrics.calinski_harabasz_score(X64, y), rel=1e-6)
    assert metrics.davies_bouldin_score(asarray(xp, X_far), asarray(xp, y)) == pytest.approx(
        sk_metrics.davies_bouldin_score(X64, y), rel=1e-6)


@pytest.mark.parametrize("dtype,scale", [("float64", 1e300), ("float64", 1e-300), ("float32", 1e30), ("float32", 1e-30)])
def test_metrics_are_the_same_at_extreme_scales(blobs, dtype, scale):
    X, y = blobs
    X_scaled = (X * scale).astype(dtype)
    X_one = X.astype(dtype)
    rtol = 1e-5 if dtype == "float32" else 1e-10
    for score in (metrics.silhouette_score, metrics.calinski_harabasz_score, metrics.davies_bouldin_score):
        assert score(X_scaled, y) == pytest.approx(score(X_one, y), rel=rtol), score.__name__


def test_metrics_inertia_comes_back_in_the_data_units(blobs):
    X, y = blobs
    centers = np.stack([X[y == k].mean(axis=0) for k in range(3)])
    expected = metrics.inertia(X, y, centers)
    scale = 2.0**-400
    assert metrics.inertia(X * scale, y, centers * scale) == pytest.approx(expected * scale**2, rel=1e-12)


# ---------------------------------------------------------------- choose_k
@pytest.mark.parametrize("dtype,scale,offset", [("float64", 1e300, 0.0), ("float64", 1e-300, 0.0),
                                                ("float32", 1e30, 0.0), ("float32", 1.0, 1e5)])
def test_choose_k_finds_three_blobs_at_any_scale(blobs, dtype, scale, offset):
    X, _ = blobs
    X_scaled = (X * scale + offset).astype(dtype)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = select.choose_k(X_scaled, range(2, 6), n_refs=2, random_state=0)
    assert result.picks == {name: 3 for name in result.picks}, result.picks


# -------------------------------------------------------- command line
@pytest.mark.parametrize("source", ["centers", "model"])
def test_command_line_predict_far_from_the_origin_agrees_with_fit(blobs, tmp_path, capsys, source):
    from kgpu.cli import main

    X, _ = blobs
    path = tmp_path / "far.npy"
    np.save(path, (X + 1e5).astype(np.float32))
    assert main(["fit", str(path), "--k", "3", "--seed", "0", "--out", str(tmp_path / "run")]) == 0
    given = ["--centers", str(tmp_path / "run" / "centers.npy")] if source == "centers" else [
        "--model", str(tmp_path / "run" / "model.kgpu")]
    assert main(["predict", str(path), *given, "--out", str(tmp_path / "again.npy")]) == 0
    assert_equal(np.load(tmp_path / "again.npy"), np.load(tmp_path / "run" / "labels.npy"))
