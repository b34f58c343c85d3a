"""Spherical K-Means (``metric="cosine"``): unit rows, unit centers, cosine distance.

For rows and centers of unit norm, ``||x - c||^2 = 2 (1 - x.c)``: the nearest
center by squared Euclidean distance is the one of largest inner product, and
the objective ``sum(w_i * (1 - x_i.c))`` (the cosine distances) is half the
squared-Euclidean one. So spherical K-Means reuses Lloyd's fused step
(:func:`kgpu._assign.assign_and_accumulate`) on the normalised rows; only the
update differs: each center is the weighted mean of its rows renormalised to
unit length (the direction of their weighted sum). k-means++ on the unit rows
samples proportional to ``D^2 = 2 * (cosine distance)``, i.e. by cosine
distance. All-zero rows stay zero; they are at cosine distance 1 from every
center.
"""

from __future__ import annotations

from typing import Any, Callable

from ._blocks import map_blocks, row_blocks
from ._distances import row_sq_norms, unit_rows
from ._lloyd import IterationRecord, LloydResult, lloyd


def unit_rows_blockwise(X: Any, *, xp: Any, rows_per_block: int) -> Any:
    """A copy of ``X`` with every row scaled to unit norm (zero rows stay zero), row block by row block."""
    parts = map_blocks(lambda start, stop: unit_rows(X[start:stop, :], xp=xp), row_blocks(X.shape[0], rows_per_block), xp)
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=0)


def normalized_centers(sums: Any, previous: Any, *, xp: Any) -> Any:
    """Unit-length directions of the rows of ``sums`` in the dtype of ``previous``; a zero sum keeps ``previous``."""
    norms = xp.sqrt(xp.sum(sums * sums, axis=1))
    safe = xp.where(norms > 0, norms, xp.ones_like(norms))
    directions = xp.astype(sums / safe[:, None], previous.dtype)
    return xp.where((norms > 0)[:, None], directions, previous)


def cosine_inertia(X_unit: Any, sample_weight: Any, centers: Any, labels: Any, *, xp: Any, rows_per_block: int) -> float:
    """``sum(w_i * (1 - x_i.c[label_i]))`` for unit (or zero) rows and unit centers, float."""

    def one_block(start: int, stop: int) -> float:
        rows = X_unit[start:stop, :]
        own = xp.take(centers, labels[start:stop], axis=0)
        similarity = xp.astype(xp.vecdot(rows, own, axis=-1), xp.float64)
        weights = xp.astype(sample_weight[start:stop], xp.float64)
        return float(xp.sum(weights * (1 - similarity)))

    return float(sum(map_blocks(one_block, row_blocks(X_unit.shape[0], rows_per_block), xp)))


def spherical_lloyd(
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
    """Spherical K-Means iterations from unit ``centers_init``.

    Lloyd's driver (:func:`kgpu._lloyd.lloyd`) with the renormalised mean as
    the update and the cosine objective; its convergence rules: stop when
    no label changes or when the summed squared center shift is at most
    ``tol``; then, unless the labels were stable, one more assignment.

    Parameters
    ----------
    design : array of shape (n, d + 1)
        Unit (or zero) rows in homogeneous coordinates ``[x, 1]``.
    sample_weight : array of shape (n,)
    centers_init : array of shape (k, d), unit rows
    max_iter : int
    tol : float
        Absolute tolerance on the summed squared center shift.
    rows_per_block : int
    xp : namespace
    on_iteration : callable or None
    track_inertia : bool
        Record every iteration's cosine objective (see :func:`kgpu._lloyd.lloyd`).

    Returns
    -------
    LloydResult
        ``inertia`` is the weighted sum of cosine distances.
    """
    X = design[:, :-1]
    return lloyd(
        design, sample_weight, centers_init,
        max_iter=max_iter, tol=tol, rows_per_block=rows_per_block, xp=xp, on_iteration=on_iteration,
        track_inertia=track_inertia,
        center_update=lambda sums, weights, centers: normalized_centers(sums, centers, xp=xp),
        objective=lambda labels, centers: cosine_inertia(
            X, sample_weight, centers, labels, xp=xp, rows_per_block=rows_per_block
        ),
    )


def unit_centers(centers: Any, *, xp: Any) -> Any:
    """Initial centers scaled to unit norm; a zero center is refused.

    Raises
    ------
    ValueError
        When a center has zero norm (it has no direction).
    """
    if bool(xp.any(row_sq_norms(centers, xp=xp) == 0)):
        raise ValueError("metric='cosine' needs initial centers of non-zero norm; a center is all zeros.")
    return unit_rows(centers, xp=xp)
