"""SciPy sparse input: scikit-learn's results, the dense results, and no dense copy of X."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
import sklearn.cluster

from kgpu import BisectingKMeans, KMeans, MiniBatchKMeans, kmeans_plusplus
from kgpu import _sparse

from ._helpers import peak_traced_bytes

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
FORMATS = [pytest.param(sp.csr_matrix, id="csr_matrix"), pytest.param(sp.csc_matrix, id="csc_matrix"),
           pytest.param(sp.csr_array, id="csr_array")]


def _sparse_data(n_samples=400, n_features=60, density=0.08, seed=0, dtype=np.float64):
    """Non-negative sparse rows with cluster structure (a few topic-like column groups)."""
    rng = np.random.default_rng(seed)
    X = sp.random(n_samples, n_features, density=density, format="csr", random_state=seed, dtype=np.float64)
    topic = rng.integers(0, 4, n_samples)
    boost = sp.csr_matrix((np.full(n_samples, 3.0), (np.arange(n_samples), topic * 5)), shape=X.shape)
    return (X + boost).astype(dtype).tocsr()


def _weights(n_samples, seed=1):
    return np.random.default_rng(seed).uniform(0.2, 3.0, n_samples)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("container", FORMATS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_kmeans_matches_sklearn_from_same_centers(dtype, container, weighted):
    X = _sparse_data(dtype=dtype)
    init = X[:6].toarray()
    weights = _weights(X.shape[0]) if weighted else None
    ours = KMeans(n_clusters=6, init=init, tol=0).fit(container(X), sample_weight=weights)
    theirs = sklearn.cluster.KMeans(n_clusters=6, init=init, n_init=1, tol=0).fit(X, sample_weight=weights)
    np.testing.assert_array_equal(ours.labels_, theirs.labels_)
    rtol = 1e-5 if dtype == np.float32 else 1e-10
    np.testing.assert_allclose(ours.cluster_centers_, theirs.cluster_centers_, rtol=rtol, atol=rtol)
    assert ours.inertia_ == pytest.approx(theirs.inertia_, rel=rtol * 10)
    assert ours.n_iter_ == theirs.n_iter_
    assert ours.cluster_centers_.dtype == dtype
    assert isinstance(ours.cluster_centers_, np.ndarray)


@pytest.mark.parametrize("init", ["k-means++", "k-means||", "random", "random-partition"])
def test_sparse_and_dense_give_the_same_clustering(init):
    X = _sparse_data()
    weights = _weights(X.shape[0])
    sparse_fit = KMeans(n_clusters=5, init=init, random_state=0, n_init=2).fit(X, sample_weight=weights)
    dense_fit = KMeans(n_clusters=5, init=init, random_state=0, n_init=2).fit(X.toarray(), sample_weight=weights)
    np.testing.assert_array_equal(sparse_fit.labels_, dense_fit.labels_)
    np.testing.assert_allclose(sparse_fit.cluster_centers_, dense_fit.cluster_centers_, rtol=1e-10, atol=1e-12)
    assert sparse_fit.n_iter_ == dense_fit.n_iter_


@pytest.mark.parametrize("dtype", DTYPES)
def test_kmeans_parallel_on_sparse_rows_picks_the_dense_candidates(dtype):
    """The same seed draws the same k-means|| candidates from sparse rows as from the dense matrix."""
    import array_api_compat.numpy as xp_numpy

    from kgpu._init_parallel import BlockRows, parallel_candidates
    from kgpu._sparse_parallel import SparseRows, kmeans_parallel_centers

    X = _sparse_data(dtype=dtype)
    weights = _weights(X.shape[0])
    sparse_ids, candidates = parallel_candidates(SparseRows(X, weights), 6, np.random.RandomState(3))
    dense_ids, _ = parallel_candidates(BlockRows(X.toarray(), weights, xp=xp_numpy), 6, np.random.RandomState(3))
    np.testing.assert_array_equal(sparse_ids, dense_ids)
    assert candidates.format == "csr" and candidates.shape[0] == sparse_ids.shape[0] > 6
    centers = kmeans_parallel_centers(X, 6, weights, np.random.RandomState(3))
    assert isinstance(centers, np.ndarray) and centers.shape == (6, X.shape[1]) and centers.dtype == dtype


def test_kmeans_parallel_on_sparse_rows_with_fewer_distinct_rows_than_clusters():
    row = sp.csr_matrix(np.array([[0.0, 1.0, 0.0, 2.0]]))
    X = sp.vstack([row] * 6 + [row * 3] * 6, format="csr")
    with pytest.warns(Warning, match="distinct clusters"):
        fit = KMeans(n_clusters=3, init="k-means||", random_state=0).fit(X)
    assert np.all(np.isfinite(fit.cluster_centers_))


def test_elkan_on_sparse_runs_the_same_iterations():
    X = _sparse_data()
    lloyd = KMeans(n_clusters=5, random_state=0).fit(X)
    elkan = KMeans(n_clusters=5, random_state=0, algorithm="elkan").fit(X)
    np.testing.assert_array_equal(lloyd.labels_, elkan.labels_)
    assert lloyd.n_iter_ == elkan.n_iter_


def test_kmeans_plusplus_sparse_picks_the_dense_rows():
    X = _sparse_data()
    weights = _weights(X.shape[0])
    centers, indices = kmeans_plusplus(X, 7, sample_weight=weights, random_state=3)
    dense_centers, dense_indices = kmeans_plusplus(X.toarray(), 7, sample_weight=weights, random_state=3)
    np.testing.assert_array_equal(indices, dense_indices)
    np.testing.assert_array_equal(centers, dense_centers)
    sk_centers, sk_indices = sklearn.cluster.kmeans_plusplus(X, 7, sample_weight=weights, random_state=3)
    np.testing.assert_array_equal(indices, sk_indices)


@pytest.mark.parametrize("Estimator", [KMeans, MiniBatchKMeans, BisectingKMeans])
def test_predict_transform_score_on_sparse_rows(Estimator):
    X = _sparse_data()
    weights = _weights(X.shape[0])
    model = Estimator(n_clusters=4, random_state=0).fit(X)
    dense = X.toarray()
    np.testing.assert_array_equal(model.predict(X), model.predict(dense))
    np.testing.assert_allclose(model.transform(X), model.transform(dense), rtol=1e-9, atol=1e-9)
    assert model.score(X, sample_weight=weights) == pytest.approx(model.score(dense, sample_weight=weights), rel=1e-10)
    if Estimator is not MiniBatchKMeans:
        np.testing.assert_array_equal(model.predict(X), model.labels_)


def test_minibatch_sparse_matches_dense():
    X = _sparse_data(n_samples=600)
    weights = _weights(X.shape[0])
    params = dict(n_clusters=4, random_state=0, batch_size=64, max_iter=5)
    sparse_fit = MiniBatchKMeans(**params).fit(X, sample_weight=weights)
    dense_fit = MiniBatchKMeans(**params).fit(X.toarray(), sample_weight=weights)
    np.testing.assert_allclose(sparse_fit.cluster_centers_, dense_fit.cluster_centers_, rtol=1e-8, atol=1e-10)
    np.testing.assert_array_equal(sparse_fit.labels_, dense_fit.labels_)
    assert sparse_fit.n_steps_ == dense_fit.n_steps_


def test_minibatch_partial_fit_on_sparse_chunks():
    X = _sparse_data(n_samples=600)
    sparse_model, dense_model = MiniBatchKMeans(n_clusters=4, random_state=0), MiniBatchKMeans(n_clusters=4, random_state=0)
    for start in range(0, 600, 200):
        sparse_model.partial_fit(X[start:start + 200])
        dense_model.partial_fit(X[start:start + 200].toarray())
    np.testing.assert_allclose(sparse_model.cluster_centers_, dense_model.cluster_centers_, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("strategy", ["biggest_inertia", "largest_cluster"])
def test_bisecting_sparse_matches_dense_without_centering(strategy):
    X = _sparse_data()
    weights = _weights(X.shape[0])
    params = dict(n_clusters=5, random_state=0, bisecting_strategy=strategy, copy_x=False)
    sparse_fit = BisectingKMeans(**params).fit(X, sample_weight=weights)
    dense_fit = BisectingKMeans(**params).fit(X.toarray(), sample_weight=weights)
    np.testing.assert_array_equal(sparse_fit.labels_, dense_fit.labels_)
    np.testing.assert_allclose(sparse_fit.cluster_centers_, dense_fit.cluster_centers_, rtol=1e-9, atol=1e-12)
    assert sparse_fit.inertia_ == pytest.approx(dense_fit.inertia_, rel=1e-9)


def _wide_sparse(n_samples, n_features, nnz_per_row, seed=0):
    """CSR with ``nnz_per_row`` random columns per row (fast to build at any width)."""
    rng = np.random.default_rng(seed)
    columns = rng.integers(0, n_features, size=(n_samples, nnz_per_row))
    columns[:, 0] = np.arange(n_samples) % 7  # some shared structure
    indptr = np.arange(0, n_samples * nnz_per_row + 1, nnz_per_row)
    X = sp.csr_matrix((rng.uniform(0.5, 1.5, columns.size), columns.ravel(), indptr), shape=(n_samples, n_features))
    X.sum_duplicates()
    return X


@pytest.mark.parametrize(
    "make",
    [
        pytest.param(lambda: KMeans(n_clusters=3, random_state=0, max_iter=5), id="KMeans"),
        pytest.param(lambda: KMeans(n_clusters=3, init="k-means||", random_state=0, max_iter=5), id="KMeans-k-means||"),
        pytest.param(lambda: MiniBatchKMeans(n_clusters=3, random_state=0, max_iter=5), id="MiniBatchKMeans"),
        pytest.param(lambda: BisectingKMeans(n_clusters=3, random_state=0, max_iter=5), id="BisectingKMeans"),
    ],
)
def test_sparse_fit_never_densifies(make):
    # Dense, this X would take 4 GB; the fit must stay within O(nnz + n + k*d).
    n_samples, n_features = 5000, 100_000
    X = _wide_sparse(n_samples, n_features, 20)
    peak = peak_traced_bytes(lambda: make().fit(X))
    dense_bytes = n_samples * n_features * 8
    assert peak < dense_bytes / 20, f"peak {peak / 2**20:.0f} MiB"


def test_sparse_input_is_not_modified():
    X = _sparse_data()
    copy = X.copy()
    weights = _weights(X.shape[0])
    weights_copy = weights.copy()
    KMeans(n_clusters=4, random_state=0).fit(X, sample_weight=weights)
    MiniBatchKMeans(n_clusters=4, random_state=0).fit(X)
    BisectingKMeans(n_clusters=4, random_state=0).fit(X)
    assert (X != copy).nnz == 0
    np.testing.assert_array_equal(X.indptr, copy.indptr)
    np.testing.assert_array_equal(weights, weights_copy)


def test_fast_kernels_off_keeps_sparse(monkeypatch):
    monkeypatch.setenv("KGPU_FAST", "0")
    X = _sparse_data()
    fit = KMeans(n_clusters=4, random_state=0).fit(X)
    assert fit.cluster_centers_.shape == (4, X.shape[1])


def test_sparse_bad_input():
    X = _sparse_data()
    with_nan = X.copy()
    with_nan.data[0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        KMeans(n_clusters=3).fit(with_nan)
    with pytest.raises(ValueError, match="Sparse input is clustered on the CPU"):
        KMeans(n_clusters=3, backend="torch").fit(X)
    with pytest.raises(ValueError, match="should be >= n_clusters"):
        KMeans(n_clusters=500).fit(X)
    model = KMeans(n_clusters=3, random_state=0).fit(X)
    with pytest.raises(ValueError, match="features"):
        model.predict(X[:, :10])


@pytest.mark.parametrize("Estimator", [KMeans, MiniBatchKMeans, BisectingKMeans])
def test_tags_declare_sparse_support(Estimator):
    assert Estimator().__sklearn_tags__().input_tags.sparse


def test_row_sq_norms_and_distances():
    X = _sparse_data(n_samples=50)
    dense = X.toarray()
    np.testing.assert_allclose(_sparse.row_sq_norms(X), (dense**2).sum(axis=1))
    centers = dense[:3] + 0.5
    expected = ((dense[:, None, :] - centers[None]) ** 2).sum(axis=2)
    np.testing.assert_allclose(_sparse.distance_matrix(X, centers, squared=True), expected, rtol=1e-10, atol=1e-10)
    labels, min_sq = _sparse.assign(X, centers)
    np.testing.assert_array_equal(labels, expected.argmin(axis=1))
    sums, weights = _sparse.cluster_sums(X, labels, np.ones(50), 3)
    for j in range(3):
        np.testing.assert_allclose(sums[j], dense[labels == j].sum(axis=0))
        assert weights[j] == np.count_nonzero(labels == j)


def test_gpu_sparse_input_is_refused_with_a_clear_message():
    """cupyx.scipy.sparse cannot run here; an object shaped like one is refused the way it would be."""

    class csr_matrix:  # noqa: N801 - named as cupyx's
        __module__ = "cupyx.scipy.sparse._csr"
        shape = (10, 3)

        def toarray(self):
            raise AssertionError("GPU sparse input must not be densified")

    with pytest.raises(TypeError, match=r"GPU sparse input \(cupyx.scipy.sparse\) is not supported yet"):
        KMeans(n_clusters=2).fit(csr_matrix())
