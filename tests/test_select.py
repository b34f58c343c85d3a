"""kgpu.select: knee, silhouette sweep, gap statistic and choose_k, on every backend.

The planted number of clusters must be found on well-separated blobs, the gap
statistic must answer 1 on a structureless cloud, and choose_k must give the
same values as running each criterion on its own.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import sklearn.cluster
import sklearn.metrics
from sklearn.datasets import make_blobs

import kgpu
from kgpu import select
from kgpu.metrics import calinski_harabasz_score, davies_bouldin_score, silhouette_score
from kgpu.select import (
    ChooseKResult,
    check_k_range,
    choose_k,
    elbow,
    find_knee,
    gap_pick,
    gap_statistic,
    reference_sampler,
    silhouette_sweep,
)

from ._helpers import asarray, assert_equal, assert_namespace, to_numpy


@functools.lru_cache(maxsize=None)
def _blobs(k, n_samples=200, seed=None):
    """Well-separated blobs with ``k`` planted clusters (random centers)."""
    X, _ = make_blobs(
        n_samples=n_samples, n_features=2, centers=k, cluster_std=0.5,
        center_box=(-10, 10), random_state=k if seed is None else seed,
    )
    X.setflags(write=False)
    return X


@functools.lru_cache(maxsize=None)
def _ring(k, n_samples=200):
    """``k`` blobs evenly spaced on a circle: every merge costs the same, a clean elbow."""
    angles = 2 * np.pi * np.arange(k) / k
    X, _ = make_blobs(n_samples=n_samples, centers=10 * np.c_[np.cos(angles), np.sin(angles)], cluster_std=0.7, random_state=0)
    X.setflags(write=False)
    return X


@functools.lru_cache(maxsize=None)
def _uniform_cloud(n_samples=200):
    X = np.random.default_rng(0).uniform(size=(n_samples, 2))
    X.setflags(write=False)
    return X


# ------------------------------------------------------------------- knee
def test_find_knee_on_a_known_curve():
    knee = find_knee([1, 2, 3, 4, 5, 6], [100, 50, 10, 8, 6, 4])
    assert knee.knee == 3.0
    assert knee.knees == (3.0,)
    # Kneedle's difference curve: flipped, normalised y minus normalised x.
    assert knee.difference[2] == pytest.approx((1 - 6 / 96) - 0.4)
    assert knee.difference[0] == 0.0 and knee.difference[-1] == 0.0


def test_find_knee_is_invariant_to_scale_and_uneven_spacing():
    x = np.array([1, 2, 4, 8, 16])
    y = 1.0 / x
    assert find_knee(x, y).knee == find_knee(x, 1000 * y + 5).knee == 4.0


def test_find_knee_on_a_curve_without_knee():
    assert find_knee(range(1, 8), np.linspace(10, 0, 7)).knee is None
    assert find_knee(range(1, 8), np.full(7, 3.0)).knee is None
    assert find_knee([1, 2], [5, 1]).knee is None


def test_find_knee_sensitivity():
    # A mild bend: found with S = 1, too shallow for a demanding S.
    x = np.arange(1, 11)
    y = np.array([10, 8.2, 6.6, 5.4, 4.6, 4.0, 3.5, 3.1, 2.8, 2.5])
    assert find_knee(x, y, sensitivity=1.0).knee is not None
    assert find_knee(x, y, sensitivity=10.0).knee is None


def test_find_knee_reports_the_most_pronounced_of_several_knees():
    x = np.arange(1, 11)
    # A small bend at 3 and a large one at 6.
    y = np.array([100, 96, 92, 91.5, 91, 10, 9, 8, 7, 6], dtype=float)
    knee = find_knee(x, y)
    assert knee.knee == 6.0
    assert 6.0 in knee.knees


def test_find_knee_bad_input():
    with pytest.raises(ValueError, match="same length"):
        find_knee([1, 2, 3], [1, 2])
    with pytest.raises(ValueError, match="increasing"):
        find_knee([3, 2, 1], [1, 2, 3])
    with pytest.raises(ValueError, match="sensitivity"):
        find_knee([1, 2, 3], [3, 2, 1], sensitivity=-1)


# ------------------------------------------------------------------ elbow
@pytest.mark.parametrize("k", [3, 4])
def test_elbow_finds_planted_k(xp, k):
    X = asarray(xp, _ring(k))
    result = elbow(X, range(1, 10), random_state=0)
    assert result.knee == k
    assert_equal(result.k_values, np.arange(1, 10))
    assert np.all(np.diff(result.inertia) < 0)
    assert sorted(result.models) == list(range(1, 10))
    assert all(model.n_clusters == k_ for k_, model in result.models.items())
    assert result.inertia[k - 1] == result.models[k].inertia_


def test_elbow_passes_fit_params_to_every_fit(xp):
    X = _ring(3)
    weights = np.random.default_rng(0).uniform(0.1, 3.0, size=X.shape[0])
    result = elbow(asarray(xp, X), range(1, 5), random_state=0, sample_weight=asarray(xp, weights))
    for k in range(1, 5):
        expected = kgpu.KMeans(n_clusters=k, random_state=0).fit(X, sample_weight=weights).inertia_
        assert result.inertia[k - 1] == pytest.approx(expected, rel=1e-10)
    unweighted = elbow(asarray(xp, X), range(1, 5), random_state=0)
    assert not np.allclose(result.inertia, unweighted.inertia)


def test_elbow_bad_input():
    with pytest.raises(ValueError, match="at least 3 values of k"):
        elbow(_ring(3), [1, 2])
    with pytest.raises(TypeError, match="unexpected keyword"):
        elbow(_ring(3), range(1, 5), n_init=3)


# ------------------------------------------------------------- silhouette
def test_silhouette_sweep_picks_planted_k(xp):
    X = _ring(4)
    result = silhouette_sweep(asarray(xp, X), range(1, 8), random_state=0)
    assert result.best_k == 4
    assert math.isnan(result.silhouette[0])  # k = 1 has no silhouette
    assert result.sample_size is None
    # Each value is the silhouette of that k's labels.
    labels = to_numpy(result.models[4].labels_)
    assert result.silhouette[3] == pytest.approx(sklearn.metrics.silhouette_score(X, labels), rel=1e-6)


def test_silhouette_sweep_sample_is_the_same_for_every_k_and_matches_sklearn():
    X = _blobs(3, n_samples=300)
    result = silhouette_sweep(X, range(2, 6), sample_size=80, random_state=5)
    assert result.sample_size == 80
    for i, k in enumerate(result.k_values):
        labels = result.models[int(k)].labels_
        expected = sklearn.metrics.silhouette_score(X, labels, sample_size=80, random_state=5)
        assert result.silhouette[i] == pytest.approx(expected, rel=1e-6)


def test_auto_sample_size_caps_large_data(monkeypatch):
    monkeypatch.setattr(select, "AUTO_SILHOUETTE_ROWS", 50)
    result = silhouette_sweep(_blobs(3), [2, 3], random_state=0)
    assert result.sample_size == 50
    result = silhouette_sweep(_blobs(3), [2, 3], sample_size=None, random_state=0)
    assert result.sample_size is None


# -------------------------------------------------------------------- gap
@pytest.mark.parametrize("k", [3, 4, 6])
def test_gap_statistic_finds_planted_k(xp, k):
    result = gap_statistic(asarray(xp, _blobs(k)), range(1, 9), n_refs=4, random_state=0)
    assert result.best_k == k
    assert result.ref_log_w.shape == (4, 8)


def test_gap_statistic_answers_one_on_a_uniform_cloud(xp):
    result = gap_statistic(asarray(xp, _uniform_cloud()), range(1, 7), n_refs=4, random_state=0)
    assert result.best_k == 1


@pytest.mark.parametrize("k", [3, 4])
def test_gap_statistic_with_pca_reference(k):
    # Elongated, rotated blobs: the principal-axes box follows their shape.
    rotation = np.array([[np.cos(0.6), -np.sin(0.6)], [np.sin(0.6), np.cos(0.6)]])
    X = (_blobs(k) * np.array([3.0, 0.5])) @ rotation.T
    assert gap_statistic(X, range(1, 8), n_refs=4, reference="pca", random_state=0).best_k == k


def test_gap_statistic_formulas(xp):
    X = asarray(xp, _blobs(3))
    result = gap_statistic(X, range(1, 6), n_refs=3, random_state=1)
    # W_k is the K-Means inertia (pooled within-cluster sum of squares).
    inertia = np.array([result.models[k].inertia_ for k in range(1, 6)])
    np.testing.assert_allclose(np.exp(result.log_w), inertia, rtol=1e-8)
    np.testing.assert_allclose(result.gap, result.ref_log_w.mean(axis=0) - result.log_w, rtol=1e-12)
    sd = np.sqrt(((result.ref_log_w - result.ref_log_w.mean(axis=0)) ** 2).mean(axis=0))
    np.testing.assert_allclose(result.sd_k, sd, rtol=1e-12)
    np.testing.assert_allclose(result.s_k, sd * np.sqrt(1 + 1 / 3), rtol=1e-12)


def test_gap_statistic_is_reproducible_and_seed_dependent():
    X = _blobs(3)
    first = gap_statistic(X, range(1, 5), n_refs=2, random_state=3)
    again = gap_statistic(X, range(1, 5), n_refs=2, random_state=3)
    other = gap_statistic(X, range(1, 5), n_refs=2, random_state=4)
    np.testing.assert_array_equal(first.ref_log_w, again.ref_log_w)
    assert not np.array_equal(first.ref_log_w, other.ref_log_w)


def test_gap_pick_rule():
    k = np.array([1, 2, 3, 4])
    # Gap(2) >= Gap(3) - s_3 is the first that holds.
    assert gap_pick(k, np.array([0.1, 1.0, 1.05, 1.1]), np.array([0.1, 0.1, 0.1, 0.1])) == 2
    assert gap_pick(k, np.array([0.5, 0.4, 0.3, 0.2]), np.zeros(4)) == 1
    with pytest.warns(UserWarning, match="wider k_range"):
        assert gap_pick(k, np.array([0.0, 1.0, 2.0, 3.0]), np.full(4, 0.01)) == 4


def test_uniform_reference_is_drawn_on_the_host_from_the_seed(xp):
    X = _blobs(3)
    draw = reference_sampler(asarray(xp, X), "uniform", xp=xp)
    expected = np.random.RandomState(11).uniform(X.min(axis=0), X.max(axis=0), size=X.shape)
    np.testing.assert_array_equal(draw(np.random.RandomState(11)), expected)


def test_pca_reference_fills_the_box_of_the_principal_axes(xp):
    rotation = np.array([[np.cos(0.6), -np.sin(0.6)], [np.sin(0.6), np.cos(0.6)]])
    X = (_blobs(3) * np.array([3.0, 0.5])) @ rotation.T
    reference = reference_sampler(asarray(xp, X), "pca", xp=xp)(np.random.RandomState(0))
    assert reference.shape == X.shape
    mean = X.mean(axis=0)
    _, _, axes_t = np.linalg.svd(X - mean, full_matrices=False)
    data_scores, ref_scores = (X - mean) @ axes_t.T, (reference - mean) @ axes_t.T
    tolerance = 1e-9 * np.abs(data_scores).max()
    assert np.all(ref_scores.min(axis=0) >= data_scores.min(axis=0) - tolerance)
    assert np.all(ref_scores.max(axis=0) <= data_scores.max(axis=0) + tolerance)
    # ... and spreads over most of it (a uniform draw of 200 points).
    assert np.all(np.ptp(ref_scores, axis=0) > 0.9 * np.ptp(data_scores, axis=0))
    # The axis-aligned box of elongated rotated data would be much wider.
    assert not np.all(reference_sampler(X, "uniform", xp=np)(np.random.RandomState(0)) @ axes_t.T
                      >= data_scores.min(axis=0) + mean @ axes_t.T - tolerance)


# --------------------------------------------------------------- choose_k
def test_choose_k_agrees_with_each_criterion_alone(xp):
    X = asarray(xp, _ring(4))
    k_range = range(1, 7)
    result = choose_k(X, k_range, n_refs=3, random_state=0)
    assert isinstance(result, ChooseKResult)
    assert result.picks == {name: 4 for name in select.CRITERIA}

    alone_elbow = elbow(X, k_range, random_state=0)
    np.testing.assert_allclose(result.inertia, alone_elbow.inertia, rtol=1e-12)
    assert result.picks["elbow"] == alone_elbow.knee

    alone_silhouette = silhouette_sweep(X, k_range, random_state=0)
    np.testing.assert_allclose(result.silhouette, alone_silhouette.silhouette, rtol=1e-12)
    assert result.picks["silhouette"] == alone_silhouette.best_k

    alone_gap = gap_statistic(X, k_range, n_refs=3, random_state=0)
    np.testing.assert_allclose(result.gap, alone_gap.gap, rtol=1e-12)
    np.testing.assert_allclose(result.s_k, alone_gap.s_k, rtol=1e-12)
    assert result.picks["gap"] == alone_gap.best_k

    for i, k in enumerate(result.k_values[1:], start=1):
        labels = result.models[int(k)].labels_
        assert_namespace(labels, xp)
        assert result.silhouette[i] == pytest.approx(silhouette_score(X, labels), rel=1e-12)
        assert result.calinski_harabasz[i] == pytest.approx(calinski_harabasz_score(X, labels), rel=1e-12)
        assert result.davies_bouldin[i] == pytest.approx(davies_bouldin_score(X, labels), rel=1e-12)
    assert math.isnan(result.calinski_harabasz[0]) and math.isnan(result.davies_bouldin[0])


def test_choose_k_values_match_sklearn_metrics():
    X = _blobs(3)
    result = choose_k(X, range(2, 6), criteria=("silhouette", "calinski_harabasz", "davies_bouldin"), random_state=0)
    for i, k in enumerate(result.k_values):
        labels = result.models[int(k)].labels_
        assert result.silhouette[i] == pytest.approx(sklearn.metrics.silhouette_score(X, labels), rel=1e-6)
        assert result.calinski_harabasz[i] == pytest.approx(sklearn.metrics.calinski_harabasz_score(X, labels), rel=1e-6)
        assert result.davies_bouldin[i] == pytest.approx(sklearn.metrics.davies_bouldin_score(X, labels), rel=1e-6)


def test_choose_k_subset_of_criteria():
    result = choose_k(_blobs(3), range(1, 6), criteria=["davies_bouldin", "elbow"], random_state=0)
    assert list(result.picks) == ["elbow", "davies_bouldin"]
    assert result.silhouette is None and result.gap is None and result.calinski_harabasz is None
    assert result.davies_bouldin is not None


ESTIMATORS = [
    pytest.param(lambda: sklearn.cluster.KMeans(n_init="auto", random_state=0), id="sklearn-KMeans"),
    pytest.param(lambda: kgpu.KMedians(random_state=0), id="KMedians",
                 marks=pytest.mark.skipif(not hasattr(kgpu, "KMedians"), reason="kgpu.KMedians not present")),
    pytest.param(lambda: kgpu.KMedoids(random_state=0), id="KMedoids",
                 marks=pytest.mark.skipif(not hasattr(kgpu, "KMedoids"), reason="kgpu.KMedoids not present")),
]


@pytest.mark.parametrize("make_estimator", ESTIMATORS)
def test_choose_k_with_other_estimators(make_estimator):
    estimator = make_estimator()
    result = choose_k(_blobs(3), range(1, 7), estimator=estimator, n_refs=3, random_state=0)
    assert result.picks == {name: 3 for name in select.CRITERIA}
    for k, model in result.models.items():
        assert type(model) is type(estimator) and model.n_clusters == k
        assert model is not estimator
    # The elbow reads each model's own objective.
    assert result.inertia[2] == pytest.approx(float(result.models[3].inertia_))
    assert estimator.get_params()["n_clusters"] == type(estimator)().n_clusters  # not changed


@pytest.mark.parametrize("make_estimator", ESTIMATORS)
def test_other_estimators_on_every_backend(xp, make_estimator):
    result = choose_k(asarray(xp, _blobs(3)), range(2, 5), criteria=("silhouette", "gap"), estimator=make_estimator(),
                      n_refs=2, random_state=0)
    assert result.picks == {"silhouette": 3, "gap": 3}


def test_choose_k_backend_parameter():
    pytest.importorskip("torch")
    X = _blobs(3)
    on_torch = choose_k(X, range(1, 5), n_refs=2, random_state=0, backend="torch")
    on_numpy = choose_k(X, range(1, 5), n_refs=2, random_state=0)
    assert on_torch.picks == on_numpy.picks
    np.testing.assert_allclose(on_torch.inertia, on_numpy.inertia, rtol=1e-10)
    np.testing.assert_allclose(on_torch.gap, on_numpy.gap, rtol=1e-10)
    assert type(on_torch.models[2].cluster_centers_).__module__.startswith("torch")


def test_choose_k_float32(xp):
    X = asarray(xp, _blobs(3).astype(np.float32))
    result = choose_k(X, range(1, 6), n_refs=2, random_state=0)
    assert result.picks["gap"] == result.picks["silhouette"] == 3
    assert str(to_numpy(result.models[3].cluster_centers_).dtype) == "float32"


def test_choose_k_does_not_modify_input(xp):
    X = asarray(xp, _blobs(3))
    choose_k(X, range(1, 5), n_refs=2, reference="pca", random_state=0)
    assert_equal(X, _blobs(3))


def test_result_table_and_dict():
    result = choose_k(_blobs(3), range(1, 6), n_refs=2, random_state=0)
    table = result.to_table()
    assert str(result) == table
    lines = table.splitlines()
    assert lines[0].split("|")[1].strip() == "k"
    for name in ("inertia", "silhouette", "calinski_harabasz", "davies_bouldin", "gap", "s_k"):
        assert name in lines[0]
    assert len([line for line in lines if line.startswith("| ") and line[2:].strip()[0].isdigit()]) == 5
    assert lines[2 + 2].count(" *") == 4  # the k = 3 row: silhouette, CH, DB and gap picks
    assert "gap: 3" in lines[-1]
    summary = result.to_dict()
    assert summary["k"] == [1, 2, 3, 4, 5]
    assert summary["silhouette"][0] is None  # NaN becomes None for JSON
    assert summary["picks"]["gap"] == 3
    import json

    json.dumps(summary)


def test_progress_bar_goes_to_stderr(capsys):
    choose_k(_blobs(3), range(1, 5), n_refs=1, random_state=0, progress=True)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert "choose_k" in captured.err


# -------------------------------------------------------------- bad input
def test_check_k_range():
    assert_equal(check_k_range([4, 2, 3], 10), np.array([2, 3, 4]))
    assert_equal(check_k_range(np.arange(1, 4), 10), np.array([1, 2, 3]))
    with pytest.raises(ValueError, match="k_range is empty"):
        check_k_range([], 10)
    with pytest.raises(ValueError, match="contains 0"):
        check_k_range(range(0, 5), 10)
    with pytest.raises(ValueError, match="contains 11 but X has only 10 samples"):
        check_k_range(range(1, 12), 10)
    with pytest.raises(ValueError, match="duplicate"):
        check_k_range([2, 3, 3], 10)
    with pytest.raises(TypeError, match="iterable of ints"):
        check_k_range(5, 10)
    with pytest.raises(TypeError, match="must hold ints"):
        check_k_range([2, 3.5], 10)
    with pytest.raises(TypeError, match="must hold ints"):
        check_k_range([True, 2], 10)


@pytest.mark.parametrize(
    "kwargs, error, match",
    [
        (dict(k_range=[]), ValueError, "empty"),
        (dict(k_range=[0, 1, 2]), ValueError, "contains 0"),
        (dict(k_range=range(1, 500)), ValueError, "only 200 samples"),
        (dict(k_range=range(1, 4), criteria=("elbow", "bic")), ValueError, "unknown criterion 'bic'"),
        (dict(k_range=range(1, 4), criteria=()), ValueError, "criteria is empty"),
        (dict(k_range=range(1, 4), n_refs=0), ValueError, "n_refs must be >= 1"),
        (dict(k_range=range(1, 4), reference="gaussian"), ValueError, "reference must be one of"),
        (dict(k_range=[1, 2]), ValueError, "elbow criterion needs at least 3"),
        (dict(k_range=[3], criteria=("gap",)), ValueError, "gap criterion needs at least 2"),
        (dict(k_range=range(1, 4), estimator=sklearn.cluster.DBSCAN()), TypeError, "no n_clusters parameter"),
        (dict(k_range=range(1, 4), estimator="kmeans"), TypeError, "clustering estimator"),
        (dict(k_range=range(1, 4), sample_size=0), ValueError, "sample_size"),
        (dict(k_range=range(1, 4), metric="hamming"), ValueError, "metric"),
        (dict(k_range=range(1, 4), progress="sometimes"), ValueError, "progress"),
    ],
)
def test_choose_k_bad_input(kwargs, error, match):
    with pytest.raises(error, match=match):
        choose_k(_blobs(3), **kwargs)


def test_bad_data(xp):
    X = np.array(_blobs(3))
    X[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        choose_k(asarray(xp, X), range(1, 4))
    with pytest.raises(ValueError, match="2D"):
        gap_statistic(asarray(xp, X[:, 0]), range(1, 4))
