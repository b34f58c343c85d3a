"""k-means|| on SciPy sparse rows: the data passes of :mod:`kgpu._init_parallel` over CSR.

:class:`SparseRows` is the :class:`kgpu._init_parallel.CandidateRows` of a
CSR matrix, so the sparse seeding is the dense algorithm itself (same draws,
same order: the same seed picks the same candidates as for the dense
matrix). The candidates stay sparse rows; their distances to the data are
sparse products ``X_block @ candidates.T``, block by block, and the reduction
to ``k`` centers runs k-means++ and Lloyd on the sparse candidates
(:func:`kgpu._init_parallel.reduce_candidates`). Memory: ``O(nnz + n)`` plus
one ``(block, m)`` distance tile at a time; only the ``k`` final centers are
dense.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.sparse as sp

from ._blocks import map_blocks, row_blocks
from ._init_parallel import parallel_centers, pick_by_cumulative_weight, sample_rows
from ._sparse import row_sq_norms, rows_per_block


class SparseRows:
    """:class:`~kgpu._init_parallel.CandidateRows` over a CSR matrix on the host.

    Parameters
    ----------
    X : scipy.sparse.csr_matrix of shape (n, d)
    sample_weight : ndarray of shape (n,)
    budget_mib : float or None
        Memory budget of one block's dense distance tile.
    """

    def __init__(self, X: sp.csr_matrix, sample_weight: np.ndarray, *, budget_mib: float | None = None):
        import array_api_compat.numpy as xp

        self.xp = xp
        self.X = X
        self.n_rows = X.shape[0]
        self.weights64 = np.asarray(sample_weight, dtype=np.float64)
        self.x_sq_norms = row_sq_norms(X)
        self.budget_mib = budget_mib
        self.closest_sq_dist: np.ndarray | None = None

    def pick_by_weight(self, uniform: float) -> int:
        return pick_by_cumulative_weight(np.cumsum(self.weights64), uniform)

    def take(self, ids: np.ndarray) -> sp.csr_matrix:
        return self.X[np.asarray(ids, dtype=np.int64)]

    def _per_block(self, candidates: sp.csr_matrix, reduce: Any) -> list:
        """``reduce(start, sq_dist)`` of every block's ``(b, m)`` squared distances to ``candidates``."""
        candidates_t = sp.csr_matrix(candidates.T)
        candidate_sq_norms = row_sq_norms(candidates)

        def one_block(start: int, stop: int) -> Any:
            dots = (self.X[start:stop] @ candidates_t).toarray()
            sq_dist = self.x_sq_norms[start:stop, None] - 2 * dots + candidate_sq_norms[None, :]
            return reduce(start, np.maximum(sq_dist, 0, out=sq_dist))

        rows = rows_per_block(self.n_rows, candidates.shape[0], self.budget_mib)
        return map_blocks(one_block, row_blocks(self.n_rows, rows), self.xp)

    def update_closest(self, new_rows: sp.csr_matrix) -> None:
        previous = self.closest_sq_dist

        def fold(start: int, sq_dist: np.ndarray) -> np.ndarray:
            block_min = sq_dist.min(axis=1)
            return block_min if previous is None else np.minimum(block_min, previous[start:start + block_min.shape[0]])

        self.closest_sq_dist = np.concatenate(self._per_block(new_rows, fold))

    def potential(self) -> float:
        return float(self.closest_sq_dist @ self.weights64)

    def sample(self, round_key: int, scale: float) -> np.ndarray:
        return sample_rows(self.closest_sq_dist, self.weights64, round_key, scale, xp=self.xp, budget_mib=self.budget_mib)

    def attracted_weight(self, candidates: sp.csr_matrix) -> np.ndarray:
        n_candidates = candidates.shape[0]

        def weigh(start: int, sq_dist: np.ndarray) -> np.ndarray:
            labels = np.argmin(sq_dist, axis=1)
            return np.bincount(labels, weights=self.weights64[start:start + labels.shape[0]], minlength=n_candidates)

        parts = self._per_block(candidates, weigh)
        total = parts[0]
        for part in parts[1:]:
            total = total + part
        return total

    def weights_host(self) -> np.ndarray:
        return self.weights64


def kmeans_parallel_centers(
    X: sp.csr_matrix,
    n_clusters: int,
    sample_weight: np.ndarray,
    random_state: np.random.RandomState,
    *,
    budget_mib: float | None = None,
) -> np.ndarray:
    """Initial centers of sparse rows by k-means||: dense ``(n_clusters, d)``, X's dtype.

    See :func:`kgpu._init_parallel.kmeans_parallel_centers` (same defaults:
    5 rounds, oversampling factor 2, 30 weighted Lloyd iterations on the
    candidates).
    """
    centers = parallel_centers(SparseRows(X, sample_weight, budget_mib=budget_mib), n_clusters, random_state)
    if sp.issparse(centers):  # fewer candidates than clusters: the rows themselves
        centers = centers.toarray()
    return np.asarray(centers).astype(X.dtype)


__all__ = ["SparseRows", "kmeans_parallel_centers"]
