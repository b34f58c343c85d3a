"""Initial centers: greedy k-means++ (and its k-medians++ / k-medoids++ forms), Forgy ("random"), random partition.

Every random draw is made on the host from a NumPy ``RandomState``, in the same
order as scikit-learn, so one seed gives the same initial centers on every
backend (and the same as scikit-learn's in float64). Distances are computed on
the device; only scalars and the few chosen indices cross to the host.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

from ._backend import device_of, from_host, to_host, to_numpy
from ._blocks import block_rows, map_blocks, row_blocks
from ._distances import Metric, blockwise_row_sq_norms, distance_bytes_per_row, pairwise_distances, row_sq_norms
from ._stream import StreamedRows, take_rows
from ._segment import segment_sum, segment_weight
from ._kernels.dispatch import ANY_BACKEND, call, register


class PlusPlusStep(NamedTuple):
    """Outcome of one greedy "++" step over every row.

    Attributes
    ----------
    best : 0-d int64 array
        Position (in ``candidates``) of the candidate that lowers the potential most.
    potential : 0-d float64 array
        ``sum(w_i * min(closest_cost_i, D(x_i, best)^power))``.
    closest_cost : array of shape (n,), float64
        Every row's cost once that candidate is added.
    """

    best: Any
    potential: Any
    closest_cost: Any


def plusplus_step(
    X: Any,
    candidates: Any,
    closest_cost: Any,
    weights64: Any,
    *,
    xp: Any,
    metric: Metric,
    power: float,
    x_sq_norms: Any,
    rows_per_block: int,
    out: Any = None,
) -> PlusPlusStep:
    """One greedy "++" update of the closest costs (operation ``"plusplus_step"``).

    Runs the implementation the kernel table picks for ``xp``
    (:mod:`kgpu._kernels.dispatch`); :func:`plusplus_step_reference` is the
    array-API reference, documented there.
    """
    options = {} if out is None else {"out": out}
    return call(
        "plusplus_step", X, candidates, closest_cost, weights64, xp=xp, metric=metric, power=power,
        x_sq_norms=x_sq_norms, rows_per_block=rows_per_block, **options,
    )


@register("plusplus_step", ANY_BACKEND, name="array-api")
def plusplus_step_reference(
    X: Any,
    candidates: Any,
    closest_cost: Any,
    weights64: Any,
    *,
    xp: Any,
    metric: Metric,
    power: float,
    x_sq_norms: Any,
    rows_per_block: int,
    out: Any = None,
) -> PlusPlusStep:
    """One greedy "++" step: the candidate that lowers the potential most, and the new costs.

    Parameters
    ----------
    X : array of shape (n, d)
    candidates : array of shape (m, d)
        The rows drawn this step.
    closest_cost : array of shape (n,), float64
        ``D(x_i)^power`` to the closest seed so far.
    weights64 : array of shape (n,), floating
        Row weights; the products are taken in float64 (a float32 array is
        cast one block at a time, exactly).
    xp : namespace
    metric : Metric
    power : float
        Exponent applied to the distances.
    x_sq_norms : array of shape (n,) or None
        ``||x||^2`` of the rows (Euclidean metrics).
    rows_per_block : int
    out : array of shape (n,), float64, or None
        Where to write the new costs; may be ``closest_cost`` itself (each
        block reads its rows' old costs before writing them), so a seeding
        holds one cost vector, not two. ``None``: a new array.

    Returns
    -------
    PlusPlusStep
        Everything stays on the device: the step makes no host sync. Ties
        between candidates go to the first drawn.
    """
    euclidean = metric.name in ("sqeuclidean", "euclidean")
    candidate_norms = row_sq_norms(candidates, xp=xp) if euclidean else None
    blocks = row_blocks(X.shape[0], rows_per_block)

    def block_costs(start: int, stop: int, chosen: Any, chosen_norms: Any) -> Any:
        distances = pairwise_distances(
            X[start:stop, :], chosen, metric, xp=xp,
            x_sq_norms=x_sq_norms[start:stop] if euclidean else None, center_sq_norms=chosen_norms,
        )
        distances = xp.astype(distances, xp.float64)
        if power != 1:
            distances = distances**power
        return xp.minimum(closest_cost[start:stop, None], distances)

    def block_weights(start: int, stop: int) -> Any:
        return xp.astype(weights64[start:stop, None], xp.float64, copy=False)

    # Two passes and no (n, m) cost matrix: in float64 it would take 8 m
    # bytes a row, as much as float32 data of 2 m features. The first pass
    # sums each candidate's potential block by block (in block order); the
    # second recomputes only the winner's column.
    parts = map_blocks(
        lambda start, stop: xp.sum(
            block_costs(start, stop, candidates, candidate_norms) * block_weights(start, stop), axis=0
        ),
        blocks, xp,
    )
    potentials = parts[0]
    for part in parts[1:]:
        potentials = potentials + part
    best = xp.argmin(potentials)
    best_column = xp.reshape(xp.astype(best, xp.int64), (1,))
    winner = xp.take(candidates, best_column, axis=0)
    winner_norms = None if candidate_norms is None else xp.take(candidate_norms, best_column, axis=0)
    closest = out if out is not None else xp.empty((X.shape[0],), dtype=xp.float64, device=device_of(closest_cost))

    def keep_winner(start: int, stop: int) -> None:
        # Rows start:stop only: safe when ``closest`` is ``closest_cost``.
        closest[start:stop] = block_costs(start, stop, winner, winner_norms)[:, 0]

    map_blocks(keep_winner, blocks, xp)
    return PlusPlusStep(best, xp.take(potentials, best_column)[0], closest)


def _host_probabilities(sample_weight: Any) -> np.ndarray:
    """``w / sum(w)`` in float64, a new host array (divided in place: one ``n``-vector, not two)."""
    probabilities = to_numpy(sample_weight).astype(np.float64)
    probabilities /= probabilities.sum()
    return probabilities


# The two weighted draws below are NumPy's legacy ``RandomState.choice`` with
# ``p`` (whose stream NumPy keeps stable), step for step: the same uniform
# numbers, cumulative sums and searches, so the same rows, as scikit-learn
# draws them. They differ only in working on ``probabilities`` in place,
# where ``choice`` copies it and builds its cumulative sum beside it: one or
# two ``n``-vectors fewer at a point where the working copy is alive.


def _choose_one(random_state: np.random.RandomState, probabilities: np.ndarray) -> int:
    """``random_state.choice(len(probabilities), p=probabilities)``; overwrites ``probabilities``."""
    cumulative = np.cumsum(probabilities, out=probabilities)
    cumulative /= cumulative[-1]
    return int(cumulative.searchsorted(random_state.random_sample(), side="right"))


def _choose_distinct(random_state: np.random.RandomState, probabilities: np.ndarray, size: int) -> np.ndarray:
    """``random_state.choice(len(probabilities), size, replace=False, p=probabilities)``; overwrites ``probabilities``."""
    if np.count_nonzero(probabilities > 0) < size:
        raise ValueError("Fewer non-zero entries in p than size")
    found = np.zeros(size, dtype=np.int64)
    cumulative = np.empty_like(probabilities)
    n_unique = 0
    while n_unique < size:
        uniform = random_state.rand(size - n_unique)
        if n_unique > 0:
            probabilities[found[0:n_unique]] = 0
        np.cumsum(probabilities, out=cumulative)
        cumulative /= cumulative[-1]
        new = cumulative.searchsorted(uniform, side="right")
        _, unique_indices = np.unique(new, return_index=True)
        unique_indices.sort()
        new = new.take(unique_indices)
        found[n_unique : n_unique + new.size] = new
        n_unique += new.size
    return found


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
    device = device_of(X)
    # Potentials and cumulative sums in float64: the draws compare against
    # them, so float32 rounding would make the picks depend on the backend.
    # The weights are cast one block at a time (exactly): no float64 copy of
    # them is kept, and neither is any other n-vector but the costs.
    bytes_per_row = max(
        (n_local_trials + X.shape[1] + 2) * 8, distance_bytes_per_row(metric, n_local_trials, X.shape[1], 8)
    )
    rows_per_block = block_rows(n_samples, bytes_per_row, xp, budget_mib)
    blocks = row_blocks(n_samples, rows_per_block)

    def block_weights(start: int, stop: int) -> Any:
        return xp.astype(sample_weight[start:stop], xp.float64, copy=False)

    def block_distances(candidates: Any, candidate_norms: Any, start: int, stop: int) -> Any:
        """``D^power`` ``(b, m)`` from rows ``start:stop`` to ``candidates``, float64."""
        block = X[start:stop, :]
        block_norms = None
        if euclidean:
            # Before the norms of every row exist (the first seed), each block's own: the same values.
            block_norms = x_sq_norms[start:stop] if x_sq_norms is not None else row_sq_norms(block, xp=xp)
        distances = pairwise_distances(block, candidates, metric, xp=xp, x_sq_norms=block_norms, center_sq_norms=candidate_norms)
        distances = xp.astype(distances, xp.float64)
        return distances if power == 1 else distances**power

    def streamed_step(candidate_ids: np.ndarray, closest_cost: Any) -> tuple[Any, int, float]:
        """:func:`plusplus_step` without the ``(n, m)`` matrix, for data streamed from the host.

        One pass sums the potentials block by block; a second recomputes the
        same block distances and keeps the winner's column (in place of the
        old costs), so the costs are exactly those of the in-memory path.
        """
        candidates = take_rows(X, candidate_ids, xp=xp)
        norms = row_sq_norms(candidates, xp=xp) if euclidean else None

        def block_costs(start: int, stop: int) -> Any:
            return xp.minimum(closest_cost[start:stop, None], block_distances(candidates, norms, start, stop))

        def block_potentials(start: int, stop: int) -> Any:
            return xp.sum(block_costs(start, stop) * block_weights(start, stop)[:, None], axis=0)

        parts = map_blocks(block_potentials, blocks, xp)
        potentials = parts[0]
        for part in parts[1:]:
            potentials = potentials + part
        best = int(xp.argmin(potentials))

        def keep_best(start: int, stop: int) -> None:
            closest_cost[start:stop] = block_costs(start, stop)[:, best]

        map_blocks(keep_best, blocks, xp)
        return closest_cost, best, float(potentials[best])

    first_index = _choose_one(random_state, _host_probabilities(sample_weight))
    first = take_rows(X, np.asarray([first_index], dtype=np.int64), xp=xp)
    first_norms = row_sq_norms(first, xp=xp) if euclidean else None
    closest_cost = xp.empty((n_samples,), dtype=xp.float64, device=device)

    def first_costs(start: int, stop: int) -> None:
        closest_cost[start:stop] = block_distances(first, first_norms, start, stop)[:, 0]

    map_blocks(first_costs, blocks, xp)
    current_potential = _weighted_total(closest_cost, block_weights, xp=xp)
    if x_sq_norms is None and euclidean:
        # Only now: the first potential's products and these norms are never alive together.
        x_sq_norms = blockwise_row_sq_norms(X, xp=xp, budget_mib=budget_mib)
    # Out-of-core data must not meet an (n, n_local_trials) matrix on the device.
    streamed = isinstance(X, StreamedRows)
    if streamed:
        # One host round trip per step: the rows come from the host anyway.
        indices = np.empty(n_clusters, dtype=np.int64)
        indices[0] = first_index
        current_potential = float(current_potential)
        for c in range(1, n_clusters):
            thresholds = random_state.uniform(size=n_local_trials) * current_potential
            candidate_ids = _draw(
                closest_cost, block_weights, xp.asarray(thresholds, dtype=xp.float64, device=device), xp=xp
            )
            candidate_ids = np.minimum(to_numpy(candidate_ids).astype(np.int64), n_samples - 1)
            closest_cost, best, current_potential = streamed_step(candidate_ids, closest_cost)
            indices[c] = candidate_ids[best]
        return indices

    # The potential, the draws and the chosen indices stay on the device: a
    # step costs no host sync, and the indices cross once at the end. The
    # uniform numbers are still drawn on the host, in scikit-learn's order.
    chosen = [from_host(np.asarray([first_index], dtype=np.int64), xp, device)]
    for _ in range(1, n_clusters):
        thresholds = from_host(random_state.uniform(size=n_local_trials), xp, device) * current_potential
        candidate_ids = xp.astype(_draw(closest_cost, block_weights, thresholds, xp=xp), xp.int64)
        # A threshold rounding up past the last cumulative sum picks the last row.
        candidate_ids = xp.where(candidate_ids < n_samples, candidate_ids, xp.full_like(candidate_ids, n_samples - 1))
        step = plusplus_step(
            X, take_rows(X, candidate_ids, xp=xp), closest_cost, sample_weight, xp=xp, metric=metric, power=power,
            x_sq_norms=x_sq_norms, rows_per_block=rows_per_block, out=closest_cost,
        )
        closest_cost, current_potential = step.closest_cost, step.potential
        chosen.append(xp.take(candidate_ids, xp.reshape(xp.astype(step.best, xp.int64), (1,))))
    return to_host(xp.concat(chosen)).astype(np.int64)


def _weighted_total(costs: Any, block_weights: Any, *, xp: Any) -> Any:
    """``sum(w_i * cost_i)`` in float64 as a 0-d device array.

    The products go block by block into one array, summed once: the same
    bits as ``sum(costs * weights64)`` of whole arrays, without a float64
    copy of the weights.
    """
    n_rows = costs.shape[0]
    products = xp.empty((n_rows,), dtype=xp.float64, device=device_of(costs))

    def fill(start: int, stop: int) -> None:
        products[start:stop] = costs[start:stop] * block_weights(start, stop)

    map_blocks(fill, row_blocks(n_rows, _SCAN_BLOCK_ROWS), xp)
    return xp.sum(products)


#: Rows per block of the seeding's running sums (a few MiB of temporaries).
_SCAN_BLOCK_ROWS = 1 << 16


def _draw(costs: Any, block_weights: Any, thresholds: Any, *, xp: Any) -> Any:
    """``searchsorted(cumulative_sum(w * costs), thresholds)``, one block of the running sum at a time.

    The running sum is carried from block to block, each block's sum starting
    from the last value of the one before, in the order a whole-array
    ``cumulative_sum`` adds (the same bits on NumPy); the position of a
    threshold is the number of running sums below it, added over the blocks
    (the sums never decrease: weights and costs are not negative). Only one
    block of the running sum exists at a time, and nothing crosses to the host.

    Returns
    -------
    positions : integer array of ``xp``, shape ``thresholds.shape``
        ``n`` where a threshold is beyond the total.
    """
    n_rows = costs.shape[0]
    positions = None
    carry = None
    for start, stop in row_blocks(n_rows, _SCAN_BLOCK_ROWS):
        products = costs[start:stop] * block_weights(start, stop)
        if carry is not None:
            # The carried sum enters as the first term: the block's running
            # sums are then the whole array's, bit for bit.
            products = xp.concat([xp.reshape(carry, (1,)), products])
        running = xp.cumulative_sum(products)
        if carry is not None:
            running = running[1:]
        below = xp.searchsorted(running, thresholds)
        positions = below if positions is None else positions + below
        carry = running[-1]
    return positions
def forgy_indices(n_samples: int, n_clusters: int, sample_weight: Any, random_state: np.random.RandomState) -> np.ndarray:
    """``n_clusters`` distinct rows drawn with probability proportional to weight."""
    return _choose_distinct(random_state, _host_probabilities(sample_weight), n_clusters)


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

