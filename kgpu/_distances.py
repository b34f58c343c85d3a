"""Distance blocks between a block of rows and a set of centers (standard calls only).

Every algorithm and metric in kgpu gets its distances from this module; none
has a distance loop of its own.

Squared Euclidean distances use ``||x||^2 - 2 x.c + ||c||^2``: one GEMM per
block. Nearest-center search needs only ``||c||^2 - 2 x.c`` (``||x||^2`` is
the same for every center); written in homogeneous coordinates, ``[x, 1]``
against ``[-2c, ||c||^2]``, that is a single GEMM with no separate pass to add
the norms (see :func:`homogeneous_operand`).

L1 and Minkowski distances have no GEMM form; they are accumulated one feature
at a time, so the largest temporary is the ``(b, k)`` result, never ``(b, k, d)``.
"""

from __future__ import annotations

import math
import numbers
from typing import Any, NamedTuple

from ._backend import backend_name, device_of
from ._kernels.dispatch import ANY_BACKEND, call, register

#: Metrics understood by :func:`pairwise_distances` and the assignment kernels.
METRICS = ("sqeuclidean", "euclidean", "manhattan", "minkowski", "cosine")


class Metric(NamedTuple):
    """A validated metric: its name and Minkowski order.

    Attributes
    ----------
    name : str
        One of :data:`METRICS`; ``"minkowski"`` with ``p`` 1 or 2 is
        normalised to ``"manhattan"`` / ``"euclidean"``.
    p : float
        Minkowski order (``1`` for manhattan, ``2`` for the Euclidean pair).
    """

    name: str
    p: float


def check_metric(metric: Any, p: Any = None) -> Metric:
    """Validate a metric name (and Minkowski ``p``) and name the problem if bad.

    Parameters
    ----------
    metric : str
        One of ``"sqeuclidean"``, ``"euclidean"``, ``"manhattan"`` (also
        ``"l1"``, ``"cityblock"``), ``"minkowski"``, ``"cosine"``.
    p : float or None
        Order of the Minkowski distance, ``p >= 1`` (``math.inf`` gives the
        Chebyshev distance). Only used with ``"minkowski"`` (default 2).

    Returns
    -------
    Metric
    """
    aliases = {"l1": "manhattan", "cityblock": "manhattan", "l2": "euclidean"}
    if not isinstance(metric, str):
        raise TypeError(f"metric must be a string, one of {METRICS}; got {metric!r}.")
    name = aliases.get(metric, metric)
    if name not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}, got {metric!r}.")
    if name != "minkowski":
        return Metric(name, 1.0 if name == "manhattan" else 2.0)
    order = 2.0 if p is None else p
    if isinstance(order, bool) or not isinstance(order, numbers.Real) or math.isnan(order) or order < 1:
        raise ValueError(f"Minkowski p must be a real number >= 1 (or math.inf), got {p!r}.")
    if order == 1:
        return Metric("manhattan", 1.0)
    if order == 2:
        return Metric("euclidean", 2.0)
    return Metric("minkowski", float(order))


def distance_bytes_per_row(metric: Metric, n_centers: int, n_features: int, itemsize: int) -> int:
    """Bytes of temporaries one row of a distance block needs (for block sizing)."""
    # (b, k) result plus one (b, k) temporary for the non-GEMM metrics, and a
    # normalised / gathered copy of the row.
    per_center = 1 if metric.name in ("sqeuclidean", "euclidean", "cosine") else 2
    return (per_center * n_centers + n_features + 2) * itemsize


def transposed(centers: Any, *, xp: Any) -> Any:
    """``centers.T`` laid out for a fast GEMM: ``(d, k)``.

    NumPy hands a transposed view to BLAS several times slower than a
    row-major copy for the short, wide shapes of a center matrix; the copy is
    only ``k x d``. Other libraries take the view as it is.
    """
    centers_t = xp.permute_dims(centers, (1, 0))
    if backend_name(xp) == "numpy":
        import numpy as np

        return np.ascontiguousarray(centers_t)
    return centers_t


def row_sq_norms(X: Any, *, xp: Any) -> Any:
    """Squared Euclidean norm of every row: shape ``(n,)``, dtype of ``X``."""
    # vecdot is one fused pass; sum(X * X, axis=1) is two, and slow on short rows.
    return xp.vecdot(X, X, axis=-1)


def blockwise_row_sq_norms(X: Any, *, xp: Any, budget_mib: float | None = None) -> Any:
    """:func:`row_sq_norms` of a large (or streamed) ``X``, one row block (of ``budget_mib`` MiB) at a time: ``(n,)``."""
    from ._blocks import block_rows, map_blocks, row_blocks

    n_rows, n_features = X.shape
    rows_per_block = block_rows(n_rows, (n_features + 1) * 8, xp, budget_mib)
    parts = map_blocks(lambda start, stop: row_sq_norms(X[start:stop, :], xp=xp), row_blocks(n_rows, rows_per_block), xp)
    return parts[0] if len(parts) == 1 else xp.concat(parts)


def homogeneous(
    X: Any, *, xp: Any, offset: Any = None, rows_per_block: int | None = None, scale_exponent: int = 0
) -> Any:
    """``[(X - offset) * 2**scale_exponent, 1]``, a new ``(n, d + 1)`` array: the ``"working_copy"`` kernel.

    See :func:`homogeneous_reference` for the parameters; the compiled
    kernels (:mod:`kgpu._kernels.cpu_numba_frame`) give the same bits.
    """
    return call("working_copy", X, xp=xp, offset=offset, rows_per_block=rows_per_block, scale_exponent=scale_exponent)


@register("working_copy", ANY_BACKEND, name="array-api")
def homogeneous_reference(
    X: Any, *, xp: Any, offset: Any = None, rows_per_block: int | None = None, scale_exponent: int = 0
) -> Any:
    """``[X - offset, 1]``: rows with a column of ones appended, a new ``(n, d + 1)`` array.

    The working copy Lloyd iterates over: a GEMM of it with
    :func:`homogeneous_operand` gives nearest-center scores directly, and a
    segmented sum of it gives the per-cluster sums *and* weights at once.

    Parameters
    ----------
    X : array of shape (n, d)
    xp : namespace
    offset : array of shape (d,) or None
        Subtracted from every row (in the copy, never in ``X``).
    rows_per_block : int or None
        Rows copied at a time (default: from the backend's memory budget).
    scale_exponent : int
        The shifted rows are multiplied by ``2**scale_exponent`` (exact; see
        :mod:`kgpu._scale`).

    Returns
    -------
    design : array of shape (n, d + 1), dtype of ``X``
    """
    from ._blocks import block_rows, map_blocks, row_blocks
    from ._scale import scale_by_power_of_two

    n_rows, n_features = X.shape
    design = xp.empty((n_rows, n_features + 1), dtype=X.dtype, device=device_of(X))
    if rows_per_block is None:
        # Small blocks (an eighth of the budget): their temporaries come on
        # top of the copy being filled.
        rows_per_block = block_rows(n_rows, (n_features + 1) * 8 * 8, xp)

    def fill(start: int, stop: int) -> None:
        # Block by block, in the thread pool on NumPy: no n x d temporary.
        block = X[start:stop, :]
        block = block if offset is None else block - offset
        design[start:stop, :-1] = block if scale_exponent == 0 else scale_by_power_of_two(block, scale_exponent)
        design[start:stop, -1] = 1

    map_blocks(fill, row_blocks(n_rows, rows_per_block), xp)
    return design


def homogeneous_operand(centers: Any, *, xp: Any) -> Any:
    """``[[-2 c^T], [||c||^2]]``, shape ``(d + 1, k)``, for :func:`homogeneous` rows.

    ``[x, 1] @ operand = ||c||^2 - 2 x.c``: the squared distance minus
    ``||x||^2``, which has the same argmin over centers.
    """
    neg2_centers_t = -2 * xp.permute_dims(centers, (1, 0))
    return xp.concat([neg2_centers_t, row_sq_norms(centers, xp=xp)[None, :]], axis=0)


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
    distances = xp.matmul(x_block, transposed(centers, xp=xp))
    distances *= -2
    distances += x_sq_norms[:, None]
    distances += center_sq_norms[None, :]
    # Cancellation can leave tiny negatives where a row equals a center.
    return xp.clip(distances, min=0)


def sq_distance_to_own_center(x_block: Any, centers: Any, labels_block: Any, *, xp: Any) -> Any:
    """Exact ``||x - c[label]||^2`` per row (no expansion, so no cancellation): ``(b,)``."""
    diff = x_block - xp.take(centers, labels_block, axis=0)
    return xp.vecdot(diff, diff, axis=-1)


def unit_rows(X: Any, *, xp: Any) -> Any:
    """Rows scaled to unit Euclidean norm; all-zero rows stay zero (as scikit-learn)."""
    norms = xp.sqrt(row_sq_norms(X, xp=xp))
    safe = xp.where(norms > 0, norms, xp.ones_like(norms))
    return X / safe[:, None]


def lp_distances(x_block: Any, centers: Any, p: float, *, xp: Any) -> Any:
    """Minkowski distances of order ``p`` (1: manhattan, ``inf``: Chebyshev), ``(b, k)``.

    NumPy delegates to :func:`scipy.spatial.distance.cdist` and PyTorch to
    :func:`torch.cdist` (compiled loops); every other namespace uses
    :func:`lp_distances_standard`.
    """
    name = backend_name(xp)
    if name == "numpy":
        from scipy.spatial.distance import cdist

        if p == 1:
            distances = cdist(x_block, centers, "cityblock")
        elif math.isinf(p):
            distances = cdist(x_block, centers, "chebyshev")
        else:
            distances = cdist(x_block, centers, "minkowski", p=p)
        return distances.astype(x_block.dtype, copy=False)
    if name == "torch":
        import torch

        return torch.cdist(x_block, centers, p=p)
    return lp_distances_standard(x_block, centers, p, xp=xp)


def lp_distances_standard(x_block: Any, centers: Any, p: float, *, xp: Any) -> Any:
    """:func:`lp_distances` with standard calls only.

    Accumulated feature by feature into a ``(k, b)`` total (contiguous rows of
    the block's transpose), so temporaries stay ``(k, b)`` whatever ``d`` is.
    """
    x_t = xp.permute_dims(x_block, (1, 0))
    total = xp.zeros((centers.shape[0], x_block.shape[0]), dtype=x_block.dtype, device=device_of(x_block))
    for j in range(x_block.shape[1]):
        gap = xp.abs(centers[:, j : j + 1] - x_t[j : j + 1, :])
        if p == 1:
            total += gap
        elif math.isinf(p):
            total = xp.maximum(total, gap)
        else:
            total += gap**p
    if p != 1 and not math.isinf(p):
        total = total ** (1.0 / p)
    return xp.permute_dims(total, (1, 0))


def pairwise_distances(
    x_block: Any,
    centers: Any,
    metric: Metric,
    *,
    xp: Any,
    x_sq_norms: Any = None,
    center_sq_norms: Any = None,
) -> Any:
    """Distances ``(b, k)`` from every row of ``x_block`` to every center under ``metric``.

    Parameters
    ----------
    x_block : array of shape (b, d)
    centers : array of shape (k, d)
    metric : Metric
        From :func:`check_metric`.
    xp : namespace
    x_sq_norms, center_sq_norms : arrays or None
        Precomputed squared norms, used by the Euclidean metrics.

    Returns
    -------
    distances : array of shape (b, k), dtype of ``x_block``
        Non-negative. Cosine distance is ``1 - cos(x, c)`` in ``[0, 2]``; a
        zero row is at distance 1 from everything.
    """
    name = metric.name
    if name in ("sqeuclidean", "euclidean"):
        sq = sq_euclidean(x_block, centers, xp=xp, x_sq_norms=x_sq_norms, center_sq_norms=center_sq_norms)
        return sq if name == "sqeuclidean" else xp.sqrt(sq)
    if name == "cosine":
        similarity = xp.matmul(unit_rows(x_block, xp=xp), transposed(unit_rows(centers, xp=xp), xp=xp))
        return xp.clip(1 - similarity, min=0, max=2)
    return lp_distances(x_block, centers, metric.p, xp=xp)
