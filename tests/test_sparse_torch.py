"""PyTorch sparse tensors on the CPU: viewed as SciPy CSR without a copy, results as torch tensors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from kgpu import BisectingKMeans, KMeans, KMedians, MiniBatchKMeans, kmeans_plusplus, metrics  # noqa: E402
from kgpu._sparse import check_sparse  # noqa: E402

from .test_sparse import _sparse_data, _weights  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:Sparse CSR tensor support is in beta state")


def _torch_csr(X, *, dtype=torch.float64):
    """The SciPy CSR matrix ``X`` as a torch sparse CSR tensor (int64 indices, its own buffers)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.sparse_csr_tensor(
            torch.tensor(X.indptr, dtype=torch.int64), torch.tensor(X.indices, dtype=torch.int64),
            torch.tensor(X.data, dtype=dtype), size=X.shape,
        )


def _buffers(T):
    return [T.crow_indices().clone(), T.col_indices().clone(), T.values().clone()]


@pytest.mark.parametrize("Estimator", [KMeans, MiniBatchKMeans, BisectingKMeans])
def test_fit_on_torch_csr_equals_the_scipy_fit_and_returns_torch(Estimator):
    X = _sparse_data()
    T = _torch_csr(X)
    weights = _weights(X.shape[0])
    before = _buffers(T)
    ours = Estimator(n_clusters=5, random_state=0).fit(T, sample_weight=weights)
    reference = Estimator(n_clusters=5, random_state=0).fit(X, sample_weight=weights)
    assert isinstance(ours.cluster_centers_, torch.Tensor) and ours.cluster_centers_.dtype == torch.float64
    assert isinstance(ours.labels_, torch.Tensor)
    np.testing.assert_array_equal(ours.labels_.numpy(), reference.labels_)
    np.testing.assert_array_equal(ours.cluster_centers_.numpy(), reference.cluster_centers_)
    labels = ours.predict(T)
    distances = ours.transform(T)
    assert isinstance(labels, torch.Tensor) and isinstance(distances, torch.Tensor)
    np.testing.assert_array_equal(labels.numpy(), reference.predict(X))
    np.testing.assert_allclose(distances.numpy(), reference.transform(X), rtol=1e-12)
    assert ours.score(T) == pytest.approx(reference.score(X), rel=1e-12)
    for kept, now in zip(before, _buffers(T)):
        assert torch.equal(kept, now)


def test_the_view_shares_the_tensors_buffers():
    X = _sparse_data(dtype=np.float32)
    T = _torch_csr(X, dtype=torch.float32)
    view = check_sparse(T)
    assert view.dtype == np.float32 and view.shape == tuple(T.shape)
    assert np.shares_memory(view.data, T.values().numpy())
    assert np.shares_memory(view.indices, T.col_indices().numpy())
    assert np.shares_memory(view.indptr, T.crow_indices().numpy())


def test_unsorted_columns_are_sorted_in_a_copy_not_in_the_callers_tensor():
    X = _sparse_data()
    indices, data = X.indices.copy(), X.data.copy()
    for row in range(X.shape[0]):  # reverse the columns of every row
        start, stop = X.indptr[row], X.indptr[row + 1]
        indices[start:stop], data[start:stop] = indices[start:stop][::-1].copy(), data[start:stop][::-1].copy()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        T = torch.sparse_csr_tensor(
            torch.tensor(X.indptr, dtype=torch.int64), torch.tensor(indices, dtype=torch.int64),
            torch.tensor(data), size=X.shape,
        )
    before = _buffers(T)
    ours = KMeans(n_clusters=4, random_state=0).fit(T)
    reference = KMeans(n_clusters=4, random_state=0).fit(X)
    np.testing.assert_array_equal(ours.labels_.numpy(), reference.labels_)
    for kept, now in zip(before, _buffers(T)):
        assert torch.equal(kept, now)


def test_other_torch_layouts_are_converted():
    X = _sparse_data()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        coo = _torch_csr(X).to_sparse_coo()
    ours = KMeans(n_clusters=4, random_state=0, init="k-means||").fit(coo)
    reference = KMeans(n_clusters=4, random_state=0, init="k-means||").fit(X)
    np.testing.assert_array_equal(ours.labels_.numpy(), reference.labels_)


def test_seeding_and_metrics_return_torch():
    X = _sparse_data()
    T = _torch_csr(X)
    centers, indices = kmeans_plusplus(T, 4, random_state=0)
    ref_centers, ref_indices = kmeans_plusplus(X, 4, random_state=0)
    assert isinstance(centers, torch.Tensor) and isinstance(indices, torch.Tensor)
    np.testing.assert_array_equal(indices.numpy(), ref_indices)
    np.testing.assert_array_equal(centers.numpy(), ref_centers)
    labels = KMeans(n_clusters=4, random_state=0).fit(X).labels_
    samples = metrics.silhouette_samples(T, labels)
    assert isinstance(samples, torch.Tensor)
    np.testing.assert_allclose(samples.numpy(), metrics.silhouette_samples(X, labels), rtol=1e-12)
    assert metrics.silhouette_score(T, labels) == pytest.approx(metrics.silhouette_score(X, labels), rel=1e-12)


def test_estimators_without_sparse_support_refuse_torch_sparse_clearly():
    T = _torch_csr(_sparse_data())
    with pytest.raises(TypeError, match="does not take sparse input"):
        KMedians(n_clusters=3).fit(T)
    with pytest.raises(TypeError, match="sparse input"):
        metrics.calinski_harabasz_score(T, np.arange(T.shape[0]) % 3)


def test_half_precision_sparse_values_are_refused():
    T = _torch_csr(_sparse_data(), dtype=torch.float16)
    with pytest.raises(TypeError, match="float16"):
        KMeans(n_clusters=3).fit(T)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_gpu_sparse_tensors_are_refused_with_advice():
    T = _torch_csr(_sparse_data()).cuda()
    with pytest.raises(TypeError, match="not supported yet"):
        KMeans(n_clusters=3).fit(T)
