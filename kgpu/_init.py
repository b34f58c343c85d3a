"""Initial centers: greedy k-means++ (and its k-medians++ / k-medoids++ forms), Forgy ("random"), random partition.

Every random draw is made on the host from a NumPy ``RandomState``, in the same
order as scikit-learn, so one seed gives the same initial centers on every
backend (and the same as scikit-learn's in float64). Distances are computed on
the device; only scalars and the few chosen indices cross to the host.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._backend import device_of, to_numpy
from ._blocks import block_rows, map_blocks, row_blocks
from ._distances import Metric, blockwise_row_sq_norms, distance_bytes_per_row, pairwise_distances, row_sq_norms
from ._stream import StreamedRows, take_rows
from ._segment import segment_sum, segment_weight


def _host_probabilities(sample_weight: Any) -> np.ndarray:
    weights = to_numpy(sample_weight).astype(np.float64)
    return weights / weights.sum()


#: K-Means' seeding metric: D^2 sampling is sampling by squared Euclidean distance.
_SQEUCLIDEAN = Metric("sqeuclidean", 2.0)


def kmeans_plusplus_indices(
    X: Any,
    n_clusters: int,
    sample_weight: Any,
    random_state: np.random.RandomState,
    *,
    xp: Any,
    x_sq_norms: Any = None,
    n_local_trials: int | None = None,
    budget_mib: float | None = None,
) -> np.ndarray:
    """Row indices of the greedy k-means++ seeds (Arthur & Vassilvitskii 2007).

    At each step ``n_local_trials`` candidates are drawn with probability
    proportional to ``w_i * D(x_i)^2`` and the one that lowers the potential
    most is kept (the greedy variant scikit-learn uses).

    Parameters
    ----------
    X : array of shape (n, d)
    n_clusters : int
    sample_weight : array of shape (n,)
    random_state : numpy.random.RandomState
        Host generator; every draw is made from it.
    xp : namespace
    x_sq_norms : array of shape (n,) or None
    n_local_trials : int or None
        Candidates per step; default ``2 + int(log(n_clusters))``.
    budget_mib : float or None
        Memory budget of one row block in MiB (default: the backend's).

    Returns
    -------
    indices : ndarray of shape (n_clusters,), int64 (host)
    """
    return plusplus_indices(
        X, n_clusters, sample_weight, random_state, xp=xp, metric=_SQEUCLIDEAN,
        x_sq_norms=x_sq_norms, n_local_trials=n_local_trials, budget_mib=budget_mib,
    )


def plusplus_indices(
    X: Any,
    n_clusters: int,
    sample_weight: Any,
    random_state: np.random.RandomState,
    *,
    xp: Any,
    metric: Metric,
    power: float = 1.0,
    x_sq_norms: Any = None,
    n_local_trials: int | None = None,
    budget_mib: float | None = None,
) -> np.ndarray:
    """Greedy "++" seeding under any metric: sampling proportional to ``w_i * D(x_i)^power``.

    ``D`` is the distance from a row to its closest seed so far under
    ``metric``. k-means++ is ``metric="sqeuclidean"`` (``D^2`` sampling);
    k-medians++ is ``"manhattan"`` and k-medoids++ the medoids' metric, both
    with ``power=1``, so that the potential is the algorithm's own objective.
    Each step draws ``n_local_trials`` candidates and keeps the one that lowers
    the potential ``sum(w_i * D(x_i)^power)`` most.

    Parameters
    ----------
    X : array of shape (n, d)
    n_clusters : int
    sample_weight : array of shape (n,)
    random_state : numpy.random.RandomState
        Host generator; every draw is made from it, in scikit-learn's order.
    xp : namespace
    metric : Metric
        From :func:`kgpu._distances.check_metric`.
    power : float
        Exponent applied to the distances.
    x_sq_norms : array of shape (n,) or None
        ``||x||^2`` of the rows (Euclidean metrics only; computed when ``None``).
    n_local_trials : int or None
        Candidates per step; default ``2 + int(log(n_clusters))``.
    budget_mib : float or None
        Memory budget of one row block in MiB (default: the backend's).

    Returns
    -------
    indices : ndarray of shape (n_clusters,), int64 (host)
    """
    n_samples = X.shape[0]
    if n_local_trials is None:
        n_local_trials = 2 + int(np.log(n_clusters))
    euclidean = metric.name in ("sqeuclidean", "euclidean")
    if x_sq_norms is None and euclidean:
        x_sq_norms = blockwise_row_sq_norms(X, xp=xp, budget_mib=budget_mib)
    device = device_of(X)
    # Potentials and cumulative sums in float64: the draws compare against
    # them, so float32 rounding would make the picks depend on the backend.
    weights64 = xp.astype(sample_weight, xp.float64)
    bytes_per_row = max(
        (n_local_trials + X.shape[1] + 2) * 8, distance_bytes_per_row(metric, n_local_trials, X.shape[1], 8)
    )
    rows_per_block = block_rows(n_samples, bytes_per_row, xp, budget_mib)
    blocks = row_blocks(n_samples, rows_per_block)

    def block_distances(candidates: Any, candidate_norms: Any, start: int, stop: int) -> Any:
        """``D^power`` ``(b, m)`` from rows ``start:stop`` to ``candidates``, float64."""
        distances = pairwise_distances(
            X[start:stop, :], candidates, metric, xp=xp,
            x_sq_norms=x_sq_norms[start:stop] if euclidean else None, center_sq_norms=candidate_norms,
        )
        distances = xp.astype(distances, xp.float64)
        return distances if power == 1 else distances**power

    def candidate_costs(candidate_ids: np.ndarray) -> tuple[Any, Any]:
        """Every row's cost ``(n, m)`` if each candidate were added, and their potentials ``(m,)``."""
        candidates = take_rows(X, candidate_ids, xp=xp)
        norms = row_sq_norms(candidates, xp=xp) if euclidean else None

        def one_block(start: int, stop: int) -> Any:
            return xp.minimum(closest_cost[start:stop, None], block_distances(candidates, norms, start, stop))

        parts = map_blocks(one_block, blocks, xp)
        costs = xp.concat(parts, axis=0) if len(parts) > 1 else parts[0]
        return costs, xp.sum(costs * weights64[:, None], axis=0)

    def streamed_step(candidate_ids: np.ndarray) -> tuple[Any, int, float]:
        """:func:`candidate_costs` without the ``(n, m)`` matrix, for data streamed from the host.

        One pass sums the potentials block by block; a second recomputes the
        same block distances and keeps the winner's column, so the costs are
        exactly those of the in-memory path.
        """
        candidates = take_rows(X, candidate_ids, xp=xp)
        norms = row_sq_norms(candidates, xp=xp) if euclidean else None

        def block_costs(start: int, stop: int) -> Any:
            return xp.minimum(closest_cost[start:stop, None], block_distances(candidates, norms, start, stop))

        def block_potentials(start: int, stop: int) -> Any:
            return xp.sum(block_costs(start, stop) * weights64[start:stop, None], axis=0)

        parts = map_blocks(block_potentials, blocks, xp)
        potentials = parts[0]
        for part in parts[1:]:
            potentials = potentials + part
        best = int(xp.argmin(potentials))
        kept = xp.empty((n_samples,), dtype=xp.float64, device=device)

        def keep_best(start: int, stop: int) -> None:
            kept[start:stop] = block_costs(start, stop)[:, best]

        map_blocks(keep_best, blocks, xp)
        return kept, best, float(potentials[best])

    indices = np.empty(n_clusters, dtype=np.int64)
    indices[0] = random_state.choice(n_samples, p=_host_probabilities(sample_weight))
    first = take_rows(X, indices[:1], xp=xp)
    first_norms = row_sq_norms(first, xp=xp) if euclidean else None
    parts = map_blocks(lambda start, stop: block_distances(first, first_norms, start, stop)[:, 0], blocks, xp)
    closest_cost = xp.concat(parts) if len(parts) > 1 else parts[0]
    current_potential = float(xp.sum(closest_cost * weights64))
    # Out-of-core data must not meet an (n, n_local_trials) matrix on the device.
    streamed = isinstance(X, StreamedRows)

    for c in range(1, n_clusters):
        thresholds = random_state.uniform(size=n_local_trials) * current_potential
        cumulative = xp.cumulative_sum(weights64 * closest_cost)
        candidate_ids = xp.searchsorted(cumulative, xp.asarray(thresholds, dtype=xp.float64, device=device))
        del cumulative  # one n-vector fewer alive during the next pass
        candidate_ids = np.minimum(to_numpy(candidate_ids).astype(np.int64), n_samples - 1)
        if streamed:
            closest_cost, best, current_potential = streamed_step(candidate_ids)
        else:
            costs, potentials = candidate_costs(candidate_ids)
            best = int(xp.argmin(potentials))
            current_potential = float(potentials[best])
            closest_cost = costs[:, best]
        indices[c] = candidate_ids[best]
    return indices


def forgy_indices(n_samples: int, n_clusters: int, sample_weight: Any, random_state: np.random.RandomState) -> np.ndarray:
    """``n_clusters`` distinct rows drawn with probability proportional to weight."""
    return random_state.choice(
        n_samples, size=n_clusters, replace=False, p=_host_probabilities(sample_weight)
    ).astype(np.int64)


def random_partition_centers(
    X: Any,
    n_clusters: int,
    sample_weight: Any,
    random_state: np.random.RandomState,
    *,
    xp: Any,
    budget_mib: float | None = None,
) -> Any:
    """Centers of a random partition: each row gets a uniform random label, then means.

    A part that receives no (positive-weight) row is given a random distinct
    row instead, so no center is ever undefined.
    """
    n_samples = X.shape[0]
    device = device_of(X)
    labels = xp.asarray(random_state.randint(n_clusters, size=n_samples).astype(np.int64), device=device)

    def block_sums(start: int, stop: int) -> Any:
        return segment_sum(X[start:stop, :], labels[start:stop], n_clusters, sample_weight[start:stop], xp=xp)

    parts = map_blocks(block_sums, row_blocks(n_samples, block_rows(n_samples, (X.shape[1] + 2) * 8, xp, budget_mib)), xp)
    sums = parts[0]
    for part in parts[1:]:
        sums = sums + part
    totals = segment_weight(labels, n_clusters, sample_weight, xp=xp, dtype=X.dtype)
    empty = to_numpy(totals) <= 0
    safe_totals = xp.where(totals > 0, totals, xp.ones_like(totals))
    centers = sums / safe_totals[:, None]
    if np.any(empty):
        fill = forgy_indices(n_samples, int(empty.sum()), sample_weight, random_state)
        fill_rows = take_rows(X, fill, xp=xp)
        rows = [fill_rows[j : j + 1, :] for j in range(fill.shape[0])]
        parts, next_fill = [], 0
        for j in range(n_clusters):
            if empty[j]:
                parts.append(rows[next_fill])
                next_fill += 1
            else:
                parts.append(centers[j : j + 1, :])
        centers = xp.concat(parts, axis=0)
    return centers

