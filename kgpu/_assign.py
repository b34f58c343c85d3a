"""Assignment: nearest center of every row, in row blocks sized to a memory budget.

These are the E-step kernels: one GEMM and one argmin per block. The fused
:func:`assign_and_accumulate` also returns each cluster's weighted sum and
weight, which is all the Lloyd M-step needs, so the data is read once per
iteration.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._blocks import block_rows, map_blocks, row_blocks
from ._distances import score_operands, sq_distance_to_own_center, sq_euclidean_scores
from ._segment import segment_sum, segment_weight


class Assignment(NamedTuple):
    """Nearest center of every row.

    Attributes
    ----------
    labels : integer array of shape (n,)
    min_sq_dist : array of shape (n,)
        Squared Euclidean distance to that center (exact, not expanded).
    """

    labels: Any
    min_sq_dist: Any


class Accumulation(NamedTuple):
    """One fused E-step plus the sums the M-step needs.

    Attributes
    ----------
    labels : integer array of shape (n,)
    sums : array of shape (k, d), float64
        ``sum(w_i * x_i)`` over the rows of each cluster.
    weights : array of shape (k,), float64
        ``sum(w_i)`` over the rows of each cluster.
    """

    labels: Any
    sums: Any
    weights: Any


def assignment_block_rows(n_rows: int, n_clusters: int, n_features: int, itemsize: int, xp: Any, budget_mib: float | None = None) -> int:
    """Rows per assignment block: the ``(b, k)`` scores and a ``(b, d)`` gather fit the budget."""
    return block_rows(n_rows, (n_clusters + n_features + 2) * itemsize, xp, budget_mib)


def nearest_centers(x_block: Any, neg2_centers_t: Any, center_sq_norms: Any, *, xp: Any) -> Any:
    """Index of the nearest center for every row of one block: shape ``(b,)``."""
    scores = sq_euclidean_scores(x_block, neg2_centers_t, center_sq_norms, xp=xp)
    return xp.argmin(scores, axis=1)


def assign(X: Any, centers: Any, *, xp: Any, rows_per_block: int | None = None) -> Assignment:
    """Nearest center and squared distance to it for every row of ``X``.

    Parameters
    ----------
    X : array of shape (n, d)
    centers : array of shape (k, d)
    xp : namespace
    rows_per_block : int or None
        Block height (default: from the backend's memory budget).

    Returns
    -------
    Assignment
    """
    n_rows, n_features = X.shape
    if rows_per_block is None:
        rows_per_block = assignment_block_rows(n_rows, centers.shape[0], n_features, itemsize(X, xp), xp)
    neg2_centers_t, center_sq_norms = score_operands(centers, xp=xp)

    def one_block(start: int, stop: int) -> tuple[Any, Any]:
        x_block = X[start:stop, :]
        labels_block = nearest_centers(x_block, neg2_centers_t, center_sq_norms, xp=xp)
        return labels_block, sq_distance_to_own_center(x_block, centers, labels_block, xp=xp)

    parts = map_blocks(one_block, row_blocks(n_rows, rows_per_block), xp)
    labels = xp.concat([labels_block for labels_block, _ in parts])
    min_sq_dist = xp.concat([dist_block for _, dist_block in parts])
    return Assignment(labels, min_sq_dist)


def assign_and_accumulate(
    X: Any,
    sample_weight: Any,
    centers: Any,
    *,
    xp: Any,
    rows_per_block: int,
) -> Accumulation:
    """Fused Lloyd E-step and M-step sums.

    Parameters
    ----------
    X : array of shape (n, d)
    sample_weight : array of shape (n,)
    centers : array of shape (k, d)
    xp : namespace
    rows_per_block : int

    Returns
    -------
    Accumulation
        Per-block partial sums are added in float64, so the result does not
        drift with the number of blocks.
    """
    n_rows = X.shape[0]
    n_clusters = centers.shape[0]
    neg2_centers_t, center_sq_norms = score_operands(centers, xp=xp)

    def one_block(start: int, stop: int) -> tuple[Any, Any, Any]:
        x_block = X[start:stop, :]
        weight_block = sample_weight[start:stop]
        labels_block = nearest_centers(x_block, neg2_centers_t, center_sq_norms, xp=xp)
        sums = segment_sum(x_block, labels_block, n_clusters, weight_block, xp=xp)
        weights = segment_weight(labels_block, n_clusters, weight_block, xp=xp, dtype=xp.float64)
        return labels_block, xp.astype(sums, xp.float64), weights

    parts = map_blocks(one_block, row_blocks(n_rows, rows_per_block), xp)
    labels = xp.concat([part[0] for part in parts]) if len(parts) > 1 else parts[0][0]
    sums = parts[0][1]
    weights = parts[0][2]
    for _, block_sums, block_weights in parts[1:]:
        sums = sums + block_sums
        weights = weights + block_weights
    return Accumulation(labels, sums, weights)


def weighted_inertia(X: Any, sample_weight: Any, centers: Any, labels: Any, *, xp: Any, rows_per_block: int | None = None) -> float:
    """``sum(w_i * ||x_i - c[label_i]||^2)``, computed exactly (no expansion), as a float."""
    n_rows, n_features = X.shape
    if rows_per_block is None:
        rows_per_block = assignment_block_rows(n_rows, 1, n_features, itemsize(X, xp), xp)

    def one_block(start: int, stop: int) -> Any:
        dist = sq_distance_to_own_center(X[start:stop, :], centers, labels[start:stop], xp=xp)
        return xp.sum(xp.astype(dist * sample_weight[start:stop], xp.float64))

    return float(sum(float(part) for part in map_blocks(one_block, row_blocks(n_rows, rows_per_block), xp)))


def itemsize(X: Any, xp: Any) -> int:
    """Bytes per element of a float32 / float64 array."""
    return 4 if X.dtype == xp.float32 else 8
