"""The empty-cluster policy, shared by every centroid algorithm.

Policy: when an update leaves clusters without (positive-weight) members, each
empty cluster is re-seeded with one of the points that are farthest from their
current center (the largest contributions to the objective), farthest first;
each such point is taken out of the cluster it belonged to. A cluster that
still has no weight afterwards keeps its previous center. No center is ever
left at zero or NaN.

This is scikit-learn's rule for Lloyd (``_relocate_empty_clusters``), with the
farthest points taken in sorted order and zero-weight points never chosen.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._backend import to_numpy


def empty_cluster_ids(weights: Any) -> np.ndarray:
    """Host indices of the clusters whose total weight is zero."""
    return np.flatnonzero(to_numpy(weights) <= 0)


def farthest_points(point_cost: Any, sample_weight: Any, n_points: int, *, xp: Any) -> np.ndarray:
    """Host indices of the ``n_points`` positive-weight points of largest cost.

    Parameters
    ----------
    point_cost : array of shape (n,)
        Distance (or squared distance) of each point to its own center.
    sample_weight : array of shape (n,)
    n_points : int
    xp : namespace

    Returns
    -------
    indices : ndarray of shape (<= n_points,), int64, farthest first
    """
    eligible_cost = xp.where(sample_weight > 0, point_cost, xp.full_like(point_cost, -1.0))
    order = xp.argsort(eligible_cost, descending=True, stable=True)[:n_points]
    order = to_numpy(order).astype(np.int64)
    keep = to_numpy(eligible_cost)[order] >= 0
    return order[keep]


def relocate_empty_clusters(
    X: Any,
    sample_weight: Any,
    labels: Any,
    point_cost: Any,
    sums: Any,
    weights: Any,
    *,
    xp: Any,
) -> tuple[Any, Any, np.ndarray]:
    """Apply the policy to Lloyd's per-cluster weighted sums and weights.

    Parameters
    ----------
    X : array of shape (n, d)
    sample_weight : array of shape (n,)
    labels : integer array of shape (n,)
    point_cost : array of shape (n,)
        Squared distance of each point to its (previous) center.
    sums : array of shape (k, d), float64
    weights : array of shape (k,), float64

    Returns
    -------
    sums, weights : arrays
        Updated copies.
    still_empty : ndarray of int
        Clusters that could not be re-seeded (they keep their previous center).
    """
    empty = empty_cluster_ids(weights)
    if empty.size == 0:
        return sums, weights, empty
    donors = farthest_points(point_cost, sample_weight, empty.size, xp=xp)
    sums_host = to_numpy(sums).copy()
    weights_host = to_numpy(weights).copy()
    donor_ids = xp.asarray(donors, device=_device(X))
    labels_host = to_numpy(xp.take(labels, donor_ids, axis=0))
    donor_rows = to_numpy(xp.take(X, donor_ids, axis=0)).astype(np.float64)
    donor_weights = to_numpy(xp.take(sample_weight, donor_ids, axis=0)).astype(np.float64)
    for cluster, row, weight, old_cluster in zip(empty, donor_rows, donor_weights, labels_host):
        sums_host[old_cluster] -= weight * row
        weights_host[old_cluster] -= weight
        sums_host[cluster] = weight * row
        weights_host[cluster] = weight
    still_empty = np.flatnonzero(weights_host <= 0)
    device = _device(sums)
    return (
        xp.asarray(sums_host, device=device),
        xp.asarray(weights_host, device=device),
        still_empty,
    )


def _device(x: Any) -> Any:
    import array_api_compat

    return array_api_compat.device(x)
