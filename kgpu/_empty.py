"""The empty-cluster policy, shared by every centroid algorithm.

Policy: when an update leaves clusters without (positive-weight) members, each
empty cluster is re-seeded with one of the points that are farthest from their
current center (the largest contributions to the objective), farthest first;
each such point is taken out of the cluster it belonged to. A cluster that
still has no weight afterwards keeps its previous center. No center is ever
left at zero or NaN.

This is scikit-learn's rule for Lloyd (``_relocate_empty_clusters``), with the
farthest points taken in sorted order and zero-weight points never chosen.
:func:`relocation_plan` states the rule once; Lloyd applies it to its
per-cluster sums (:func:`relocate_empty_clusters`), K-Medians and K-Medoids to
their labels (:func:`relocate_empty_labels`), with the point cost measured in
their own metric.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._backend import device_of, to_numpy
from ._stream import take_rows


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


def relocation_plan(
    cluster_weights: Any, point_cost: Any, sample_weight: Any, *, xp: Any
) -> tuple[np.ndarray, np.ndarray]:
    """Which empty clusters are re-seeded, and by which points.

    Parameters
    ----------
    cluster_weights : array of shape (k,)
        Total weight of each cluster.
    point_cost : array of shape (n,)
        Each point's cost under the algorithm's objective (its distance, or
        squared distance, to its own center).
    sample_weight : array of shape (n,)
    xp : namespace

    Returns
    -------
    empty : ndarray of int64, shape (m,)
        Empty clusters in increasing order.
    donors : ndarray of int64, shape (m,)
        ``donors[i]`` re-seeds ``empty[i]``: the positive-weight points of
        largest cost, farthest first. Both arrays are cut to the same length
        when there are fewer such points than empty clusters.
    """
    empty = empty_cluster_ids(cluster_weights)
    if empty.size == 0 or not bool(xp.any(point_cost > 0)):
        # Every point sits on its center (more clusters than distinct points):
        # moving one would only empty another cluster (scikit-learn's rule too).
        no_plan = np.empty(0, dtype=np.int64)
        return no_plan, no_plan
    donors = farthest_points(point_cost, sample_weight, empty.size, xp=xp)
    return empty[: donors.size].astype(np.int64), donors


def relocate_empty_labels(
    labels: Any, cluster_weights: Any, point_cost: Any, sample_weight: Any, *, xp: Any
) -> tuple[Any, np.ndarray, np.ndarray]:
    """Apply the policy to labels: each donor point moves to the cluster it re-seeds.

    For algorithms whose update is not a sum (medians, medoids): the new
    labels are given to the update step, so a re-seeded cluster's center
    becomes its donor, and the cluster the donor left is updated without it.

    Parameters
    ----------
    labels : integer array of shape (n,)
    cluster_weights : array of shape (k,)
        Total weight of each cluster under ``labels``.
    point_cost : array of shape (n,)
    sample_weight : array of shape (n,)
    xp : namespace

    Returns
    -------
    labels : integer array of shape (n,)
        A new array when a cluster was re-seeded, else ``labels`` itself.
    reseeded : ndarray of int64
        The clusters that were re-seeded.
    donors : ndarray of int64
        The points that re-seeded them, in the same order.
    """
    reseeded, donors = relocation_plan(cluster_weights, point_cost, sample_weight, xp=xp)
    if reseeded.size == 0:
        return labels, reseeded, donors
    new_labels = xp.asarray(labels, copy=True)
    for cluster, donor in zip(reseeded.tolist(), donors.tolist()):
        new_labels[donor : donor + 1] = cluster
    return new_labels, reseeded, donors


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
    empty, donors = relocation_plan(weights, point_cost, sample_weight, xp=xp)
    if empty.size == 0:
        # Nothing to re-seed (or no positive-weight point left to do it).
        return sums, weights, empty_cluster_ids(weights)
    sums_host = to_numpy(sums).copy()
    weights_host = to_numpy(weights).copy()
    donor_ids = xp.asarray(donors, device=device_of(X))
    labels_host = to_numpy(xp.take(labels, donor_ids, axis=0))
    donor_rows = to_numpy(take_rows(X, donors, xp=xp)).astype(np.float64)
    donor_weights = to_numpy(xp.take(sample_weight, donor_ids, axis=0)).astype(np.float64)
    for cluster, row, weight, old_cluster in zip(empty, donor_rows, donor_weights, labels_host):
        sums_host[old_cluster] -= weight * row
        weights_host[old_cluster] -= weight
        sums_host[cluster] = weight * row
        weights_host[cluster] = weight
    still_empty = np.flatnonzero(weights_host <= 0)
    device = device_of(sums)
    return (
        xp.asarray(sums_host, device=device),
        xp.asarray(weights_host, device=device),
        still_empty,
    )
