"""One split of Bisecting K-Means (operation ``"bisect"``) with compiled numba passes.

A split runs 2-means on the ``m`` rows of one cluster. The reference
(:func:`kgpu._bisecting.bisect_reference`) runs kgpu's general Lloyd loop:
every iteration goes through the kernel table, a thread-pool pass, a GEMM
with two output columns and a few host reads, a fixed cost that dominates the
many small clusters deep in the tree. Here a split costs O(m):

- the working rows (minus their weighted mean, as the seeding reads them) are
  also laid out transposed, ``(d, m)``, once per split, so the distances to
  the two centers are computed for many rows at once (vectorised across rows;
  each row still adds its features in order: no ``fastmath``), exactly
  (``||x - c||^2``, no GEMM expansion);
- one compiled pass per iteration (:func:`_two_means_pass`) labels the rows
  and adds their weighted float64 sums along the rows (even and odd rows in
  separate accumulators) into per-chunk partials; :func:`_next_centers` adds
  them in chunk order. Chunks have a fixed size (:data:`CHUNK_ROWS`), so the
  result is the same whichever thread ran each;
- the loop keeps :func:`kgpu._lloyd.lloyd`'s stopping rules (labels
  unchanged, or the summed squared center shift at most ``tol``; then one
  more labelling for the returned centers), with nothing else per iteration;
- a pass that leaves a side without weight hands that seeding to the
  reference Lloyd loop (and the shared empty-cluster policy), from the same
  centers.

Labels can differ from the reference's only where a row is equally near both
centers up to rounding.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from numba import njit

from .._blocks import map_blocks, row_blocks
from .dispatch import register

#: Rows per chunk of a Lloyd pass: fixed, so the order of the float64 sums
#: does not depend on the thread count.
CHUNK_ROWS = 4096

#: Rows from which a Lloyd pass runs on kgpu's thread pool, in jobs of
#: :data:`CHUNKS_PER_JOB` chunks (fixed: the partials do not depend on the
#: threads). Measured on 2 shared cores with 100,000-row splits, pooled
#: passes (jobs of 8k and 32k rows) were slower than one core: a pass takes
#: about a millisecond there, and dispatch and waits on busy cores cost more
#: than the second core saves. From 2**18 rows a pass takes several.
POOLED_ROWS = 1 << 18
CHUNKS_PER_JOB = 16


@njit(fastmath=False, cache=True, nogil=True)
def _weighted_mean(X, weights):
    """``sum(w x) / sum(w)`` per feature, accumulated in float64 along the rows, in the data's dtype."""
    n_rows, n_features = X.shape
    totals = np.zeros(n_features, dtype=np.float64)
    total_weight = 0.0
    for r in range(n_rows):
        weight = np.float64(weights[r])
        for f in range(n_features):
            totals[f] += weight * np.float64(X[r, f])
        total_weight += weight
    mean = np.empty(n_features, dtype=X.dtype)
    for f in range(n_features):
        mean[f] = totals[f] / total_weight
    return mean


@njit(fastmath=False, cache=True, nogil=True)
def _working_rows(X, offset, rows, rows_t):
    """``rows = X - offset`` (``offset`` empty: ``rows`` is not written) and ``rows_t`` = those rows transposed.

    One pass over ``X``, in tiles of 64 rows so that both layouts stay in cache.
    """
    n_rows, n_features = X.shape
    shifted = offset.shape[0] > 0
    for first in range(0, n_rows, 64):
        last = min(first + 64, n_rows)
        if shifted:
            for r in range(first, last):
                for f in range(n_features):
                    rows[r, f] = X[r, f] - offset[f]
            for f in range(n_features):
                for r in range(first, last):
                    rows_t[f, r] = rows[r, f]
        else:
            for f in range(n_features):
                for r in range(first, last):
                    rows_t[f, r] = X[r, f]


@njit(fastmath=False, cache=True, nogil=True, inline="always")
def _chunk_distances(xt, centers, start, size, near, far):
    """``||x - c_0||^2`` into ``near`` and ``||x - c_1||^2`` into ``far`` for rows ``start:start + size``.

    Feature by feature over a slice of rows: the inner loop runs across rows
    (vectorised), and each row's sum still adds its features in order.
    """
    n_features = xt.shape[0]
    near[:size] = 0
    far[:size] = 0
    for f in range(n_features):
        values = xt[f, start : start + size]
        center_0 = centers[0, f]
        center_1 = centers[1, f]
        for r in range(size):
            gap_0 = values[r] - center_0
            gap_1 = values[r] - center_1
            near[r] += gap_0 * gap_0
            far[r] += gap_1 * gap_1


@njit(fastmath=False, cache=True, nogil=True)
def _two_means_pass(X, xt, weights, centers, labels, count_changes, partials, changed, first_chunk, last_chunk):
    """Label every row by its nearer center (ties to center 0) and sum the rows of each side.

    ``X`` holds the rows, ``xt`` the same rows transposed: distances are
    computed from ``xt`` (across rows), the sums from ``X`` (across features;
    even and odd rows in separate float64 accumulators, added at the end, so
    that consecutive rows do not wait on each other).
    ``partials[chunk, side]`` gets the weighted sums of the chunk's rows on
    that side (``d`` values), then their total weight. ``changed[chunk]``
    counts the rows whose label differs from the one ``labels`` held (when
    ``count_changes``). Runs chunks ``first_chunk:last_chunk``.
    """
    n_rows, n_features = X.shape
    for chunk in range(first_chunk, last_chunk):
        start = chunk * CHUNK_ROWS
        size = min(CHUNK_ROWS, n_rows - start)
        near = np.empty(size, dtype=xt.dtype)
        far = np.empty(size, dtype=xt.dtype)
        _chunk_distances(xt, centers, start, size, near, far)
        n_changed = 0
        for r in range(size):
            label = np.int64(far[r] < near[r])
            n_changed += labels[start + r] != label
            labels[start + r] = label
        changed[chunk] = n_changed if count_changes else 0
        accumulators = np.zeros((4, n_features + 1), dtype=np.float64)  # (side, parity)
        for i in range(start, start + size):
            weight = np.float64(weights[i])
            accumulator = 2 * labels[i] + (i & 1)
            for f in range(n_features):
                accumulators[accumulator, f] += weight * np.float64(X[i, f])
            accumulators[accumulator, n_features] += weight
        for side in range(2):
            for f in range(n_features + 1):
                partials[chunk, side, f] = accumulators[2 * side, f] + accumulators[2 * side + 1, f]


@njit(fastmath=False, cache=True, nogil=True)
def _next_centers(partials, changed, centers, new_centers):
    """Lloyd's update from a pass's partials, added in chunk order: the weighted means.

    Fills ``new_centers`` (rounded to the data's dtype) and returns
    ``(shift, n_changed, empty)``: the summed squared center shift, the rows
    whose label changed, and whether a side was left without weight.
    """
    n_chunks, _, width = partials.shape
    n_features = width - 1
    totals = np.zeros((2, width), dtype=np.float64)
    n_changed = 0
    for chunk in range(n_chunks):  # chunk order, whichever thread ran each
        totals += partials[chunk]
        n_changed += changed[chunk]
    if not (totals[0, n_features] > 0 and totals[1, n_features] > 0):
        return 0.0, n_changed, True
    shift = 0.0
    for side in range(2):
        for f in range(n_features):
            new_centers[side, f] = totals[side, f] / totals[side, n_features]
            gap = np.float64(new_centers[side, f] - centers[side, f])
            shift += gap * gap
    return shift, n_changed, False


@njit(fastmath=False, cache=True, nogil=True)
def _side_statistics(xt, weights, centers, labels, partials):
    """Per chunk and side: rows, total weight and weighted ``||x - c||^2`` (float64).

    ``partials[chunk, side] = (rows, weight, inertia)``; each row's squared
    distance is summed in the data's dtype over its features, in order.
    """
    n_features, n_rows = xt.shape
    for chunk in range(partials.shape[0]):
        start = chunk * CHUNK_ROWS
        size = min(CHUNK_ROWS, n_rows - start)
        near = np.empty(size, dtype=xt.dtype)
        far = np.empty(size, dtype=xt.dtype)
        _chunk_distances(xt, centers, start, size, near, far)
        for s in range(2):
            for column in range(3):
                partials[chunk, s, column] = 0.0
        for r in range(size):
            label = labels[start + r]
            cost = far[r] if label == 1 else near[r]
            weight = np.float64(weights[start + r])
            partials[chunk, label, 0] += 1.0
            partials[chunk, label, 1] += weight
            partials[chunk, label, 2] += weight * np.float64(cost)


# ---------------------------------------------------------------- the 2-means loop


def _two_means(X: np.ndarray, xt: np.ndarray, weights: np.ndarray, centers_init: np.ndarray, max_iter: int, tol: float):
    """Lloyd's 2-means from ``centers_init`` (2, d), with :func:`kgpu._lloyd.lloyd`'s stopping rules.

    ``X`` (m, d) holds the rows, ``xt`` (d, m) the same rows transposed.
    Returns ``(centers, labels, n_iter)``, or ``None`` when a pass left a side
    without weight (the caller then runs the reference from ``centers_init``).
    From :data:`POOLED_ROWS` rows, each pass runs fixed groups of chunks on
    kgpu's thread pool; below, the pool's dispatch costs more than it saves.
    """
    n_rows = X.shape[0]
    n_chunks = -(-n_rows // CHUNK_ROWS)
    partials = np.empty((n_chunks, 2, X.shape[1] + 1), dtype=np.float64)
    changed = np.zeros(n_chunks, dtype=np.int64)
    labels = np.empty(n_rows, dtype=np.int64)
    pooled = n_rows >= POOLED_ROWS

    def labelling_pass(centers: np.ndarray, count_changes: bool) -> None:
        def some_chunks(first: int, last: int) -> None:
            _two_means_pass(X, xt, weights, centers, labels, count_changes, partials, changed, first, last)

        if pooled:
            map_blocks(some_chunks, row_blocks(n_chunks, CHUNKS_PER_JOB), np)
        else:
            some_chunks(0, n_chunks)

    centers = centers_init.copy()
    strict = False
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        labelling_pass(centers, n_iter > 1)
        new_centers = np.empty_like(centers)
        shift, n_changed, empty = _next_centers(partials, changed, centers, new_centers)
        if empty:
            return None
        centers = new_centers
        if n_iter > 1 and n_changed == 0:
            strict = True
            break
        if shift <= tol:
            break
    if not strict:
        # The labels must fit the returned centers: one more labelling.
        labelling_pass(centers, False)
    return centers, labels, n_iter


# ---------------------------------------------------------------- bisect


def _bisect_applies(X: Any, sample_weight: Any, **_: Any) -> bool:
    from .cpu_numba import _is_float_matrix

    return (
        _is_float_matrix(X)
        and X.shape[0] >= 1
        and isinstance(sample_weight, np.ndarray)
        and sample_weight.shape == (X.shape[0],)
    )


def bisect_numba(
    X: np.ndarray,
    sample_weight: np.ndarray,
    *,
    seed: Callable[[Any, Any, Any], Any],
    n_init: int,
    max_iter: int,
    tol: float,
    center_rows: bool,
    xp: Any,
    budget_mib: float | None = None,
    algorithm: str = "lloyd",
) -> Any:
    """Split the rows ``X`` in two; same contract as :func:`kgpu._bisecting.bisect_reference`.

    ``budget_mib`` and ``algorithm`` are accepted for the common signature:
    the passes hold one chunk's scratch per thread, and Hamerly's bounds
    give Lloyd's result anyway.
    """
    from .._assign import assignment_block_rows
    from .._bisecting import Split
    from .._distances import homogeneous
    from .._kmeans import mean_feature_variance
    from .._lloyd import lloyd

    n_rows, n_features = X.shape
    has_weight = bool(np.any(sample_weight > 0))
    offset = _weighted_mean(X, sample_weight) if center_rows and has_weight else None
    X_work = X if offset is None else np.empty_like(X)
    xt = np.empty((n_features, n_rows), dtype=X.dtype)
    _working_rows(X, np.empty(0, dtype=X.dtype) if offset is None else offset, X_work, xt)
    absolute_tol = tol * mean_feature_variance(X_work, sample_weight, xp=xp) if tol > 0 and has_weight else 0.0
    seed_weight = sample_weight if has_weight else np.ones_like(sample_weight)
    n_chunks = -(-n_rows // CHUNK_ROWS)
    best = None
    for _ in range(n_init):
        centers_init = np.ascontiguousarray(seed(X_work, seed_weight, offset), dtype=X.dtype)
        run = _two_means(X_work, xt, sample_weight, centers_init, max_iter, absolute_tol)
        if run is not None:
            centers, labels, n_iter = run
        else:
            result = lloyd(
                homogeneous(X, xp=xp, offset=offset), sample_weight, centers_init, max_iter=max_iter, tol=absolute_tol,
                rows_per_block=assignment_block_rows(n_rows, 2, n_features, X.dtype.itemsize, xp, budget_mib), xp=xp,
            )
            centers, labels, n_iter = np.ascontiguousarray(result.centers), np.asarray(result.labels), result.n_iter
        partials = np.empty((n_chunks, 2, 3), dtype=np.float64)
        _side_statistics(xt, sample_weight, centers, labels, partials)
        statistics = np.zeros((2, 3), dtype=np.float64)
        for part in partials:  # chunk order
            statistics += part
        inertia = float(statistics[0, 2] + statistics[1, 2])
        if best is None or inertia < best[0] * (1 - 1e-6):
            best = (inertia, centers, labels, statistics, n_iter)
    _, centers, labels, statistics, n_iter = best
    centers = centers if offset is None else centers + offset
    return Split(centers, labels, statistics[:, 0].astype(np.int64), statistics[:, 1].copy(), statistics[:, 2].copy(), n_iter)


def _bisect_self_check(xp: Any, device: Any) -> bool:
    from .._bisecting import bisect_reference

    rng = np.random.default_rng(7)
    ok = True
    for dtype in (np.float64, np.float32):
        X = np.concatenate([rng.normal(-4, 1, (CHUNK_ROWS + 300, 3)), rng.normal(4, 1, (500, 3))]).astype(dtype)
        weights = rng.uniform(0.5, 2.0, X.shape[0]).astype(dtype)

        def seed(X_work, sample_weight, offset):
            return X_work[[0, X.shape[0] - 1]].copy()

        options = dict(seed=seed, n_init=1, max_iter=50, tol=0.0, center_rows=True, xp=xp)
        got = bisect_numba(X, weights, **options)
        want = bisect_reference(X, weights, **options)
        ok = ok and np.array_equal(np.asarray(got.labels), np.asarray(want.labels)) and got.n_iter == want.n_iter
        ok = ok and np.array_equal(got.sizes, want.sizes)
        ok = ok and np.allclose(got.centers, want.centers, rtol=1e-5, atol=1e-6)
        ok = ok and np.allclose(got.inertias, want.inertias, rtol=1e-5)
    return bool(ok)


register("bisect", "numpy", name="numba", self_check=_bisect_self_check, applies=_bisect_applies)(bisect_numba)
