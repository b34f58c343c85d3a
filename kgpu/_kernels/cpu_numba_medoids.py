"""FasterPAM in numba: the swap evaluation (``"pam_swap"``) and the whole swap loop (``"fasterpam"``).

FasterPAM (Schubert & Rousseeuw 2021) visits the candidates in row order and
swaps the first one that lowers the objective at once. Its work per candidate
is one pass over that candidate's row of the distance matrix; what remains is
bookkeeping after each swap (the nearest and second-nearest medoid of every
point) and the loop itself. Done from Python, that bookkeeping and the loop
over candidate batches cost more than the evaluation; :func:`fasterpam_numba`
runs all of it in one compiled call, as the authors' implementation does.

Results are those of :func:`kgpu._kmedoids.fasterpam_reference` running the
compiled ``"pam_swap"`` kernel: the same arithmetic per candidate
(:func:`_candidate_change`, float64, point order), the same cache (exact
minima; the removal losses summed in point order, as ``bincount``), the same
tolerance and the same visiting order. The loop runs on one thread, so the
result does not depend on the machine.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numba import njit

from .._blocks import map_blocks, row_blocks
from .._distances import Metric
from .cpu_numba import _is_float_matrix
from .dispatch import register

#: Features up to which the Euclidean distance matrix is computed directly (one
#: pass per feature over a row of accumulators) rather than by the reference's
#: GEMM expansion. Measured on 2 AVX-512 cores, 3000 rows: the direct loop took
#: 0.2-0.3x the reference's time from d = 2 to 32, and 0.7x at d = 64; it is
#: also exact (no cancellation: the same bits as ``scipy``'s ``cdist``). L1 and
#: Minkowski have no expansion, so the direct loop serves them at every d.
DIRECT_EUCLIDEAN_MAX_FEATURES = 64

#: Rows of the distance matrix filled per thread-pool job.
DISTANCE_ROWS_PER_JOB = 128

#: Metrics the direct distance loop computes, by code.
_DIRECT_METRICS = {"sqeuclidean": 0, "euclidean": 1, "manhattan": 2, "minkowski": 3}

# ---------------------------------------------------------------- compiled loops


@njit(fastmath=False, cache=True, nogil=True, inline="always")
def _candidate_change(matrix, c, slot, nearest, second, removal_loss, weights, per_slot):
    """Best medoid slot for candidate ``c`` to replace, and the objective change of that swap.

    For point ``o`` (nearest medoid distance ``dn``, second ``ds``):
    ``d(o, c) < dn`` adds ``w (d - dn)`` to the shared gain and
    ``w (dn - ds)`` to the loss of ``o``'s slot; ``dn <= d < ds`` adds
    ``w (d - ds)`` to that slot; otherwise nothing. Ties go to the lowest slot.
    ``per_slot`` is scratch of length k.
    """
    n_points = matrix.shape[1]
    n_clusters = removal_loss.shape[0]
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
    return best, best_loss + shared


@njit(fastmath=False, cache=True, nogil=True)
def _pam_swap_changes(matrix, start, stop, slot, nearest, second, removal_loss, weights, best_slot, change):
    """:func:`_candidate_change` of the candidates ``start:stop``."""
    per_slot = np.empty(removal_loss.shape[0], dtype=np.float64)
    for c in range(start, stop):
        best_slot[c - start], change[c - start] = _candidate_change(
            matrix, c, slot, nearest, second, removal_loss, weights, per_slot
        )


@njit(fastmath=False, cache=True, nogil=True)
def _nearest_two(matrix, medoids, weights, slot, nearest, second, removal_loss):
    """Fill FasterPAM's cache for ``medoids``; returns the objective ``sum(w * nearest)``.

    Same values as :func:`kgpu._kmedoids._nearest_two`: distances are read
    from the medoids' rows, ``slot`` is the first nearest medoid on ties,
    ``second`` the least distance to any other slot, and ``removal_loss`` sums
    ``w (second - nearest)`` per slot in point order.
    """
    n_points = matrix.shape[1]
    for o in range(n_points):
        nearest[o] = np.inf
        second[o] = np.inf
        slot[o] = 0
    for j in range(medoids.shape[0]):
        row = medoids[j]
        for o in range(n_points):
            distance = np.float64(matrix[row, o])
            if distance < nearest[o]:
                second[o] = nearest[o]
                nearest[o] = distance
                slot[o] = j
            elif distance < second[o]:
                second[o] = distance
    removal_loss[:] = 0.0
    loss = 0.0
    for o in range(n_points):
        removal_loss[slot[o]] += weights[o] * (second[o] - nearest[o])
        loss += weights[o] * nearest[o]
    return loss


@njit(fastmath=False, cache=True, nogil=True)
def _fasterpam_loop(matrix, weights, medoids, max_iter, relative_tolerance):
    """FasterPAM's eager swaps from ``medoids`` (updated in place); returns the sweeps run.

    Candidates are visited in row order, cyclically; the first whose best
    swap lowers the objective by more than ``relative_tolerance`` times the
    objective is swapped in, the cache is rebuilt and the visit goes on after
    it. Ends after ``n`` candidates in a row without a swap, or when a sweep
    that found a swap ends and ``max_iter`` sweeps have run.
    """
    n_points = matrix.shape[1]
    n_clusters = medoids.shape[0]
    slot = np.empty(n_points, dtype=np.int64)
    nearest = np.empty(n_points, dtype=np.float64)
    second = np.empty(n_points, dtype=np.float64)
    removal_loss = np.empty(n_clusters, dtype=np.float64)
    per_slot = np.empty(n_clusters, dtype=np.float64)
    is_medoid = np.zeros(n_points, dtype=np.bool_)
    for j in range(n_clusters):
        is_medoid[medoids[j]] = True
    loss = _nearest_two(matrix, medoids, weights, slot, nearest, second, removal_loss)
    position, since_swap, sweep = 0, 0, 1
    while since_swap < n_points:
        candidate = position
        swapped = False
        if not is_medoid[candidate]:
            best, change = _candidate_change(matrix, candidate, slot, nearest, second, removal_loss, weights, per_slot)
            if change < -relative_tolerance * loss:
                is_medoid[medoids[best]] = False
                medoids[best] = candidate
                is_medoid[candidate] = True
                loss = _nearest_two(matrix, medoids, weights, slot, nearest, second, removal_loss)
                swapped = True
        since_swap = 0 if swapped else since_swap + 1
        position += 1
        if position >= n_points:
            position = 0
            if since_swap < n_points:
                if sweep == max_iter:
                    break
                sweep += 1
    return sweep


@njit(fastmath=False, cache=True, nogil=True)
def _distance_rows(X, points_t, start, stop, kind, p, out):
    """Rows ``start:stop`` of the distance matrix of ``X``, computed directly in float64.

    ``points_t`` is ``X`` transposed, ``(d, n)`` float64, so the inner loop
    runs over points (vectorised without reordering any sum: each distance
    adds its features in order). ``kind``: 0 squared Euclidean, 1 Euclidean,
    2 L1, 3 Minkowski of order ``p`` (``inf``: Chebyshev). A row's distance to
    itself is exactly 0.
    """
    n_features, n_points = points_t.shape
    totals = np.empty(n_points, dtype=np.float64)
    for i in range(start, stop):
        totals[:] = 0.0
        for f in range(n_features):
            value = np.float64(X[i, f])
            if kind <= 1:
                for j in range(n_points):
                    gap = value - points_t[f, j]
                    totals[j] += gap * gap
            elif kind == 2:
                for j in range(n_points):
                    totals[j] += abs(value - points_t[f, j])
            elif p == np.inf:
                for j in range(n_points):
                    totals[j] = max(totals[j], abs(value - points_t[f, j]))
            else:
                for j in range(n_points):
                    totals[j] += abs(value - points_t[f, j]) ** p
        if kind == 1:
            for j in range(n_points):
                out[i, j] = np.sqrt(totals[j])
        elif kind == 3 and p != np.inf:
            for j in range(n_points):
                out[i, j] = totals[j] ** (1.0 / p)
        else:
            for j in range(n_points):
                out[i, j] = totals[j]


# ---------------------------------------------------------------- distance_matrix


def _distance_matrix_applies(X: Any, metric: Metric, **_: Any) -> bool:
    if not (_is_float_matrix(X) and metric.name in _DIRECT_METRICS):
        return False
    return metric.name in ("manhattan", "minkowski") or X.shape[1] <= DIRECT_EUCLIDEAN_MAX_FEATURES


def distance_matrix_numba(X: np.ndarray, metric: Metric, *, xp: Any, budget_mib: float | None = None) -> np.ndarray:
    """The ``(n, n)`` distances between the rows of ``X``; same contract as
    :func:`kgpu._kmedoids.distance_matrix_reference`.

    Computed directly (no GEMM expansion, so no cancellation: equal rows are
    exactly 0 apart), in float64, rounded once to the data's dtype; blocks of
    :data:`DISTANCE_ROWS_PER_JOB` rows run on kgpu's thread pool. The only
    temporary beside the matrix is ``X`` transposed in float64.
    """
    n_rows = X.shape[0]
    matrix = np.empty((n_rows, n_rows), dtype=X.dtype)
    points_t = np.ascontiguousarray(X.T, dtype=np.float64)
    kind = _DIRECT_METRICS[metric.name]
    p = float(metric.p) if metric.p is not None else 2.0

    def fill(start: int, stop: int) -> None:
        _distance_rows(X, points_t, start, stop, kind, p, matrix)

    map_blocks(fill, row_blocks(n_rows, DISTANCE_ROWS_PER_JOB), np)
    return matrix


def _distance_matrix_self_check(xp: Any, device: Any) -> bool:
    from .._kmedoids import distance_matrix_reference

    rng = np.random.default_rng(6)
    ok = True
    for dtype in (np.float64, np.float32):
        X = rng.standard_normal((70, 4)).astype(dtype)
        for metric in (Metric("euclidean", 2.0), Metric("sqeuclidean", 2.0), Metric("manhattan", 1.0), Metric("minkowski", 3.0)):
            got = distance_matrix_numba(X, metric, xp=xp)
            want = distance_matrix_reference(X, metric, xp=xp)
            tolerance = 1e-4 if dtype == np.float32 else 1e-9
            ok = ok and got.dtype == want.dtype and np.allclose(got, want, rtol=tolerance, atol=tolerance)
    return bool(ok)


register(
    "distance_matrix", "numpy", name="numba", self_check=_distance_matrix_self_check, applies=_distance_matrix_applies
)(distance_matrix_numba)


# ---------------------------------------------------------------- pam_swap


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

    from .._kmedoids import _nearest_two as nearest_two_reference, _swap_changes

    rng = np.random.default_rng(3)
    ok = True
    for dtype in (np.float64, np.float32):
        points = rng.standard_normal((60, 3))
        matrix = cdist(points, points).astype(dtype)
        weights64 = rng.uniform(0.5, 2.0, 60)
        cache = nearest_two_reference(matrix, np.array([3, 17, 42]), weights64, xp=xp)
        got_slot, got_change = pam_swap_numba(matrix, 5, 55, cache, weights64, xp=xp)
        want_slot, want_change = _swap_changes(matrix, 5, 55, cache, weights64, xp=xp)
        ok = ok and np.array_equal(got_slot, want_slot) and np.allclose(got_change, want_change, rtol=1e-9, atol=1e-9)
    return bool(ok)


register("pam_swap", "numpy", name="numba", self_check=_pam_swap_self_check, applies=_pam_swap_applies)(pam_swap_numba)


# ---------------------------------------------------------------- fasterpam


def _fasterpam_applies(matrix: Any, sample_weight: Any, medoids_init: Any, **_: Any) -> bool:
    return (
        _is_float_matrix(matrix)
        and matrix.shape[0] == matrix.shape[1]
        and isinstance(sample_weight, np.ndarray)
        and sample_weight.shape == (matrix.shape[0],)
        and np.asarray(medoids_init).shape[0] >= 2
    )


def fasterpam_numba(
    matrix: np.ndarray,
    sample_weight: np.ndarray,
    medoids_init: np.ndarray,
    *,
    max_iter: int,
    xp: Any,
    budget_mib: float | None = None,
) -> Any:
    """FasterPAM in one compiled call; same contract as :func:`kgpu._kmedoids.fasterpam_reference`.

    ``budget_mib`` is accepted for the common signature: the loop holds only
    O(n) scratch beside the matrix.
    """
    from .._kmedoids import _SWAP_RELATIVE_TOLERANCE, MedoidResult

    medoids = np.array(medoids_init, dtype=np.int64)
    weights64 = np.ascontiguousarray(sample_weight, dtype=np.float64)
    sweeps = _fasterpam_loop(matrix, weights64, medoids, int(max_iter), _SWAP_RELATIVE_TOLERANCE)
    return MedoidResult(medoids, int(sweeps))


def _fasterpam_self_check(xp: Any, device: Any) -> bool:
    from scipy.spatial.distance import cdist

    from .._kmedoids import fasterpam_reference

    rng = np.random.default_rng(5)
    ok = True
    for dtype in (np.float64, np.float32):
        points = rng.standard_normal((80, 3))
        matrix = cdist(points, points).astype(dtype)
        weights = rng.uniform(0.5, 2.0, 80).astype(dtype)
        init = np.array([0, 1, 2, 3])
        got = fasterpam_numba(matrix, weights, init, max_iter=100, xp=xp)
        want = fasterpam_reference(matrix, weights, init, max_iter=100, xp=xp)
        ok = ok and np.array_equal(got.medoids, want.medoids) and got.n_iter == want.n_iter
    return bool(ok)


register("fasterpam", "numpy", name="numba", self_check=_fasterpam_self_check, applies=_fasterpam_applies)(
    fasterpam_numba
)
