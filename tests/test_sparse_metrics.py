"""SciPy sparse input to kgpu.metrics: scikit-learn's scores where it takes sparse rows, its refusal where it does not."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.metrics

from kgpu import metrics

from ._helpers import peak_traced_bytes

FORMATS = [pytest.param(sp.csr_matrix, id="csr_matrix"), pytest.param(sp.csc_matrix, id="csc_matrix"),
           pytest.param(sp.csr_array, id="csr_array"), pytest.param(sp.coo_matrix, id="coo_matrix")]


def _data(n_samples=500, n_features=80, seed=0, dtype=np.float64):
    rng = np.random.default_rng(seed)
    X = sp.random(n_samples, n_features, density=0.08, format="csr", random_state=seed, dtype=np.float64)
    labels = rng.integers(0, 4, n_samples)
    # Clusters that differ: each label lifts its own group of columns.
    boost = sp.csr_matrix((np.full(n_samples, 2.0), (np.arange(n_samples), labels * 7)), shape=X.shape)
    return (X + boost).astype(dtype).tocsr(), labels


@pytest.mark.parametrize("container", FORMATS)
@pytest.mark.parametrize("metric", ["euclidean", "manhattan", "cosine"])
def test_silhouette_matches_sklearn_on_sparse_input(container, metric):
    X, labels = _data()
    theirs = sklearn.metrics.silhouette_samples(X, labels, metric=metric)
    ours = metrics.silhouette_samples(container(X), labels, metric=metric)
    assert isinstance(ours, np.ndarray) and ours.dtype == np.float64
    np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=1e-12)
    assert metrics.silhouette_score(container(X), labels, metric=metric) == pytest.approx(
        sklearn.metrics.silhouette_score(X, labels, metric=metric), rel=1e-9
    )


def test_sqeuclidean_silhouette_of_sparse_rows_equals_the_dense_one():
    # scikit-learn computes "sqeuclidean" with SciPy, which refuses sparse rows: compare with dense.
    X, labels = _data()
    np.testing.assert_allclose(
        metrics.silhouette_samples(X, labels, metric="sqeuclidean"),
        sklearn.metrics.silhouette_samples(X.toarray(), labels, metric="sqeuclidean"),
        rtol=1e-9, atol=1e-12,
    )


def test_sampled_silhouette_draws_sklearns_rows_and_small_tiles_change_nothing():
    X, labels = _data(seed=2)
    ours = metrics.silhouette_score(X, labels, sample_size=200, random_state=7, working_memory=0.05)
    theirs = sklearn.metrics.silhouette_score(X, labels, sample_size=200, random_state=7)
    assert ours == pytest.approx(theirs, rel=1e-9)
    np.testing.assert_allclose(
        metrics.silhouette_samples(X, labels, working_memory=0.05), metrics.silhouette_samples(X, labels), rtol=1e-12
    )


def test_float32_sparse_silhouette_comes_back_float32():
    X, labels = _data(dtype=np.float32)
    ours = metrics.silhouette_samples(X, labels)
    assert ours.dtype == np.float32
    np.testing.assert_allclose(ours, sklearn.metrics.silhouette_samples(X, labels), rtol=1e-5, atol=1e-6)


def test_sparse_inertia_equals_the_dense_one():
    X, labels = _data()
    centers = np.stack([np.asarray(X[labels == j].mean(axis=0)).ravel() for j in range(4)])
    weights = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0])
    assert metrics.inertia(X, labels, centers, weights) == pytest.approx(
        metrics.inertia(X.toarray(), labels, centers, weights), rel=1e-10
    )


@pytest.mark.parametrize("score", [metrics.calinski_harabasz_score, metrics.davies_bouldin_score])
def test_scores_sklearn_refuses_on_sparse_input_are_refused(score):
    X, labels = _data()
    with pytest.raises(TypeError, match="sparse input"):
        score(X, labels)
    with pytest.raises((TypeError, ValueError)):  # scikit-learn refuses it too
        getattr(sklearn.metrics, score.__name__)(X, labels)


def test_sparse_input_is_refused_on_another_backend():
    X, labels = _data()
    with pytest.raises(ValueError, match="CPU with SciPy"):
        metrics.silhouette_score(X, labels, backend="torch")


def test_caller_matrix_is_not_modified():
    X, labels = _data()
    before = X.copy()
    metrics.silhouette_samples(X, labels, metric="cosine")
    assert (X != before).nnz == 0 and X.format == "csr"


def test_silhouette_never_densifies_x():
    """A dense copy of this X would take 1.6 GB; the silhouette's peak stays within a few tiles."""
    n_samples, n_features = 2000, 100_000
    rng = np.random.default_rng(0)
    rows = np.repeat(np.arange(n_samples), 50)  # 50 stored values a row
    X = sp.csr_matrix((rng.uniform(size=rows.size), (rows, rng.integers(0, n_features, rows.size))), shape=(n_samples, n_features))
    labels = np.arange(n_samples) % 5
    peak = peak_traced_bytes(lambda: metrics.silhouette_score(X, labels, working_memory=4))
    dense_bytes = n_samples * n_features * 8
    assert peak < dense_bytes / 20, f"peak {peak / 2**20:.1f} MiB"
