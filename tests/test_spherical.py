"""Spherical K-Means (``KMeans(metric="cosine")``) against a plain NumPy reference, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp

from sklearn.metrics import adjusted_rand_score

from kgpu import KMeans, MiniBatchKMeans, kmeans_plusplus

from ._helpers import asarray, assert_close, assert_equal, assert_namespace, rtol_for, to_numpy

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


def _embeddings(n_per_direction=150, n_features=16, n_directions=5, seed=0):
    """Rows along a few directions with varied lengths: cosine clusters that Euclidean ones are not."""
    rng = np.random.default_rng(seed)
    directions = rng.normal(size=(n_directions, n_features))
    parts = [d * rng.uniform(0.3, 4.0, (n_per_direction, 1)) + rng.normal(scale=0.4, size=(n_per_direction, n_features))
             for d in directions]
    return np.vstack(parts)


def spherical_reference(X, init, sample_weight=None, max_iter=300):
    """Spherical K-Means in plain NumPy (float64), tol=0: labels, centers, inertia, iterations."""
    weights = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    units = X / np.linalg.norm(X, axis=1, keepdims=True)
    centers = init / np.linalg.norm(init, axis=1, keepdims=True)
    previous = None
    for n_iter in range(1, max_iter + 1):
        labels = np.argmax(units @ centers.T, axis=1)
        sums = np.vstack([(weights[labels == j, None] * units[labels == j]).sum(axis=0) for j in range(len(centers))])
        centers = sums / np.linalg.norm(sums, axis=1, keepdims=True)
        if previous is not None and np.array_equal(labels, previous):
            break
        previous = labels
    labels = np.argmax(units @ centers.T, axis=1)
    inertia = float(weights @ (1 - (units * centers[labels]).sum(axis=1)))
    return labels, centers, inertia, n_iter


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_spherical_matches_numpy_reference(xp, dtype, weighted):
    X_np = _embeddings().astype(dtype)
    init = X_np[[0, 150, 300, 450, 600]] + 0.5
    weights_np = np.random.default_rng(1).uniform(0.5, 2.0, X_np.shape[0]) if weighted else None
    labels, centers, inertia, n_iter = spherical_reference(X_np.astype(np.float64), init.astype(np.float64), weights_np)
    model = KMeans(n_clusters=5, init=asarray(xp, init), metric="cosine", tol=0).fit(
        asarray(xp, X_np), sample_weight=None if weights_np is None else asarray(xp, weights_np.astype(dtype))
    )
    rtol = 10 * rtol_for(dtype)
    assert_equal(model.labels_, labels)
    assert_close(model.cluster_centers_, centers, rtol=rtol, atol=rtol)
    assert model.inertia_ == pytest.approx(inertia, rel=rtol)
    assert model.n_iter_ == n_iter
    assert_namespace(model.cluster_centers_, xp)
    np.testing.assert_allclose(np.linalg.norm(to_numpy(model.cluster_centers_), axis=1), 1.0, rtol=1e-5)


def test_spherical_differs_from_euclidean_and_is_scale_free():
    X = _embeddings()
    scaled = X * np.random.default_rng(2).uniform(0.1, 10.0, (X.shape[0], 1))
    cosine = KMeans(n_clusters=5, metric="cosine", random_state=0).fit(X)
    cosine_scaled = KMeans(n_clusters=5, metric="cosine", random_state=0).fit(scaled)
    # Row lengths do not matter to the cosine clustering.
    np.testing.assert_array_equal(cosine.labels_, cosine_scaled.labels_)
    euclidean = KMeans(n_clusters=5, random_state=0).fit(scaled)
    assert not np.array_equal(euclidean.labels_, cosine_scaled.labels_)


def test_plusplus_seeds_by_cosine_distance():
    X = _embeddings()
    units = X / np.linalg.norm(X, axis=1, keepdims=True)
    model = KMeans(n_clusters=5, metric="cosine", random_state=7, max_iter=1).fit(X)
    # D^2 sampling on unit rows is sampling by cosine distance (D^2 = 2 * cosine distance).
    seeds, _ = kmeans_plusplus(units, 5, random_state=7)
    one_step = KMeans(n_clusters=5, init=seeds, metric="cosine", max_iter=1).fit(X)
    np.testing.assert_allclose(model.cluster_centers_, one_step.cluster_centers_, rtol=1e-12)


def test_predict_transform_score_use_cosine(xp):
    X_np = _embeddings()
    model = KMeans(n_clusters=5, metric="cosine", random_state=0).fit(asarray(xp, X_np))
    centers = to_numpy(model.cluster_centers_)
    units = X_np / np.linalg.norm(X_np, axis=1, keepdims=True)
    distances = 1 - units @ centers.T
    assert_close(model.transform(asarray(xp, X_np)), distances, rtol=1e-9, atol=1e-9)
    assert_equal(model.predict(asarray(xp, X_np)), distances.argmin(axis=1))
    assert model.score(asarray(xp, X_np)) == pytest.approx(-distances.min(axis=1).sum(), rel=1e-9)
    assert model.score(asarray(xp, X_np)) == pytest.approx(-model.inertia_, rel=1e-9)


@pytest.mark.parametrize("container", [sp.csr_matrix, sp.csc_matrix])
def test_spherical_on_sparse_rows(container):
    X = np.abs(_embeddings())
    largest = X.max(axis=1, keepdims=True)
    X[X < np.minimum(1.0, largest)] = 0.0  # sparse, as TF-IDF; no row all zero
    init = X[[0, 150, 300, 450, 600]]
    dense = KMeans(n_clusters=5, init=init, metric="cosine", tol=0).fit(X)
    sparse = KMeans(n_clusters=5, init=init, metric="cosine", tol=0).fit(container(X))
    labels, centers, inertia, n_iter = spherical_reference(X, init)
    np.testing.assert_array_equal(sparse.labels_, labels)
    np.testing.assert_allclose(sparse.cluster_centers_, centers, rtol=1e-10, atol=1e-12)
    assert sparse.inertia_ == pytest.approx(inertia, rel=1e-10)
    assert sparse.n_iter_ == dense.n_iter_ == n_iter
    np.testing.assert_allclose(sparse.transform(container(X)), dense.transform(X), rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(sparse.predict(container(X)), dense.predict(X))
    assert sparse.score(container(X)) == pytest.approx(dense.score(X), rel=1e-10)


def test_zero_rows_are_at_distance_one():
    X = _embeddings()
    X[:3] = 0.0
    model = KMeans(n_clusters=5, metric="cosine", random_state=0).fit(X)
    np.testing.assert_allclose(model.transform(X[:3]), 1.0)
    assert np.all(np.isfinite(model.cluster_centers_))


def test_spherical_bad_parameters():
    X = _embeddings()
    with pytest.raises(ValueError, match="metric must be 'euclidean' or 'cosine'"):
        KMeans(n_clusters=3, metric="manhattan").fit(X)
    init = X[:3].copy()
    init[1] = 0.0
    with pytest.raises(ValueError, match="non-zero norm"):
        KMeans(n_clusters=3, init=init, metric="cosine").fit(X)


def test_spherical_does_not_modify_input():
    X = _embeddings()
    original = X.copy()
    KMeans(n_clusters=5, metric="cosine", random_state=0).fit(X)
    np.testing.assert_array_equal(X, original)


@pytest.mark.slow
def test_readme_embeddings_example_runs():
    from .test_readme import _python_block_after

    namespace: dict = {}
    exec(_python_block_after('### Spherical K-Means for embeddings and text'), namespace)
    assert namespace["similarity"].shape == (5, 50)
    assert namespace["topics"].shape == (10_000,)
    np.testing.assert_allclose(np.linalg.norm(namespace["model"].cluster_centers_, axis=1), 1.0, rtol=1e-5)


def test_sparse_fit_predicts_dense_rows_by_cosine():
    X = np.abs(_embeddings()) + 0.1
    model = KMeans(n_clusters=5, metric="cosine", random_state=0).fit(sp.csr_matrix(X))
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    np.testing.assert_allclose(model.transform(X), model.transform(sp.csr_matrix(X)), rtol=1e-9, atol=1e-12)


# ------------------------------------------------ MiniBatchKMeans(metric="cosine")


def _cosine_objective(X, centers, labels, sample_weight=None):
    units = X / np.linalg.norm(X, axis=1, keepdims=True)
    weights = np.ones(X.shape[0]) if sample_weight is None else sample_weight
    return float(weights @ (1 - (units * centers[labels]).sum(axis=1)))


def test_minibatch_spherical_finds_the_directions(xp):
    X_np = _embeddings()
    batch = MiniBatchKMeans(n_clusters=5, metric="cosine", random_state=0, batch_size=100).fit(asarray(xp, X_np))
    full = KMeans(n_clusters=5, metric="cosine", random_state=0).fit(X_np)
    reference = MiniBatchKMeans(n_clusters=5, metric="cosine", random_state=0, batch_size=100).fit(X_np)
    # Same seed, same batches: every backend gives NumPy's result.
    assert_close(batch.cluster_centers_, reference.cluster_centers_, rtol=1e-9, atol=1e-9)
    labels = to_numpy(batch.labels_)
    centers = to_numpy(batch.cluster_centers_)
    assert adjusted_rand_score(labels, full.labels_) == 1.0
    np.testing.assert_allclose(np.linalg.norm(centers, axis=1), 1.0, rtol=1e-9)
    units = X_np / np.linalg.norm(X_np, axis=1, keepdims=True)
    np.testing.assert_array_equal(labels, np.argmax(units @ centers.T, axis=1))
    assert batch.inertia_ == pytest.approx(_cosine_objective(X_np, centers, labels), rel=1e-9)
    assert batch.score(asarray(xp, X_np)) == pytest.approx(-batch.inertia_, rel=1e-9)


def test_minibatch_spherical_sparse_matches_dense():
    X = np.abs(_embeddings()) + 0.01
    params = dict(n_clusters=5, metric="cosine", random_state=0, batch_size=100)
    sparse_fit = MiniBatchKMeans(**params).fit(sp.csr_matrix(X))
    dense_fit = MiniBatchKMeans(**params).fit(X)
    np.testing.assert_allclose(sparse_fit.cluster_centers_, dense_fit.cluster_centers_, rtol=1e-9, atol=1e-12)
    np.testing.assert_array_equal(sparse_fit.labels_, dense_fit.labels_)
    assert sparse_fit.inertia_ == pytest.approx(dense_fit.inertia_, rel=1e-9)


def test_minibatch_spherical_partial_fit():
    X = _embeddings()
    rng = np.random.default_rng(0)
    X = X[rng.permutation(X.shape[0])]
    model = MiniBatchKMeans(n_clusters=5, metric="cosine", random_state=0)
    for start in range(0, X.shape[0], 250):
        model.partial_fit(X[start:start + 250])
    centers = model.cluster_centers_
    np.testing.assert_allclose(np.linalg.norm(centers, axis=1), 1.0, rtol=1e-9)
    last = X[500:]
    assert model.inertia_ == pytest.approx(_cosine_objective(last, centers, model.labels_), rel=1e-9)
    assert adjusted_rand_score(model.predict(X), KMeans(n_clusters=5, metric="cosine", random_state=0).fit(X).labels_) > 0.9
