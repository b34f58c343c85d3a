"""Lloyd's algorithm for one initialisation (standard calls only).

Each iteration is one fused pass over the data (:func:`assign_and_accumulate`):
nearest centers by one GEMM and argmin per block, and per-cluster weighted sums
by a segmented sum. The data comes in homogeneous coordinates ``[x, 1]``
(:func:`kgpu._distances.homogeneous`), which makes the scores a single GEMM and
the cluster weights a by-product of the sums. Convergence follows scikit-learn's ``lloyd`` exactly:
stop when the labels do not change, or when the total squared center shift is
at most ``tol``; if the loop ended on the shift or ``max_iter``, one more
E-step makes the labels match the returned centers.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

from ._backend import host_scalars
from ._assign import assign, assign_and_accumulate, weighted_inertia, weighted_sum
from ._blocks import row_blocks
from ._distances import sq_distance_to_own_center
from ._empty import relocate_empty_clusters


class IterationRecord(NamedTuple):
    """What one Lloyd iteration did (kept in ``history_``).

    ``inertia`` is the objective of the iteration's labels against the centers
    they were assigned to (what scikit-learn prints when verbose), in the
    working frame; it costs one more pass over the data, so it is recorded
    only when the driver is asked to (``track_inertia=True``), else ``None``.
    """

    iteration: int
    center_shift: float
    n_changed: int
    seconds: float
    inertia: float | None = None


class LloydResult(NamedTuple):
    """Outcome of one Lloyd run.

    Attributes
    ----------
    centers : array of shape (k, d)
    labels : integer array of shape (n,)
    inertia : float
        ``sum(w_i * ||x_i - c[label_i]||^2)`` for the returned labels.
    n_iter : int
    history : list of IterationRecord
    """

    centers: Any
    labels: Any
    inertia: float
    n_iter: int
    history: list


def finish_iteration(
    history: list,
    record: Any,
    on_iteration: Callable[[Any], None] | None,
    *,
    labels_stable: bool,
    tol: float,
) -> tuple[bool, bool]:
    """Keep and report an iteration's record, then apply Lloyd's stopping rules.

    Every iterative driver shares these rules: stop with strict convergence
    when the labels are those of the step before (``labels_stable``), else
    stop when the summed squared center shift is at most ``tol``. ``record``
    is the driver's own record type (:class:`IterationRecord`, or K-Medians'),
    with a ``center_shift``.

    Returns
    -------
    stop, strict_convergence : bool, bool
    """
    history.append(record)
    if on_iteration is not None:
        on_iteration(record)
    if labels_stable:
        return True, True
    return record.center_shift <= tol, False


def lloyd(
    design: Any,
    sample_weight: Any,
    centers_init: Any,
    *,
    max_iter: int,
    tol: float,
    rows_per_block: int,
    xp: Any,
    on_iteration: Callable[[IterationRecord], None] | None = None,
    center_update: Callable[[Any, Any, Any], Any] | None = None,
    objective: Callable[[Any, Any], float] | None = None,
    track_inertia: bool = False,
) -> LloydResult:
    """Run Lloyd iterations from ``centers_init``.

    One driver serves every algorithm whose assignment is Lloyd's fused step
    (squared Euclidean distance on the working rows): K-Means uses the default
    update (weighted means), spherical K-Means passes the renormalised mean
    and the cosine objective.

    Parameters
    ----------
    design : array of shape (n, d + 1), float32 or float64
        The data in homogeneous coordinates, ``[x, 1]``.
    sample_weight : array of shape (n,), same dtype
    centers_init : array of shape (k, d)
    max_iter : int
    tol : float
        Absolute tolerance on the sum of squared center shifts.
    rows_per_block : int
        Rows per assignment block (memory budget).
    xp : namespace
    on_iteration : callable or None
        Called with an :class:`IterationRecord` after every iteration.
    center_update : callable or None
        ``center_update(sums, weights, centers) -> new_centers``: the M-step
        from the clusters' weighted sums and weights (float64) and the current
        centers (kept where a cluster has no weight). ``None``: weighted means.
    objective : callable or None
        ``objective(labels, centers) -> float``: the returned ``inertia`` for
        the final labels. ``None``: the weighted squared Euclidean distances.
    track_inertia : bool
        Record every iteration's objective in its :class:`IterationRecord`
        (one more pass over the data per iteration; for ``verbose``).

    Returns
    -------
    LloydResult
    """
    X = design[:, :-1]
    if center_update is None:

        def center_update(sums: Any, weights: Any, centers: Any) -> Any:
            return _means(X, centers, sums, weights, xp=xp)

    centers = centers_init
    labels_old = None
    labels = None
    strict_convergence = False
    history: list[IterationRecord] = []
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        started = time.perf_counter()
        # The previous labels are only compared with the new ones: the step
        # may write over them, so the run holds one label array, not two.
        step = assign_and_accumulate(
            design, sample_weight, centers, xp=xp, rows_per_block=rows_per_block, previous_labels=labels_old,
            in_place=labels_old is not None,
        )
        labels, sums, weights, changed = step
        del step
        iteration_inertia = None
        if track_inertia:
            iteration_inertia = (
                objective(labels, centers) if objective is not None
                else weighted_inertia(X, sample_weight, centers, labels, xp=xp, rows_per_block=rows_per_block)
            )
        new_centers = center_update(sums, weights, centers)
        # What the host must see this iteration (center shift, changed labels,
        # whether a cluster is empty) crosses in one small copy: one sync per
        # iteration whatever the number of row blocks.
        shift, n_changed, any_empty = host_scalars(
            xp.sum((new_centers - centers) ** 2),
            changed,
            xp.any(weights <= 0),
            xp=xp,
        )
        if any_empty:
            new_centers = _centers_from_sums(
                X, sample_weight, centers, labels, sums, weights,
                xp=xp, rows_per_block=rows_per_block, center_update=center_update,
            )
            shift = float(xp.sum((new_centers - centers) ** 2))
        center_shift = shift
        centers = new_centers
        n_changed = labels.shape[0] if labels_old is None else int(n_changed)
        record = IterationRecord(n_iter, center_shift, n_changed, time.perf_counter() - started, iteration_inertia)
        stop, strict_convergence = finish_iteration(
            history, record, on_iteration, labels_stable=labels_old is not None and n_changed == 0, tol=tol
        )
        if stop:
            break
        labels_old = labels
    labels_old = None
    if not strict_convergence:
        # The final E-step recomputes every label: the old ones go first, so
        # that two label arrays are never alive at once.
        labels = None
    if objective is not None:
        if not strict_convergence:
            labels = assign(design, centers, xp=xp, rows_per_block=rows_per_block).labels
        return LloydResult(centers, labels, objective(labels, centers), n_iter, history)
    if strict_convergence:
        # The last update averaged unchanged labels: they fit the returned centers.
        inertia = weighted_inertia(X, sample_weight, centers, labels, xp=xp, rows_per_block=rows_per_block)
    else:
        # float64 distances, weighted in place: the inertia costs no n-vector
        # beyond the labels and the distances.
        final = assign(design, centers, xp=xp, rows_per_block=rows_per_block, float64_distances=True)
        labels = final.labels
        inertia = weighted_sum(final.min_dist, sample_weight, xp=xp, overwrite_values=True)
    return LloydResult(centers, labels, inertia, n_iter, history)


def _centers_from_sums(X, sample_weight, centers, labels, sums, weights, *, xp, rows_per_block, center_update=None):
    """``center_update`` of the weighted sums (default: the means), with the empty-cluster policy applied first."""
    if bool(xp.any(weights <= 0)):
        point_cost = assign_cost_to_current(X, centers, labels, xp=xp, rows_per_block=rows_per_block)
        sums, weights, still_empty = relocate_empty_clusters(
            X, sample_weight, labels, point_cost, sums, weights, xp=xp
        )
    if center_update is None:
        return _means(X, centers, sums, weights, xp=xp)
    return center_update(sums, weights, centers)


def _means(X, centers, sums, weights, *, xp):
    """Weighted means ``sums / weights``; a cluster without weight keeps its center."""
    safe_weights = xp.where(weights > 0, weights, xp.ones_like(weights))
    means = xp.astype(sums / safe_weights[:, None], X.dtype)
    # A cluster with no weight even after relocation keeps its previous center.
    return xp.where((weights > 0)[:, None], means, centers)


def assign_cost_to_current(X, centers, labels, *, xp, rows_per_block):
    """Squared distance of each point to the center it was just assigned to."""
    parts = [
        sq_distance_to_own_center(X[start:stop, :], centers, labels[start:stop], xp=xp)
        for start, stop in row_blocks(X.shape[0], rows_per_block)
    ]
    return xp.concat(parts) if len(parts) > 1 else parts[0]
