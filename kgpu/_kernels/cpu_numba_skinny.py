"""Fused K-Means kernels for few centers and many features, compiled with numba.

For ``k`` centers of ``d`` features with ``k`` small and ``d`` large (MNIST,
``60,000 x 784`` with ``k = 10``), the BLAS score tile of
:mod:`kgpu._kernels.cpu_numba` is a GEMM with only ``k`` output columns,
where SGEMM runs far below its peak, and its tile is written and read back.
Here every row is read once from memory (requested two blocks ahead), and
everything happens while it is in the core's cache:

- its exact squared distance ``sum_f (x_f - c_f)^2`` to every center, in the
  data's dtype, with explicit SIMD lanes: one vector of 64 bytes (16 float32
  or 8 float64 lanes) per (row, center) accumulates fused multiply-adds over
  the feature axis, its lanes are added in a fixed order (by halves), then
  the features after the last whole vector one by one. Every lane is a sum
  of its own and nothing is reassociated, so ``fastmath`` stays off and a
  distance has the same bits whichever block computes it (the vectors are
  LLVM vector types: a machine with narrower registers splits them, it does
  not reorder them). Four rows and four centers are computed together, so
  each vector loaded from memory or cache serves several of the sixteen
  independent accumulators (:data:`BLOCK_ROWS`, :data:`BLOCK_CENTERS`);
- the running argmin (a strict ``<``: ties go to the lowest index);
- the changed-label count, and the float64 weighted sums
  ``part[best] += w * x`` (vectorised over the features).

The LLVM code of the distances is written here (:func:`_block_codegen`)
because numba leaves LLVM's SLP vectoriser off and its loop vectoriser will
not vectorise a float sum without reassociating it.

The exact distance is also the ``min_dist`` of :func:`assign_skinny`: no
second pass. Labels agree with the array-API reference's
``||c||^2 - 2 x.c`` scores wherever no two centers are within rounding of a
row (as two BLAS libraries agree); ``predict`` and ``labels_`` both run this
module's kernels for the shapes its guard takes (a function of ``k`` and
``d`` only), so they agree exactly.

When it runs (:data:`MIN_FEATURES`, :data:`MAX_CENTERS`,
:data:`WIDE_FEATURES`, :data:`WIDE_MAX_CENTERS`), measured on 2 AVX-512
cores against the BLAS tile of :mod:`kgpu._kernels.cpu_numba`, interleaved
(``bench/skinny_kernel.py``, ``bench/results/skinny-kernel-2core-2026-11-30.md``):
the fused pass costs ``k * d`` multiply-adds per row at a fixed rate, while
the BLAS tile gets faster per multiply-add as ``k`` grows. In four runs
(three under load), a Lloyd step took 0.46-0.55 of the tile's time at
``60,000 x 784``, ``k = 10`` (the assignment 0.25-0.44), 0.59-0.67 at
``100,000 x 256``, ``k = 8``, 0.53-0.90 at ``50,000 x 1024``, ``k = 16``,
0.79-1.00 from 256 features with 32 centers; at 128 features 0.70-1.06 with
8 to 16 centers but 1.07-1.28 with 32; at 64 features 1.03-1.98. The
assignment alone took 0.25-0.77 of the tile's time wherever the guard takes
the shape. Hence the two bounds (128 features and 16 centers, or 256
features and 32 centers). Fewer features are left to the
kernels for narrow rows.

Tasks and their order come from :mod:`kgpu._kernels.cpu_numba`
(:func:`~kgpu._kernels.cpu_numba.task_rounds`,
:func:`~kgpu._kernels.cpu_numba.tile_tasks`): a layout fixed by the shape,
float64 partial sums per task added in task order, so the result is the same
bits on 1 thread or 64; a task that runs out of memory is split on tile
boundaries and its pieces add into its own partials in row order.
"""

from __future__ import annotations

from typing import Any

import array_api_compat.numpy as _NUMPY
import numpy as np
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.core.extending import intrinsic

from .._assign import Accumulation, Assignment, SQEUCLIDEAN
from .._distances import Metric, homogeneous
from .cpu_numba import (
    _is_float_matrix,
    accumulate_tasks,
    assign_agrees,
    register_for_host_tensors,
    run_row_tasks,
    step_agrees,
    tile_rows,
)
from .dispatch import register

#: Fewest features and most centers the kernels run for (see the module docstring);
#: from :data:`WIDE_FEATURES` features, up to :data:`WIDE_MAX_CENTERS` centers.
MIN_FEATURES, MAX_CENTERS = 128, 16
WIDE_FEATURES, WIDE_MAX_CENTERS = 256, 32

#: Bytes of one SIMD lane vector (an AVX-512 register): 16 float32 or 8 float64 lanes.
VECTOR_BYTES = 64

#: Rows and centers whose distances one pass over the features computes: each
#: feature vector of a row is loaded once for :data:`BLOCK_CENTERS` centers and
#: each of a center's once for :data:`BLOCK_ROWS` rows, with
#: ``BLOCK_ROWS * BLOCK_CENTERS`` independent accumulators in registers.
BLOCK_ROWS, BLOCK_CENTERS = 4, 4

#: Rows labelled before they are summed, and features summed at a time
#: (``k`` times this many float64 sums stay in the L1 cache).
SUM_ROWS, SUM_FEATURES = 32, 256

#: Rows ahead of the current block whose values are requested from memory
#: while its distances are computed.
PREFETCH_ROWS = 2 * BLOCK_ROWS


# ---------------------------------------------------------------- the distances


def _lanes_total(builder: Any, vector: Any, width: int) -> Any:
    """The lanes of ``vector`` added by halves: ``(l, l + w/2)`` first, and so on, a fixed tree."""
    index = ir.IntType(32)
    while width > 1:
        half = width // 2
        low = builder.shuffle_vector(vector, vector, ir.Constant(ir.VectorType(index, half), list(range(half))))
        high = builder.shuffle_vector(vector, vector, ir.Constant(ir.VectorType(index, half), list(range(half, width))))
        vector = builder.fadd(low, high)
        width = half
    return builder.extract_element(vector, ir.Constant(index, 0))


def _block_codegen(n_rows: int, n_centers: int) -> Any:
    """LLVM IR of :func:`_block_sqdist` for ``n_rows`` rows and ``n_centers`` centers."""

    def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
        X_type, _, C_type, _, _, out_type, _ = signature.args
        X = context.make_array(X_type)(context, builder, args[0])
        C = context.make_array(C_type)(context, builder, args[2])
        out = context.make_array(out_type)(context, builder, args[5])
        first_row, first_center, n_features, prefetch_row = args[1], args[3], args[4], args[6]
        index_type = n_features.type
        scalar = context.get_value_type(X_type.dtype)
        itemsize = context.get_abi_sizeof(scalar)
        width = VECTOR_BYTES // itemsize
        vector = ir.VectorType(scalar, width)
        suffix = "f32" if itemsize == 4 else "f64"
        fma_vector = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(vector, [vector] * 3), f"llvm.fma.v{width}{suffix}"
        )
        fma_scalar = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(scalar, [scalar] * 3), f"llvm.fma.{suffix}"
        )

        def constant(value: int) -> Any:
            return ir.Constant(index_type, value)

        def row_start(array: Any, first: Any, offset: int) -> Any:
            # C-contiguous: row ``first + offset`` starts ``(first + offset) * width`` values in.
            return builder.gep(array.data, [builder.mul(builder.add(first, constant(offset)), builder.extract_value(array.shape, 1))])

        def load_vector(start: Any, offset: Any) -> Any:
            return builder.load(builder.bitcast(builder.gep(start, [offset]), vector.as_pointer()), align=itemsize)

        rows = [row_start(X, first_row, r) for r in range(n_rows)]
        centers = [row_start(C, first_center, g) for g in range(n_centers)]
        # One vector of lanes per (row, center): stack slots LLVM keeps in registers.
        sums = [
            [cgutils.alloca_once_value(builder, ir.Constant(vector, [0.0] * width)) for _ in range(n_centers)]
            for _ in range(n_rows)
        ]
        n_vectors = builder.udiv(n_features, constant(width))
        # Rows ``prefetch_row`` on (none when negative) requested from memory, one 64-byte line
        # per row and step: spread over the loop, not in one burst the memory system would drop.
        byte = ir.IntType(8).as_pointer()
        flag = ir.IntType(32)
        prefetch = cgutils.get_or_insert_function(
            builder.module, ir.FunctionType(ir.VoidType(), [byte, flag, flag, flag]), "llvm.prefetch.p0"
        )
        prefetching = builder.icmp_signed(">=", prefetch_row, constant(0))
        ahead = [row_start(X, builder.select(prefetching, prefetch_row, constant(0)), r) for r in range(n_rows)]
        with cgutils.for_range(builder, n_vectors) as loop:
            offset = builder.mul(loop.index, constant(width))
            with builder.if_then(prefetching):
                for start in ahead:
                    # Read access, keep in all cache levels, data.
                    address = builder.bitcast(builder.gep(start, [offset]), byte)
                    builder.call(prefetch, [address, ir.Constant(flag, 0), ir.Constant(flag, 3), ir.Constant(flag, 1)])
            row_values = [load_vector(row, offset) for row in rows]
            for g, center in enumerate(centers):
                center_values = load_vector(center, offset)
                for r in range(n_rows):
                    gaps = builder.fsub(row_values[r], center_values)
                    builder.store(builder.call(fma_vector, [gaps, gaps, builder.load(sums[r][g])]), sums[r][g])
        tail = builder.mul(n_vectors, constant(width))
        out_width = builder.extract_value(out.shape, 1)
        for r in range(n_rows):
            for g in range(n_centers):
                total = cgutils.alloca_once_value(builder, _lanes_total(builder, builder.load(sums[r][g]), width))
                # The features after the last whole vector, in order.
                with cgutils.for_range_slice(builder, tail, n_features, constant(1), inc=True) as (feature, _):
                    gap = builder.fsub(
                        builder.load(builder.gep(rows[r], [feature])), builder.load(builder.gep(centers[g], [feature]))
                    )
                    builder.store(builder.call(fma_scalar, [gap, gap, builder.load(total)]), total)
                position = builder.add(builder.mul(constant(r), out_width), builder.add(first_center, constant(g)))
                builder.store(builder.load(total), builder.gep(out.data, [position]))
        return context.get_dummy_value()

    return codegen


def _block_sqdist_intrinsic(n_rows: int, n_centers: int) -> Any:
    def typer(
        typingctx: Any, X: Any, first_row: Any, C: Any, first_center: Any, n_features: Any, out: Any, prefetch_row: Any
    ) -> Any:
        floats = (types.float32, types.float64)
        for array in (X, C, out):
            if not (isinstance(array, types.Array) and array.ndim == 2 and array.layout == "C" and array.dtype in floats):
                return None
        if not X.dtype == C.dtype == out.dtype:
            return None
        for integer in (first_row, first_center, n_features, prefetch_row):
            if not isinstance(integer, types.Integer):
                return None
        signature = types.none(X, types.intp, C, types.intp, types.intp, out, types.intp)
        return signature, _block_codegen(n_rows, n_centers)

    typer.__name__ = f"_block_sqdist_{n_rows}x{n_centers}"
    return intrinsic(typer)


# ``_block_sqdist(X, i, C, j, d, out, ahead)``: ``out[r, j + g] = sum_f (X[i + r, f] - C[j + g, f])^2``
# over the first ``d`` features, for ``r < R`` and ``g < G``, in the data's dtype, while rows ``ahead``
# to ``ahead + R - 1`` are requested from memory (none when ``ahead`` is negative). Each distance has the same
# lanes, added in the same order, whatever block computes it: one vector of lanes over the whole
# vectors of features (fused multiply-adds), those lanes added by halves, then the features left over
# one by one. So a distance has the same bits in any block, on any row or task layout.
_block_1x1, _block_1x2, _block_1x3, _block_1x4 = (_block_sqdist_intrinsic(1, g) for g in (1, 2, 3, 4))
_block_4x1, _block_4x2, _block_4x3, _block_4x4 = (_block_sqdist_intrinsic(4, g) for g in (1, 2, 3, 4))


def _accumulate_codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
    """LLVM IR of :func:`_accumulate`."""
    sums_type, X_type = signature.args[:2]
    sums = context.make_array(sums_type)(context, builder, args[0])
    X = context.make_array(X_type)(context, builder, args[1])
    row, first, last, weight = args[2], args[3], args[4], args[5]
    index_type = first.type
    double = ir.DoubleType()
    scalar = context.get_value_type(X_type.dtype)
    itemsize = context.get_abi_sizeof(scalar)
    # As many lanes as one vector of the data holds: 16 float32 widened to 16 float64, or 8 float64.
    width = VECTOR_BYTES // itemsize
    data_vector, sum_vector = ir.VectorType(scalar, width), ir.VectorType(double, width)
    fma_vector = cgutils.get_or_insert_function(
        builder.module, ir.FunctionType(sum_vector, [sum_vector] * 3), f"llvm.fma.v{width}f64"
    )
    fma_scalar = cgutils.get_or_insert_function(builder.module, ir.FunctionType(double, [double] * 3), "llvm.fma.f64")
    lane = ir.IntType(32)
    weights = builder.insert_element(ir.Constant(sum_vector, ir.Undefined), weight, ir.Constant(lane, 0))
    weights = builder.shuffle_vector(weights, weights, ir.Constant(ir.VectorType(lane, width), [0] * width))
    x_start = builder.gep(X.data, [builder.add(builder.mul(row, builder.extract_value(X.shape, 1)), first)])
    sums_start = builder.gep(sums.data, [first])
    n_vectors = builder.udiv(builder.sub(last, first), ir.Constant(index_type, width))
    with cgutils.for_range(builder, n_vectors) as loop:
        offset = builder.mul(loop.index, ir.Constant(index_type, width))
        values = builder.load(builder.bitcast(builder.gep(x_start, [offset]), data_vector.as_pointer()), align=itemsize)
        if itemsize != 8:
            values = builder.fpext(values, sum_vector)
        target = builder.bitcast(builder.gep(sums_start, [offset]), sum_vector.as_pointer())
        builder.store(builder.call(fma_vector, [weights, values, builder.load(target, align=8)]), target, align=8)
    done = builder.mul(n_vectors, ir.Constant(index_type, width))
    with cgutils.for_range_slice(builder, done, builder.sub(last, first), ir.Constant(index_type, 1), inc=True) as (f, _):
        value = builder.load(builder.gep(x_start, [f]))
        if itemsize != 8:
            value = builder.fpext(value, double)
        target = builder.gep(sums_start, [f])
        builder.store(builder.call(fma_scalar, [weight, value, builder.load(target)]), target)
    return context.get_dummy_value()


@intrinsic
def _accumulate(typingctx: Any, sums: Any, X: Any, row: Any, first: Any, last: Any, weight: Any) -> Any:
    """``sums[f] += weight * X[row, f]`` for ``first <= f < last``, each a float64 fused multiply-add.

    ``sums`` is a C-contiguous float64 1-d array, ``X`` a C-contiguous 2-d array.
    """
    if not (isinstance(sums, types.Array) and sums.ndim == 1 and sums.layout == "C" and sums.dtype == types.float64):
        return None
    if not (isinstance(X, types.Array) and X.ndim == 2 and X.layout == "C" and X.dtype in (types.float32, types.float64)):
        return None
    return types.none(sums, X, types.intp, types.intp, types.intp, types.float64), _accumulate_codegen


# ---------------------------------------------------------------- compiled loops


@njit(fastmath=False, cache=True, nogil=True)
def _centers_in_groups(X, row, centers, distances):
    """``distances[0, j]``: squared distance of row ``row`` to every center ``j``, four centers at a time."""
    n_clusters, n_features = centers.shape
    j = 0
    while j < n_clusters:
        group = min(BLOCK_CENTERS, n_clusters - j)
        if group == 4:
            _block_1x4(X, row, centers, j, n_features, distances, -1)
        elif group == 3:
            _block_1x3(X, row, centers, j, n_features, distances, -1)
        elif group == 2:
            _block_1x2(X, row, centers, j, n_features, distances, -1)
        else:
            _block_1x1(X, row, centers, j, n_features, distances, -1)
        j += group


@njit(fastmath=False, cache=True, nogil=True)
def _block_distances(X, first_row, n_block_rows, centers, distances, one_row, prefetch_row):
    """``distances[r, j]``: squared distance of row ``first_row + r`` (``r < n_block_rows``) to center ``j``.

    A whole block of :data:`BLOCK_ROWS` rows is computed together, and its
    first group of centers requests rows ``prefetch_row`` on from memory
    (none when negative); the rows of a shorter last block one by one
    (through ``one_row``, ``(1, k)``).
    """
    n_clusters, n_features = centers.shape
    if n_block_rows < BLOCK_ROWS:
        for r in range(n_block_rows):
            _centers_in_groups(X, first_row + r, centers, one_row)
            for j in range(n_clusters):
                distances[r, j] = one_row[0, j]
        return
    j = 0
    while j < n_clusters:
        group = min(BLOCK_CENTERS, n_clusters - j)
        if group == 4:
            _block_4x4(X, first_row, centers, j, n_features, distances, prefetch_row if j == 0 else -1)
        elif group == 3:
            _block_4x3(X, first_row, centers, j, n_features, distances, prefetch_row if j == 0 else -1)
        elif group == 2:
            _block_4x2(X, first_row, centers, j, n_features, distances, prefetch_row if j == 0 else -1)
        else:
            _block_4x1(X, first_row, centers, j, n_features, distances, prefetch_row if j == 0 else -1)
        j += group


@njit(fastmath=False, cache=True, nogil=True)
def _ahead(first, n_rows):
    """First of the rows to request while a block starting at ``first`` is computed (-1: none left)."""
    return first + PREFETCH_ROWS if first + PREFETCH_ROWS + BLOCK_ROWS <= n_rows else -1


@njit(fastmath=False, cache=True, nogil=True)
def _nearest(distances, r):
    """Index of the smallest of ``distances[r]`` (the lowest on ties, a strict ``<``)."""
    best = 0
    for j in range(1, distances.shape[1]):
        if distances[r, j] < distances[r, best]:
            best = j
    return best


@njit(fastmath=False, cache=True, nogil=True)
def _lloyd_rows(X, weights, centers, start, stop, previous, labels, part):
    """Nearest center, changed count and float64 weighted sums of the rows ``start:stop``.

    ``X`` has ``d`` or ``d + 1`` columns (homogeneous rows: the last is
    ignored); ``part`` is ``(k, d + 1)``: the weighted sums, then the weights
    in the last column, added to in row order. Returns the number of rows
    whose label differs from ``previous`` (0 when ``previous`` is empty).

    The rows are labelled :data:`SUM_ROWS` at a time, then summed
    :data:`SUM_FEATURES` features at a time: that slice of every cluster's
    sums stays in the L1 cache (all of ``part`` may not), the rows come from
    L2. Each sum still adds its rows in row order.
    """
    n_clusters, n_features = centers.shape
    distances = np.empty((BLOCK_ROWS, n_clusters), dtype=X.dtype)
    one_row = np.empty((1, n_clusters), dtype=X.dtype)
    compare = previous.shape[0] > 0
    n_changed = 0
    for block_start in range(start, stop, SUM_ROWS):
        block_stop = min(block_start + SUM_ROWS, stop)
        for first in range(block_start, block_stop, BLOCK_ROWS):
            n_block_rows = min(BLOCK_ROWS, block_stop - first)
            _block_distances(X, first, n_block_rows, centers, distances, one_row, _ahead(first, X.shape[0]))
            for r in range(n_block_rows):
                i = first + r
                best = _nearest(distances, r)
                # Compared before it is written: ``labels`` may be ``previous`` itself.
                if compare and previous[i] != best:
                    n_changed += 1
                labels[i] = best
        for first_feature in range(0, n_features, SUM_FEATURES):
            last_feature = min(first_feature + SUM_FEATURES, n_features)
            for i in range(block_start, block_stop):
                _accumulate(part[labels[i]], X, i, first_feature, last_feature, np.float64(weights[i]))
        for i in range(block_start, block_stop):
            part[labels[i], n_features] += np.float64(weights[i])
    return n_changed


@njit(fastmath=False, cache=True, nogil=True)
def _assign_rows(X, centers, start, stop, labels, min_dist):
    """Nearest center of rows ``start:stop`` and the exact ``||x - c||^2`` to it (in the data's dtype)."""
    distances = np.empty((BLOCK_ROWS, centers.shape[0]), dtype=X.dtype)
    one_row = np.empty((1, centers.shape[0]), dtype=X.dtype)
    for first in range(start, stop, BLOCK_ROWS):
        n_block_rows = min(BLOCK_ROWS, stop - first)
        _block_distances(X, first, n_block_rows, centers, distances, one_row, _ahead(first, X.shape[0]))
        for r in range(n_block_rows):
            best = _nearest(distances, r)
            labels[first + r] = best
            min_dist[first + r] = distances[r, best]


# ---------------------------------------------------------------- guards


def applies_to_shape(n_clusters: int, n_features: int) -> bool:
    """Whether the kernels of this module run for ``k`` centers of ``d`` features.

    A function of ``(k, d)`` only, never of the rows: ``predict`` on any data
    runs the kernel the fit ran.
    """
    if n_features >= WIDE_FEATURES:
        return 1 <= n_clusters <= WIDE_MAX_CENTERS
    return 1 <= n_clusters <= MAX_CENTERS and n_features >= MIN_FEATURES


def _applies(X: Any, centers: Any) -> bool:
    return (
        _is_float_matrix(X)
        and isinstance(centers, np.ndarray)
        and centers.ndim == 2
        and applies_to_shape(*centers.shape)
        and X.shape[1] in (centers.shape[1], centers.shape[1] + 1)
    )


def _may_apply(X: Any) -> bool:
    """Whether a call on rows ``X`` may run here, the centers unknown (``kgpu doctor`` shows the data alone)."""
    return _is_float_matrix(X) and X.shape[1] >= MIN_FEATURES


def _lloyd_step_applies(X: Any, sample_weight: Any = None, centers: Any = None, **_: Any) -> bool:
    if centers is None:
        return _may_apply(X)
    return _applies(X, centers) and isinstance(sample_weight, np.ndarray) and sample_weight.shape == (X.shape[0],)


def _assign_applies(X: Any, centers: Any = None, *, metric: Metric = SQEUCLIDEAN, **_: Any) -> bool:
    if centers is None:
        return _may_apply(X)
    return metric.name in ("sqeuclidean", "euclidean") and _applies(X, centers) and X.shape[0] >= 1


def _rows_per_tile(centers: np.ndarray, X: np.ndarray) -> int:
    """The unit of the task layout (shape only), as :mod:`kgpu._kernels.cpu_numba` cuts it."""
    return tile_rows(centers.shape[0], centers.shape[1], X.dtype.itemsize)


# ---------------------------------------------------------------- lloyd_step


def lloyd_step_skinny(
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

    Each thread-pool task runs :func:`_lloyd_rows` over its rows into its own
    float64 partial sums, which are added in task order. ``rows_per_block``
    is accepted for the common signature; the tasks have a size fixed by the
    shape, so the result does not depend on it.
    """
    n_rows = X.shape[0]
    n_clusters, n_features = centers.shape
    centers_work = np.ascontiguousarray(centers, dtype=X.dtype)
    weights = np.ascontiguousarray(sample_weight)

    def rows_kernel(start: int, stop: int, previous: np.ndarray, labels: np.ndarray, overwrite: bool, part: np.ndarray) -> int:
        return _lloyd_rows(X, weights, centers_work, start, stop, previous, labels, part)

    return accumulate_tasks(
        rows_kernel, n_rows, n_clusters, n_features, _rows_per_tile(centers_work, X), previous_labels, in_place
    )


def _check_problem(dtype: Any, homogeneous_rows: bool) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Rows near well-separated centers (no near-ties), ``MIN_FEATURES + 5`` features (a tail), 5 centers."""
    rng = np.random.default_rng(5)
    n_features = MIN_FEATURES + 5
    centers = rng.uniform(-8.0, 8.0, size=(5, n_features))
    X = centers[np.arange(2000) % 5] + 0.05 * rng.standard_normal((2000, n_features))
    X = X.astype(dtype)
    return (homogeneous(X, xp=_NUMPY) if homogeneous_rows else X), (centers + 0.01).astype(dtype), X


def _lloyd_step_self_check(xp: Any, device: Any) -> bool:
    ok = True
    for dtype in (np.float64, np.float32):
        for homogeneous_rows in (True, False):
            rows, centers, X = _check_problem(dtype, homogeneous_rows)
            weights = np.random.default_rng(6).uniform(0.5, 2.0, X.shape[0]).astype(dtype)
            previous = np.random.default_rng(7).integers(0, centers.shape[0], X.shape[0])
            ok = ok and step_agrees(lloyd_step_skinny, rows, weights, centers, previous)
    return bool(ok)


register("lloyd_step", "numpy", name="numba-skinny", self_check=_lloyd_step_self_check, applies=_lloyd_step_applies)(
    lloyd_step_skinny
)


# ---------------------------------------------------------------- assign


def assign_skinny(
    X: np.ndarray,
    centers: np.ndarray,
    *,
    xp: Any,
    metric: Metric = SQEUCLIDEAN,
    rows_per_block: int | None = None,
    budget_mib: float | None = None,
    float64_distances: bool = False,
) -> Assignment:
    """Nearest center and the distance to it (Euclidean metrics); same contract as
    :func:`kgpu._assign.assign_reference`.

    One pass of :func:`_assign_rows`: the exact distances to every center,
    the smallest of which is ``min_dist`` (rounded in the data's dtype,
    widened exactly with ``float64_distances``). ``rows_per_block`` and
    ``budget_mib`` are accepted for the common signature: nothing is
    allocated per row.
    """
    n_rows = X.shape[0]
    labels = np.empty(n_rows, dtype=np.int64)
    distances = np.empty(n_rows, dtype=X.dtype)
    centers_work = np.ascontiguousarray(centers, dtype=X.dtype)
    run_row_tasks(
        lambda start, stop: _assign_rows(X, centers_work, start, stop, labels, distances),
        n_rows, _rows_per_tile(centers_work, X),
    )
    if metric.name == "euclidean":
        np.sqrt(distances, out=distances)
    # Widened exactly: the distances are those of the data's dtype.
    return Assignment(labels, distances.astype(np.float64) if float64_distances else distances)


def _assign_self_check(xp: Any, device: Any) -> bool:
    ok = True
    for dtype in (np.float64, np.float32):
        for homogeneous_rows in (True, False):
            rows, centers, X = _check_problem(dtype, homogeneous_rows)
            for metric in (SQEUCLIDEAN, Metric("euclidean", 2.0)):
                ok = ok and assign_agrees(assign_skinny, rows, centers, metric)
    return bool(ok)


register("assign", "numpy", name="numba-skinny", self_check=_assign_self_check, applies=_assign_applies)(assign_skinny)


# ---------------------------------------------------------------- torch CPU tensors
#
# Zero-copy NumPy views of host tensors, as in :mod:`kgpu._kernels.cpu_numba`.


lloyd_step_skinny_torch = register_for_host_tensors(
    "lloyd_step", "numba-skinny", lloyd_step_skinny, _lloyd_step_applies, _lloyd_step_self_check
)
assign_skinny_torch = register_for_host_tensors("assign", "numba-skinny", assign_skinny, _assign_applies, _assign_self_check)
