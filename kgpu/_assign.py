"""Assignment: nearest center of every row, in row blocks sized to a memory budget.

These are the E-step kernels every algorithm shares: one distance block (a
GEMM for the Euclidean metrics) and one argmin per block of rows. The fused
:func:`assign_and_accumulate` also returns each cluster's weighted sum and
weight, which is all the Lloyd M-step needs, so the data is read once per
iteration.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ._backend import device_of
from ._blocks import block_rows, map_blocks, row_blocks
from ._distances import (
    Metric,
    distance_bytes_per_row,
    homogeneous_operand,
    pairwise_distances,
    row_sq_norms,
    sq_distance_to_own_center,
)
from ._segment import segment_sum, segment_weight
from ._kernels.dispatch import ANY_BACKEND, call, register

#: The metric of K-Means.
SQEUCLIDEAN = Metric("sqeuclidean", 2.0)


class Assignment(NamedTuple):
    """Nearest center of every row.

    Attributes
    ----------
    labels : integer array of shape (n,)
    min_dist : array of shape (n,)
        Distance to that center under the metric (for ``"sqeuclidean"`` the
        squared distance, computed exactly as ``||x - c||^2``, not expanded).
    """

    labels: Any
    min_dist: Any


class Accumulation(NamedTuple):
    """One fused E-step plus the sums the M-step needs.

    Attributes
    ----------
    labels : integer array of shape (n,)
    sums : array of shape (k, d), float64
        ``sum(w_i * x_i)`` over the rows of each cluster.
    weights : array of shape (k,), float64
        ``sum(w_i)`` over the rows of each cluster.
    n_changed : 0-d int64 array or None
        Rows whose label differs from ``previous_labels`` (``None`` when none
        were given). It stays on the device: the caller copies it to the host
        together with the other per-iteration scalars, in one sync.
    """

    labels: Any
    sums: Any
    weights: Any
    n_changed: Any = None


def itemsize(X: Any, xp: Any) -> int:
    """Bytes per element of a float32 / float64 array."""
    return 4 if X.dtype == xp.float32 else 8


def assignment_block_rows(
    n_rows: int,
    n_clusters: int,
    n_features: int,
    itemsize: int,
    xp: Any,
    budget_mib: float | None = None,
    metric: Metric = SQEUCLIDEAN,
) -> int:
    """Rows per assignment block so that its distance block fits the budget."""
    return block_rows(n_rows, distance_bytes_per_row(metric, n_clusters, n_features, itemsize), xp, budget_mib)


def center_scores(x_block: Any, operand: Any, *, xp: Any) -> Any:
    """``||c||^2 - 2 x.c`` for every row and center, ``(b, k)``: same argmin as the distance.

    Parameters
    ----------
    x_block : array of shape (b, d) or (b, d + 1)
        Plain rows, or homogeneous rows ``[x, 1]`` (then the result is one GEMM).
    operand : array of shape (d + 1, k)
        From :func:`kgpu._distances.homogeneous_operand`.
    """
    if x_block.shape[1] == operand.shape[0]:
        return xp.matmul(x_block, operand)
    scores = xp.matmul(x_block, operand[:-1, :])
    scores += operand[-1, :]
    return scores


def nearest_centers(x_block: Any, operand: Any, *, xp: Any) -> Any:
    """Index of the nearest center (squared Euclidean) of every row of a block: ``(b,)``.

    Ties go to the lowest index.

    Parameters
    ----------
    x_block : array of shape (b, d) or (b, d + 1)
        Plain or homogeneous rows (see :func:`center_scores`).
    operand : array of shape (d + 1, k)
        From :func:`kgpu._distances.homogeneous_operand`.
    """
    return xp.argmin(center_scores(x_block, operand, xp=xp), axis=1)


def assign(
    X: Any,
    centers: Any,
    *,
    xp: Any,
    metric: Metric = SQEUCLIDEAN,
    rows_per_block: int | None = None,
    budget_mib: float | None = None,
    float64_distances: bool = False,
) -> Assignment:
    """Nearest center and the distance to it for every row of ``X`` (operation ``"assign"``).

    Runs the implementation the kernel table picks for ``xp``
    (:mod:`kgpu._kernels.dispatch`); :func:`assign_reference` is the
    array-API reference, documented there.
    """
    options = {"float64_distances": True} if float64_distances else {}
    return call(
        "assign", X, centers, xp=xp, metric=metric, rows_per_block=rows_per_block, budget_mib=budget_mib, **options
    )


@register("assign", ANY_BACKEND, name="array-api")
def assign_reference(
    X: Any,
    centers: Any,
    *,
    xp: Any,
    metric: Metric = SQEUCLIDEAN,
    rows_per_block: int | None = None,
    budget_mib: float | None = None,
    float64_distances: bool = False,
) -> Assignment:
    """Nearest center and the distance to it for every row of ``X``.

    Parameters
    ----------
    X : array of shape (n, d), or (n, d + 1) homogeneous rows ``[x, 1]``
        Homogeneous rows (Euclidean metrics only) make the scores one GEMM.
    centers : array of shape (k, d)
    xp : namespace
    metric : Metric
        From :func:`kgpu._distances.check_metric`; default squared Euclidean.
    rows_per_block : int or None
        Block height (default: from the memory budget).
    budget_mib : float or None
        Memory budget of one block in MiB (default: the backend's).
    float64_distances : bool
        Return ``min_dist`` as float64: the same distances (computed and
        rounded in ``X``'s dtype), widened exactly. A caller that sums them
        in float64 can then weight them in place, with no second ``n``-vector.

    Returns
    -------
    Assignment
        Ties go to the lowest center index.
    """
    n_rows, n_features = X.shape
    if rows_per_block is None:
        rows_per_block = assignment_block_rows(
            n_rows, centers.shape[0], n_features, itemsize(X, xp), xp, budget_mib, metric
        )
    if metric.name in ("sqeuclidean", "euclidean"):
        operand = homogeneous_operand(centers, xp=xp)

        is_homogeneous = X.shape[1] == centers.shape[1] + 1

        def block_assignment(start: int, stop: int) -> tuple[Any, Any]:
            x_block = X[start:stop, :]
            labels_block = nearest_centers(x_block, operand, xp=xp)
            rows = x_block[:, :-1] if is_homogeneous else x_block
            sq_dist = sq_distance_to_own_center(rows, centers, labels_block, xp=xp)
            return labels_block, sq_dist if metric.name == "sqeuclidean" else xp.sqrt(sq_dist)

    else:
        center_sq_norms = row_sq_norms(centers, xp=xp)

        def block_assignment(start: int, stop: int) -> tuple[Any, Any]:
            distances = pairwise_distances(X[start:stop, :], centers, metric, xp=xp, center_sq_norms=center_sq_norms)
            return xp.argmin(distances, axis=1), xp.min(distances, axis=1)

    # Every block writes its own rows of the results: no concatenation, which
    # would hold the blocks' parts and the whole results at once. The first
    # block runs alone and gives the results their dtypes.
    blocks = row_blocks(n_rows, rows_per_block)
    first_parts = map_blocks(block_assignment, blocks[:1], xp)
    first_labels, first_distances = first_parts[0]
    device = device_of(first_labels)
    labels = xp.empty((n_rows,), dtype=first_labels.dtype, device=device)
    distance_dtype = xp.float64 if float64_distances else first_distances.dtype
    min_dist = xp.empty((n_rows,), dtype=distance_dtype, device=device)

    def keep(start: int, stop: int, labels_block: Any, distances: Any) -> None:
        labels[start:stop] = labels_block
        min_dist[start:stop] = xp.astype(distances, distance_dtype) if float64_distances else distances

    start = 0
    for labels_block, distances in first_parts:  # more than one if the block was split
        keep(start, start + labels_block.shape[0], labels_block, distances)
        start += labels_block.shape[0]
    map_blocks(lambda start, stop: keep(start, stop, *block_assignment(start, stop)), blocks[1:], xp)
    return Assignment(labels, min_dist)


def distance_matrix(
    X: Any,
    centers: Any,
    *,
    xp: Any,
    metric: Metric = SQEUCLIDEAN,
    rows_per_block: int | None = None,
    budget_mib: float | None = None,
) -> Any:
    """All distances ``(n, k)`` from the rows of ``X`` to ``centers``, computed in row blocks.

    Euclidean distances of float32 data are computed in float64 and rounded
    once (as scikit-learn's ``euclidean_distances`` does): the expansion
    ``||x||^2 - 2 x.c + ||c||^2`` would otherwise lose most digits of small
    distances.

    Parameters
    ----------
    X : array of shape (n, d) or StreamedRows
    centers : array of shape (k, d)
    xp : namespace
    metric : Metric
    rows_per_block : int or None
    budget_mib : float or None

    Returns
    -------
    distances : array of shape (n, k), dtype of ``X``
    """
    n_rows, n_features = X.shape
    if rows_per_block is None:
        rows_per_block = assignment_block_rows(n_rows, centers.shape[0], n_features, 8, xp, budget_mib, metric)
    upcast = metric.name in ("sqeuclidean", "euclidean") and X.dtype == xp.float32
    centers_work = xp.astype(centers, xp.float64) if upcast else centers
    center_sq_norms = row_sq_norms(centers_work, xp=xp)

    def one_block(start: int, stop: int) -> Any:
        x_block = X[start:stop, :]
        if upcast:
            x_block = xp.astype(x_block, xp.float64)
        distances = pairwise_distances(x_block, centers_work, metric, xp=xp, center_sq_norms=center_sq_norms)
        return xp.astype(distances, X.dtype) if upcast else distances

    return _concat(map_blocks(one_block, row_blocks(n_rows, rows_per_block), xp), xp)


def assign_and_accumulate(
    X: Any,
    sample_weight: Any,
    centers: Any,
    *,
    xp: Any,
    rows_per_block: int,
    previous_labels: Any = None,
    in_place: bool = False,
) -> Accumulation:
    """Fused Lloyd E-step and M-step sums (operation ``"lloyd_step"``).

    Runs the implementation the kernel table picks for ``xp``
    (:mod:`kgpu._kernels.dispatch`); :func:`assign_and_accumulate_reference`
    is the array-API reference, documented there. Half-precision rows
    (:class:`kgpu._stream.StreamedRows` that widen) are converted one block at
    a time and each block runs the fused step itself, so they get the native
    kernels too.
    """
    if getattr(X, "widens", False):
        return _step_over_converted_blocks(
            X, sample_weight, centers, xp=xp, rows_per_block=rows_per_block, previous_labels=previous_labels
        )
    options = {"in_place": True} if in_place else {}
    return call(
        "lloyd_step", X, sample_weight, centers, xp=xp, rows_per_block=rows_per_block, previous_labels=previous_labels,
        **options,
    )


def _step_over_converted_blocks(
    X: Any, sample_weight: Any, centers: Any, *, xp: Any, rows_per_block: int, previous_labels: Any = None
) -> Accumulation:
    """:func:`assign_and_accumulate` of streamed rows: one fused step per converted block.

    The blocks follow ``rows_per_block`` (the shape and the memory budget,
    never the core count) and their float64 sums are added in block order,
    so the result has the same bits on any number of cores.
    """
    def one_block(start: int, stop: int) -> Accumulation:
        # The conversion runs in the block's worker, beside the others' (NumPy),
        # into that worker's reused buffer: the step is done with the block
        # before the worker reads the next.
        return call(
            "lloyd_step", X.converted_block(start, stop), sample_weight[start:stop], centers, xp=xp, rows_per_block=rows_per_block,
            previous_labels=None if previous_labels is None else previous_labels[start:stop],
        )

    parts = map_blocks(one_block, row_blocks(X.shape[0], rows_per_block), xp)
    labels = parts[0].labels if len(parts) == 1 else xp.concat([part.labels for part in parts])
    sums, weights, n_changed = parts[0].sums, parts[0].weights, parts[0].n_changed
    for part in parts[1:]:
        sums = sums + part.sums
        weights = weights + part.weights
        if n_changed is not None:
            n_changed = n_changed + part.n_changed
    return Accumulation(labels, sums, weights, n_changed)


@register("lloyd_step", ANY_BACKEND, name="array-api")
def assign_and_accumulate_reference(
    X: Any,
    sample_weight: Any,
    centers: Any,
    *,
    xp: Any,
    rows_per_block: int,
    previous_labels: Any = None,
    in_place: bool = False,
) -> Accumulation:
    """Fused Lloyd E-step and M-step sums (squared Euclidean).

    Parameters
    ----------
    X : array of shape (n, d) or (n, d + 1)
        Plain rows, or homogeneous rows ``[x, 1]`` from
        :func:`kgpu._distances.homogeneous`: then the scores are a single GEMM
        and one segmented sum yields both the sums and the weights.
    sample_weight : array of shape (n,)
    centers : array of shape (k, d)
    xp : namespace
    rows_per_block : int
    previous_labels : integer array of shape (n,) or None
        Labels of the previous iteration: the changed rows are counted in the
        same pass.
    in_place : bool
        The caller no longer needs ``previous_labels``: the new labels may be
        written over them (each row's old label is read before it is
        overwritten), so a Lloyd run keeps one label array, not two. The
        returned ``labels`` are then ``previous_labels`` itself. An
        implementation may ignore it and return a new array.

    Returns
    -------
    Accumulation
        Per-block partial sums are added in float64, so the result does not
        drift with the number of blocks.
    """
    n_rows = X.shape[0]
    n_clusters, n_features = centers.shape
    is_homogeneous = X.shape[1] == n_features + 1
    operand = homogeneous_operand(centers, xp=xp)
    # Every block writes its own rows: no concatenation pass afterwards.
    if in_place and previous_labels is not None and previous_labels.dtype == xp.int64:
        labels = previous_labels
    else:
        labels = xp.empty((n_rows,), dtype=xp.int64, device=device_of(sample_weight))

    def one_block(start: int, stop: int) -> tuple[Any, Any, Any]:
        x_block = X[start:stop, :]
        weight_block = sample_weight[start:stop]
        labels_block = nearest_centers(x_block, operand, xp=xp)
        n_changed = None
        if previous_labels is not None:
            # A device scalar: converting it here would cost one host sync per block.
            # Counted before the block's labels are written (they may overwrite the previous ones).
            n_changed = xp.astype(xp.count_nonzero(labels_block != previous_labels[start:stop]), xp.int64)
        labels[start:stop] = labels_block
        sums = xp.astype(segment_sum(x_block, labels_block, n_clusters, weight_block, xp=xp), xp.float64)
        if is_homogeneous:
            # The column of ones sums to the weight of each cluster.
            return sums[:, :n_features], sums[:, n_features], n_changed
        weights = segment_weight(labels_block, n_clusters, weight_block, xp=xp, dtype=xp.float64)
        return sums, weights, n_changed

    parts = map_blocks(one_block, row_blocks(n_rows, rows_per_block), xp)
    sums, weights = parts[0][0], parts[0][1]
    for block_sums, block_weights, _ in parts[1:]:
        sums = sums + block_sums
        weights = weights + block_weights
    n_changed = None
    if previous_labels is not None:
        n_changed = parts[0][2]
        for part in parts[1:]:
            n_changed = n_changed + part[2]
    return Accumulation(labels, sums, weights, n_changed)


def weighted_sum(values: Any, sample_weight: Any, *, xp: Any, overwrite_values: bool = False) -> float:
    """``sum(w_i * v_i)`` accumulated in float64, as a Python float.

    The float64 products are written block by block into one array and
    summed once: the same sum, bit for bit, as of the whole arrays cast and
    multiplied at once, with one ``n``-vector of temporaries instead of three.
    With ``overwrite_values`` (``values`` float64 and no longer needed), the
    products are written over ``values``: no temporary ``n``-vector at all.
    """
    n_rows = values.shape[0]
    if overwrite_values and values.dtype == xp.float64:
        products = values
    else:
        products = xp.empty((n_rows,), dtype=xp.float64, device=device_of(values))

    def fill(start: int, stop: int) -> None:
        products[start:stop] = xp.astype(values[start:stop], xp.float64) * xp.astype(sample_weight[start:stop], xp.float64)

    map_blocks(fill, row_blocks(n_rows, _PRODUCT_BLOCK_ROWS), xp)
    return float(xp.sum(products))


#: Rows per block of :func:`weighted_sum`'s products (a few MiB of temporaries).
_PRODUCT_BLOCK_ROWS = 1 << 16


def weighted_inertia(
    X: Any,
    sample_weight: Any,
    centers: Any,
    labels: Any,
    *,
    xp: Any,
    rows_per_block: int | None = None,
) -> float:
    """``sum(w_i * ||x_i - c[label_i]||^2)``, computed exactly (no expansion), as a float.

    The per-block partial sums stay on the device and are added in block
    order, so the result costs one host sync whatever the number of blocks.
    """
    n_rows, n_features = X.shape
    if rows_per_block is None:
        rows_per_block = assignment_block_rows(n_rows, 1, n_features, itemsize(X, xp), xp)

    def one_block(start: int, stop: int) -> Any:
        dist = sq_distance_to_own_center(X[start:stop, :], centers, labels[start:stop], xp=xp)
        return xp.sum(xp.astype(dist, xp.float64) * xp.astype(sample_weight[start:stop], xp.float64))

    parts = map_blocks(one_block, row_blocks(n_rows, rows_per_block), xp)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return float(total)


def _concat(parts: list, xp: Any) -> Any:
    return parts[0] if len(parts) == 1 else xp.concat(parts)
