"""Fused NumPy-backend kernels compiled with numba, registered in the kernel table.

The array-API references read the data several times per iteration: a GEMM
into a ``(b, k)`` score block, an argmin over it, a comparison with the
previous labels, a gather for the distance to the chosen center, then a
segmented sum. These kernels keep the one step BLAS is good at, the score
tile of a few rows (one GEMM, called from the compiled loop), and do
everything else while those rows are still in the core's cache: the argmin,
the changed-label count, the exact distance to the chosen center and the
per-cluster float64 sums. The data is read from memory once per pass.

The tile is small (:data:`TILE_BYTES`, rows plus scores well within an L2
cache) and transposed, ``(k, rows)``: the argmin then runs down columns with
rows in the inner loop, which vectorises without reordering any sum, where a
row-wise argmin over ``k`` scores is a chain of dependent comparisons.

Measured on 2 AVX-512 cores (``bench/numba_crossover.py``), a fully fused loop
(scores computed in numba, no BLAS) was slower than BLAS tile plus fused
epilogue at every shape tried, from ``k * d = 6`` to ``k * d = 32768``: the
loop cannot keep a row of scores in registers without reassociating sums
(``fastmath`` is off, for reproducible results), while the BLAS micro-kernel
does. So every Euclidean kernel here takes the tile-plus-epilogue path.

Parallelism and determinism: the kernels are plain ``nogil`` functions run on
kgpu's thread pool (:func:`kgpu._blocks.map_blocks`, BLAS held to one thread
per worker), the same pool every NumPy kernel uses; a second thread pool
(numba's own) would only fight it for the cores. Rows are cut into tasks and
tiles whose sizes depend on the problem's shape only (:func:`task_rounds`,
:func:`tile_rows`), never on the number of threads; every task writes its own
float64 partial sums, which are then added in task order. The result is the
same bits on 1 thread or 64.

Ties go to the lowest center index (a strict ``<`` in the running argmin), as
with ``argmin`` in the references.

Every kernel is registered for the ``"numpy"`` backend with a ``self_check``
(agreement with the reference on a small problem) and an ``applies`` guard
(NumPy float32 / float64 arrays of the expected layout; anything else runs the
reference). ``KGPU_FAST=0`` turns them all off.
"""

from __future__ import annotations

import bisect
from typing import Any

import array_api_compat.numpy as _NUMPY
from array_api_compat import is_torch_array
import numpy as np
import scipy.linalg.cython_blas  # noqa: F401  (the BLAS numba's np.dot calls: loaded now, so the pool can limit it)
from numba import njit

from .._assign import Accumulation, Assignment, SQEUCLIDEAN, assign_and_accumulate_reference, assign_reference
from .._blocks import DEFAULT_BLOCK_MIB, PARALLEL_BLOCKS, forget_blas_libraries, map_blocks, row_blocks
from .._distances import Metric, homogeneous
from .._segment import _informative_weights, segment_median_reference
from .dispatch import register

# The thread pool holds every loaded BLAS to one thread per worker; SciPy's
# (imported above) may be new to it.
forget_blas_libraries()

#: Bytes of one tile's rows plus its scores: well within a core's L2 cache, so
#: that the pass after the GEMM reads the rows from cache, not from memory.
TILE_BYTES = 512 * 2**10

#: Bounds on the rows of one tile (a power of two in between).
MIN_TILE_ROWS, MAX_TILE_ROWS = 32, 4096

#: Upper bound on the float64 partial sums held at once, in bytes: tasks are
#: run in rounds whose partials are added (in task order) before the next.
PARTIALS_BUDGET_BYTES = 64 * 2**20

_FLOATS = (np.float32, np.float64)

#: Values (rows x columns) from which the plain segmented median runs its
#: segments on the thread pool: below, a whole median takes about a
#: millisecond and the pool's dispatch costs more than it saves (measured).
POOLED_MEDIAN_VALUES = 1 << 22


def step_result(labels: np.ndarray, totals: np.ndarray, n_changed: int, previous_labels: Any) -> Accumulation:
    """A Lloyd step's :class:`Accumulation` from the labels and the ``(k, d + 1)`` float64 totals (sums, then weights).

    As the reference: the changed count is a 0-d int64 array, or None without previous labels.
    """
    n_features = totals.shape[1] - 1
    changed = None if previous_labels is None else np.asarray(n_changed, dtype=np.int64)
    return Accumulation(labels, totals[:, :n_features].copy(), totals[:, n_features].copy(), changed)


def step_agrees(step: Any, rows: np.ndarray, weights: np.ndarray, centers: np.ndarray, previous: np.ndarray) -> bool:
    """Whether the Lloyd step ``step`` gives the reference's labels, changed count, sums and weights (a self-check)."""
    got = step(rows, weights, centers, xp=_NUMPY, rows_per_block=500, previous_labels=previous)
    want = assign_and_accumulate_reference(rows, weights, centers, xp=_NUMPY, rows_per_block=500, previous_labels=previous)
    tolerance = 1e-10 if rows.dtype == np.float64 else 1e-4
    return bool(
        np.array_equal(got.labels, want.labels)
        and int(got.n_changed) == int(want.n_changed)
        and np.allclose(got.sums, want.sums, rtol=tolerance, atol=tolerance)
        and np.allclose(got.weights, want.weights, rtol=tolerance, atol=tolerance)
    )


def assign_agrees(assign: Any, X: np.ndarray, centers: np.ndarray, metric: Metric) -> bool:
    """Whether the assignment ``assign`` gives the reference's labels and distances (a self-check)."""
    got = assign(X, centers, xp=_NUMPY, metric=metric)
    want = assign_reference(X, centers, xp=_NUMPY, metric=metric)
    tolerance = 1e-4 if X.dtype == np.float32 else 1e-10
    return bool(
        np.array_equal(got.labels, want.labels)
        and np.allclose(got.min_dist, want.min_dist, rtol=tolerance, atol=tolerance)
    )


# ---------------------------------------------------------------- compiled loops


@njit(fastmath=False, cache=True, nogil=True)
def _score_tile(X, operand_t, center_norms, first, last, tile_buffer, nearest, nearest_score):
    """Nearest center of rows ``first:last``: a transposed score tile, then a column-wise argmin.

    ``operand_t`` is ``(k, w)`` with ``w`` the width of ``X``: ``[-2 c, ||c||^2]``
    for homogeneous rows, ``-2 c`` for plain ones (whose ``||c||^2`` come in
    ``center_norms``; zeros for homogeneous rows, an exact ``+ 0``). One GEMM
    (BLAS, on the calling thread) writes the ``(k, m)`` tile; the argmin then
    runs down its columns, so the inner loop is over rows and vectorises
    without reordering any sum. A strict ``<`` keeps the lowest index on ties,
    as ``argmin``. Fills ``nearest[:m]`` and ``nearest_score[:m]``.
    """
    n_clusters = operand_t.shape[0]
    n_tile = last - first
    scores_t = tile_buffer[: n_clusters * n_tile].reshape((n_clusters, n_tile))
    np.dot(operand_t, X[first:last].T, scores_t)
    norm = center_norms[0]
    for r in range(n_tile):
        nearest[r] = 0
        nearest_score[r] = scores_t[0, r] + norm
    for j in range(1, n_clusters):
        norm = center_norms[j]
        for r in range(n_tile):
            score = scores_t[j, r] + norm
            closer = score < nearest_score[r]
            nearest_score[r] = score if closer else nearest_score[r]
            nearest[r] = j if closer else nearest[r]


@njit(fastmath=False, cache=True, nogil=True)
def _lloyd_rows(X, weights, operand_t, center_norms, n_features, start, stop, tile_rows, previous, labels, part):
    """Argmin, changed count and float64 weighted sums of the rows ``start:stop``.

    The rows are taken ``tile_rows`` at a time, so that a tile's rows and
    scores stay in cache between the GEMM (:func:`_score_tile`) and the
    accumulation that reads the rows again. ``part`` is ``(k, d + 1)``: the
    weighted sums, then the weights in the last column; rows are added to
    what it holds, in row order, so a task cut in pieces that run one after
    the other into the same ``part`` sums exactly as the whole task. Scratch
    is allocated before anything is added: a piece that runs out of memory
    leaves ``part`` untouched and can be retried. Returns the number of rows
    whose label differs from ``previous`` (0 when ``previous`` is empty).
    """
    n_clusters = operand_t.shape[0]
    tile_buffer = np.empty(n_clusters * tile_rows, dtype=X.dtype)
    nearest = np.empty(tile_rows, dtype=np.int64)
    nearest_score = np.empty(tile_rows, dtype=X.dtype)
    compare = previous.shape[0] > 0
    n_changed = 0
    for first in range(start, stop, tile_rows):
        last = min(first + tile_rows, stop)
        _score_tile(X, operand_t, center_norms, first, last, tile_buffer, nearest, nearest_score)
        for r in range(last - first):
            i = first + r
            best = nearest[r]
            # Compared before it is written: ``labels`` may be ``previous`` itself.
            if compare and previous[i] != best:
                n_changed += 1
            labels[i] = best
            weight = np.float64(weights[i])
            for f in range(n_features):
                part[best, f] += weight * X[i, f]
            part[best, n_features] += weight
    return n_changed


@njit(fastmath=False, cache=True, nogil=True)
def _assign_rows(X, centers, operand_t, center_norms, start, stop, tile_rows, labels, min_dist):
    """Nearest center of rows ``start:stop`` and the exact ``||x - c||^2`` to it (in the data's dtype)."""
    n_clusters, n_features = centers.shape
    tile_buffer = np.empty(n_clusters * tile_rows, dtype=X.dtype)
    nearest = np.empty(tile_rows, dtype=np.int64)
    nearest_score = np.empty(tile_rows, dtype=X.dtype)
    for first in range(start, stop, tile_rows):
        last = min(first + tile_rows, stop)
        _score_tile(X, operand_t, center_norms, first, last, tile_buffer, nearest, nearest_score)
        for r in range(last - first):
            i = first + r
            best = nearest[r]
            labels[i] = best
            # Accumulated in the data's dtype, whatever ``min_dist`` holds (it may be wider).
            total = X.dtype.type(0)
            for f in range(n_features):
                gap = X[i, f] - centers[best, f]
                total += gap * gap
            min_dist[i] = total


@njit(fastmath=False, cache=True, nogil=True)
def _assign_minkowski(X, centers_t, p, start, stop, labels, min_dist):
    """Nearest center of rows ``start:stop`` under the Minkowski distance of order ``p``.

    ``centers_t`` is ``(d, k)`` float64, so the inner loop runs over centers
    (vectorised without reordering any sum). ``p == 1`` is L1, ``p == inf``
    Chebyshev. Distances are accumulated in float64, feature by feature.
    """
    n_features, n_clusters = centers_t.shape
    is_l1 = p == 1.0
    is_max = p == np.inf
    distances = np.empty(n_clusters, dtype=np.float64)
    for i in range(start, stop):
        distances[:] = 0.0
        for f in range(n_features):
            value = np.float64(X[i, f])
            for j in range(n_clusters):
                gap = abs(value - centers_t[f, j])
                if is_l1:
                    distances[j] += gap
                elif is_max:
                    distances[j] = max(distances[j], gap)
                else:
                    distances[j] += gap**p
        best = 0
        best_distance = distances[0]
        for j in range(1, n_clusters):
            if distances[j] < best_distance:
                best_distance = distances[j]
                best = j
        labels[i] = best
        if is_l1 or is_max:
            min_dist[i] = best_distance
        else:
            min_dist[i] = best_distance ** (1.0 / p)


@njit(fastmath=False, cache=True, nogil=True)
def _rows_by_segment(labels, starts):
    """Row indices ordered by segment, in row order within each (a stable counting sort)."""
    order = np.empty(labels.shape[0], dtype=np.int64)
    position = starts.copy()
    for row in range(labels.shape[0]):
        segment = labels[row]
        order[position[segment]] = row
        position[segment] += 1
    return order


@njit(fastmath=False, cache=True, nogil=True)
def _group_columns(values, labels, starts, first_column, out):
    """``out[c, j]``: column ``first_column + c`` of the rows grouped by segment (segment ``s`` at
    ``starts[s]:``, in row order), read in one pass over ``values`` in row order."""
    position = starts.copy()
    n_columns = out.shape[0]
    for row in range(values.shape[0]):
        segment = labels[row]
        j = position[segment]
        position[segment] = j + 1
        for c in range(n_columns):
            out[c, j] = values[row, first_column + c]


@njit(fastmath=False, cache=True, nogil=True)
def _segment_medians(values, by_segment, starts, ends, grouped_weights, first_task, last_task, medians):
    """Weighted medians for tasks ``first_task:last_task`` of (segment, column).

    ``values[by_segment[starts[s]:ends[s]]]`` are the rows of segment ``s``,
    ``grouped_weights`` their weights (in ``by_segment`` order). Each task
    gathers one column of one segment, sorts it once and stores the midpoint
    of its lower and upper weighted medians.
    """
    n_columns = values.shape[1]
    for task in range(first_task, last_task):
        segment = task // n_columns
        column = task - segment * n_columns
        start = starts[segment]
        count = ends[segment] - start
        if count == 0:
            continue
        column_values = np.empty(count, dtype=values.dtype)
        for i in range(count):
            column_values[i] = values[by_segment[start + i], column]
        segment_weights = grouped_weights[start : start + count]
        total = 0.0
        for i in range(count):
            total += segment_weights[i]
        if not total > 0:
            continue
        order = np.argsort(column_values, kind="mergesort")
        half = total / 2
        running = 0.0
        lower = -1
        upper = count - 1
        for position in range(count):
            running += segment_weights[order[position]]
            if lower < 0 and not running < half:
                lower = position
            if running > half:
                upper = position
                break
        if lower < 0:
            lower = count - 1
        medians[segment, column] = (column_values[order[lower]] + column_values[order[upper]]) / 2


# ---------------------------------------------------------------- shape rules


def tile_rows(n_clusters: int, n_features: int, itemsize: int) -> int:
    """Rows per score tile: a power of two whose rows and ``(k, rows)`` scores fill about :data:`TILE_BYTES`.

    Depends on the shape only, so the summation order does too.
    """
    rows = TILE_BYTES // ((n_features + 1 + n_clusters) * itemsize)
    rows = 1 << max(0, int(rows).bit_length() - 1)
    return int(min(MAX_TILE_ROWS, max(MIN_TILE_ROWS, rows)))


def task_rounds(n_rows: int, rows_per_tile: int, partial_floats: int) -> list[list[tuple[int, int]]]:
    """Thread-pool tasks ``(start, stop)``, grouped in rounds whose float64 partials fit :data:`PARTIALS_BUDGET_BYTES`.

    About :data:`kgpu._blocks.PARALLEL_BLOCKS` tasks of whole tiles: a layout
    fixed by the shape, never by the number of threads. ``partial_floats``
    is the size of one task's partial sums.
    """
    n_tiles = -(-n_rows // rows_per_tile)
    rows_per_task = rows_per_tile * max(1, -(-n_tiles // PARALLEL_BLOCKS))
    tasks = row_blocks(n_rows, rows_per_task)
    per_round = max(1, PARTIALS_BUDGET_BYTES // (8 * max(1, partial_floats)))
    return [tasks[first : first + per_round] for first in range(0, len(tasks), per_round)]


def tile_tasks(tasks: list[tuple[int, int]], rows_per_tile: int) -> list[tuple[int, int]]:
    """Row tasks as ``(first_tile, last_tile)`` ranges, the unit the thread pool runs and splits.

    A task that runs out of memory is split in halves (:func:`kgpu._blocks.map_blocks`);
    counted in tiles, every piece starts on a tile boundary, so the GEMMs
    see the same tiles as the whole task and round the same way.
    """
    return [(start // rows_per_tile, -(-stop // rows_per_tile)) for start, stop in tasks]


def tile_span(first_tile: int, last_tile: int, rows_per_tile: int, n_rows: int) -> tuple[int, int]:
    """Rows ``(start, stop)`` of tiles ``first_tile:last_tile``."""
    return first_tile * rows_per_tile, min(last_tile * rows_per_tile, n_rows)


def accumulate_tasks(
    rows_kernel: Any, n_rows: int, n_clusters: int, n_features: int, rows_per_tile: int, previous_labels: Any,
    in_place: bool,
) -> Accumulation:
    """The Lloyd step of a compiled row loop: labels, changed count and float64 sums, task by task.

    ``rows_kernel(start, stop, previous, labels, overwrite, part)`` runs the
    loop over rows ``start:stop``: it writes their labels, adds their
    weighted sums and weights into ``part`` ``(k, d + 1)``, and returns how
    many labels differ from ``previous`` (empty: none to compare;
    ``overwrite``: ``labels`` is ``previous``). Tasks and rounds depend on the
    shape only (:func:`task_rounds`) and every task adds into its own
    partials, added in task order, so the result is the same bits on any
    number of threads. A task the pool splits after running out of memory
    hands its pieces (tile boundaries, row order, one thread) the same
    partials, so it sums as the whole task.
    """
    if previous_labels is None:
        previous = np.empty(0, dtype=np.int64)
    else:
        previous = np.ascontiguousarray(previous_labels, dtype=np.int64)
    overwrite = in_place and previous is previous_labels and previous.flags.writeable
    labels = previous if overwrite else np.empty(n_rows, dtype=np.int64)
    totals = np.zeros((n_clusters, n_features + 1), dtype=np.float64)
    n_changed = 0
    for tasks in task_rounds(n_rows, rows_per_tile, n_clusters * (n_features + 1)):
        partials = np.zeros((len(tasks), n_clusters, n_features + 1), dtype=np.float64)
        tiled = tile_tasks(tasks, rows_per_tile)
        first_tiles = [first for first, _ in tiled]

        def one_task(first_tile: int, last_tile: int) -> int:
            slot = bisect.bisect_right(first_tiles, first_tile) - 1
            start, stop = tile_span(first_tile, last_tile, rows_per_tile, n_rows)
            return rows_kernel(start, stop, previous, labels, overwrite, partials[slot])

        n_changed += sum(map_blocks(one_task, tiled, np))
        # Task order, whichever thread computed each task.
        for part in partials:
            totals += part
    return step_result(labels, totals, n_changed, previous_labels)


def run_row_tasks(rows_kernel: Any, n_rows: int, rows_per_tile: int) -> None:
    """Run ``rows_kernel(start, stop)`` over all rows on the thread pool, in tasks fixed by the shape (:func:`task_rounds`)."""
    tasks = tile_tasks([task for tasks in task_rounds(n_rows, rows_per_tile, 0) for task in tasks], rows_per_tile)

    def one_task(first_tile: int, last_tile: int) -> None:
        rows_kernel(*tile_span(first_tile, last_tile, rows_per_tile, n_rows))

    map_blocks(one_task, tasks, np)


def take_euclidean_root(min_dist: np.ndarray, metric: Metric, dtype: Any) -> None:
    """For ``metric="euclidean"``, the root of squared distances ``min_dist``, in place, taken in the data's ``dtype``."""
    if metric.name != "euclidean":
        return
    if min_dist.dtype == dtype:
        np.sqrt(min_dist, out=min_dist)
    else:
        # The root in the data's dtype, as without float64_distances.
        min_dist[:] = np.sqrt(min_dist.astype(dtype))


def _operand_t(centers: np.ndarray, X: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The ``(k, w)`` GEMM operand for rows ``X`` of width ``w``, and the norms added to its scores.

    Homogeneous rows (``w = d + 1``): ``[-2 c, ||c||^2]`` and zeros, as
    :func:`kgpu._distances.homogeneous_operand` transposed; plain rows:
    ``-2 c`` and ``||c||^2``.
    """
    centers = np.asarray(centers, dtype=X.dtype)
    n_clusters, n_features = centers.shape
    center_norms = np.einsum("ij,ij->i", centers, centers)
    operand_t = np.empty((n_clusters, X.shape[1]), dtype=X.dtype)
    operand_t[:, :n_features] = -2 * centers
    if X.shape[1] == n_features:
        return operand_t, center_norms
    operand_t[:, n_features] = center_norms
    return operand_t, np.zeros(n_clusters, dtype=X.dtype)


def _is_float_matrix(X: Any) -> bool:
    return isinstance(X, np.ndarray) and X.ndim == 2 and X.dtype.type in _FLOATS and X.flags.c_contiguous


# ---------------------------------------------------------------- lloyd_step


def _lloyd_step_applies(X: Any, sample_weight: Any, centers: Any, **_: Any) -> bool:
    return (
        _is_float_matrix(X)
        and isinstance(sample_weight, np.ndarray)
        and sample_weight.shape == (X.shape[0],)
        and isinstance(centers, np.ndarray)
        and centers.ndim == 2
        and centers.shape[0] >= 1
        and X.shape[1] in (centers.shape[1], centers.shape[1] + 1)
    )


def lloyd_step_numba(
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

    Each thread-pool task runs :func:`_lloyd_rows` over its rows, tile by
    tile, into its own float64 partial sums, which are added in task order.
    ``rows_per_block`` is accepted for the common signature; tiles and tasks
    have a size fixed by the shape (:func:`tile_rows`, :func:`task_rounds`),
    so the result does not depend on it.
    """
    n_rows = X.shape[0]
    n_clusters, n_features = centers.shape
    operand_t, center_norms = _operand_t(centers, X)
    weights = np.ascontiguousarray(sample_weight)
    rows_per_tile = tile_rows(n_clusters, n_features, X.dtype.itemsize)

    def rows_kernel(start: int, stop: int, previous: np.ndarray, labels: np.ndarray, overwrite: bool, part: np.ndarray) -> int:
        return _lloyd_rows(
            X, weights, operand_t, center_norms, n_features, start, stop, rows_per_tile, previous, labels, part
        )

    return accumulate_tasks(rows_kernel, n_rows, n_clusters, n_features, rows_per_tile, previous_labels, in_place)


def _lloyd_step_self_check(xp: Any, device: Any) -> bool:
    rng = np.random.default_rng(0)
    ok = True
    for dtype, n_clusters, n_features in ((np.float64, 3, 4), (np.float32, 70, 40)):
        X = rng.standard_normal((2 * MAX_TILE_ROWS + 37, n_features)).astype(dtype)
        weights = rng.uniform(0.5, 2.0, X.shape[0]).astype(dtype)
        centers = X[:n_clusters].copy()
        previous = rng.integers(0, n_clusters, X.shape[0])
        for rows in (X, homogeneous(X, xp=xp)):
            ok = ok and step_agrees(lloyd_step_numba, rows, weights, centers, previous)
    return bool(ok)


register("lloyd_step", "numpy", name="numba", self_check=_lloyd_step_self_check, applies=_lloyd_step_applies)(
    lloyd_step_numba
)


# ---------------------------------------------------------------- assign


def _assign_applies(X: Any, centers: Any, *, metric: Metric = SQEUCLIDEAN, **_: Any) -> bool:
    if not (_is_float_matrix(X) and isinstance(centers, np.ndarray) and centers.ndim == 2):
        return False
    if centers.shape[0] < 1 or X.shape[0] < 1:
        return False
    if metric.name in ("sqeuclidean", "euclidean"):
        return X.shape[1] in (centers.shape[1], centers.shape[1] + 1)
    return metric.name in ("manhattan", "minkowski") and X.shape[1] == centers.shape[1]


def assign_numba(
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

    Euclidean metrics: :func:`_assign_rows`, a GEMM per tile for the scores
    (rows may be homogeneous ``[x, 1]``) then the exact distance to the
    chosen center while the tile is in cache. L1 and Minkowski:
    :func:`_assign_minkowski`, accumulated in float64 and rounded once to the
    data's dtype. ``rows_per_block`` and ``budget_mib`` are accepted for the
    common signature; tiles and tasks have a size fixed by the shape.
    """
    n_rows = X.shape[0]
    n_clusters, n_features = centers.shape
    labels = np.empty(n_rows, dtype=np.int64)
    min_dist = np.empty(n_rows, dtype=np.float64 if float64_distances else X.dtype)
    centers_work = np.ascontiguousarray(centers, dtype=X.dtype)
    rows_per_tile = tile_rows(n_clusters, n_features, X.dtype.itemsize)
    if metric.name in ("sqeuclidean", "euclidean"):
        operand_t, center_norms = _operand_t(centers_work, X)
        run_row_tasks(
            lambda start, stop: _assign_rows(
                X, centers_work, operand_t, center_norms, start, stop, rows_per_tile, labels, min_dist
            ),
            n_rows, rows_per_tile,
        )
        take_euclidean_root(min_dist, metric, X.dtype)
    else:
        centers_t = np.ascontiguousarray(centers_work.T, dtype=np.float64)
        p = float(metric.p)
        run_row_tasks(lambda start, stop: _assign_minkowski(X, centers_t, p, start, stop, labels, min_dist), n_rows, rows_per_tile)
        if min_dist.dtype != X.dtype:
            # Rounded to the data's dtype, as without float64_distances.
            min_dist[:] = min_dist.astype(X.dtype)
    return Assignment(labels, min_dist)


def _assign_self_check(xp: Any, device: Any) -> bool:
    rng = np.random.default_rng(1)
    ok = True
    for dtype in (np.float64, np.float32):
        X = rng.standard_normal((MAX_TILE_ROWS + 11, 5)).astype(dtype)
        centers = X[:4].copy()
        metrics = (SQEUCLIDEAN, Metric("euclidean", 2.0), Metric("manhattan", 1.0), Metric("minkowski", 3.0))
        for metric in metrics:
            ok = ok and assign_agrees(assign_numba, X, centers, metric)
    return bool(ok)


register("assign", "numpy", name="numba", self_check=_assign_self_check, applies=_assign_applies)(assign_numba)


# ---------------------------------------------------------------- segment_median


def _segment_median_applies(values: Any, labels: Any, n_segments: int, weights: Any = None, **_: Any) -> bool:
    return (
        _is_float_matrix(values)
        and isinstance(labels, np.ndarray)
        and labels.shape == (values.shape[0],)
        and (weights is None or isinstance(weights, np.ndarray))
    )


def segment_median_numba(
    values: np.ndarray,
    labels: np.ndarray,
    n_segments: int,
    weights: Any = None,
    *,
    xp: Any,
    budget_mib: float | None = None,
) -> np.ndarray:
    """Weighted median of every column within each segment; same contract and rule as
    :func:`kgpu._segment.segment_median_reference`.

    Unweighted: the rows grouped by segment in one pass, then NumPy's SIMD
    selection on each segment's columns (:func:`_segment_medians_unweighted`).
    Weighted: one stable ordering of the rows by segment (a compiled counting
    sort, no copy of the data), then for every (segment, column) a gather of
    that column of that segment, one sort, and a compiled pass for the lower
    and upper weighted medians, on kgpu's thread pool.
    """
    weights = _informative_weights(weights, xp=xp)
    n_rows, n_columns = values.shape
    medians = np.zeros((n_segments, n_columns), dtype=values.dtype)
    if n_rows == 0 or n_columns == 0 or n_segments == 0:
        return medians
    labels = np.asarray(labels, dtype=np.int64)
    counts = np.bincount(labels, minlength=n_segments)
    ends = np.cumsum(counts)
    starts = ends - counts
    if weights is None:
        return _segment_medians_unweighted(values, labels, starts, counts, medians, budget_mib)
    by_segment = _rows_by_segment(labels, starts)
    grouped_weights = np.asarray(weights, dtype=np.float64)[by_segment]
    n_tasks = n_segments * n_columns
    # About 64 tasks per thread-pool job (fewer when the segments are long).
    tasks_per_job = max(1, min(64, (1 << 16) * n_columns // max(1, n_rows)))

    def some_tasks(first: int, last: int) -> None:
        _segment_medians(values, by_segment, starts, ends, grouped_weights, first, last, medians)

    map_blocks(some_tasks, row_blocks(n_tasks, tasks_per_job), np)
    return medians


def _segment_medians_unweighted(
    values: np.ndarray, labels: np.ndarray, starts: np.ndarray, counts: np.ndarray, medians: np.ndarray,
    budget_mib: float | None,
) -> np.ndarray:
    """Plain medians of every segment: the rows grouped by segment, a block of
    columns at a time and transposed (one sequential pass over the data,
    :func:`_group_columns`), then NumPy's selection along each column.

    NumPy's ``partition`` uses its SIMD selection (x86-simd-sort on AVX-512):
    measured here about ten times faster than a compiled quickselect. Reading
    the data in row order, rather than gathering each segment's rows, keeps the
    hardware prefetcher useful. The median of an even count is the mean of the
    two middle values, as :func:`numpy.median`. The grouped block holds
    ``budget_mib`` (at least one column); from :data:`POOLED_MEDIAN_VALUES`
    values its segments run on kgpu's thread pool, each writing only its own
    row of ``medians``.
    """
    n_rows, n_columns = values.shape
    budget_values = int((DEFAULT_BLOCK_MIB["numpy"] if budget_mib is None else budget_mib) * 2**20) // values.itemsize
    columns_per_block = int(max(1, min(n_columns, budget_values // n_rows)))
    segments = [int(segment) for segment in np.flatnonzero(counts)]
    for first in range(0, n_columns, columns_per_block):
        last = min(first + columns_per_block, n_columns)
        grouped = np.empty((last - first, n_rows), dtype=values.dtype)
        _group_columns(values, labels, starts, first, grouped)

        def one_segment(position: int, _: int, first: int = first, last: int = last, grouped: Any = grouped) -> None:
            segment = segments[position]
            count = int(counts[segment])
            block = grouped[:, starts[segment] : starts[segment] + count]
            middle = count // 2
            block.partition(middle, axis=1)
            upper = block[:, middle]
            medians[segment, first:last] = upper if count % 2 == 1 else (block[:, :middle].max(axis=1) + upper) / 2

        if n_rows * n_columns < POOLED_MEDIAN_VALUES:
            for position in range(len(segments)):
                one_segment(position, position + 1)
        else:
            map_blocks(one_segment, [(position, position + 1) for position in range(len(segments))], np)
    return medians


def _segment_median_self_check(xp: Any, device: Any) -> bool:
    rng = np.random.default_rng(2)
    ok = True
    for dtype in (np.float64, np.float32):
        values = rng.standard_normal((301, 3)).astype(dtype)
        labels = rng.integers(0, 5, 301)
        labels[labels == 3] = 2  # one empty segment
        for weights in (None, rng.integers(0, 4, 301).astype(dtype)):
            got = segment_median_numba(values, labels, 5, weights, xp=xp)
            want = segment_median_reference(values, labels, 5, weights, xp=xp)
            ok = ok and np.array_equal(got, want)
    return bool(ok)


register(
    "segment_median", "numpy", name="numba", self_check=_segment_median_self_check, applies=_segment_median_applies
)(segment_median_numba)


# ---------------------------------------------------------------- silhouette

#: Query rows per silhouette tile, and data rows per chunk against them.
SILHOUETTE_QUERY_ROWS, SILHOUETTE_CHUNK_ROWS = 256, 4096


@njit(fastmath=False, cache=True, nogil=True)
def _silhouette_euclidean_tile(gram, chunk_norms, query_norms, codes, chunk_start, query_start, squared, sums):
    """Add the distances of a chunk of rows to a tile of query rows into per-cluster sums.

    ``gram[i, j]`` is ``x_i . q_j``; the squared distance is
    ``||x||^2 + ||q||^2 - 2 x.q`` in float64, clipped at 0; a row's distance
    to itself is 0 exactly. ``sums`` is ``(n_labels, b)`` float64.
    """
    n_chunk, n_query = gram.shape
    for i in range(n_chunk):
        row = chunk_start + i
        code = codes[row]
        row_norm = np.float64(chunk_norms[i])
        for j in range(n_query):
            distance = row_norm + np.float64(query_norms[j]) - 2.0 * np.float64(gram[i, j])
            if distance < 0.0 or row == query_start + j:
                distance = 0.0
            if not squared:
                distance = np.sqrt(distance)
            sums[code, j] += distance


@njit(fastmath=False, cache=True, nogil=True)
def _silhouette_manhattan_tile(X, query_t, codes, chunk_start, chunk_stop, sums):
    """L1 analogue of :func:`_silhouette_euclidean_tile`; ``query_t`` is ``(d, b)`` float64."""
    n_features, n_query = query_t.shape
    row_distances = np.empty(n_query, dtype=np.float64)
    for row in range(chunk_start, chunk_stop):
        row_distances[:] = 0.0
        for f in range(n_features):
            value = np.float64(X[row, f])
            for j in range(n_query):
                row_distances[j] += abs(value - query_t[f, j])
        code = codes[row]
        for j in range(n_query):
            sums[code, j] += row_distances[j]


def _silhouette_applies(X: Any, codes: Any, n_labels: int, metric: Metric, **_: Any) -> bool:
    return (
        _is_float_matrix(X)
        and isinstance(codes, np.ndarray)
        and codes.shape == (X.shape[0],)
        and metric.name in ("sqeuclidean", "euclidean", "manhattan")
    )


def silhouette_numba(
    X: np.ndarray, codes: np.ndarray, n_labels: int, metric: Metric, *, xp: Any, budget_mib: float | None = None
) -> np.ndarray:
    """Silhouette of every row; same contract as :func:`kgpu.metrics.silhouette_reference`.

    Query tiles of :data:`SILHOUETTE_QUERY_ROWS` rows run on the thread pool.
    For each, the data is read in chunks: Euclidean distances come from one
    GEMM per chunk and a compiled epilogue that adds them straight into
    per-cluster float64 sums (no ``(chunk, tile)`` distance array, mask or
    segmented-sum pass); L1 distances are computed in the compiled loop.
    Tile and chunk sizes are fixed (smaller when ``budget_mib`` asks), so
    the sums do not depend on the threads.
    """
    from ..metrics import _silhouette_from_sums

    n_rows = X.shape[0]
    codes = np.ascontiguousarray(codes, dtype=np.int64)
    counts = np.bincount(codes, minlength=n_labels).astype(np.float64)
    euclidean = metric.name in ("sqeuclidean", "euclidean")
    norms = np.einsum("ij,ij->i", X, X) if euclidean else None
    query_rows, chunk_rows = SILHOUETTE_QUERY_ROWS, SILHOUETTE_CHUNK_ROWS
    if budget_mib is not None:
        # The (chunk, tile) product is the largest temporary: keep it within the budget.
        budget_values = max(1, int(budget_mib * 2**20) // 8)
        query_rows = min(query_rows, budget_values)
        chunk_rows = max(1, min(chunk_rows, budget_values // query_rows))
    chunks = row_blocks(n_rows, chunk_rows)

    def one_tile(start: int, stop: int) -> np.ndarray:
        sums = np.zeros((n_labels, stop - start), dtype=np.float64)
        query = X[start:stop]
        if euclidean:
            query_t = np.ascontiguousarray(query.T)
            for chunk_start, chunk_stop in chunks:
                gram = X[chunk_start:chunk_stop] @ query_t
                _silhouette_euclidean_tile(
                    gram, norms[chunk_start:chunk_stop], norms[start:stop], codes, chunk_start, start,
                    metric.name == "sqeuclidean", sums,
                )
        else:
            query_t = np.ascontiguousarray(query.T, dtype=np.float64)
            for chunk_start, chunk_stop in chunks:
                _silhouette_manhattan_tile(X, query_t, codes, chunk_start, chunk_stop, sums)
        return _silhouette_from_sums(sums, codes[start:stop], counts, xp=_NUMPY)

    parts = map_blocks(one_tile, row_blocks(n_rows, query_rows), np)
    return parts[0] if len(parts) == 1 else np.concatenate(parts)


def _silhouette_self_check(xp: Any, device: Any) -> bool:
    from ..metrics import silhouette_reference

    rng = np.random.default_rng(4)
    ok = True
    for dtype in (np.float64, np.float32):
        X = rng.standard_normal((300, 3)).astype(dtype)
        codes = rng.integers(0, 4, 300)
        for metric in (Metric("euclidean", 2.0), Metric("sqeuclidean", 2.0), Metric("manhattan", 1.0)):
            got = silhouette_numba(X, codes, 4, metric, xp=xp)
            want = silhouette_reference(X, codes, 4, metric, xp=xp)
            ok = ok and np.allclose(got, want, rtol=1e-4 if dtype == np.float32 else 1e-9, atol=1e-5)
    return bool(ok)


register("silhouette", "numpy", name="numba", self_check=_silhouette_self_check, applies=_silhouette_applies)(
    silhouette_numba
)


# ---------------------------------------------------------------- torch CPU tensors
#
# A torch tensor in host memory shares its buffer with a NumPy array
# (``Tensor.numpy()`` / ``torch.from_numpy``, no copy), so the kernels above
# serve torch CPU tensors too, on the same thread pool; the results are
# handed back as tensors viewing the kernels' output.


def _is_host_tensor(x: Any) -> bool:
    import torch

    return isinstance(x, torch.Tensor) and x.device.type == "cpu" and x.layout == torch.strided


def _view(x: Any) -> Any:
    """The NumPy view of a host tensor (None stays None)."""
    return None if x is None else x.detach().numpy()


def _tensor(array: Any) -> Any:
    import torch

    return None if array is None else torch.from_numpy(np.asarray(array))


def _viewed(value: Any) -> Any:
    """The NumPy view of a torch tensor; anything else as it is."""
    return _view(value) if is_torch_array(value) else value


def _as_tensors(result: Any) -> Any:
    """A kernel's arrays (or named tuple of them) as tensors viewing the same memory; None stays None."""
    if isinstance(result, tuple):
        return type(result)(*(_tensor(part) for part in result))
    return _tensor(result)


def on_tensor_views(kernel: Any) -> Any:
    """``kernel``, a NumPy kernel, for host tensors: run on their NumPy views, its results back as tensors."""

    def adapted(*args: Any, xp: Any, **kwargs: Any) -> Any:
        viewed = {key: _viewed(value) for key, value in kwargs.items()}
        return _as_tensors(kernel(*map(_viewed, args), xp=_NUMPY, **viewed))

    adapted.__name__ = adapted.__qualname__ = f"{kernel.__name__}_torch"
    # The kernel table ranks implementations by their module.
    adapted.__module__ = kernel.__module__
    adapted.__doc__ = f":func:`{kernel.__name__}` on the NumPy views of host tensors; tensors back."
    return adapted


def guard_on_tensor_views(applies: Any) -> Any:
    """``applies``, a NumPy kernel's guard, for tensors: every tensor in host memory, and the guard on their views."""

    def adapted(*args: Any, **kwargs: Any) -> bool:
        if not all(_is_host_tensor(value) for value in (*args, *kwargs.values()) if is_torch_array(value)):
            return False
        return applies(*map(_viewed, args), **{key: _viewed(value) for key, value in kwargs.items()})

    return adapted


def _torch_self_check(numpy_check: Any) -> Any:
    """Self-check of a torch adapter: the NumPy kernel's own check (the adapter only views memory)."""

    def check(xp: Any, device: Any) -> bool:
        import torch

        X = torch.arange(12.0, dtype=torch.float64).reshape(6, 2)
        _view(X)[0, 0] = -1.0  # the view must share the tensor's memory
        return bool(X[0, 0] == -1.0) and numpy_check(_NUMPY, "cpu")

    return check


def register_for_host_tensors(operation: str, name: str, kernel: Any, applies: Any, numpy_self_check: Any) -> Any:
    """Register the NumPy ``kernel`` for torch CPU tensors, on their views (:func:`on_tensor_views`); the adapter back.

    Registered whether or not torch is installed: the ``"torch"`` backend is
    only looked up for torch arrays, and nothing here imports torch before
    one is seen.
    """
    adapted = on_tensor_views(kernel)
    register(
        operation, "torch", name=name, self_check=_torch_self_check(numpy_self_check),
        applies=guard_on_tensor_views(applies),
    )(adapted)
    return adapted


lloyd_step_torch = register_for_host_tensors(
    "lloyd_step", "numba", lloyd_step_numba, _lloyd_step_applies, _lloyd_step_self_check
)
assign_torch = register_for_host_tensors("assign", "numba", assign_numba, _assign_applies, _assign_self_check)
segment_median_torch = register_for_host_tensors(
    "segment_median", "numba", segment_median_numba, _segment_median_applies, _segment_median_self_check
)
