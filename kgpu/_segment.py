"""Segmented reductions: per-cluster weighted sums, weights and medians.

The array API standard has no scatter-add, so this module is the one place
that provides it. :func:`segment_sum_standard` is written with standard calls
only (a one-hot matrix times the values: one GEMM, exact in its pairing and
deterministic); each backend that has a native scatter gets a fast path, and
the tests check every fast path against the standard version. The weighted
median of each segment (:func:`segment_median`, the K-Medians update) is a
sort by (segment, value) in the standard, with a per-segment fast path on
NumPy.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._kernels.dispatch import ANY_BACKEND, call, register
from ._backend import backend_name, device_of


def segment_sum(values: Any, labels: Any, n_segments: int, weights: Any = None, *, xp: Any) -> Any:
    """Weighted sum of the rows of ``values`` in each segment.

    Parameters
    ----------
    values : array of shape (n, d)
    labels : integer array of shape (n,)
        Segment of every row, in ``[0, n_segments)``.
    n_segments : int
    weights : array of shape (n,) or None
        Row weights (``None``: all ones).
    xp : namespace

    Returns
    -------
    sums : array of shape (n_segments, d), dtype of ``values``
        ``sums[j] = sum(weights[i] * values[i] for i with labels[i] == j)``.
    """
    name = backend_name(xp)
    if name == "numpy":
        return _segment_sum_numpy(values, labels, n_segments, weights)
    if name == "torch":
        return _segment_sum_torch(values, labels, n_segments, weights)
    if name == "cupy":
        return _segment_sum_cupy(values, labels, n_segments, weights)
    return segment_sum_standard(values, labels, n_segments, weights, xp=xp)


def segment_weight(labels: Any, n_segments: int, weights: Any = None, *, xp: Any, dtype: Any = None) -> Any:
    """Total weight (or count) of each segment: a weighted ``bincount``.

    Parameters
    ----------
    labels : integer array of shape (n,)
    n_segments : int
    weights : array of shape (n,) or None
        ``None`` counts rows.
    xp : namespace
    dtype : dtype or None
        Result dtype; defaults to that of ``weights`` (float64 when counting).

    Returns
    -------
    totals : array of shape (n_segments,)
    """
    name = backend_name(xp)
    if dtype is None:
        dtype = weights.dtype if weights is not None else xp.float64
    if name == "numpy":
        out = np.bincount(labels, weights=weights, minlength=n_segments)
        return out.astype(dtype, copy=False)
    if name == "torch":
        import torch

        out = torch.zeros(n_segments, dtype=dtype, device=labels.device)
        source = torch.ones_like(labels, dtype=dtype) if weights is None else weights.to(dtype)
        return out.index_add_(0, labels, source)
    if name == "cupy":
        import cupy

        out = cupy.bincount(labels, weights=weights, minlength=n_segments)
        return out.astype(dtype, copy=False)
    return segment_weight_standard(labels, n_segments, weights, xp=xp, dtype=dtype)


def segment_sum_standard(values: Any, labels: Any, n_segments: int, weights: Any = None, *, xp: Any) -> Any:
    """:func:`segment_sum` with standard calls only (one-hot GEMM)."""
    one_hot = _one_hot_rows(labels, n_segments, values.dtype, xp=xp)
    if weights is not None:
        one_hot = one_hot * weights[None, :]
    return one_hot @ values


def segment_weight_standard(labels: Any, n_segments: int, weights: Any = None, *, xp: Any, dtype: Any = None) -> Any:
    """:func:`segment_weight` with standard calls only."""
    if dtype is None:
        dtype = weights.dtype if weights is not None else xp.float64
    one_hot = _one_hot_rows(labels, n_segments, dtype, xp=xp)
    if weights is not None:
        one_hot = one_hot * xp.astype(weights, dtype)[None, :]
    return xp.sum(one_hot, axis=1)


def _one_hot_rows(labels: Any, n_segments: int, dtype: Any, *, xp: Any) -> Any:
    """``(n_segments, n)`` matrix with a 1 where ``labels[i] == j``."""
    segment_ids = xp.arange(n_segments, dtype=labels.dtype, device=device_of(labels))
    return xp.astype(segment_ids[:, None] == labels[None, :], dtype)


def _segment_sum_numpy(values: np.ndarray, labels: np.ndarray, n_segments: int, weights: Any) -> np.ndarray:
    # A (n_segments x n) CSC matrix with one entry per column is a scatter-add
    # in compiled code: O(n d), unlike np.add.at (slow) or a one-hot GEMM
    # (O(n d k)). Building it from (data, indices, indptr) skips COO sorting.
    import scipy.sparse as sp

    n_rows = labels.shape[0]
    data = np.ones(n_rows, dtype=values.dtype) if weights is None else weights.astype(values.dtype, copy=False)
    scatter = sp.csc_matrix(
        (data, labels, np.arange(n_rows + 1)), shape=(n_segments, n_rows)
    )
    return np.asarray(scatter @ values)


def _segment_sum_torch(values: Any, labels: Any, n_segments: int, weights: Any) -> Any:
    import torch

    out = torch.zeros((n_segments, values.shape[1]), dtype=values.dtype, device=values.device)
    source = values if weights is None else values * weights[:, None]
    return out.index_add_(0, labels, source)


def _segment_sum_cupy(values: Any, labels: Any, n_segments: int, weights: Any) -> Any:
    import cupy
    import cupyx

    out = cupy.zeros((n_segments, values.shape[1]), dtype=values.dtype)
    source = values if weights is None else values * weights[:, None]
    cupyx.scatter_add(out, labels, source)
    return out


# --------------------------------------------------------------- medians


def segment_median(
    values: Any,
    labels: Any,
    n_segments: int,
    weights: Any = None,
    *,
    xp: Any,
    budget_mib: float | None = None,
) -> Any:
    """Weighted median of every column within each segment (operation ``"segment_median"``).

    Runs the implementation the kernel table picks for ``xp``
    (:mod:`kgpu._kernels.dispatch`); :func:`segment_median_reference` is the
    array-API reference (with its NumPy fast path), documented there.
    """
    return call("segment_median", values, labels, n_segments, weights, xp=xp, budget_mib=budget_mib)


@register("segment_median", ANY_BACKEND, name="array-api")
def segment_median_reference(
    values: Any,
    labels: Any,
    n_segments: int,
    weights: Any = None,
    *,
    xp: Any,
    budget_mib: float | None = None,
) -> Any:
    """Weighted median of every column of ``values`` within each segment.

    The rule, for one column of one segment: sort its values
    ``v_1 <= ... <= v_m`` (weights ``w_i``, total ``W``). The *lower* weighted
    median is the smallest ``v_i`` whose cumulative weight ``w_1 + ... + w_i``
    reaches ``W / 2``; the *upper* one is the smallest ``v_i`` whose cumulative
    weight exceeds ``W / 2``. The result is their midpoint
    ``(lower + upper) / 2``. With equal weights this is :func:`numpy.median`:
    the middle value for an odd count, the mean of the two middle values for an
    even count. A zero-weight row is never chosen, and an integer weight acts
    exactly like that many copies of the row. Every point between the lower and
    upper medians minimises the weighted L1 cost, so either choice is a correct
    K-Medians update; the midpoint is the one that does not depend on the order
    of the rows.

    Cumulative weights are compared with ``W / 2`` in float64: with fractional
    weights, a cumulative weight of exactly ``W / 2`` is detected up to rounding.
    Equal weights are dropped first, so that case is decided on exact counts.

    Parameters
    ----------
    values : array of shape (n, d)
    labels : integer array of shape (n,)
        Segment of every row, in ``[0, n_segments)``.
    n_segments : int
    weights : array of shape (n,) or None
        Non-negative row weights (``None``: all ones).
    xp : namespace
    budget_mib : float or None
        Memory budget of one block of columns in MiB (default: the backend's).

    Returns
    -------
    medians : array of shape (n_segments, d), dtype of ``values``
        Segments with no rows, or only zero-weight rows, get 0: callers find
        them with :func:`segment_weight`.
    """
    weights = _informative_weights(weights, xp=xp)
    if backend_name(xp) == "numpy":
        return _segment_median_numpy(values, labels, n_segments, weights, budget_mib)
    return segment_median_standard(values, labels, n_segments, weights, xp=xp, budget_mib=budget_mib)


def segment_median_standard(
    values: Any,
    labels: Any,
    n_segments: int,
    weights: Any = None,
    *,
    xp: Any,
    budget_mib: float | None = None,
) -> Any:
    """:func:`segment_median` with standard calls only.

    Every column is sorted by value, then stably by segment, so each segment's
    rows are contiguous and in increasing order. Unweighted, the two middle
    positions follow from the counts; weighted, a running sum of the sorted
    weights (float64) is compared with each segment's half weight, and a
    segmented count of the rows below it gives the lower (``<``) and upper
    (``<=``) median positions of every segment and column at once. Columns
    are processed in blocks sized to ``budget_mib``.
    """
    from ._blocks import block_rows, map_blocks, row_blocks

    weights = _informative_weights(weights, xp=xp)
    n_rows, n_columns = values.shape
    device = device_of(values)
    if n_rows == 0:
        return xp.zeros((n_segments, n_columns), dtype=values.dtype, device=device)
    sorted_labels = xp.sort(labels)
    segment_ids = xp.arange(n_segments, dtype=labels.dtype, device=device)
    starts = xp.searchsorted(sorted_labels, segment_ids, side="left")
    ends = xp.searchsorted(sorted_labels, segment_ids, side="right")
    counts = ends - starts
    # Clamp a position into its segment (and into the array, for empty segments).
    lowest = starts[:, None]
    highest = xp.clip(xp.maximum(ends - 1, starts), max=n_rows - 1)[:, None]
    if weights is None:
        occupied = counts > 0
    else:
        weights64 = xp.astype(weights, xp.float64)
        occupied = segment_weight(labels, n_segments, weights64, xp=xp) > 0

    def one_block(first: int, last: int) -> Any:
        block = values[:, first:last]
        shape = block.shape
        by_value = xp.argsort(block, axis=0)
        segment_of = xp.reshape(xp.take(labels, xp.reshape(by_value, (-1,))), shape)
        order = xp.take_along_axis(by_value, xp.argsort(segment_of, axis=0, stable=True), axis=0)
        sorted_block = xp.take_along_axis(block, order, axis=0)
        if weights is None:
            lower = xp.broadcast_to((starts + (counts - 1) // 2)[:, None], (n_segments, last - first))
            upper = xp.broadcast_to((starts + counts // 2)[:, None], (n_segments, last - first))
        else:
            running = xp.cumulative_sum(xp.reshape(xp.take(weights64, xp.reshape(order, (-1,))), shape), axis=0)
            before = xp.take(running, xp.clip(starts - 1, min=0), axis=0)
            before = xp.where((starts > 0)[:, None], before, xp.zeros_like(before))
            half = before + (xp.take(running, xp.clip(ends - 1, min=0), axis=0) - before) / 2
            # Rows of a segment before its lower (upper) median: those whose
            # running weight is below (at most) the segment's half weight.
            half_of_row = xp.take(half, sorted_labels, axis=0)
            n_below = segment_sum(xp.astype(running < half_of_row, xp.float64), sorted_labels, n_segments, xp=xp)
            n_at_most = segment_sum(xp.astype(running <= half_of_row, xp.float64), sorted_labels, n_segments, xp=xp)
            lower = starts[:, None] + xp.astype(n_below, starts.dtype)
            upper = starts[:, None] + xp.astype(n_at_most, starts.dtype)
        lower = xp.minimum(xp.maximum(lower, lowest), highest)
        upper = xp.minimum(xp.maximum(upper, lowest), highest)
        medians = (xp.take_along_axis(sorted_block, lower, axis=0) + xp.take_along_axis(sorted_block, upper, axis=0)) / 2
        return xp.where(occupied[:, None], medians, xp.zeros_like(medians))

    # argsorts, gathers and the float64 running sum: about 64 bytes per element.
    columns_per_block = block_rows(n_columns, n_rows * 64, xp, budget_mib)
    parts = map_blocks(one_block, row_blocks(n_columns, columns_per_block), xp)
    return parts[0] if len(parts) == 1 else xp.concat(parts, axis=1)


def _informative_weights(weights: Any, *, xp: Any) -> Any:
    """``None`` when all weights are equal and positive (the medians are then unweighted)."""
    if weights is None or weights.shape[0] == 0:
        return weights
    first = weights[0]
    if bool(first > 0) and bool(xp.all(weights == first)):
        return None
    return weights


def _segment_median_numpy(
    values: np.ndarray, labels: np.ndarray, n_segments: int, weights: Any, budget_mib: float | None
) -> np.ndarray:
    # Rows grouped by segment once, then each segment on its own: np.median
    # (a partition, O(m)) or one sort of a block that stays in cache, instead
    # of two full-length argsorts per column.
    from ._blocks import block_rows, map_blocks, row_blocks

    n_rows, n_columns = values.shape
    medians = np.zeros((n_segments, n_columns), dtype=values.dtype)
    if n_rows == 0:
        return medians
    by_segment = np.argsort(labels, kind="stable")
    ends = np.cumsum(np.bincount(labels, minlength=n_segments))
    starts = ends - np.bincount(labels, minlength=n_segments)
    grouped = values[by_segment]
    grouped_weights = None if weights is None else np.asarray(weights, dtype=np.float64)[by_segment]
    columns = np.arange(n_columns)

    def segment_range(first: int, last: int) -> None:
        for segment in range(first, last):
            start, stop = int(starts[segment]), int(ends[segment])
            if stop == start:
                continue
            block = grouped[start:stop]
            if grouped_weights is None:
                medians[segment] = np.median(block, axis=0)
                continue
            segment_weights = grouped_weights[start:stop]
            if not np.any(segment_weights > 0):
                continue
            order = np.argsort(block, axis=0)
            running = np.cumsum(segment_weights[order], axis=0)
            half = running[-1] / 2
            last_row = stop - start - 1
            lower = np.minimum(np.count_nonzero(running < half, axis=0), last_row)
            upper = np.minimum(np.count_nonzero(running <= half, axis=0), last_row)
            sorted_block = np.take_along_axis(block, order, axis=0)
            medians[segment] = (sorted_block[lower, columns] + sorted_block[upper, columns]) / 2

    # About as many segments per task as rows fit the budget (one task per core at least).
    mean_rows = max(1, n_rows // max(1, n_segments))
    segments_per_task = block_rows(n_segments, mean_rows * n_columns * 24, np, budget_mib)
    map_blocks(segment_range, row_blocks(n_segments, segments_per_task), np)
    return medians
