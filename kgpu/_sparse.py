"""K-Means kernels for SciPy sparse rows (CSR), never densified.

Text (TF-IDF) and other high-dimensional sparse data are clustered without a
dense copy of ``X``: memory stays ``O(nnz + n + k * d)``.

- Distances: ``||x||^2 - 2 x.c + ||c||^2`` with the row norms computed once
  and ``X_block @ centers.T`` (a sparse-dense product) per row block.
- Update: per-cluster weighted sums as the product of a sparse ``(k, b)``
  indicator matrix (the weights at ``(label_i, i)``) with the block.
- k-means++: the same greedy draws, in the same order, as the dense
  :func:`kgpu._init.plusplus_indices` (and scikit-learn), on sparse rows.

Arithmetic is in float64 whatever the input's dtype (the centers are
returned in the input's dtype, as for dense input). The data stays on the
host: SciPy's sparse formats are the CPU's (a PyTorch sparse tensor on the
CPU is viewed as one, :func:`scipy_view`); ``cupyx.scipy.sparse`` and sparse
tensors on a GPU are not supported yet. These kernels are called explicitly by the estimators for
sparse input, not through the kernel table: ``KGPU_FAST=0`` does not turn
sparse support off.
"""

from __future__ import annotations

import time
from typing import Any, Callable

import numpy as np
import scipy.sparse as sp

from ._blocks import block_rows, map_blocks, row_blocks
from ._empty import empty_cluster_ids, relocation_plan
from ._lloyd import IterationRecord, LloydResult, finish_iteration
from ._validation import is_torch_sparse

#: Memory budget of one block of sparse rows' dense temporaries, MiB.
DEFAULT_BUDGET_MIB = 16


def is_sparse(X: Any) -> bool:
    """Whether ``X`` is a SciPy sparse matrix or array, or a PyTorch sparse tensor."""
    return sp.issparse(X) or is_torch_sparse(X)


def scipy_view(X: Any) -> Any:
    """A PyTorch sparse CSR tensor on the CPU as a SciPy CSR matrix sharing its buffers.

    The tensor's ``crow_indices``, ``col_indices`` and ``values`` become the
    matrix's ``indptr``, ``indices`` and ``data`` without a copy (int64
    indices are kept: SciPy's constructor would narrow them to int32, a
    copy). Other layouts (COO, CSC, BSR) are converted to CSR first, an
    ``O(nnz)`` copy, as SciPy's other formats are; so are column indices
    that are not sorted within rows, which SciPy would otherwise sort in the
    caller's buffers. SciPy input is returned as it is.

    Raises
    ------
    TypeError
        For a sparse tensor on a GPU (not supported yet), or half-precision values.
    ValueError
        For a tensor that is not 2-D.
    """
    if not is_torch_sparse(X):
        return X
    import torch

    if X.device.type != "cpu":
        raise TypeError(
            f"Sparse tensors on {X.device} are not supported yet: sparse input is clustered on the "
            "CPU. Move it with X.cpu(), or densify it with X.to_dense() to cluster it on the GPU."
        )
    if X.dim() != 2 or X.dense_dim() != 0:
        raise ValueError(f"Expected a 2-D sparse tensor (n_samples, n_features), got shape {tuple(X.shape)}.")
    if X.layout != torch.sparse_csr:
        X = X.to_sparse_csr()
    values = X.values().detach()
    if values.dtype in (torch.float16, torch.bfloat16):
        raise TypeError(f"Sparse {values.dtype} values are not supported: convert them with X.to(torch.float32).")
    view = sp.csr_matrix(tuple(X.shape), dtype=values.numpy().dtype)
    view.data, view.indices, view.indptr = values.numpy(), X.col_indices().numpy(), X.crow_indices().numpy()
    if not view.has_sorted_indices:
        view = view.copy()
        view.sort_indices()
    return view


def check_sparse(X: Any, *, estimator: Any = None, reset: bool = True) -> sp.csr_matrix:
    """Validate sparse ``X``; CSR of float32 or float64 (integers become float64).

    CSC and other formats are converted (a copy of ``O(nnz)``); a float CSR
    input (or a PyTorch CSR tensor on the CPU, see :func:`scipy_view`) is used
    as it is and never written to. ``estimator`` records or checks
    ``n_features_in_`` as for dense input.

    Raises
    ------
    ValueError
        Empty input, NaN or infinity among the stored values.
    """
    from sklearn.utils.validation import check_array, validate_data

    X = scipy_view(X)
    kwargs = dict(accept_sparse="csr", dtype=[np.float64, np.float32], ensure_all_finite=True)
    X = check_array(X, **kwargs) if estimator is None else validate_data(estimator, X, reset=reset, **kwargs)
    return sp.csr_matrix(X) if not isinstance(X, sp.csr_matrix) else X


def placement(X: sp.csr_matrix, backend: Any, source: Any = None) -> Any:
    """Where sparse input is computed: NumPy on the host (SciPy's sparse formats).

    ``source`` is the caller's input: results go back to PyTorch (on the CPU)
    for a PyTorch sparse tensor, to NumPy otherwise.

    Raises
    ------
    ValueError
        When ``backend`` names another library explicitly.
    """
    from ._backend import device_of, namespace_of
    from ._base import Placement

    if backend not in (None, "auto", "numpy"):
        raise ValueError(
            f"Sparse input is clustered on the CPU with SciPy; backend={backend!r} cannot take it. "
            "Use backend=None (or 'numpy'), or densify X."
        )
    host = np.empty(0, dtype=X.dtype)
    xp, device = namespace_of(host), device_of(host)
    if is_torch_sparse(source):
        return Placement(X, xp, device, namespace_of(source), source.device)
    return Placement(X, xp, device, xp, device)


def rows_per_block(n_rows: int, n_columns: int, budget_mib: float | None = None) -> int:
    """Rows per block so that a ``(b, n_columns)`` float64 temporary fits the budget."""
    import array_api_compat.numpy as xp_numpy

    budget = DEFAULT_BUDGET_MIB if budget_mib is None else budget_mib
    return block_rows(n_rows, (n_columns + 2) * 8, xp_numpy, budget)


def row_sq_norms(X: sp.csr_matrix) -> np.ndarray:
    """``||x||^2`` of every row, float64 ``(n,)`` (one pass over the stored values)."""
    values = X.data.astype(np.float64) ** 2
    row_of_value = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    return np.bincount(row_of_value, weights=values, minlength=X.shape[0])


def sq_distances(X_block: sp.csr_matrix, x_sq_norms: np.ndarray, centers: np.ndarray, center_sq_norms: np.ndarray) -> np.ndarray:
    """Squared Euclidean distances ``(b, k)`` from sparse rows to dense centers, clipped at 0, float64."""
    scores = np.asarray(X_block @ centers.T, dtype=np.float64)
    distances = x_sq_norms[:, None] - 2 * scores + center_sq_norms[None, :]
    return np.maximum(distances, 0, out=distances)


def assign(
    X: sp.csr_matrix, centers: Any, *, x_sq_norms: np.ndarray | None = None, budget_mib: float | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Nearest center of every sparse row and the squared distance to it.

    Returns
    -------
    labels : ndarray of shape (n,), int64
        Ties go to the lowest center index.
    min_sq_dist : ndarray of shape (n,), float64
    """
    centers64 = np.asarray(centers, dtype=np.float64)
    if x_sq_norms is None:
        x_sq_norms = row_sq_norms(X)
    center_sq_norms = np.einsum("ij,ij->i", centers64, centers64)
    n_rows = X.shape[0]
    labels = np.empty(n_rows, dtype=np.int64)
    min_sq_dist = np.empty(n_rows, dtype=np.float64)

    def one_block(start: int, stop: int) -> None:
        distances = sq_distances(X[start:stop], x_sq_norms[start:stop], centers64, center_sq_norms)
        labels[start:stop] = np.argmin(distances, axis=1)
        min_sq_dist[start:stop] = distances[np.arange(stop - start), labels[start:stop]]

    _each_block(one_block, n_rows, centers64.shape[0], budget_mib)
    return labels, min_sq_dist


def distance_matrix(X: sp.csr_matrix, centers: Any, *, squared: bool = False, budget_mib: float | None = None) -> np.ndarray:
    """All Euclidean (or squared) distances ``(n, k)``, float64."""
    centers64 = np.asarray(centers, dtype=np.float64)
    x_sq_norms = row_sq_norms(X)
    center_sq_norms = np.einsum("ij,ij->i", centers64, centers64)
    out = np.empty((X.shape[0], centers64.shape[0]), dtype=np.float64)

    def one_block(start: int, stop: int) -> None:
        out[start:stop] = sq_distances(X[start:stop], x_sq_norms[start:stop], centers64, center_sq_norms)

    _each_block(one_block, X.shape[0], centers64.shape[0], budget_mib)
    return out if squared else np.sqrt(out, out=out)


def cluster_sums(X: sp.csr_matrix, labels: np.ndarray, sample_weight: np.ndarray, n_clusters: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-cluster weighted sums ``(k, d)`` and weights ``(k,)``, float64.

    The sums are one sparse product: a ``(k, n)`` indicator holding
    ``w_i`` at ``(label_i, i)``, times ``X``.
    """
    n_rows = X.shape[0]
    weights64 = np.asarray(sample_weight, dtype=np.float64)
    indicator = sp.csr_matrix((weights64, (labels, np.arange(n_rows))), shape=(n_clusters, n_rows))
    sums = (indicator @ X.astype(np.float64, copy=False)).toarray()
    return sums, np.bincount(labels, weights=weights64, minlength=n_clusters)


def weighted_mean(X: sp.csr_matrix, sample_weight: np.ndarray) -> np.ndarray:
    """Weighted mean of the rows, float64 ``(d,)``."""
    weights64 = np.asarray(sample_weight, dtype=np.float64)
    return np.asarray(weights64 @ X.astype(np.float64, copy=False)).ravel() / weights64.sum()


def mean_feature_variance(X: sp.csr_matrix, sample_weight: np.ndarray) -> float:
    """Mean over features of the weighted variance (the scale of ``tol``), as for dense input."""
    weights64 = np.asarray(sample_weight, dtype=np.float64)
    total = weights64.sum()
    X64 = X.astype(np.float64, copy=False)
    mean = np.asarray(weights64 @ X64).ravel() / total
    mean_sq = np.asarray(weights64 @ X64.multiply(X64)).ravel() / total
    return float(np.mean(np.maximum(mean_sq - mean**2, 0.0)))


def lloyd(
    X: sp.csr_matrix,
    sample_weight: np.ndarray,
    centers_init: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    x_sq_norms: np.ndarray | None = None,
    budget_mib: float | None = None,
    on_iteration: Callable[[IterationRecord], None] | None = None,
    spherical: bool = False,
) -> LloydResult:
    """Lloyd iterations on sparse rows, with the convergence rules of :func:`kgpu._lloyd.lloyd`.

    Stops when no label changes or when the summed squared center shift is
    at most ``tol`` (absolute); then, unless the labels were stable, one more
    assignment makes the labels match the returned centers. Empty clusters
    follow :mod:`kgpu._empty`'s policy.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix of shape (n, d)
    sample_weight : ndarray of shape (n,)
    centers_init : ndarray of shape (k, d)
    max_iter : int
    tol : float
    x_sq_norms : ndarray of shape (n,) or None
    budget_mib : float or None
    on_iteration : callable or None
    spherical : bool
        Spherical K-Means (rows of ``X`` and ``centers_init`` of unit norm):
        each center is renormalised to unit length, and ``inertia`` is the
        weighted sum of cosine distances.

    Returns
    -------
    LloydResult
        Centers in the dtype of ``X``; host NumPy arrays.
    """
    n_clusters = centers_init.shape[0]
    if x_sq_norms is None:
        x_sq_norms = row_sq_norms(X)
    weights64 = np.asarray(sample_weight, dtype=np.float64)
    centers = np.asarray(centers_init, dtype=X.dtype)
    labels_old = None
    strict_convergence = False
    history: list[IterationRecord] = []
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        started = time.perf_counter()
        labels, min_sq_dist = assign(X, centers, x_sq_norms=x_sq_norms, budget_mib=budget_mib)
        sums, weights = cluster_sums(X, labels, weights64, n_clusters)
        if np.any(weights <= 0):
            sums, weights = _relocate_empty(X, weights64, labels, min_sq_dist, sums, weights)
        if spherical:
            weights = np.sqrt(np.einsum("ij,ij->i", sums, sums))  # the mean's direction is the sum's
        safe = np.where(weights > 0, weights, 1.0)
        new_centers = np.where((weights > 0)[:, None], (sums / safe[:, None]).astype(X.dtype), centers)
        center_shift = float(np.sum((new_centers - centers) ** 2))
        centers = new_centers
        n_changed = labels.shape[0] if labels_old is None else int(np.count_nonzero(labels != labels_old))
        record = IterationRecord(n_iter, center_shift, n_changed, time.perf_counter() - started)
        stop, strict_convergence = finish_iteration(
            history, record, on_iteration, labels_stable=labels_old is not None and n_changed == 0, tol=tol
        )
        if stop:
            break
        labels_old = labels
    if not strict_convergence:
        labels, _ = assign(X, centers, x_sq_norms=x_sq_norms, budget_mib=budget_mib)
    if spherical:
        inertia = float(weights64 @ (1 - own_dots(X, centers, labels)))
    else:
        # Exact for the returned labels (the last update averaged them when strict).
        inertia = float(weights64 @ _own_sq_distances(X, x_sq_norms, centers, labels))
    return LloydResult(centers, labels, inertia, n_iter, history)


def own_dots(X: sp.csr_matrix, centers: Any, labels: np.ndarray) -> np.ndarray:
    """``x_i . c[label_i]`` for every row, float64 ``(n,)``: O(nnz), no ``(n, d)`` gather of centers."""
    centers64 = np.asarray(centers, dtype=np.float64)
    row_of_value = np.repeat(np.arange(X.shape[0]), np.diff(X.indptr))
    products = X.data.astype(np.float64) * centers64[labels[row_of_value], X.indices]
    return np.bincount(row_of_value, weights=products, minlength=X.shape[0])


def _own_sq_distances(X: sp.csr_matrix, x_sq_norms: np.ndarray, centers: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """``||x_i - c[label_i]||^2`` for every row, float64 ``(n,)``."""
    centers64 = np.asarray(centers, dtype=np.float64)
    dots = own_dots(X, centers64, labels)
    center_sq_norms = np.einsum("ij,ij->i", centers64, centers64)
    return np.maximum(x_sq_norms - 2 * dots + center_sq_norms[labels], 0.0)


def _relocate_empty(X, weights64, labels, point_cost, sums, weights):
    """:mod:`kgpu._empty`'s policy on the sums: each empty cluster takes one of the farthest points."""
    import array_api_compat.numpy as xp_numpy

    empty, donors = relocation_plan(weights, point_cost, weights64, xp=xp_numpy)
    if empty.size == 0:
        return sums, weights
    sums, weights = sums.copy(), weights.copy()
    donor_rows = X[donors].toarray().astype(np.float64)
    for cluster, row, donor in zip(empty, donor_rows, donors):
        weight, old_cluster = weights64[donor], labels[donor]
        sums[old_cluster] -= weight * row
        weights[old_cluster] -= weight
        sums[cluster] = weight * row
        weights[cluster] = weight
    return sums, weights


def plusplus_indices(
    X: sp.csr_matrix,
    n_clusters: int,
    sample_weight: np.ndarray,
    random_state: np.random.RandomState,
    *,
    x_sq_norms: np.ndarray | None = None,
    n_local_trials: int | None = None,
) -> np.ndarray:
    """Greedy k-means++ seeds of sparse rows: row indices ``(n_clusters,)``, int64.

    The draws of :func:`kgpu._init.kmeans_plusplus_indices`, in the same
    order: the same seed picks the same rows as for the dense matrix.
    """
    n_samples = X.shape[0]
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    if x_sq_norms is None:
        x_sq_norms = row_sq_norms(X)
    weights64 = np.asarray(sample_weight, dtype=np.float64)

    def distances_to(rows: np.ndarray) -> np.ndarray:
        candidates = X[rows].toarray().astype(np.float64)
        return distance_matrix(X, candidates, squared=True)

    indices = np.empty(n_clusters, dtype=np.int64)
    indices[0] = random_state.choice(n_samples, p=weights64 / weights64.sum())
    closest_cost = distances_to(indices[:1])[:, 0]
    current_potential = float(closest_cost @ weights64)
    for c in range(1, n_clusters):
        thresholds = random_state.uniform(size=n_local_trials) * current_potential
        candidate_ids = np.searchsorted(np.cumsum(weights64 * closest_cost), thresholds)
        candidate_ids = np.minimum(candidate_ids, n_samples - 1).astype(np.int64)
        costs = np.minimum(closest_cost[:, None], distances_to(candidate_ids))
        potentials = weights64 @ costs
        best = int(np.argmin(potentials))
        current_potential = float(potentials[best])
        closest_cost = costs[:, best]
        indices[c] = candidate_ids[best]
    return indices


def random_partition_centers(
    X: sp.csr_matrix, n_clusters: int, sample_weight: np.ndarray, random_state: np.random.RandomState
) -> np.ndarray:
    """Centers of a random partition of sparse rows (the draws of :func:`kgpu._init.random_partition_centers`)."""
    from ._init import forgy_indices

    labels = random_state.randint(n_clusters, size=X.shape[0]).astype(np.int64)
    sums, weights = cluster_sums(X, labels, sample_weight, n_clusters)
    centers = sums / np.where(weights > 0, weights, 1.0)[:, None]
    empty = empty_cluster_ids(weights)
    if empty.size:
        fill = forgy_indices(X.shape[0], empty.size, sample_weight, random_state)
        centers[empty] = X[fill].toarray()
    return centers.astype(X.dtype)


def take_dense_rows(X: sp.csr_matrix, indices: np.ndarray) -> np.ndarray:
    """Rows ``indices`` of ``X`` as a dense array of X's dtype (``(m, d)``: only m rows densified)."""
    return X[np.asarray(indices)].toarray()


def _each_block(fn: Callable[[int, int], None], n_rows: int, n_columns: int, budget_mib: float | None) -> None:
    import array_api_compat.numpy as xp_numpy

    map_blocks(fn, row_blocks(n_rows, rows_per_block(n_rows, n_columns, budget_mib)), xp_numpy)


# ------------------------------------------------ fitted estimators, sparse X
def fitted_centers(estimator: Any) -> np.ndarray:
    """A fitted estimator's ``cluster_centers_`` as a host float64 array."""
    from sklearn.utils.validation import check_is_fitted

    from ._backend import to_numpy

    check_is_fitted(estimator, "cluster_centers_")
    return np.asarray(to_numpy(estimator.cluster_centers_), dtype=np.float64)


def unit_rows(X: sp.csr_matrix) -> sp.csr_matrix:
    """A copy of ``X`` with every row of unit Euclidean norm (zero rows stay zero): ``O(nnz)``."""
    from sklearn.preprocessing import normalize

    return normalize(X, norm="l2", copy=True)


def _cosine(estimator: Any) -> bool:
    return estimator._objective_metric().name == "cosine"


def predict(estimator: Any, X: Any) -> np.ndarray:
    """Index of the nearest fitted center of every sparse row, int64 ``(n,)``.

    Nearest by the estimator's objective: squared Euclidean, or cosine
    (spherical K-Means: the largest inner product with the unit rows).
    """
    centers = fitted_centers(estimator)
    X_csr = check_sparse(X, estimator=estimator, reset=False)
    if _cosine(estimator):
        labels = np.argmax(np.asarray(unit_rows(X_csr) @ centers.T), axis=1)
    else:
        labels = assign(X_csr, centers, budget_mib=estimator.working_memory)[0]
    return placement(X_csr, None, X).to_input(labels)


def transform(estimator: Any, X: Any) -> np.ndarray:
    """Euclidean (or, for spherical K-Means, cosine) distances ``(n, k)`` to the fitted centers, in X's dtype."""
    centers = fitted_centers(estimator)
    X_csr = check_sparse(X, estimator=estimator, reset=False)
    if _cosine(estimator):
        distances = np.clip(1 - np.asarray(unit_rows(X_csr) @ centers.T), 0, 2)
    else:
        distances = distance_matrix(X_csr, centers, budget_mib=estimator.working_memory)
    return placement(X_csr, None, X).to_input(distances.astype(X_csr.dtype))


def score(estimator: Any, X: Any, sample_weight: Any) -> float:
    """Minus the weighted inertia of sparse rows on the fitted centers."""
    from ._validation import check_sample_weight
    import array_api_compat.numpy as xp_numpy

    centers = fitted_centers(estimator)
    X_csr = check_sparse(X, estimator=estimator, reset=False)
    weights = np.asarray(check_sample_weight(sample_weight, X_csr, xp_numpy), dtype=np.float64)
    if _cosine(estimator):
        return -float(weights @ (1 - np.max(np.asarray(unit_rows(X_csr) @ centers.T), axis=1)))
    return -float(weights @ assign(X_csr, centers, budget_mib=estimator.working_memory)[1])


def inertia(X: sp.csr_matrix, sample_weight: Any, centers: Any, labels: Any) -> float:
    """``sum(w_i * ||x_i - c[label_i]||^2)`` of sparse rows, as a float."""
    weights64 = np.asarray(sample_weight, dtype=np.float64)
    return float(weights64 @ _own_sq_distances(X, row_sq_norms(X), centers, np.asarray(labels)))


def center_scores(X_block: sp.csr_matrix, centers: Any) -> np.ndarray:
    """``||c||^2 - 2 x.c`` ``(b, k)``, float64: the squared distances minus ``||x||^2`` (same argmin)."""
    centers64 = np.asarray(centers, dtype=np.float64)
    return np.einsum("ij,ij->i", centers64, centers64)[None, :] - 2 * np.asarray(X_block @ centers64.T)
