"""Fused NumPy-backend kernels compiled with numba, registered in the kernel table.

The array-API references read the data several times per iteration: a GEMM
into a ``(b, k)`` score block, an argmin over it, a comparison with the
previous labels, a gather for the distance to the chosen center, then a
segmented sum. These kernels keep the one step BLAS is good at, the score
tile of a chunk of rows (one GEMM, computed while the chunk is in cache), and
do everything else in one compiled pass over that chunk: the running argmin,
the changed-label count, the exact distance to the chosen center and the
per-cluster float64 sums.

Measured on 2 AVX-512 cores (``bench/numba_crossover.py``), a fully fused loop
(scores computed in numba, no BLAS) was slower than BLAS tile plus fused
epilogue at every shape tried, from ``k * d = 6`` to ``k * d = 32768``: the
loop cannot keep a row of scores in registers without reassociating sums
(``fastmath`` is off, for reproducible results), while the BLAS micro-kernel
does. So every Euclidean kernel here takes the tile-plus-epilogue path.

Parallelism and determinism: the kernels are plain ``nogil`` functions run on
kgpu's thread pool (:func:`kgpu._blocks.map_blocks`, BLAS held to one thread
per worker), the same pool every NumPy kernel uses; a second thread pool
(numba's own) would only fight it for the cores. Rows are cut into chunks
whose size depends on the problem's shape only (:func:`chunk_rows`), never on
the number of threads; every chunk writes its own float64 partial sums, which
are then added in chunk order. The result is the same bits on 1 thread or 64.

Ties go to the lowest center index (a strict ``<`` in the running argmin), as
with ``argmin`` in the references.

Every kernel is registered for the ``"numpy"`` backend with a ``self_check``
(agreement with the reference on a small problem) and an ``applies`` guard
(NumPy float32 / float64 arrays of the expected layout; anything else runs the
reference). ``KGPU_FAST=0`` turns them all off.
"""

from __future__ import annotations

from typing import Any

import array_api_compat.numpy as _NUMPY
import numpy as np
from numba import njit

from .._assign import Accumulation, Assignment, SQEUCLIDEAN, assign_and_accumulate_reference, assign_reference
from .._blocks import map_blocks, row_blocks
from .._distances import Metric, homogeneous
from .._segment import _informative_weights, segment_median_reference
from .dispatch import register

#: Bytes of one chunk's rows plus its score tile: about an L2 cache.
CHUNK_BYTES = 8 * 2**20

#: Bounds on the rows of one chunk (a power of two in between).
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 1024, 16384

#: Upper bound on the float64 partial sums held at once, in bytes: chunks are
#: run in rounds whose partials are added (in chunk order) before the next.
#: Small beside the data (a fit's memory is its working copy plus blocks);
#: a round is still dozens of chunks, so the pool stays busy.
PARTIALS_BUDGET_BYTES = 4 * 2**20

_FLOATS = (np.float32, np.float64)


# ---------------------------------------------------------------- compiled loops


@njit(fastmath=False, cache=True, nogil=True, inline="always")
def _row_argmin(scores, r):
    """Column of the smallest score in row ``r``; a tie keeps the lowest index, as ``argmin``."""
    best = 0
    best_score = scores[r, 0]
    for j in range(1, scores.shape[1]):
        if scores[r, j] < best_score:
            best_score = scores[r, j]
            best = j
    return best


@njit(fastmath=False, cache=True, nogil=True)
def _lloyd_epilogue(X, weights, scores, n_features, start, previous, part, labels):
    """Argmin, changed count and float64 weighted sums of the rows ``start : start + len(scores)``.

    ``scores[r, j]`` is ``||c_j||^2 - 2 x.c_j`` for row ``start + r``.
    ``part`` is ``(k, d + 1)``: the weighted sums, then the weights in the last
    column. Returns the number of rows whose label differs from ``previous``
    (0 when ``previous`` is empty).
    """
    part[:, :] = 0.0
    n_changed = 0
    for r in range(scores.shape[0]):
        i = start + r
        best = _row_argmin(scores, r)
        # Compared before it is written: ``labels`` may be ``previous`` itself.
        if previous.shape[0] > 0 and previous[i] != best:
            n_changed += 1
        labels[i] = best
        weight = np.float64(weights[i])
        for f in range(n_features):
            part[best, f] += weight * X[i, f]
        part[best, n_features] += weight
    return n_changed


@njit(fastmath=False, cache=True, nogil=True)
def _assign_epilogue(X, centers, scores, start, labels, min_dist):
    """Argmin of each row's scores and the exact ``||x - c||^2`` to the chosen center."""
    n_features = centers.shape[1]
    for r in range(scores.shape[0]):
        i = start + r
        best = _row_argmin(scores, r)
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
def _segment_medians(values, by_segment, starts, ends, grouped_weights, first_task, last_task, medians):
    """Weighted medians for tasks ``first_task:last_task`` of (segment, column).

    ``values[by_segment[starts[s]:ends[s]]]`` are the rows of segment ``s``.
    Each task gathers one column of one segment and stores the midpoint of
    its lower and upper weighted medians: a selection (``np.partition``,
    O(m)) when unweighted, a sort when weighted. ``grouped_weights`` (in
    ``by_segment`` order) is empty when the medians are unweighted.
    """
    n_columns = values.shape[1]
    weighted = grouped_weights.shape[0] > 0
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
        if not weighted:
            middle = count // 2
            selected = np.partition(column_values, middle)
            upper_value = selected[middle]
            lower_value = upper_value if count % 2 == 1 else selected[:middle].max()
            medians[segment, column] = (lower_value + upper_value) / 2
            continue
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


def chunk_rows(n_clusters: int, n_features: int, itemsize: int) -> int:
    """Rows per chunk: a power of two whose rows and score tile fill about :data:`CHUNK_BYTES`.

    Depends on the shape only, so the summation order does too.
    """
    rows = CHUNK_BYTES // ((n_features + 1 + n_clusters) * itemsize)
    rows = 1 << max(0, int(rows).bit_length() - 1)
    return int(min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, rows)))


def _chunk_rounds(n_rows: int, rows_per_chunk: int, n_clusters: int, n_features: int) -> list[list[tuple[int, int]]]:
    """Chunks ``(start, stop)`` grouped in rounds whose float64 partials fit :data:`PARTIALS_BUDGET_BYTES`."""
    per_round = max(1, PARTIALS_BUDGET_BYTES // (n_clusters * (n_features + 1) * 8))
    chunks = row_blocks(n_rows, rows_per_chunk)
    return [chunks[first : first + per_round] for first in range(0, len(chunks), per_round)]


def _operand(centers: np.ndarray, dtype: Any) -> np.ndarray:
    """``[-2 c^T; ||c||^2]``, C-contiguous ``(d + 1, k)``: as :func:`kgpu._distances.homogeneous_operand`."""
    centers = np.asarray(centers, dtype=dtype)
    operand = np.empty((centers.shape[1] + 1, centers.shape[0]), dtype=dtype)
    operand[:-1] = -2 * centers.T
    operand[-1] = np.einsum("ij,ij->i", centers, centers)
    return operand


def _scores(x_chunk: np.ndarray, operand: np.ndarray) -> np.ndarray:
    """``||c||^2 - 2 x.c`` for a chunk of plain or homogeneous rows: one GEMM."""
    if x_chunk.shape[1] == operand.shape[0]:
        return x_chunk @ operand
    scores = x_chunk @ operand[:-1]
    scores += operand[-1]
    return scores


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

    Each chunk: one GEMM for its scores, then :func:`_lloyd_epilogue`.
    ``rows_per_block`` is accepted for the common signature; the chunks have a
    fixed size (:func:`chunk_rows`), so the result does not depend on it.
    """
    n_rows = X.shape[0]
    n_clusters, n_features = centers.shape
    operand = _operand(centers, X.dtype)
    weights = np.ascontiguousarray(sample_weight)
    if previous_labels is None:
        previous = np.empty(0, dtype=np.int64)
    else:
        previous = np.ascontiguousarray(previous_labels, dtype=np.int64)
    overwrite = in_place and previous is previous_labels and previous.flags.writeable
    labels = previous if overwrite else np.empty(n_rows, dtype=np.int64)
    totals = np.zeros((n_clusters, n_features + 1), dtype=np.float64)
    n_changed = 0
    rows_per_chunk = chunk_rows(n_clusters, n_features, X.dtype.itemsize)
    for chunks in _chunk_rounds(n_rows, rows_per_chunk, n_clusters, n_features):
        partials = np.empty((len(chunks), n_clusters, n_features + 1), dtype=np.float64)
        first_row = chunks[0][0]

        def one_chunk(start: int, stop: int) -> int:
            scores = _scores(X[start:stop], operand)
            part = partials[(start - first_row) // rows_per_chunk]
            return _lloyd_epilogue(X, weights, scores, n_features, start, previous, part, labels)

        n_changed += sum(map_blocks(one_chunk, chunks, np))
        # Chunk order, whichever thread computed each chunk.
        for part in partials:
            totals += part
        del partials  # before the next round's are allocated
    # As the reference: a 0-d int64 array, or None without previous labels.
    changed = None if previous_labels is None else np.asarray(n_changed, dtype=np.int64)
    return Accumulation(labels, totals[:, :n_features].copy(), totals[:, n_features].copy(), changed)


def _lloyd_step_self_check(xp: Any, device: Any) -> bool:
    rng = np.random.default_rng(0)
    ok = True
    for dtype, n_clusters, n_features in ((np.float64, 3, 4), (np.float32, 70, 40)):
        X = rng.standard_normal((2 * MIN_CHUNK_ROWS + 37, n_features)).astype(dtype)
        weights = rng.uniform(0.5, 2.0, X.shape[0]).astype(dtype)
        centers = X[:n_clusters].copy()
        previous = rng.integers(0, n_clusters, X.shape[0])
        for rows in (X, homogeneous(X, xp=xp)):
            got = lloyd_step_numba(rows, weights, centers, xp=xp, rows_per_block=500, previous_labels=previous)
            want = assign_and_accumulate_reference(
                rows, weights, centers, xp=xp, rows_per_block=500, previous_labels=previous
            )
            ok = ok and np.array_equal(got.labels, want.labels) and int(got.n_changed) == int(want.n_changed)
            tolerance = 1e-10 if dtype == np.float64 else 1e-4
            ok = ok and np.allclose(got.sums, want.sums, rtol=tolerance, atol=tolerance)
            ok = ok and np.allclose(got.weights, want.weights, rtol=tolerance, atol=tolerance)
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

    Euclidean metrics: a GEMM per chunk for the scores (rows may be
    homogeneous ``[x, 1]``), then :func:`_assign_epilogue`. L1 and Minkowski:
    :func:`_assign_minkowski`, accumulated in float64 and rounded once to the
    data's dtype. ``rows_per_block`` and ``budget_mib`` are accepted for the
    common signature; chunks have a fixed size.
    """
    n_rows = X.shape[0]
    n_clusters, n_features = centers.shape
    labels = np.empty(n_rows, dtype=np.int64)
    min_dist = np.empty(n_rows, dtype=np.float64 if float64_distances else X.dtype)
    centers_work = np.ascontiguousarray(centers, dtype=X.dtype)
    rows_per_chunk = chunk_rows(n_clusters, n_features, X.dtype.itemsize)
    if metric.name in ("sqeuclidean", "euclidean"):
        operand = _operand(centers_work, X.dtype)

        def one_chunk(start: int, stop: int) -> None:
            _assign_epilogue(X, centers_work, _scores(X[start:stop], operand), start, labels, min_dist)

        map_blocks(one_chunk, row_blocks(n_rows, rows_per_chunk), np)
        if metric.name == "euclidean" and min_dist.dtype == X.dtype:
            np.sqrt(min_dist, out=min_dist)
        elif metric.name == "euclidean":
            # The root in the data's dtype, as without float64_distances.
            min_dist[:] = np.sqrt(min_dist.astype(X.dtype))
    else:
        centers_t = np.ascontiguousarray(centers_work.T, dtype=np.float64)
        p = float(metric.p)

        def one_chunk(start: int, stop: int) -> None:
            _assign_minkowski(X, centers_t, p, start, stop, labels, min_dist)

        map_blocks(one_chunk, row_blocks(n_rows, rows_per_chunk), np)
        if min_dist.dtype != X.dtype:
            # Rounded to the data's dtype, as without float64_distances.
            min_dist[:] = min_dist.astype(X.dtype)
    return Assignment(labels, min_dist)


def _assign_self_check(xp: Any, device: Any) -> bool:
    rng = np.random.default_rng(1)
    ok = True
    for dtype in (np.float64, np.float32):
        X = rng.standard_normal((MIN_CHUNK_ROWS + 11, 5)).astype(dtype)
        centers = X[:4].copy()
        metrics = (SQEUCLIDEAN, Metric("euclidean", 2.0), Metric("manhattan", 1.0), Metric("minkowski", 3.0))
        for metric in metrics:
            got = assign_numba(X, centers, xp=xp, metric=metric)
            want = assign_reference(X, centers, xp=xp, metric=metric)
            ok = ok and np.array_equal(got.labels, want.labels)
            tolerance = 1e-4 if dtype == np.float32 else 1e-10
            ok = ok and np.allclose(got.min_dist, want.min_dist, rtol=tolerance, atol=tolerance)
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

    One stable ordering of the rows by segment (no copy of the data); then,
    for every (segment, column), a gather of that column of that segment, a
    selection (unweighted) or one sort (weighted) of it, small and in cache,
    and a compiled pass for the lower and upper weighted medians. The tasks
    run on kgpu's thread pool.
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
    by_segment = _rows_by_segment(labels, starts)
    if weights is None:
        grouped_weights = np.empty(0, dtype=np.float64)
    else:
        grouped_weights = np.asarray(weights, dtype=np.float64)[by_segment]
    n_tasks = n_segments * n_columns
    # About 64 tasks per thread-pool job (fewer when the segments are long).
    tasks_per_job = max(1, min(64, (1 << 16) * n_columns // max(1, n_rows)))

    def some_tasks(first: int, last: int) -> None:
        _segment_medians(values, by_segment, starts, ends, grouped_weights, first, last, medians)

    map_blocks(some_tasks, row_blocks(n_tasks, tasks_per_job), np)
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


# ---------------------------------------------------------------- pam_swap


@njit(fastmath=False, cache=True, nogil=True)
def _pam_swap_changes(matrix, start, stop, slot, nearest, second, removal_loss, weights, best_slot, change):
    """FasterPAM's swap evaluation of candidates ``start:stop``: one pass over each candidate's row.

    For candidate ``c`` and point ``o`` (nearest medoid distance ``dn``,
    second ``ds``): ``d(o, c) < dn`` adds ``w (d - dn)`` to the shared gain and
    ``w (dn - ds)`` to the loss of ``o``'s slot; ``dn <= d < ds`` adds
    ``w (d - ds)`` to that slot; otherwise nothing. The best slot (lowest
    index on ties) and its total change are written per candidate.
    """
    n_points = matrix.shape[1]
    n_clusters = removal_loss.shape[0]
    per_slot = np.empty(n_clusters, dtype=np.float64)
    for c in range(start, stop):
        for j in range(n_clusters):
            per_slot[j] = 0.0
        shared = 0.0
        for o in range(n_points):
            distance = np.float64(matrix[c, o])
            if distance < nearest[o]:
                shared += weights[o] * (distance - nearest[o])
                per_slot[slot[o]] += weights[o] * (nearest[o] - second[o])
            elif distance < second[o]:
                per_slot[slot[o]] += weights[o] * (distance - second[o])
        best = 0
        best_loss = removal_loss[0] + per_slot[0]
        for j in range(1, n_clusters):
            loss = removal_loss[j] + per_slot[j]
            if loss < best_loss:
                best_loss = loss
                best = j
        best_slot[c - start] = best
        change[c - start] = best_loss + shared


def _pam_swap_applies(matrix: Any, start: int, stop: int, cache: Any, weights64: Any, **_: Any) -> bool:
    return (
        _is_float_matrix(matrix)
        and all(isinstance(array, np.ndarray) for array in (cache.slot, cache.nearest, cache.second, cache.removal_loss))
        and isinstance(weights64, np.ndarray)
    )


def pam_swap_numba(matrix: np.ndarray, start: int, stop: int, cache: Any, weights64: np.ndarray, *, xp: Any) -> tuple:
    """FasterPAM's swap evaluation; same contract as :func:`kgpu._kmedoids._swap_changes`.

    One compiled pass over each candidate's row of the distance matrix, with
    no ``(b, n)`` temporaries. Sums run in point order, in float64.
    """
    best_slot = np.empty(stop - start, dtype=np.int64)
    change = np.empty(stop - start, dtype=np.float64)
    _pam_swap_changes(
        matrix, start, stop, np.ascontiguousarray(cache.slot, dtype=np.int64),
        np.ascontiguousarray(cache.nearest, dtype=np.float64), np.ascontiguousarray(cache.second, dtype=np.float64),
        np.ascontiguousarray(cache.removal_loss, dtype=np.float64), np.ascontiguousarray(weights64, dtype=np.float64),
        best_slot, change,
    )
    return best_slot, change


def _pam_swap_self_check(xp: Any, device: Any) -> bool:
    from scipy.spatial.distance import cdist

    from .._kmedoids import _nearest_two, _swap_changes

    rng = np.random.default_rng(3)
    ok = True
    for dtype in (np.float64, np.float32):
        points = rng.standard_normal((60, 3))
        matrix = cdist(points, points).astype(dtype)
        weights64 = rng.uniform(0.5, 2.0, 60)
        cache = _nearest_two(matrix, np.array([3, 17, 42]), weights64, xp=xp)
        got_slot, got_change = pam_swap_numba(matrix, 5, 55, cache, weights64, xp=xp)
        want_slot, want_change = _swap_changes(matrix, 5, 55, cache, weights64, xp=xp)
        ok = ok and np.array_equal(got_slot, want_slot) and np.allclose(got_change, want_change, rtol=1e-9, atol=1e-9)
    return bool(ok)


register("pam_swap", "numpy", name="numba", self_check=_pam_swap_self_check, applies=_pam_swap_applies)(pam_swap_numba)


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


def _host_tensors(*arrays: Any) -> bool:
    return all(array is None or _is_host_tensor(array) for array in arrays)


def _lloyd_step_torch_applies(X: Any, sample_weight: Any, centers: Any, **kwargs: Any) -> bool:
    previous = kwargs.get("previous_labels")
    return _host_tensors(X, sample_weight, centers, previous) and _lloyd_step_applies(
        _view(X), _view(sample_weight), _view(centers)
    )


def lloyd_step_torch(
    X: Any,
    sample_weight: Any,
    centers: Any,
    *,
    xp: Any,
    rows_per_block: int,
    previous_labels: Any = None,
    in_place: bool = False,
) -> Accumulation:
    """:func:`lloyd_step_numba` on the NumPy views of host tensors; tensors back."""
    step = lloyd_step_numba(
        _view(X), _view(sample_weight), _view(centers), xp=_NUMPY, rows_per_block=rows_per_block,
        previous_labels=_view(previous_labels), in_place=in_place,
    )
    return Accumulation(*(_tensor(part) for part in step))


def _assign_torch_applies(X: Any, centers: Any, **kwargs: Any) -> bool:
    return _host_tensors(X, centers) and _assign_applies(_view(X), _view(centers), **kwargs)


def assign_torch(X: Any, centers: Any, *, xp: Any, metric: Metric = SQEUCLIDEAN, **kwargs: Any) -> Assignment:
    """:func:`assign_numba` on the NumPy views of host tensors; tensors back."""
    result = assign_numba(_view(X), _view(centers), xp=_NUMPY, metric=metric, **kwargs)
    return Assignment(_tensor(result.labels), _tensor(result.min_dist))


def _segment_median_torch_applies(values: Any, labels: Any, n_segments: int, weights: Any = None, **_: Any) -> bool:
    return _host_tensors(values, labels, weights) and _segment_median_applies(
        _view(values), _view(labels), n_segments, _view(weights)
    )


def segment_median_torch(
    values: Any, labels: Any, n_segments: int, weights: Any = None, *, xp: Any, budget_mib: float | None = None
) -> Any:
    """:func:`segment_median_numba` on the NumPy views of host tensors; a tensor back."""
    medians = segment_median_numba(_view(values), _view(labels), n_segments, _view(weights), xp=_NUMPY, budget_mib=budget_mib)
    return _tensor(medians)


def _torch_self_check(operation: str) -> Any:
    """Self-check of a torch adapter: the NumPy kernel's own check (the adapter only views memory)."""
    numpy_check = {
        "lloyd_step": _lloyd_step_self_check,
        "assign": _assign_self_check,
        "segment_median": _segment_median_self_check,
    }[operation]

    def check(xp: Any, device: Any) -> bool:
        import torch

        X = torch.arange(12.0, dtype=torch.float64).reshape(6, 2)
        viewed = _view(X)
        viewed[0, 0] = -1.0  # the view must share the tensor's memory
        return bool(X[0, 0] == -1.0) and numpy_check(_NUMPY, "cpu")

    return check


# Registered whether or not torch is installed: the "torch" backend is only
# looked up for torch arrays, and the adapters import torch when they run.
register("lloyd_step", "torch", name="numba", self_check=_torch_self_check("lloyd_step"), applies=_lloyd_step_torch_applies)(
    lloyd_step_torch
)
register("assign", "torch", name="numba", self_check=_torch_self_check("assign"), applies=_assign_torch_applies)(
    assign_torch
)
register(
    "segment_median", "torch", name="numba", self_check=_torch_self_check("segment_median"),
    applies=_segment_median_torch_applies,
)(segment_median_torch)
