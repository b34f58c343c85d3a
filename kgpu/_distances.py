"""Distance blocks between a block of rows and a set of centers (standard calls only).

Squared Euclidean distances use ``||x||^2 - 2 x.c + ||c||^2``: one GEMM per
block. Nearest-center search needs only ``||c||^2 - 2 x.c`` (``||x||^2`` is
the same for every center), so the assignment kernels use
:func:`sq_euclidean_scores` and add ``||x||^2`` back for the winner alone.
"""

from __future__ import annotations

from typing import Any


def row_sq_norms(X: Any, *, xp: Any) -> Any:
    """Squared Euclidean norm of every row: shape ``(n,)``, dtype of ``X``."""
    return xp.sum(X * X, axis=1)


def score_operands(centers: Any, *, xp: Any) -> tuple[Any, Any]:
    """Per-step constants for :func:`sq_euclidean_scores`.

    Returns
    -------
    neg2_centers_t : array of shape (d, k)
        ``-2 * centers.T``, so the GEMM yields ``-2 x.c`` directly.
    center_sq_norms : array of shape (k,)
    """
    return -2 * xp.permute_dims(centers, (1, 0)), row_sq_norms(centers, xp=xp)


def sq_euclidean_scores(x_block: Any, neg2_centers_t: Any, center_sq_norms: Any, *, xp: Any) -> Any:
    """``||c||^2 - 2 x.c`` for every row of ``x_block`` and every center: ``(b, k)``.

    Equal to the squared distance minus ``||x||^2``: same argmin per row.
    """
    scores = xp.matmul(x_block, neg2_centers_t)
    scores += center_sq_norms
    return scores


def sq_euclidean(x_block: Any, centers: Any, *, xp: Any, x_sq_norms: Any = None, center_sq_norms: Any = None) -> Any:
    """Squared Euclidean distances ``(b, k)`` from each row to each center, clipped at 0.

    Parameters
    ----------
    x_block : array of shape (b, d)
    centers : array of shape (k, d)
    xp : namespace
    x_sq_norms, center_sq_norms : arrays of shape (b,) and (k,) or None
        Precomputed squared norms (computed here when ``None``).
    """
    if x_sq_norms is None:
        x_sq_norms = row_sq_norms(x_block, xp=xp)
    if center_sq_norms is None:
        center_sq_norms = row_sq_norms(centers, xp=xp)
    distances = xp.matmul(x_block, xp.permute_dims(centers, (1, 0)))
    distances *= -2
    distances += x_sq_norms[:, None]
    distances += center_sq_norms[None, :]
    # Cancellation can leave tiny negatives where a row equals a center.
    return xp.clip(distances, min=0)


def sq_distance_to_own_center(x_block: Any, centers: Any, labels_block: Any, *, xp: Any) -> Any:
    """Exact ``||x - c[label]||^2`` per row (no expansion, so no cancellation): ``(b,)``."""
    diff = x_block - xp.take(centers, labels_block, axis=0)
    return xp.sum(diff * diff, axis=1)
