"""Fused Triton kernels for CUDA arrays: PyTorch tensors, and CuPy arrays through DLPack.

Registered in the kernel table (:mod:`kgpu._kernels.dispatch`) for the
backends ``"torch"`` (CUDA tensors) and ``"cupy"`` (zero-copy views as torch
tensors). Each has the signature and return type of its array-API reference
and is compared with it by a self-check on the first call per device.

- ``"lloyd_step"``: a tile of rows against tiles of centers with ``tl.dot``,
  the running min / argmin kept in registers, so the ``(rows x k)`` score
  matrix is never written; then a sort-based update: the rows are ordered by
  label once (``argsort``) and each program sums a fixed slice of one
  cluster's rows, weight applied in registers (no ``X * w`` copy), into its
  own float64 partial; the partials are added in a fixed order. No atomics
  anywhere, so a seed gives the same bits run after run on one GPU.
- ``"assign"``: the same fused argmin for ``sqeuclidean`` / ``euclidean``,
  and a tiled ``|x - c|^p`` kernel for ``manhattan`` / ``minkowski``.
- ``"plusplus_step"``: one read of ``X`` per k-means++ step: the squared
  distances to every candidate, the new costs and per-program partial
  potentials in one pass.
- ``"segment_median"``: one sort per call (of the labels), then each
  program finds the lower and upper weighted medians of a block of columns
  of one segment by bisection on the values' integer keys: no column is sorted.

Precision of the assignment GEMM (float32 data): ``precision=`` on each
function, or the ``KGPU_PRECISION`` environment variable for the estimators:

- ``"ieee"`` (default): exact FP32 products and sums, no tensor-core rounding;
- ``"tf32x3"``: three TF32 tensor-core products per product (split
  mantissas), about FP32 accuracy at tensor-core speed;
- ``"tf32"``: one TF32 product (10-bit mantissa): fastest, labels of nearly
  equidistant points may differ from the FP32 result.

Float64 data is computed in float64 and float16 data in float32. Without a
GPU, Triton's interpreter (``TRITON_INTERPRET=1``, set before this module is
imported) runs the same kernels on CPU tensors: the contract tests in
``tests/kernels`` call the functions directly that way.
"""

from __future__ import annotations

import os
from typing import Any

import torch
import triton
import triton.language as tl

from .._assign import (
    SQEUCLIDEAN,
    Accumulation,
    Assignment,
    assign_and_accumulate_reference,
    assign_reference,
)
from .._distances import Metric
from .._init import PlusPlusStep, plusplus_step_reference
from .dispatch import register

#: Accepted values of ``precision=`` (and of ``KGPU_PRECISION``).
PRECISIONS = ("ieee", "tf32x3", "tf32")

#: True when Triton runs its interpreter (CPU tensors) instead of compiling for a GPU.
INTERPRETED = os.environ.get("TRITON_INTERPRET", "0") == "1"

_FLOAT_DTYPES = (torch.float16, torch.float32, torch.float64)


def default_precision() -> str:
    """The assignment precision for float32 data: ``KGPU_PRECISION``, else ``"ieee"``."""
    return check_precision(os.environ.get("KGPU_PRECISION", "ieee"))


def check_precision(precision: Any) -> str:
    """Validate a ``precision=`` value."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    return precision


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _tl_dtype(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _pow2(value: int, low: int, high: int) -> int:
    return max(low, min(high, triton.next_power_of_2(max(1, value))))


def _rows_view(X: torch.Tensor, n_features: int) -> torch.Tensor:
    """The first ``n_features`` columns of ``X`` (homogeneous rows ``[x, 1]`` included), unit column stride."""
    rows = X[:, :n_features]
    return rows if rows.stride(1) == 1 else rows.contiguous()


# --------------------------------------------------------------------------- kernels


@triton.jit
def _load_tile(BASE, row_ids, row_stride, columns, row_ok, column_ok, ACC: tl.constexpr):
    """The ``(rows x columns)`` tile of a row-major matrix, 0 outside the masks, in ``ACC``."""
    return tl.load(BASE + row_ids[:, None] * row_stride + columns[None, :],
                   mask=row_ok[:, None] & column_ok[None, :], other=0.0).to(ACC)


@triton.jit
def _keep_nearer(best, best_index, scores, center_ok, first_center):
    """Fold a ``(rows x centers)`` score tile into the running minimum and its center index."""
    scores = tl.where(center_ok[None, :], scores, float("inf"))
    tile_best = tl.min(scores, axis=1)
    tile_index = tl.argmin(scores, axis=1).to(tl.int64) + first_center
    # Strictly smaller: a tie keeps the earlier (lower-index) center.
    better = tile_best < best
    return tl.where(better, tile_best, best), tl.where(better, tile_index, best_index)


@triton.jit
def _nearest_sq_kernel(
    X, stride_x, C, C_SQ, LABELS, MIN_DIST,
    n_rows, n_centers, n_features,
    ACC: tl.constexpr, PRECISION: tl.constexpr, WRITE_DIST: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Nearest center (squared Euclidean) of a tile of rows; the score tile lives in registers."""
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n_rows
    rows64 = rows.to(tl.int64)
    best = tl.full((BLOCK_N,), float("inf"), ACC)
    best_index = tl.zeros((BLOCK_N,), tl.int64)
    for first_center in range(0, n_centers, BLOCK_K):
        centers = first_center + tl.arange(0, BLOCK_K)
        center_ok = centers < n_centers
        dots = tl.zeros((BLOCK_N, BLOCK_K), ACC)
        for first_feature in range(0, n_features, BLOCK_D):
            features = first_feature + tl.arange(0, BLOCK_D)
            feature_ok = features < n_features
            x = _load_tile(X, rows64, stride_x, features, row_ok, feature_ok, ACC)
            c = _load_tile(C, centers, n_features, features, center_ok, feature_ok, ACC)
            dots = tl.dot(x, tl.trans(c), dots, input_precision=PRECISION, out_dtype=ACC)
        c_sq = tl.load(C_SQ + centers, mask=center_ok, other=0.0)
        # ||c||^2 - 2 x.c: the squared distance minus ||x||^2, same argmin.
        best, best_index = _keep_nearer(best, best_index, c_sq[None, :] - 2.0 * dots, center_ok, first_center)
    tl.store(LABELS + rows64, best_index, mask=row_ok)
    if WRITE_DIST:
        # The distance to the chosen center, computed exactly as ||x - c||^2.
        distance = tl.zeros((BLOCK_N,), ACC)
        for first_feature in range(0, n_features, BLOCK_D):
            features = first_feature + tl.arange(0, BLOCK_D)
            feature_ok = features < n_features
            x = _load_tile(X, rows64, stride_x, features, row_ok, feature_ok, ACC)
            c = _load_tile(C, best_index, n_features, features, row_ok, feature_ok, ACC)
            diff = x - c
            distance += tl.sum(diff * diff, axis=1)
        tl.store(MIN_DIST + rows64, distance, mask=row_ok)


@triton.jit
def _nearest_lp_kernel(
    X, stride_x, C, LABELS, MIN_DIST,
    n_rows, n_centers, n_features, p,
    ACC: tl.constexpr, MANHATTAN: tl.constexpr,
    BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Nearest center under ``sum |x - c|^p`` (argmin of the Minkowski distance) of a tile of rows."""
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n_rows
    rows64 = rows.to(tl.int64)
    best = tl.full((BLOCK_N,), float("inf"), ACC)
    best_index = tl.zeros((BLOCK_N,), tl.int64)
    for first_center in range(0, n_centers, BLOCK_K):
        centers = first_center + tl.arange(0, BLOCK_K)
        center_ok = centers < n_centers
        total = tl.zeros((BLOCK_N, BLOCK_K), ACC)
        for first_feature in range(0, n_features, BLOCK_D):
            features = first_feature + tl.arange(0, BLOCK_D)
            feature_ok = features < n_features
            x = _load_tile(X, rows64, stride_x, features, row_ok, feature_ok, ACC)
            c = _load_tile(C, centers, n_features, features, center_ok, feature_ok, ACC)
            gap = tl.abs(x[:, None, :] - c[None, :, :])
            if MANHATTAN:
                total += tl.sum(gap, axis=2)
            else:
                # |g|^p as exp2(p log2 |g|), exactly 0 for a zero gap.
                powered = tl.exp2(p * tl.log2(tl.maximum(gap, 1e-30)))
                total += tl.sum(tl.where(gap > 0, powered, 0.0), axis=2)
        best, best_index = _keep_nearer(best, best_index, total, center_ok, first_center)
    tl.store(LABELS + rows64, best_index, mask=row_ok)
    tl.store(MIN_DIST + rows64, best, mask=row_ok)


@triton.jit
def _segment_sums_kernel(
    X, stride_x, WEIGHTS, ORDER, STARTS, COUNTS, PART_SUMS, PART_WEIGHTS,
    n_centers, n_features, rows_per_slice, n_slices,
    BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Program ``(j, s, f)``: float64 sum of the weighted rows of cluster ``j`` in its slices ``s, s + S, ...``.

    The rows of cluster ``j`` are ``ORDER[STARTS[j] : STARTS[j] + COUNTS[j]]``
    (rows sorted by label). Each program reads a fixed set of them, in a
    fixed order, into its own partial: no atomics, so the sums are the same
    bits on every run.
    """
    cluster = tl.program_id(0)
    first_slice = tl.program_id(1)
    features = tl.program_id(2) * BLOCK_D + tl.arange(0, BLOCK_D)
    feature_ok = features < n_features
    start = tl.load(STARTS + cluster)
    count = tl.load(COUNTS + cluster)
    sums = tl.zeros((BLOCK_R, BLOCK_D), tl.float64)
    weight_sums = tl.zeros((BLOCK_R,), tl.float64)
    for slice_start in range(first_slice * rows_per_slice, count, n_slices * rows_per_slice):
        slice_stop = tl.minimum(slice_start + rows_per_slice, count)
        for first_row in range(slice_start, slice_stop, BLOCK_R):
            positions = first_row + tl.arange(0, BLOCK_R)
            row_ok = positions < slice_stop
            rows = tl.load(ORDER + start + positions, mask=row_ok, other=0)
            weight = tl.load(WEIGHTS + rows, mask=row_ok, other=0.0).to(tl.float64)
            x = _load_tile(X, rows, stride_x, features, row_ok, feature_ok, tl.float64)
            sums += x * weight[:, None]
            weight_sums += weight
    out = (first_slice * n_centers + cluster).to(tl.int64)
    tl.store(PART_SUMS + out * n_features + features, tl.sum(sums, axis=0), mask=feature_ok)
    if tl.program_id(2) == 0:
        tl.store(PART_WEIGHTS + out, tl.sum(weight_sums, axis=0))


@triton.jit
def _plusplus_kernel(
    X, stride_x, CANDIDATES, CLOSEST, WEIGHTS, COSTS, PARTIAL,
    n_rows, n_candidates, n_features,
    ACC: tl.constexpr, M_PAD: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """One k-means++ step over a tile of rows: costs ``min(closest, ||x - c_m||^2)`` and their weighted sums."""
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    row_ok = rows < n_rows
    rows64 = rows.to(tl.int64)
    candidates = tl.arange(0, M_PAD)
    candidate_ok = candidates < n_candidates
    distance = tl.zeros((BLOCK_N, M_PAD), ACC)
    for first_feature in range(0, n_features, BLOCK_D):
        features = first_feature + tl.arange(0, BLOCK_D)
        feature_ok = features < n_features
        x = _load_tile(X, rows64, stride_x, features, row_ok, feature_ok, ACC)
        c = _load_tile(CANDIDATES, candidates, n_features, features, candidate_ok, feature_ok, ACC)
        diff = x[:, None, :] - c[None, :, :]
        distance += tl.sum(diff * diff, axis=2)
    closest = tl.load(CLOSEST + rows64, mask=row_ok, other=0.0)
    costs = tl.minimum(closest[:, None], distance.to(tl.float64))
    mask = row_ok[:, None] & candidate_ok[None, :]
    tl.store(COSTS + rows64[:, None] * n_candidates + candidates[None, :], costs, mask=mask)
    weight = tl.load(WEIGHTS + rows64, mask=row_ok, other=0.0)
    potential = tl.sum(tl.where(mask, costs * weight[:, None], 0.0), axis=0)
    tl.store(PARTIAL + pid * n_candidates + candidates, potential, mask=candidate_ok)


@triton.jit
def _ordered_key(x, INT: tl.constexpr, SHIFT: tl.constexpr, LOW_BITS: tl.constexpr):
    """Integer key with the order of the floats ``x``: the low bits of negative numbers flipped."""
    bits = x.to(INT, bitcast=True)
    return bits ^ ((bits >> SHIFT) & LOW_BITS)


@triton.jit
def _segment_tile(
    SORTED, WEIGHTS, start, first, count, columns, column_ok, n_features,
    ACC: tl.constexpr, INT: tl.constexpr, SHIFT: tl.constexpr, LOW_BITS: tl.constexpr,
    HAS_WEIGHTS: tl.constexpr, BLOCK_R: tl.constexpr,
):
    """Order keys, row weights (1 without weights) and mask of rows ``first:first + BLOCK_R`` of a segment."""
    positions = first + tl.arange(0, BLOCK_R)
    row_ok = positions < count
    rows = (start + positions).to(tl.int64)
    values = _load_tile(SORTED, rows, n_features, columns, row_ok, column_ok, ACC)
    if HAS_WEIGHTS:
        weight = tl.load(WEIGHTS + rows, mask=row_ok, other=0.0)
    else:
        weight = tl.where(row_ok, 1.0, 0.0).to(tl.float64)
    return _ordered_key(values, INT, SHIFT, LOW_BITS), weight, row_ok[:, None] & column_ok[None, :]


@triton.jit
def _segment_median_kernel(
    SORTED, WEIGHTS, STARTS, COUNTS, OUT, n_features,
    ACC: tl.constexpr, INT: tl.constexpr, SHIFT: tl.constexpr, LOW_BITS: tl.constexpr, HAS_WEIGHTS: tl.constexpr,
    BLOCK_R: tl.constexpr, BLOCK_D: tl.constexpr,
):
    """Weighted lower and upper medians of a block of columns of one segment, by bisection on the value keys.

    ``SORTED`` holds the rows ordered by segment (one sort per iteration, of
    the labels). The lower median is the smallest value whose cumulative
    weight reaches half the total, the upper the smallest whose cumulative
    weight exceeds it; both are found by halving an interval of integer keys,
    snapped to the data keys at each pass (a few passes over the segment's
    rows, at most 32 or 64), so no column is ever sorted.
    """
    segment = tl.program_id(0)
    columns = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    column_ok = columns < n_features
    start = tl.load(STARTS + segment)
    count = tl.load(COUNTS + segment)
    lowest = tl.full((BLOCK_D,), 0, INT) + ((1 << SHIFT) - 1)  # the largest key
    highest = -lowest - 1  # the smallest key
    total = tl.zeros((BLOCK_D,), tl.float64)
    for first in range(0, count, BLOCK_R):
        keys, weight, mask = _segment_tile(
            SORTED, WEIGHTS, start, first, count, columns, column_ok, n_features,
            ACC, INT, SHIFT, LOW_BITS, HAS_WEIGHTS, BLOCK_R,
        )
        lowest = tl.minimum(lowest, tl.min(tl.where(mask, keys, (1 << SHIFT) - 1), axis=0))
        highest = tl.maximum(highest, tl.max(tl.where(mask, keys, -(1 << SHIFT)), axis=0))
        total += tl.sum(tl.where(mask, weight[:, None], 0.0), axis=0)
    half = total / 2
    lower_lo, lower_hi = lowest, highest
    upper_lo, upper_hi = lowest, highest
    while tl.sum((lower_lo < lower_hi).to(tl.int32) + (upper_lo < upper_hi).to(tl.int32)) > 0:
        # Floor of the midpoint without overflow.
        lower_mid = (lower_lo >> 1) + (lower_hi >> 1) + (lower_lo & lower_hi & 1)
        upper_mid = (upper_lo >> 1) + (upper_hi >> 1) + (upper_lo & upper_hi & 1)
        lower_weight = tl.zeros((BLOCK_D,), tl.float64)
        upper_weight = tl.zeros((BLOCK_D,), tl.float64)
        # The data keys next to each midpoint: the interval snaps to them, so
        # it ends after a few passes, not after 32 or 64.
        lower_below = tl.zeros((BLOCK_D,), INT) - ((1 << SHIFT) - 1) - 1
        lower_above = tl.zeros((BLOCK_D,), INT) + ((1 << SHIFT) - 1)
        upper_below = lower_below
        upper_above = lower_above
        for first in range(0, count, BLOCK_R):
            keys, weight, mask = _segment_tile(
                SORTED, WEIGHTS, start, first, count, columns, column_ok, n_features,
                ACC, INT, SHIFT, LOW_BITS, HAS_WEIGHTS, BLOCK_R,
            )
            at_most_lower = mask & (keys <= lower_mid[None, :])
            at_most_upper = mask & (keys <= upper_mid[None, :])
            lower_weight += tl.sum(tl.where(at_most_lower, weight[:, None], 0.0), axis=0)
            upper_weight += tl.sum(tl.where(at_most_upper, weight[:, None], 0.0), axis=0)
            lower_below = tl.maximum(lower_below, tl.max(tl.where(at_most_lower, keys, -(1 << SHIFT)), axis=0))
            lower_above = tl.minimum(lower_above, tl.min(tl.where(mask & ~at_most_lower, keys, (1 << SHIFT) - 1), axis=0))
            upper_below = tl.maximum(upper_below, tl.max(tl.where(at_most_upper, keys, -(1 << SHIFT)), axis=0))
            upper_above = tl.minimum(upper_above, tl.min(tl.where(mask & ~at_most_upper, keys, (1 << SHIFT) - 1), axis=0))
        # The answer is a data key: at most the largest key <= mid when the
        # weight up to mid suffices, else at least the smallest key > mid.
        lower_open = lower_lo < lower_hi
        lower_take = lower_weight >= half
        lower_hi = tl.where(lower_open & lower_take, lower_below, lower_hi)
        lower_lo = tl.where(lower_open & ~lower_take, lower_above, lower_lo)
        upper_open = upper_lo < upper_hi
        upper_take = upper_weight > half
        upper_hi = tl.where(upper_open & upper_take, upper_below, upper_hi)
        upper_lo = tl.where(upper_open & ~upper_take, upper_above, upper_lo)
    lower = _ordered_key(lower_lo, INT, SHIFT, LOW_BITS).to(ACC, bitcast=True)
    upper = _ordered_key(upper_lo, INT, SHIFT, LOW_BITS).to(ACC, bitcast=True)
    median = tl.where(total > 0, (lower + upper) / 2, 0.0)
    tl.store(OUT + segment.to(tl.int64) * n_features + columns, median, mask=column_ok)


# --------------------------------------------------------------------------- torch entry points


def nearest_labels(
    X: torch.Tensor,
    centers: torch.Tensor,
    *,
    write_distance: bool,
    precision: str | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Labels (int64) and, optionally, exact squared distances of the nearest centers.

    ``X`` may have more columns than ``centers`` (homogeneous rows ``[x, 1]``):
    only the first ``d`` are read, with the row stride of ``X``.
    """
    precision = default_precision() if precision is None else check_precision(precision)
    n_rows = X.shape[0]
    n_centers, n_features = centers.shape
    rows = _rows_view(X, n_features)
    acc = _compute_dtype(X.dtype)
    centers_acc = centers.to(acc).contiguous()
    c_sq = (centers_acc * centers_acc).sum(dim=1)
    labels = torch.empty(n_rows, dtype=torch.int64, device=X.device)
    min_dist = torch.empty(n_rows, dtype=acc, device=X.device) if write_distance else labels
    if acc == torch.float64:
        precision = "ieee"  # TF32 applies to float32 only
    block_n = 64 if INTERPRETED else 128
    grid = (triton.cdiv(n_rows, block_n),)
    _nearest_sq_kernel[grid](
        rows, rows.stride(0), centers_acc, c_sq, labels, min_dist, n_rows, n_centers, n_features,
        ACC=_tl_dtype(acc), PRECISION=precision, WRITE_DIST=write_distance,
        BLOCK_N=block_n, BLOCK_K=_pow2(n_centers, 16, 64), BLOCK_D=_pow2(n_features, 16, 32),
    )
    return labels, (min_dist if write_distance else None)


def nearest_lp(X: torch.Tensor, centers: torch.Tensor, p: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Labels and Minkowski distances (order ``p``; 1 is manhattan) of the nearest centers."""
    n_rows = X.shape[0]
    n_centers, n_features = centers.shape
    rows = _rows_view(X, n_features)
    acc = _compute_dtype(X.dtype)
    labels = torch.empty(n_rows, dtype=torch.int64, device=X.device)
    totals = torch.empty(n_rows, dtype=acc, device=X.device)
    block_n = 32
    _nearest_lp_kernel[(triton.cdiv(n_rows, block_n),)](
        rows, rows.stride(0), centers.to(acc).contiguous(), labels, totals, n_rows, n_centers, n_features, float(p),
        ACC=_tl_dtype(acc), MANHATTAN=(p == 1), BLOCK_N=block_n, BLOCK_K=16, BLOCK_D=16,
    )
    return labels, (totals if p == 1 else totals ** (1.0 / p))


def _multiprocessors(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 2


def cluster_sums(
    X: torch.Tensor, sample_weight: torch.Tensor, labels: torch.Tensor, n_centers: int, n_features: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-cluster weighted sums ``(k, d)`` and weights ``(k,)``, float64, sort-based and deterministic.

    The rows are ordered by label once (a stable sort, so the order inside a
    cluster is the row order); cluster boundaries come from ``searchsorted``,
    so nothing is copied to the host.
    """
    rows = _rows_view(X, n_features)
    sorted_labels, order = torch.sort(labels, stable=True)
    bounds = torch.searchsorted(sorted_labels, torch.arange(n_centers + 1, device=X.device, dtype=labels.dtype))
    starts = bounds[:-1].contiguous()
    # int32 loop bounds inside the kernel (fewer than 2**31 rows per cluster).
    counts = (bounds[1:] - bounds[:-1]).to(torch.int32).contiguous()
    n_rows = X.shape[0]
    # Enough programs to fill the GPU when clusters have about n / k rows each.
    n_slices = max(1, min(triton.cdiv(4 * _multiprocessors(X.device), n_centers), triton.cdiv(n_rows, 64)))
    block_r = 32 if INTERPRETED else 64
    rows_per_slice = max(block_r, triton.cdiv(triton.cdiv(n_rows, n_centers), n_slices))
    block_d = _pow2(n_features, 16, 64)
    part_sums = torch.empty((n_slices, n_centers, n_features), dtype=torch.float64, device=X.device)
    part_weights = torch.empty((n_slices, n_centers), dtype=torch.float64, device=X.device)
    grid = (n_centers, n_slices, triton.cdiv(n_features, block_d))
    _segment_sums_kernel[grid](
        rows, rows.stride(0), sample_weight.contiguous(), order, starts, counts, part_sums, part_weights,
        n_centers, n_features, rows_per_slice, n_slices, BLOCK_R=block_r, BLOCK_D=block_d,
    )
    # Partials added in slice order: a fixed order, hence fixed bits.
    return part_sums.sum(dim=0), part_weights.sum(dim=0)


def plusplus_costs(
    X: torch.Tensor, candidates: torch.Tensor, closest_cost: torch.Tensor, weights64: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Costs ``(n, m)`` float64 if each candidate were added, and their potentials ``(m,)``."""
    n_rows, n_features = X.shape
    n_candidates = candidates.shape[0]
    acc = _compute_dtype(X.dtype)
    block_n = 32
    n_programs = triton.cdiv(n_rows, block_n)
    costs = torch.empty((n_rows, n_candidates), dtype=torch.float64, device=X.device)
    partial = torch.empty((n_programs, n_candidates), dtype=torch.float64, device=X.device)
    rows = _rows_view(X, n_features)
    _plusplus_kernel[(n_programs,)](
        rows, rows.stride(0), candidates.to(acc).contiguous(), closest_cost.contiguous(), weights64.contiguous(),
        costs, partial, n_rows, n_candidates, n_features,
        ACC=_tl_dtype(acc), M_PAD=_pow2(n_candidates, 2, 64), BLOCK_N=block_n, BLOCK_D=_pow2(n_features, 2, 16),
    )
    return costs, partial.sum(dim=0)


def segment_medians(values: torch.Tensor, labels: torch.Tensor, n_segments: int, weights: torch.Tensor | None) -> torch.Tensor:
    """Weighted medians ``(n_segments, d)`` in the compute dtype: one sort (of the labels) per call."""
    n_rows, n_features = values.shape
    acc = _compute_dtype(values.dtype)
    sorted_labels, order = torch.sort(labels, stable=True)
    bounds = torch.searchsorted(sorted_labels, torch.arange(n_segments + 1, device=values.device, dtype=labels.dtype))
    starts = bounds[:-1].contiguous()
    counts = (bounds[1:] - bounds[:-1]).to(torch.int32).contiguous()
    rows_by_segment = values.index_select(0, order).to(acc).contiguous()
    weights_by_segment = None if weights is None else weights.index_select(0, order).to(torch.float64).contiguous()
    out = torch.empty((n_segments, n_features), dtype=acc, device=values.device)
    wide = acc == torch.float64
    block_d = _pow2(n_features, 2, 16 if INTERPRETED else 32)
    _segment_median_kernel[(n_segments, triton.cdiv(n_features, block_d))](
        rows_by_segment, rows_by_segment if weights_by_segment is None else weights_by_segment, starts, counts, out,
        n_features, ACC=_tl_dtype(acc), INT=tl.int64 if wide else tl.int32, SHIFT=63 if wide else 31,
        LOW_BITS=(1 << 63) - 1 if wide else (1 << 31) - 1, HAS_WEIGHTS=weights_by_segment is not None,
        BLOCK_R=32 if INTERPRETED else 128, BLOCK_D=block_d,
    )
    return out


# --------------------------------------------------------------------------- operations (reference signatures)


def lloyd_step_triton(
    X: Any,
    sample_weight: Any,
    centers: Any,
    *,
    xp: Any,
    rows_per_block: int,
    previous_labels: Any = None,
    in_place: bool = False,
    precision: str | None = None,
) -> Accumulation:
    """Fused Lloyd E-step and M-step sums on a CUDA tensor (operation ``"lloyd_step"``).

    Same parameters and result as :func:`kgpu._assign.assign_and_accumulate_reference`,
    plus ``precision`` (see the module docstring). ``rows_per_block`` is not
    needed: no ``(rows x k)`` block is ever materialised. ``in_place`` is
    accepted and ignored: the labels are a new tensor.
    """
    n_centers, n_features = centers.shape
    labels, _ = nearest_labels(X, centers, write_distance=False, precision=precision)
    sums, weights = cluster_sums(X, sample_weight, labels, n_centers, n_features)
    n_changed = None
    if previous_labels is not None:
        n_changed = torch.count_nonzero(labels != previous_labels).to(torch.int64)
    return Accumulation(labels, sums, weights, n_changed)


def assign_triton(
    X: Any,
    centers: Any,
    *,
    xp: Any,
    metric: Metric = SQEUCLIDEAN,
    rows_per_block: int | None = None,
    budget_mib: float | None = None,
    float64_distances: bool = False,
    precision: str | None = None,
) -> Assignment:
    """Nearest center and the distance to it (operation ``"assign"``) on a CUDA tensor.

    Same parameters and result as :func:`kgpu._assign.assign_reference`
    (metrics ``sqeuclidean``, ``euclidean``, ``manhattan``, ``minkowski``),
    plus ``precision``.
    """
    if metric.name in ("sqeuclidean", "euclidean"):
        labels, sq_dist = nearest_labels(X, centers, write_distance=True, precision=precision)
        distance = sq_dist if metric.name == "sqeuclidean" else torch.sqrt(sq_dist)
    else:
        labels, distance = nearest_lp(X, centers, 1.0 if metric.name == "manhattan" else metric.p)
    distance = distance.to(X.dtype)
    return Assignment(labels, distance.to(torch.float64) if float64_distances else distance)


def plusplus_step_triton(
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
    """One k-means++ step (operation ``"plusplus_step"``): one read of ``X``, no host sync.

    Same parameters and result as :func:`kgpu._init.plusplus_step_reference`
    (``metric="sqeuclidean"``, ``power=1`` only: see :func:`_applies_plusplus`).
    The squared distances are computed directly as ``||x - c||^2``.
    """
    costs, potentials = plusplus_costs(X, candidates, closest_cost, weights64.to(torch.float64))
    best = torch.argmin(potentials)
    column = best.reshape(1)
    closest = costs.index_select(1, column)[:, 0]
    if out is not None:
        out.copy_(closest)
        closest = out
    return PlusPlusStep(best, potentials.index_select(0, column)[0], closest)


def segment_median_triton(
    values: Any,
    labels: Any,
    n_segments: int,
    weights: Any = None,
    *,
    xp: Any,
    budget_mib: float | None = None,
) -> Any:
    """Weighted median of every column within each segment (operation ``"segment_median"``) on a CUDA tensor.

    Same parameters, rule and result as
    :func:`kgpu._segment.segment_median_reference`: the midpoint of the lower
    and upper weighted medians; 0 for a segment without weight. One sort per
    call (the labels'), then a bisection on each column's value keys instead
    of two argsorts per column. ``budget_mib`` is not needed: the only
    temporary is one copy of ``values`` in segment order.
    """
    if values.shape[0] == 0:
        return torch.zeros((n_segments, values.shape[1]), dtype=values.dtype, device=values.device)
    return segment_medians(values, labels, n_segments, weights).to(values.dtype)


# --------------------------------------------------------------------------- CuPy: zero-copy through DLPack


def _through_torch(function):
    """``function`` for CuPy arrays: torch views in, CuPy views of the results out (no copies)."""

    def on_cupy(*args: Any, xp: Any, **kwargs: Any) -> Any:
        import cupy

        def to_torch(value: Any) -> Any:
            return torch.from_dlpack(value) if isinstance(value, cupy.ndarray) else value

        result = function(*[to_torch(a) for a in args], xp=xp, **{k: to_torch(v) for k, v in kwargs.items()})
        if isinstance(result, torch.Tensor):
            return cupy.from_dlpack(result)
        return type(result)(*[cupy.from_dlpack(v) if isinstance(v, torch.Tensor) else v for v in result])

    on_cupy.__name__ = function.__name__ + "_cupy"
    on_cupy.__doc__ = function.__doc__
    return on_cupy


# --------------------------------------------------------------------------- guards and self-checks


def _is_cuda_tensor(x: Any) -> bool:
    return isinstance(x, torch.Tensor) and x.is_cuda


def _runs_here(x: Any) -> bool:
    """A CUDA tensor or a CuPy array, of a float dtype Triton handles."""
    if _is_cuda_tensor(x):
        return x.dtype in _FLOAT_DTYPES and x.ndim == 2
    try:
        import cupy
    except ImportError:
        return False
    return isinstance(x, cupy.ndarray) and x.ndim == 2 and x.dtype.kind == "f" and x.dtype.itemsize in (2, 4, 8)


# The guards look at the data (the first argument) and at the options; the
# kernel table also asks them with the data alone (``kgpu doctor``).


def _applies_lloyd(X, *args, **kwargs) -> bool:
    return _runs_here(X) and X.shape[0] > 0


def _applies_assign(X, *args, metric=SQEUCLIDEAN, **kwargs) -> bool:
    return _runs_here(X) and X.shape[0] > 0 and metric.name in ("sqeuclidean", "euclidean", "manhattan", "minkowski")


def _applies_plusplus(X, *args, metric=SQEUCLIDEAN, power=1.0, **kwargs) -> bool:
    few_candidates = not args or args[0].shape[0] <= 64
    return _runs_here(X) and metric.name == "sqeuclidean" and power == 1 and few_candidates


def _applies_median(values, *args, **kwargs) -> bool:
    return _runs_here(values)


def _check_problem(device: Any, dtype=torch.float32):
    generator = torch.Generator().manual_seed(12345)
    centers = torch.randn(5, 7, generator=generator, dtype=torch.float64) * 4
    labels = torch.arange(150) % 5
    X = centers[labels] + 0.1 * torch.randn(150, 7, generator=generator, dtype=torch.float64)
    weights = torch.rand(150, generator=generator, dtype=torch.float64) + 0.5
    return X.to(dtype).to(device), weights.to(dtype).to(device), centers.to(dtype).to(device)


#: Self-checks run in both float dtypes: a kernel must compile for each.
_CHECK_DTYPES = (torch.float32, torch.float64)


def _self_check_lloyd(xp: Any, device: Any) -> bool:
    import array_api_compat.torch as xp_torch

    for dtype in _CHECK_DTYPES:
        X, weights, centers = _check_problem(torch.device(str(device)), dtype)
        ours = lloyd_step_triton(X, weights, centers, xp=xp_torch, rows_per_block=64)
        reference = assign_and_accumulate_reference(X, weights, centers, xp=xp_torch, rows_per_block=64)
        if not (
            torch.equal(ours.labels, reference.labels)
            and torch.allclose(ours.sums, reference.sums, rtol=1e-5)
            and torch.allclose(ours.weights, reference.weights, rtol=1e-5)
        ):
            return False
    return True


def _self_check_assign(xp: Any, device: Any) -> bool:
    import array_api_compat.torch as xp_torch

    for dtype in _CHECK_DTYPES:
        X, _, centers = _check_problem(torch.device(str(device)), dtype)
        for metric in (SQEUCLIDEAN, Metric("manhattan", 1.0), Metric("minkowski", 3.0)):
            ours = assign_triton(X, centers, xp=xp_torch, metric=metric)
            reference = assign_reference(X, centers, xp=xp_torch, metric=metric)
            close = torch.allclose(ours.min_dist, reference.min_dist, rtol=1e-4, atol=1e-5)
            if not (torch.equal(ours.labels, reference.labels) and close):
                return False
    return True


def _self_check_plusplus(xp: Any, device: Any) -> bool:
    import array_api_compat.torch as xp_torch

    for dtype in _CHECK_DTYPES:
        X, weights, _ = _check_problem(torch.device(str(device)), dtype)
        weights64 = weights.to(torch.float64)
        closest = ((X - X[0]) ** 2).sum(dim=1).to(torch.float64)
        candidates = X[torch.tensor([3, 40, 77, 120], device=X.device)]
        options = dict(metric=SQEUCLIDEAN, power=1.0, x_sq_norms=(X * X).sum(dim=1), rows_per_block=64)
        ours = plusplus_step_triton(X, candidates, closest, weights64, xp=xp_torch, **options)
        reference = plusplus_step_reference(X, candidates, closest, weights64, xp=xp_torch, **options)
        # The reference expands ||x||^2 - 2 x.c + ||c||^2 in the data's dtype;
        # the kernel sums (x - c)^2: they may differ by a few ulps of ||x||^2.
        scale = float((X.to(torch.float64) ** 2).sum(dim=1).max())
        if not (
            int(ours.best) == int(reference.best)
            and torch.allclose(ours.closest_cost, reference.closest_cost, rtol=1e-5, atol=1e-6 * scale)
        ):
            return False
    return True


def _self_check_median(xp: Any, device: Any) -> bool:
    import array_api_compat.torch as xp_torch

    from .._segment import segment_median_reference

    for dtype in _CHECK_DTYPES:
        X, weights, _ = _check_problem(torch.device(str(device)), dtype)
        labels = torch.arange(X.shape[0], device=X.device) % 6  # segment 5 stays empty
        labels[labels == 5] = 4
        integer_weights = torch.round(weights * 2)
        for segment_weights in (None, integer_weights):
            ours = segment_median_triton(X, labels, 6, segment_weights, xp=xp_torch)
            reference = segment_median_reference(X, labels, 6, segment_weights, xp=xp_torch)
            if not torch.equal(ours, reference):
                return False
    return True


def _on_cupy(self_check):
    def check(xp: Any, device: Any) -> bool:
        return self_check(xp, torch.device("cuda", int(getattr(device, "id", 0))))

    return check


for _backend in ("torch", "cupy"):
    _wrap = (lambda function: function) if _backend == "torch" else _through_torch
    _check = (lambda check: check) if _backend == "torch" else _on_cupy
    register("lloyd_step", _backend, name="triton", self_check=_check(_self_check_lloyd), applies=_applies_lloyd)(
        _wrap(lloyd_step_triton)
    )
    register("assign", _backend, name="triton", self_check=_check(_self_check_assign), applies=_applies_assign)(
        _wrap(assign_triton)
    )
    register(
        "plusplus_step", _backend, name="triton", self_check=_check(_self_check_plusplus), applies=_applies_plusplus
    )(_wrap(plusplus_step_triton))
    register(
        "segment_median", _backend, name="triton", self_check=_check(_self_check_median), applies=_applies_median
    )(_wrap(segment_median_triton))
