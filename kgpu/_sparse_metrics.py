"""Silhouette of SciPy sparse rows, tile by tile, never densifying ``X``.

The tiles of the distance matrix between sparse rows are dense (every pair
has a distance), so they are what the memory budget bounds: a block of query
rows against a chunk of all rows at a time, each tile reduced per cluster at
once (a sparse indicator matrix times the tile), as the dense silhouette does
(:func:`kgpu.metrics.silhouette_reference`). The tiles come from
scikit-learn's sparse-aware distance functions, so the scores are its own.
Memory: ``O(nnz + n + tile)``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ._blocks import block_rows, map_blocks, row_blocks
from ._sparse import DEFAULT_BUDGET_MIB, row_sq_norms

#: Fewest query rows a block holds before the other axis is chunked (as for dense rows).
_MIN_QUERY_ROWS = 64


def _tile(rows: sp.csr_matrix, query: sp.csr_matrix, metric: str, rows_sq: np.ndarray, query_sq: np.ndarray) -> np.ndarray:
    """Distances ``(len(rows), len(query))`` under ``metric``, dense float64."""
    from sklearn.metrics.pairwise import cosine_distances, euclidean_distances, manhattan_distances

    if metric in ("euclidean", "sqeuclidean"):
        return euclidean_distances(
            rows, query, X_norm_squared=rows_sq[:, None], Y_norm_squared=query_sq[None, :],
            squared=metric == "sqeuclidean",
        )
    if metric == "manhattan":
        return manhattan_distances(rows, query)
    return cosine_distances(rows, query)


def silhouette(X: sp.csr_matrix, codes: np.ndarray, n_labels: int, metric: str, *, budget_mib: float | None = None) -> np.ndarray:
    """Silhouette coefficient of every sparse row.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix of shape (n, d)
    codes : int64 ndarray of shape (n,)
        Cluster of every row, in ``[0, n_labels)``, every code present.
    n_labels : int
        At least 2.
    metric : {"euclidean", "sqeuclidean", "manhattan", "cosine"}
    budget_mib : float or None
        MiB one distance tile may take (default 16).

    Returns
    -------
    silhouette : float64 ndarray of shape (n,)
        ``(b - a) / max(a, b)``; 0 for a row alone in its cluster (as in scikit-learn).
    """
    import array_api_compat.numpy as xp

    from .metrics import _silhouette_from_sums

    budget = DEFAULT_BUDGET_MIB if budget_mib is None else budget_mib
    n_rows = X.shape[0]
    X = X.astype(np.float64)
    sq_norms = row_sq_norms(X)
    # (n_labels, n): the per-cluster sums of a tile are one sparse product.
    indicator = sp.csr_matrix((np.ones(n_rows), (codes, np.arange(n_rows))), shape=(n_labels, n_rows))
    counts = np.bincount(codes, minlength=n_labels).astype(np.float64)
    query_rows = block_rows(n_rows, n_rows * 8 * 2, xp, budget)
    chunk_rows = n_rows
    if query_rows < min(n_rows, _MIN_QUERY_ROWS):
        query_rows = min(n_rows, _MIN_QUERY_ROWS)
        chunk_rows = block_rows(n_rows, query_rows * 8 * 2, xp, budget)

    def one_block(start: int, stop: int) -> np.ndarray:
        query = X[start:stop]
        cluster_sums = np.zeros((n_labels, stop - start))
        for chunk_start, chunk_stop in row_blocks(n_rows, chunk_rows):
            distances = _tile(X[chunk_start:chunk_stop], query, metric, sq_norms[chunk_start:chunk_stop], sq_norms[start:stop])
            low, high = max(start, chunk_start), min(stop, chunk_stop)
            if low < high:
                # A row's distance to itself is 0 exactly, whatever the expansion left.
                own = np.arange(low, high)
                distances[own - chunk_start, own - start] = 0.0
            cluster_sums += indicator[:, chunk_start:chunk_stop] @ distances
        return np.asarray(_silhouette_from_sums(cluster_sums, codes[start:stop], counts, xp=xp))

    parts = map_blocks(one_block, row_blocks(n_rows, query_rows), xp)
    return np.concatenate(parts)


def refuse(function_name: str) -> TypeError:
    """The error for a score that does not take sparse rows (where scikit-learn does not either)."""
    return TypeError(
        f"{function_name} does not take sparse input (scikit-learn's does not either): it needs "
        "the cluster means of dense rows. Convert X with X.toarray() if it fits in memory, or "
        "use silhouette_score, which takes sparse rows."
    )


__all__ = ["refuse", "silhouette"]
