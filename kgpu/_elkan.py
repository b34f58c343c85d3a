"""Exact K-Means that skips the distances the triangle inequality rules out (``algorithm="elkan"``).

The bounds are Hamerly's (2010): per row one upper bound ``u`` on the distance
to its own center and one lower bound ``l`` on the distance to every other
center, plus per center half the distance ``s`` to its nearest other center.
A row whose ``u`` is below ``max(s[label], l)`` cannot change label and is not
looked at again this iteration; the others have all ``k`` distances
recomputed, which also makes their bounds exact again. Hamerly also tightens
``u`` to the exact distance to the own center before recomputing; that step
is left out because it needs a second compaction of the rows, and each
compaction's size is a host sync on a GPU: here there is one per iteration,
whatever the number of row blocks. Elkan's original keeps
``k`` lower bounds per row (an ``(n, k)`` matrix); Hamerly's single bound keeps
the state at ``O(n)`` and the row-block layout of :mod:`kgpu._assign`, which
is why it is used here.

Every iteration still makes the same update as :func:`kgpu._lloyd.lloyd`
(weighted sums of every row per cluster, the same empty-cluster policy and
the same convergence rules), and a row whose label could change is assigned
with the same scores ``||c||^2 - 2 x.c`` as Lloyd's, so the labels, centers
and ``n_iter`` are Lloyd's. The bounds are kept conservative by the rounding
error of the float arithmetic that computes them, so rounding never lets a
row be skipped that Lloyd would move.
"""

from __future__ import annotations

import time
from typing import Any, Callable

from ._assign import assign, center_scores, weighted_inertia, weighted_sum
from ._backend import device_of, host_scalars
from ._blocks import map_blocks, row_blocks
from ._distances import homogeneous_operand, row_sq_norms, sq_distance_to_own_center
from ._lloyd import IterationRecord, LloydResult, _centers_from_sums as centers_from_sums, _means, finish_iteration
from ._segment import segment_sum
from ._stream import take_rows

ALGORITHMS = ("lloyd", "elkan")


def check_algorithm(algorithm: Any, n_clusters: int, estimator_name: str) -> str:
    """Validate ``algorithm``; the one to run (``"lloyd"`` for a single cluster, as scikit-learn).

    Raises
    ------
    ValueError
        For anything but ``"lloyd"`` or ``"elkan"``.
    """
    import warnings

    if not isinstance(algorithm, str) or algorithm not in ALGORITHMS:
        raise ValueError(
            f"The 'algorithm' parameter of {estimator_name} must be a str among "
            f"{{'elkan', 'lloyd'}}. Got {algorithm!r} instead."
        )
    if algorithm == "elkan" and n_clusters == 1:
        warnings.warn(
            "algorithm='elkan' doesn't make sense for a single cluster. Using 'lloyd' instead.",
            RuntimeWarning,
            stacklevel=3,
        )
        return "lloyd"
    return algorithm


def hamerly(
    design: Any,
    sample_weight: Any,
    centers_init: Any,
    *,
    max_iter: int,
    tol: float,
    rows_per_block: int,
    xp: Any,
    on_iteration: Callable[[IterationRecord], None] | None = None,
    track_inertia: bool = False,
) -> LloydResult:
    """K-Means iterations from ``centers_init`` with Hamerly's bounds.

    Same parameters and result as :func:`kgpu._lloyd.lloyd`.

    Parameters
    ----------
    design : array of shape (n, d + 1), float32 or float64
        The data in homogeneous coordinates, ``[x, 1]``.
    sample_weight : array of shape (n,), same dtype
    centers_init : array of shape (k, d), at least two centers
    max_iter : int
    tol : float
        Absolute tolerance on the sum of squared center shifts.
    rows_per_block : int
    xp : namespace
    on_iteration : callable or None
        Called with an :class:`~kgpu._lloyd.IterationRecord` after every iteration.
    track_inertia : bool
        Record every iteration's inertia (one more pass; for ``verbose``).

    Returns
    -------
    LloydResult
    """
    X = design[:, :-1]
    n_rows, n_features = X.shape
    n_clusters = centers_init.shape[0]
    device = device_of(sample_weight)
    # Relative rounding error of a d-term dot product in X's dtype, with room to spare.
    rounding = (n_features + 16) * float(xp.finfo(X.dtype).eps)
    labels = xp.zeros((n_rows,), dtype=xp.int64, device=device)
    upper = xp.zeros((n_rows,), dtype=xp.float64, device=device)
    lower = xp.zeros((n_rows,), dtype=xp.float64, device=device)
    centers = centers_init
    strict_convergence = False
    history: list[IterationRecord] = []
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        started = time.perf_counter()
        operand = homogeneous_operand(centers, xp=xp)
        center_sq_norms = xp.astype(row_sq_norms(centers, xp=xp), xp.float64)
        half_gap = _half_gaps(centers, xp=xp)
        first = n_iter == 1

        blocks = row_blocks(n_rows, rows_per_block)
        # Which rows may change label: one mask for the whole iteration, then
        # one compaction. A compaction's size is a host sync on a GPU, so it
        # is taken once per iteration, never once per row block.
        if first:
            needs_all = xp.ones((n_rows,), dtype=xp.bool, device=device)
        else:
            needs_all = xp.concat(map_blocks(
                lambda start, stop: _bounds_fail(start, stop, labels, upper, lower, half_gap, xp=xp), blocks, xp
            ))
        recompute = xp.nonzero(needs_all)[0]
        n_recomputed = recompute.shape[0]
        changed_total = None
        if n_recomputed:
            found = map_blocks(
                lambda start, stop: _nearest_of(
                    design, labels, recompute[start:stop], operand, center_sq_norms, centers, rounding, xp=xp
                ),
                row_blocks(n_recomputed, rows_per_block), xp,
            )
            nearest, own, second_lower = (xp.concat([part[i] for part in found]) for i in range(3))
            if not first:
                # Device scalars: the iteration's counts cross to the host together, in one sync.
                changed_total = found[0][3]
                for part in found[1:]:
                    changed_total = changed_total + part[3]
            # Each row's position among the recomputed ones, to gather their
            # results: the standard has no integer-array assignment, and a
            # masked one costs a host sync per array on a GPU.
            position = xp.cumulative_sum(xp.astype(needs_all, xp.int64)) - 1

        def one_block(start: int, stop: int) -> tuple[Any, Any]:
            labels_block = labels[start:stop]
            if n_recomputed:
                needs_block = needs_all[start:stop]
                at = xp.clip(position[start:stop], 0, None)
                labels_block = xp.where(needs_block, xp.take(nearest, at), labels_block)
                labels[start:stop] = labels_block
                upper[start:stop] = xp.where(needs_block, xp.take(own, at), upper[start:stop])
                lower[start:stop] = xp.where(needs_block, xp.take(second_lower, at), lower[start:stop])
            sums = xp.astype(
                segment_sum(design[start:stop, :], labels_block, n_clusters, sample_weight[start:stop], xp=xp), xp.float64
            )
            # The column of ones sums to the weight of each cluster.
            return sums[:, :n_features], sums[:, n_features]

        parts = map_blocks(one_block, blocks, xp)
        sums, weights = parts[0][0], parts[0][1]
        for block_sums, block_weights in parts[1:]:
            sums = sums + block_sums
            weights = weights + block_weights
        # The bounds keep every label exact: this is the inertia against the centers just used.
        iteration_inertia = (
            weighted_inertia(X, sample_weight, centers, labels, xp=xp, rows_per_block=rows_per_block)
            if track_inertia else None
        )
        new_centers = _means(X, centers, sums, weights, xp=xp)
        # Lloyd's shift, computed as Lloyd computes it, so the runs stop
        # together; with the changed labels and the empty-cluster flag it
        # crosses to the host in one sync per iteration, as in Lloyd's driver.
        center_shift, changed, any_empty = host_scalars(
            xp.sum((new_centers - centers) ** 2), changed_total, xp.any(weights <= 0), xp=xp
        )
        if any_empty:
            new_centers = centers_from_sums(
                X, sample_weight, centers, labels, sums, weights, xp=xp, rows_per_block=rows_per_block
            )
            center_shift = float(xp.sum((new_centers - centers) ** 2))
        n_changed = n_rows if first else int(changed or 0)
        _move_bounds(labels, upper, lower, centers, new_centers, rounding, xp=xp)
        centers = new_centers
        record = IterationRecord(n_iter, center_shift, n_changed, time.perf_counter() - started, iteration_inertia)
        stop, strict_convergence = finish_iteration(
            history, record, on_iteration, labels_stable=not first and n_changed == 0, tol=tol
        )
        if stop:
            break
    if strict_convergence:
        inertia = weighted_inertia(X, sample_weight, centers, labels, xp=xp, rows_per_block=rows_per_block)
    else:
        # float64 distances, weighted in place: the inertia costs no n-vector
        # beyond the labels and the distances.
        final = assign(design, centers, xp=xp, rows_per_block=rows_per_block, float64_distances=True)
        labels = final.labels
        inertia = weighted_sum(final.min_dist, sample_weight, xp=xp, overwrite_values=True)
    return LloydResult(centers, labels, inertia, n_iter, history)


def _half_gaps(centers: Any, *, xp: Any) -> Any:
    """Half the distance from every center to its nearest other center, rounded down: ``(k,)`` float64."""
    centers64 = xp.astype(centers, xp.float64)
    sq_norms = row_sq_norms(centers64, xp=xp)
    sq_dist = sq_norms[:, None] + sq_norms[None, :] - 2 * xp.matmul(centers64, xp.permute_dims(centers64, (1, 0)))
    # The expansion's rounding error, taken off so that the gap is never overestimated.
    error = (centers.shape[1] + 16) * float(xp.finfo(xp.float64).eps) * 4 * (sq_norms[:, None] + sq_norms[None, :])
    sq_dist = xp.clip(sq_dist - error, 0.0, None)
    k = centers.shape[0]
    sq_dist = xp.where(xp.eye(k, dtype=xp.bool, device=device_of(centers)), xp.inf, sq_dist)
    return xp.sqrt(xp.min(sq_dist, axis=1)) / 2


def _own_distance(rows: Any, centers: Any, labels: Any, rounding: float, *, xp: Any) -> Any:
    """Upper bound on ``||x - c[label]||``: the exact difference, rounded up. ``(m,)`` float64."""
    sq_dist = xp.astype(sq_distance_to_own_center(rows, centers, labels, xp=xp), xp.float64)
    return xp.sqrt(sq_dist) * (1 + rounding)


def _bounds_fail(start: int, stop: int, labels: Any, upper: Any, lower: Any, half_gap: Any, *, xp: Any) -> Any:
    """Rows ``start:stop`` whose bounds cannot keep their label: ``u >= max(s[label], l)``, ``(m,)`` bool."""
    return upper[start:stop] >= xp.maximum(xp.take(half_gap, labels[start:stop]), lower[start:stop])


def _nearest_of(
    design: Any, labels: Any, rows_at: Any, operand: Any, center_sq_norms: Any, centers: Any, rounding: float, *, xp: Any
) -> tuple[Any, Any, Any, Any]:
    """Rows ``rows_at``: Lloyd's nearest center, the new upper and lower bounds, and how many labels change (a device scalar)."""
    rows = take_rows(design, rows_at, xp=xp)
    nearest, second_lower = _two_nearest(rows, operand, center_sq_norms, rounding, xp=xp)
    own = _own_distance(rows[:, :-1], centers, nearest, rounding, xp=xp)
    n_changed = xp.astype(xp.count_nonzero(nearest != xp.take(labels, rows_at)), xp.int64)
    return nearest, own, second_lower, n_changed


def _two_nearest(rows: Any, operand: Any, center_sq_norms: Any, rounding: float, *, xp: Any) -> tuple[Any, Any]:
    """Lloyd's nearest center of each homogeneous row, and a lower bound on the distance to the second.

    Returns
    -------
    nearest : integer array of shape (m,)
    second_lower : array of shape (m,), float64
    """
    scores = center_scores(rows, operand, xp=xp)
    nearest = xp.argmin(scores, axis=1)
    k = operand.shape[1]
    is_nearest = xp.arange(k, device=device_of(rows))[None, :] == nearest[:, None]
    scores64 = xp.astype(scores, xp.float64)
    second_score = xp.min(xp.where(is_nearest, xp.inf, scores64), axis=1)
    x_sq_norms = xp.astype(row_sq_norms(rows[:, :-1], xp=xp), xp.float64)
    # ||x||^2 + ||c||^2 - 2 x.c loses up to the rounding of its largest terms.
    error = 4 * rounding * (x_sq_norms + xp.max(center_sq_norms))
    second_sq = xp.clip(second_score + x_sq_norms - error, 0.0, None)
    return nearest, xp.sqrt(second_sq)


def _move_bounds(labels: Any, upper: Any, lower: Any, old_centers: Any, new_centers: Any, rounding: float, *, xp: Any) -> None:
    """Carry the bounds over to the moved centers (triangle inequality), in place."""
    delta = xp.astype(new_centers, xp.float64) - xp.astype(old_centers, xp.float64)
    moves = xp.sqrt(xp.sum(delta * delta, axis=1)) * (1 + rounding)
    # Everything stays on the device: no host sync.
    farthest = xp.argmax(moves)
    largest = xp.max(moves)
    k = moves.shape[0]
    if k > 1:
        second_largest = xp.max(xp.where(xp.arange(k, device=device_of(moves)) == farthest, 0.0, moves))
    else:
        second_largest = xp.zeros((), dtype=xp.float64, device=device_of(moves))
    upper += xp.take(moves, labels)
    # A row's lower bound covers every center but its own: its own center's move does not count.
    lower -= xp.where(labels == farthest, second_largest, largest)
