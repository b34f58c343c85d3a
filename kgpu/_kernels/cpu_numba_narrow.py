"""Lloyd step and assignment for data with few features and few centers, vectorised over rows.

With ``d`` of a few features, the BLAS score tile of :mod:`kgpu._kernels.cpu_numba`
is a GEMM with a tiny inner dimension and ``k`` output columns, which its
micro-kernel uses poorly, followed by a scalar epilogue; a row-wise loop over
``d = 8`` features has nothing to vectorise (``fastmath`` stays off, so a sum
is never reordered). These kernels put independent rows in the SIMD lanes
instead:

- a tile of :func:`tile_rows` rows is copied transposed into a small ``(d, rows)``
  buffer that stays in the L1 cache;
- for each center in turn, the exact ``sum_f (x_f - c_f)^2`` of every row of
  the tile is computed with the rows in the innermost loop: each lane is one
  row and sums its features in order, so the loop vectorises without
  reordering any sum; each term after the first is added by a fused
  multiply-add (:func:`_fused_multiply_add`, rounded once). ``d`` is a
  constant of the compiled code (one version per ``d``, selected by the
  length of a tuple argument), so the feature loop is unrolled and each
  center's values are held in registers. A strict ``<`` keeps the lowest
  index on ties;
- the float64 weighted sums are added per row, ``part[best, :] += w * x``,
  as one vector operation over the row's ``d`` features
  (:func:`_add_scaled_row`: element-wise, so nothing is reordered either;
  numba does not run LLVM's SLP vectoriser, which would be needed to fuse
  the ``d`` scalar adds).

The distance returned for the chosen center is that sum, in the data's
dtype; the labels are those of these exact distances, which may differ from
a GEMM score's on a near-tie. ``lloyd_step`` and ``assign`` share one guard, so a fit's labels
and ``predict`` on the same data come from the same distances.

Tasks, tiles, out-of-memory pieces and the order partials are added in are
those of :mod:`kgpu._kernels.cpu_numba` (:func:`~kgpu._kernels.cpu_numba.task_rounds`,
:func:`~kgpu._kernels.cpu_numba.tile_tasks`, :func:`~kgpu._kernels.cpu_numba.tile_span`):
fixed by the shape, so the result is the same bits on any number of threads.

Crossover, measured on 2 AVX-512 cores against the BLAS tile
(``bench/narrow_kernel.py``: CPU time of one Lloyd step written over the
previous labels as in a fit, float32, homogeneous rows;
``bench/results/narrow-kernel-2core-2026-11-30.md``): 0.35-0.7 of its time
from ``d = 2`` to ``d = 12`` with ``k`` up to 16 (4,000,000 × 8, ``k = 8``:
0.55), 0.77-0.87 at ``d = 16``, 0.9-1.0 at ``d = 24``, far slower at
``d = 32`` (4.5). The assignment is 0.55-0.8 of the BLAS tile's throughout
(the BLAS path recomputes the exact distance row by row after its scores).
:data:`MAX_FEATURES` and :data:`MAX_CLUSTERS` bound the guard accordingly.
One step at 4,000,000 × 8, ``k = 8`` costs about 13 cycles a row on one core.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from .._assign import Accumulation, Assignment, SQEUCLIDEAN
from .._distances import Metric, homogeneous
from . import cpu_numba
from .cpu_numba import accumulate_tasks, assign_agrees, register_for_host_tensors, run_row_tasks, step_agrees
from .dispatch import register

#: Largest number of features (``d``) and of centers (``k``) the guard accepts (the measured crossover).
MAX_FEATURES, MAX_CLUSTERS = 16, 16

#: Rows of one tile: its transposed copy, the rows it was copied from and
#: their labels stay in the L1 data cache. Measured (one thread, step in
#: place, float32): 128 rows were within 10 % of the best of 32-512 from
#: d = 2 to d = 16, and 10-25 % faster than 512 at d = 4 and 8.
TILE_ROWS = 128


# ---------------------------------------------------------------- compiled pieces


@intrinsic
def _add_scaled_row(typingctx, total, total_start, rows, row_start, weight, features):
    """``total.flat[total_start : total_start + d] += weight * rows.flat[row_start : row_start + d]`` in float64.

    ``d`` is the length of the tuple ``features`` (a constant of the compiled
    code). One vector load of ``d`` values of ``rows`` (widened to float64),
    one vector multiply by ``weight``, one vector add into ``total``: the same
    element-wise operations as a scalar loop over the features, so the same
    bits. Both arrays C-contiguous.
    """
    if not (
        isinstance(features, types.UniTuple)
        and isinstance(total, types.Array)
        and isinstance(rows, types.Array)
        and total.layout == "C"
        and rows.layout == "C"
        and total.dtype == types.float64
        and rows.dtype in (types.float32, types.float64)
    ):
        return None
    n_values = features.count

    def codegen(context, builder, signature, args):
        total_type, _, rows_type, _, weight_type, _ = signature.args
        total_array = context.make_array(total_type)(context, builder, args[0])
        rows_array = context.make_array(rows_type)(context, builder, args[2])
        double = ir.DoubleType()
        wide = ir.VectorType(double, n_values)
        narrow = ir.VectorType(context.get_value_type(rows_type.dtype), n_values)
        source = builder.bitcast(builder.gep(rows_array.data, [args[3]]), narrow.as_pointer())
        target = builder.bitcast(builder.gep(total_array.data, [args[1]]), wide.as_pointer())
        values = builder.load(source, align=rows_type.dtype.bitwidth // 8)
        if rows_type.dtype != types.float64:
            values = builder.fpext(values, wide)
        scale = context.cast(builder, args[4], weight_type, types.float64)
        scales = cgutils.get_null_value(wide)
        for lane in range(n_values):
            scales = builder.insert_element(scales, scale, ir.Constant(ir.IntType(32), lane))
        added = builder.fadd(builder.load(target, align=8), builder.fmul(values, scales))
        builder.store(added, target, align=8)
        return context.get_dummy_value()

    return types.void(total, types.intp, rows, types.intp, weight, features), codegen


@intrinsic
def _fused_multiply_add(typingctx, a, b, c):
    """``a * b + c`` rounded once (IEEE fused multiply-add; LLVM's ``llvm.fma``).

    Always the same bits: a hardware instruction where the CPU has one, a
    correctly rounded library call otherwise. ``fastmath`` being off, numba
    never contracts ``a * b + c`` by itself; the loop vectoriser widens
    ``llvm.fma`` like any arithmetic.
    """
    if not (isinstance(a, types.Float) and a == b == c):
        return None

    def codegen(context, builder, signature, args):
        return builder.fma(*args)

    return a(a, b, c), codegen


@njit(fastmath=False, cache=True, nogil=True)
def _nearest_in_tile(X, centers, first, n_tile, features, tile_t, nearest, nearest_dist):
    """Nearest center of rows ``first : first + n_tile`` and the exact squared distance to it.

    ``features`` is a tuple of ``d`` zeros: its length, part of the compiled
    signature, makes ``d`` a constant of the compiled code (one version per
    ``d``), so the feature loops unroll and the row loops vectorise. The tile
    is copied transposed into ``tile_t`` ``(d, rows)``; each center then scans
    it with the rows in the innermost loop.
    """
    n_features = len(features)
    for r in range(n_tile):
        for f in range(n_features):
            tile_t[f, r] = X[first + r, f]
    for r in range(n_tile):
        gap = tile_t[0, r] - centers[0, 0]
        total = gap * gap
        for f in range(1, n_features):
            gap = tile_t[f, r] - centers[0, f]
            total = _fused_multiply_add(gap, gap, total)
        nearest_dist[r] = total
        nearest[r] = 0
    for center in range(1, centers.shape[0]):
        # int32 labels in the tile: as many lanes as the float32 distances.
        j = np.int32(center)
        for r in range(n_tile):
            gap = tile_t[0, r] - centers[j, 0]
            total = gap * gap
            for f in range(1, n_features):
                gap = tile_t[f, r] - centers[j, f]
                total = _fused_multiply_add(gap, gap, total)
            closer = total < nearest_dist[r]
            nearest_dist[r] = total if closer else nearest_dist[r]
            nearest[r] = j if closer else nearest[r]


@njit(fastmath=False, cache=True, nogil=True)
def _lloyd_rows(X, weights, centers, features, start, stop, tile_rows, previous, labels, in_place, part):
    """Labels, changed count and float64 weighted sums of rows ``start:stop``, added into ``part``.

    ``in_place``: ``labels`` is ``previous`` (each row's label is compared,
    then overwritten).

    ``part`` is ``(k, d + 1)``: the sums, then the weights. Rows are added in
    row order to what it holds, so a task cut in pieces run one after the
    other sums exactly as the whole task; scratch is allocated before anything
    is added. Returns the number of rows whose label differs from
    ``previous`` (0 when ``previous`` is empty).
    """
    n_features = len(features)
    tile_t = np.empty((n_features, tile_rows), dtype=X.dtype)
    nearest = np.empty(tile_rows, dtype=np.int32)
    nearest_dist = np.empty(tile_rows, dtype=X.dtype)
    # Added into a private copy, written back at the end: the tasks' partials
    # lie side by side, and threads adding into neighbouring ones row after
    # row would keep taking a shared cache line from each other.
    sums = part.copy()
    width = X.shape[1]
    compare = previous.shape[0] > 0
    n_changed = 0
    for first in range(start, stop, tile_rows):
        n_tile = min(tile_rows, stop - first)
        _nearest_in_tile(X, centers, first, n_tile, features, tile_t, nearest, nearest_dist)
        # The labels in a loop of their own, which vectorises; one array when
        # the new labels overwrite the previous ones (two views of one array
        # would fail the vectoriser's overlap check and run row by row).
        tile_labels = labels[first : first + n_tile]
        if in_place:
            for r in range(n_tile):
                label = np.int64(nearest[r])
                n_changed += tile_labels[r] != label
                tile_labels[r] = label
        elif compare:
            tile_previous = previous[first : first + n_tile]
            for r in range(n_tile):
                label = np.int64(nearest[r])
                n_changed += tile_previous[r] != label
                tile_labels[r] = label
        else:
            for r in range(n_tile):
                tile_labels[r] = nearest[r]
        for r in range(n_tile):
            best = nearest[r]
            weight = np.float64(weights[first + r])
            _add_scaled_row(sums, best * (n_features + 1), X, (first + r) * width, weight, features)
            sums[best, n_features] += weight
    part[:, :] = sums
    return n_changed


@njit(fastmath=False, cache=True, nogil=True)
def _assign_rows(X, centers, features, start, stop, tile_rows, labels, min_dist):
    """Nearest center of rows ``start:stop`` and the exact ``||x - c||^2`` to it (in the data's dtype)."""
    tile_t = np.empty((len(features), tile_rows), dtype=X.dtype)
    nearest = np.empty(tile_rows, dtype=np.int32)
    nearest_dist = np.empty(tile_rows, dtype=X.dtype)
    for first in range(start, stop, tile_rows):
        n_tile = min(tile_rows, stop - first)
        _nearest_in_tile(X, centers, first, n_tile, features, tile_t, nearest, nearest_dist)
        for r in range(n_tile):
            labels[first + r] = nearest[r]
            min_dist[first + r] = nearest_dist[r]


# ---------------------------------------------------------------- shape rules


def tile_rows(n_features: int, itemsize: int) -> int:
    """Rows per tile: :data:`TILE_ROWS` whatever the shape (a layout fixed by the shape, as the tasks)."""
    return TILE_ROWS


def narrow_shape(n_features: int, n_clusters: int) -> bool:
    """Whether ``d`` features and ``k`` centers are few enough for these kernels (the measured crossover)."""
    return 1 <= n_features <= MAX_FEATURES and 1 <= n_clusters <= MAX_CLUSTERS


# ---------------------------------------------------------------- lloyd_step


def _lloyd_step_applies(X: Any, sample_weight: Any, centers: Any, **kwargs: Any) -> bool:
    return cpu_numba._lloyd_step_applies(X, sample_weight, centers, **kwargs) and narrow_shape(
        centers.shape[1], centers.shape[0]
    )


def lloyd_step_narrow(
    X: np.ndarray,
    sample_weight: np.ndarray,
    centers: np.ndarray,
    *,
    xp: Any,
    rows_per_block: int,
    previous_labels: Any = None,
    in_place: bool = False,
) -> Accumulation:
    """Fused Lloyd E-step and M-step sums; same contract as
    :func:`kgpu._assign.assign_and_accumulate_reference`.

    Rows may be plain ``(n, d)`` or homogeneous ``(n, d + 1)``. Each
    thread-pool task runs the compiled loop over its rows into its own
    float64 partial sums, which are added in task order. ``rows_per_block``
    is accepted for the common signature; tiles and tasks are fixed by the
    shape, so the result does not depend on it.
    """
    n_rows = X.shape[0]
    n_clusters, n_features = centers.shape
    X = np.ascontiguousarray(X)
    centers_work = np.ascontiguousarray(centers, dtype=X.dtype)
    weights = np.ascontiguousarray(sample_weight)
    rows_per_tile = tile_rows(n_features, X.dtype.itemsize)
    features = (0,) * n_features

    def rows_kernel(start: int, stop: int, previous: np.ndarray, labels: np.ndarray, overwrite: bool, part: np.ndarray) -> int:
        return _lloyd_rows(
            X, weights, centers_work, features, start, stop, rows_per_tile, previous, labels, overwrite, part
        )

    return accumulate_tasks(rows_kernel, n_rows, n_clusters, n_features, rows_per_tile, previous_labels, in_place)


def _lloyd_step_self_check(xp: Any, device: Any) -> bool:
    rng = np.random.default_rng(0)
    ok = True
    for dtype, n_clusters, n_features in ((np.float64, 3, 4), (np.float32, 8, 8)):
        true_centers = rng.normal(scale=8.0, size=(n_clusters, n_features))
        X = (true_centers[rng.integers(0, n_clusters, 16 * TILE_ROWS + 37)] + rng.normal(size=(1, n_features)))
        X = (X + 0.1 * rng.normal(size=X.shape)).astype(dtype)
        weights = rng.uniform(0.5, 2.0, X.shape[0]).astype(dtype)
        centers = true_centers.astype(dtype)
        previous = rng.integers(0, n_clusters, X.shape[0])
        for rows in (X, homogeneous(X, xp=xp)):
            ok = ok and step_agrees(lloyd_step_narrow, rows, weights, centers, previous)
    return bool(ok)


register("lloyd_step", "numpy", name="numba-narrow", self_check=_lloyd_step_self_check, applies=_lloyd_step_applies)(
    lloyd_step_narrow
)


# ---------------------------------------------------------------- assign


def _assign_applies(X: Any, centers: Any, *, metric: Metric = SQEUCLIDEAN, **kwargs: Any) -> bool:
    return (
        metric.name in ("sqeuclidean", "euclidean")
        and cpu_numba._assign_applies(X, centers, metric=metric, **kwargs)
        and narrow_shape(centers.shape[1], centers.shape[0])
    )


def assign_narrow(
    X: np.ndarray,
    centers: np.ndarray,
    *,
    xp: Any,
    metric: Metric = SQEUCLIDEAN,
    rows_per_block: int | None = None,
    budget_mib: float | None = None,
    float64_distances: bool = False,
) -> Assignment:
    """Nearest center and the distance to it; same contract as :func:`kgpu._assign.assign_reference`.

    Euclidean metrics (rows plain or homogeneous): the exact squared distance
    to every center, rows in the SIMD lanes; the one to the nearest center is
    the one returned (computed in the data's dtype, also with
    ``float64_distances``). Other metrics are :func:`kgpu._kernels.cpu_numba.assign_numba`'s.
    ``rows_per_block`` and ``budget_mib`` are accepted for the common
    signature; tiles and tasks are fixed by the shape.
    """
    if metric.name not in ("sqeuclidean", "euclidean"):
        return cpu_numba.assign_numba(
            X, centers, xp=xp, metric=metric, rows_per_block=rows_per_block, budget_mib=budget_mib,
            float64_distances=float64_distances,
        )
    n_rows = X.shape[0]
    n_clusters, n_features = centers.shape
    X = np.ascontiguousarray(X)
    centers_work = np.ascontiguousarray(centers, dtype=X.dtype)
    labels = np.empty(n_rows, dtype=np.int64)
    min_dist = np.empty(n_rows, dtype=np.float64 if float64_distances else X.dtype)
    rows_per_tile = tile_rows(n_features, X.dtype.itemsize)
    features = (0,) * n_features
    run_row_tasks(
        lambda start, stop: _assign_rows(X, centers_work, features, start, stop, rows_per_tile, labels, min_dist),
        n_rows, rows_per_tile,
    )
    cpu_numba.take_euclidean_root(min_dist, metric, X.dtype)
    return Assignment(labels, min_dist)


def _assign_self_check(xp: Any, device: Any) -> bool:
    rng = np.random.default_rng(1)
    ok = True
    for dtype in (np.float64, np.float32):
        X = rng.standard_normal((8 * TILE_ROWS + 11, 5)).astype(dtype)
        centers = X[:4].copy()
        for metric in (SQEUCLIDEAN, Metric("euclidean", 2.0)):
            ok = ok and assign_agrees(assign_narrow, X, centers, metric)
    return bool(ok)


register("assign", "numpy", name="numba-narrow", self_check=_assign_self_check, applies=_assign_applies)(assign_narrow)


# ---------------------------------------------------------------- torch CPU tensors
#
# Host tensors share their memory with NumPy arrays: the kernels above serve
# them on the same thread pool, with the same guard (so that a torch fit and
# its predict run the same distances too).


lloyd_step_narrow_torch = register_for_host_tensors(
    "lloyd_step", "numba-narrow", lloyd_step_narrow, _lloyd_step_applies, _lloyd_step_self_check
)
assign_narrow_torch = register_for_host_tensors("assign", "numba-narrow", assign_narrow, _assign_applies, _assign_self_check)
