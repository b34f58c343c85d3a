"""``algorithm="elkan"`` (Hamerly's bounds): Lloyd's result, fewer distances, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from kgpu import BisectingKMeans, KMeans
from kgpu import _elkan

from ._helpers import asarray, assert_close, assert_equal, rtol_for, to_numpy

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


def _blobs(n_samples=1500, n_features=8, centers=12, cluster_std=1.5, dtype=np.float64):
    X, _ = make_blobs(n_samples=n_samples, n_features=n_features, centers=centers,
                      cluster_std=cluster_std, random_state=3)
    return X.astype(dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_elkan_gives_lloyds_result(xp, dtype, weighted):
    X_np = _blobs(dtype=dtype)
    weights_np = np.random.default_rng(0).uniform(0.5, 2.0, X_np.shape[0]) if weighted else None
    X = asarray(xp, X_np)
    weights = None if weights_np is None else asarray(xp, weights_np.astype(dtype))
    # tol=0: the runs go on until the labels stop changing, many iterations.
    lloyd = KMeans(n_clusters=12, random_state=0, tol=0, algorithm="lloyd").fit(X, sample_weight=weights)
    elkan = KMeans(n_clusters=12, random_state=0, tol=0, algorithm="elkan").fit(X, sample_weight=weights)
    assert lloyd.n_iter_ > 3
    assert elkan.n_iter_ == lloyd.n_iter_
    assert_equal(elkan.labels_, lloyd.labels_)
    assert_close(elkan.cluster_centers_, lloyd.cluster_centers_, rtol=rtol_for(dtype), atol=rtol_for(dtype))
    assert elkan.inertia_ == pytest.approx(lloyd.inertia_, rel=rtol_for(dtype))
    assert [r.n_changed for r in elkan.history_] == [r.n_changed for r in lloyd.history_]


def test_elkan_with_tolerance_stops_with_lloyd(xp):
    X = asarray(xp, _blobs(cluster_std=4.0))
    lloyd = KMeans(n_clusters=12, random_state=1, tol=1e-3).fit(X)
    elkan = KMeans(n_clusters=12, random_state=1, tol=1e-3, algorithm="elkan").fit(X)
    assert elkan.n_iter_ == lloyd.n_iter_
    assert_equal(elkan.labels_, lloyd.labels_)


def test_elkan_skips_distances(monkeypatch):
    """Well separated clusters: after the first pass most rows are never scored again."""
    scored_rows = []
    original = _elkan.center_scores

    def counting(rows, operand, *, xp):
        scored_rows.append(rows.shape[0])
        return original(rows, operand, xp=xp)

    monkeypatch.setattr(_elkan, "center_scores", counting)
    X = _blobs(n_samples=3000, centers=20, cluster_std=1.0)
    model = KMeans(n_clusters=20, random_state=0, tol=0, algorithm="elkan").fit(X)
    assert model.n_iter_ >= 3
    lloyd_rows = model.n_iter_ * X.shape[0]
    assert sum(scored_rows) < 0.6 * lloyd_rows, (sum(scored_rows), lloyd_rows)


def test_elkan_with_empty_cluster_relocation():
    # Two far-away initial centers attract nothing: they are re-seeded, and the
    # bounds must still hold after those big moves.
    X = _blobs(n_samples=600, centers=4)
    init = np.vstack([X[:4], np.full((2, X.shape[1]), 1e3)])
    lloyd = KMeans(n_clusters=6, init=init, tol=0).fit(X)
    elkan = KMeans(n_clusters=6, init=init, tol=0, algorithm="elkan").fit(X)
    assert elkan.n_iter_ == lloyd.n_iter_
    assert_equal(elkan.labels_, lloyd.labels_)
    assert_close(elkan.cluster_centers_, lloyd.cluster_centers_, rtol=1e-10, atol=1e-10)


def test_bisecting_elkan_gives_the_same_tree(xp):
    X = asarray(xp, _blobs(n_samples=800))
    lloyd = BisectingKMeans(n_clusters=6, random_state=0, algorithm="lloyd").fit(X)
    elkan = BisectingKMeans(n_clusters=6, random_state=0, algorithm="elkan").fit(X)
    assert_equal(elkan.labels_, lloyd.labels_)
    assert_close(elkan.cluster_centers_, lloyd.cluster_centers_, rtol=1e-10, atol=1e-10)
    assert elkan.n_iter_ == lloyd.n_iter_


@pytest.mark.parametrize("Estimator", [KMeans, BisectingKMeans])
@pytest.mark.parametrize("algorithm", ["auto", "full", "Elkan", None, 1])
def test_bad_algorithm(Estimator, algorithm):
    with pytest.raises(ValueError, match=r"'algorithm' parameter of .* must be a str among \{'elkan', 'lloyd'\}"):
        Estimator(n_clusters=2, algorithm=algorithm).fit(_blobs(n_samples=20))


def test_elkan_single_cluster_warns_and_runs_lloyd():
    X = _blobs(n_samples=50)
    with pytest.warns(RuntimeWarning, match="algorithm='elkan' doesn't make sense for a single cluster"):
        model = KMeans(n_clusters=1, algorithm="elkan", random_state=0).fit(X)
    np.testing.assert_allclose(to_numpy(model.cluster_centers_)[0], X.mean(axis=0))


def test_elkan_does_not_modify_input():
    X = _blobs(n_samples=300)
    original = X.copy()
    KMeans(n_clusters=5, algorithm="elkan", random_state=0).fit(X)
    np.testing.assert_array_equal(X, original)
