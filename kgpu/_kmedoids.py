"""K-Medoids: the centers are data points, under any metric of :mod:`kgpu._distances`.

Two methods, both minimising ``sum(w_i * d(x_i, m[label_i]))``:

- ``"alternate"`` (Voronoi iteration): assign every point to its nearest
  medoid (:func:`kgpu._assign.assign`), then make each cluster's medoid the
  member with the smallest weighted sum of distances to the other members
  (:func:`update_medoids`, in blocks of candidates, so the largest temporary
  is bounded by the memory budget: no ``n x n`` matrix).
- ``"pam"``: an initialisation (BUILD, k-medoids++, ...) then FasterPAM's eager
  swaps (Schubert & Rousseeuw 2021) on the full ``n x n`` distance matrix
  (:func:`fasterpam`). Candidates are evaluated in batches, each batch with a
  few array operations; the first improving candidate in the processing order
  is swapped in, exactly as the sequential algorithm would, and scanning goes
  on after it. On NumPy the whole loop, and the matrix, are compiled kernels
  (:mod:`kgpu._kernels.cpu_numba_medoids`) with the same result. The matrix must fit the memory budget
  (:func:`check_pam_memory`); otherwise the fit is refused with a message that
  says what to do instead.

Empty clusters (a medoid that loses every positive-weight point, e.g. to a
duplicate) follow the shared policy of :mod:`kgpu._empty`: the cluster is
re-seeded at the point farthest from its medoid.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple

import numpy as np
from sklearn.utils import check_random_state

from ._assign import assign, assignment_block_rows, itemsize, weighted_sum
from ._backend import backend_name, device_of, is_array_api_obj, to_numpy
from ._base import CentroidEstimatorMixin, fitted_backend_name, warn_if_fewer_distinct_clusters
from ._blocks import PARALLEL_BLOCKS, block_rows, map_blocks, row_blocks
from ._distances import Metric, check_metric, distance_bytes_per_row, pairwise_distances, row_sq_norms
from ._empty import relocate_empty_labels
from ._scale import metric_power
from ._init import forgy_indices, plusplus_indices, take_rows
from ._kernels.dispatch import ANY_BACKEND, call, register
from ._progress import check_progress
from ._stream import free_memory_bytes
from ._segment import segment_sum, segment_weight
from ._validation import check_n_clusters, check_positive_int

METHODS = ("alternate", "pam")
INIT_METHODS = ("k-medoids++", "build", "random")

#: Share of the memory available on the compute device that the ``n x n``
#: matrix of ``method="pam"`` may take when ``working_memory`` is ``None``.
PAM_MEMORY_FRACTION = 0.5

#: A swap must lower the objective by more than this fraction of it: smaller
#: "improvements" are rounding noise and could make equal-cost swaps cycle.
_SWAP_RELATIVE_TOLERANCE = 1e-10


class MedoidResult(NamedTuple):
    """Outcome of one K-Medoids run.

    Attributes
    ----------
    medoids : ndarray of shape (k,), int64 (host)
        Row indices of the medoids.
    n_iter : int
        Iterations (``"alternate"``) or sweeps over the candidates (``"pam"``).
    """

    medoids: np.ndarray
    n_iter: int


# ------------------------------------------------------------ alternate


def medoid_costs(
    candidates: Any, points: Any, point_weights: Any, metric: Metric, *, xp: Any, budget_mib: float | None = None
) -> Any:
    """``sum_i w_i * d(candidate_j, point_i)`` for every candidate, in float64.

    Parameters
    ----------
    candidates : array of shape (m, d)
    points : array of shape (p, d)
    point_weights : array of shape (p,)
    metric : Metric
    xp : namespace
    budget_mib : float or None
        Budget of one ``(block, p)`` distance block.

    Returns
    -------
    costs : array of shape (m,), float64
    """
    n_candidates, n_features = candidates.shape
    weights64 = xp.astype(point_weights, xp.float64)
    point_sq_norms = row_sq_norms(points, xp=xp) if metric.name in ("sqeuclidean", "euclidean") else None
    bytes_per_row = distance_bytes_per_row(metric, points.shape[0], n_features, itemsize(candidates, xp)) + points.shape[0] * 8
    rows = block_rows(n_candidates, bytes_per_row, xp, budget_mib)

    def one_block(start: int, stop: int) -> Any:
        distances = pairwise_distances(candidates[start:stop, :], points, metric, xp=xp, center_sq_norms=point_sq_norms)
        return xp.matmul(xp.astype(distances, xp.float64), weights64)

    parts = map_blocks(one_block, row_blocks(n_candidates, rows), xp)
    return parts[0] if len(parts) == 1 else xp.concat(parts)


def update_medoids(
    X: Any,
    sample_weight: Any,
    labels: Any,
    medoids: np.ndarray,
    metric: Metric,
    *,
    xp: Any,
    budget_mib: float | None = None,
) -> np.ndarray:
    """The medoid of every cluster: the member of least weighted distance to its cluster.

    A cluster keeps its current medoid when that is a member and no other
    member is strictly better; among equally good new candidates the lowest
    row index wins. A cluster with no members keeps its medoid.

    Parameters
    ----------
    X : array of shape (n, d)
    sample_weight : array of shape (n,)
    labels : integer array of shape (n,)
    medoids : ndarray of shape (k,), int64 (host)
    metric : Metric
    xp : namespace
    budget_mib : float or None

    Returns
    -------
    medoids : ndarray of shape (k,), int64 (host), a new array
    """
    device = device_of(X)
    labels_host = to_numpy(labels).astype(np.int64)
    # Stable: each cluster's members in increasing row order (ties -> lowest index).
    by_cluster = np.argsort(labels_host, kind="stable")
    counts = np.bincount(labels_host, minlength=medoids.shape[0])
    ends = np.cumsum(counts)
    new_medoids = medoids.copy()
    for cluster, (start, stop) in enumerate(zip((ends - counts).tolist(), ends.tolist())):
        if stop == start:
            continue
        members = by_cluster[start:stop]
        member_ids = xp.asarray(members, device=device)
        points = xp.take(X, member_ids, axis=0)
        costs = medoid_costs(points, points, xp.take(sample_weight, member_ids, axis=0), metric, xp=xp, budget_mib=budget_mib)
        best = int(xp.argmin(costs))
        current = int(medoids[cluster])
        position = int(np.searchsorted(members, current))
        if position < members.shape[0] and members[position] == current and float(costs[position]) <= float(costs[best]):
            continue
        new_medoids[cluster] = members[best]
    return new_medoids


def alternate(
    X: Any,
    sample_weight: Any,
    medoids_init: np.ndarray,
    metric: Metric,
    *,
    max_iter: int,
    xp: Any,
    rows_per_block: int | None = None,
    budget_mib: float | None = None,
) -> MedoidResult:
    """Voronoi iteration: assign to the nearest medoid, then re-pick each cluster's medoid.

    Stops when no medoid changes (the assignment is then final) or after
    ``max_iter`` iterations. The objective never increases.

    Parameters
    ----------
    X : array of shape (n, d)
    sample_weight : array of shape (n,)
    medoids_init : ndarray of shape (k,), int64 (host)
    metric : Metric
    max_iter : int
    xp : namespace
    rows_per_block : int or None
        Rows per assignment block.
    budget_mib : float or None

    Returns
    -------
    MedoidResult
    """
    n_clusters = medoids_init.shape[0]
    medoids = np.array(medoids_init, dtype=np.int64)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        labels, distances = assign(
            X, take_rows(X, medoids, xp=xp), xp=xp, metric=metric, rows_per_block=rows_per_block, budget_mib=budget_mib
        )
        cluster_weights = segment_weight(labels, n_clusters, sample_weight, xp=xp)
        reseeded = np.empty(0, dtype=np.int64)
        if bool(xp.any(cluster_weights <= 0)):
            labels, reseeded, donors = relocate_empty_labels(labels, cluster_weights, distances, sample_weight, xp=xp)
            medoids[reseeded] = donors
        new_medoids = update_medoids(X, sample_weight, labels, medoids, metric, xp=xp, budget_mib=budget_mib)
        if reseeded.size == 0 and np.array_equal(new_medoids, medoids):
            break
        medoids = new_medoids
    return MedoidResult(medoids, n_iter)


# ------------------------------------------------------------------ PAM


def distance_matrix(X: Any, metric: Metric, *, xp: Any, budget_mib: float | None = None) -> Any:
    """The ``(n, n)`` matrix of distances between the rows of ``X`` (operation ``"distance_matrix"``).

    Runs the implementation the kernel table picks for ``xp``
    (:mod:`kgpu._kernels.dispatch`); :func:`distance_matrix_reference` is the
    array-API reference, documented there.
    """
    return call("distance_matrix", X, metric, xp=xp, budget_mib=budget_mib)


@register("distance_matrix", ANY_BACKEND, name="array-api")
def distance_matrix_reference(X: Any, metric: Metric, *, xp: Any, budget_mib: float | None = None) -> Any:
    """The ``(n, n)`` matrix of distances between the rows of ``X``, zero on the diagonal.

    Filled in row blocks sized to ``budget_mib`` (the matrix itself is not
    counted: see :func:`check_pam_memory`).
    """
    n_rows, n_features = X.shape
    device = device_of(X)
    matrix = xp.empty((n_rows, n_rows), dtype=X.dtype, device=device)
    sq_norms = row_sq_norms(X, xp=xp) if metric.name in ("sqeuclidean", "euclidean") else None
    row_ids = xp.arange(n_rows, device=device)
    rows = block_rows(n_rows, distance_bytes_per_row(metric, n_rows, n_features, itemsize(X, xp)) + n_rows, xp, budget_mib)

    def fill(start: int, stop: int) -> None:
        matrix[start:stop, :] = pairwise_distances(
            X[start:stop, :], X, metric, xp=xp,
            x_sq_norms=None if sq_norms is None else sq_norms[start:stop], center_sq_norms=sq_norms,
        )
        # The GEMM expansion leaves rounding noise where it should be exactly 0.
        square = matrix[start:stop, start:stop]
        on_diagonal = row_ids[: stop - start][:, None] == row_ids[None, : stop - start]
        matrix[start:stop, start:stop] = xp.where(on_diagonal, xp.zeros_like(square), square)

    map_blocks(fill, row_blocks(n_rows, rows), xp)
    return matrix


def build_indices(
    row_distances: Callable[[int, int], Any],
    sample_weight: Any,
    n_clusters: int,
    *,
    xp: Any,
    rows_per_block: int,
) -> np.ndarray:
    """PAM's BUILD: the best single medoid, then greedily the point that lowers the objective most.

    Costs ``n_clusters`` passes over all ``n x n`` distances.

    Parameters
    ----------
    row_distances : callable ``(start, stop) -> array of shape (stop - start, n)``
        Distances from the rows ``start:stop`` to every row (read from a matrix
        or computed on the fly).
    sample_weight : array of shape (n,)
    n_clusters : int
    xp : namespace
    rows_per_block : int
        Candidate rows handled at a time.

    Returns
    -------
    indices : ndarray of shape (n_clusters,), int64 (host)
        Ties go to the lowest row index.
    """
    n_rows = sample_weight.shape[0]
    device = device_of(sample_weight)
    weights64 = xp.astype(sample_weight, xp.float64)
    blocks = row_blocks(n_rows, rows_per_block)

    def concat(parts: list) -> Any:
        return parts[0] if len(parts) == 1 else xp.concat(parts)

    def total_cost(start: int, stop: int) -> Any:
        return xp.matmul(xp.astype(row_distances(start, stop), xp.float64), weights64)

    indices = [int(xp.argmin(concat(map_blocks(total_cost, blocks, xp))))]
    nearest = xp.astype(row_distances(indices[0], indices[0] + 1)[0, :], xp.float64)
    is_medoid = np.zeros(n_rows, dtype=bool)
    is_medoid[indices[0]] = True
    for _ in range(1, n_clusters):

        def gain(start: int, stop: int, nearest: Any = nearest) -> Any:
            closer_by = xp.clip(nearest[None, :] - xp.astype(row_distances(start, stop), xp.float64), min=0)
            return xp.matmul(closer_by, weights64)

        gains = concat(map_blocks(gain, blocks, xp))
        gains = xp.where(xp.asarray(is_medoid, device=device), xp.full_like(gains, -math.inf), gains)
        chosen = int(xp.argmax(gains))
        indices.append(chosen)
        is_medoid[chosen] = True
        nearest = xp.minimum(nearest, xp.astype(row_distances(chosen, chosen + 1)[0, :], xp.float64))
    return np.asarray(indices, dtype=np.int64)


class _Nearest(NamedTuple):
    """FasterPAM's per-point cache: nearest and second-nearest medoid distances."""

    slot: Any  # (n,) int: position in ``medoids`` of the nearest medoid
    nearest: Any  # (n,) float64
    second: Any  # (n,) float64
    removal_loss: Any  # (k,) float64: objective increase if that medoid were removed
    weighted_nearest: Any  # 0-d float64: the objective, on the device
    loss: float  # objective


def _nearest_two(matrix: Any, medoids: np.ndarray, weights64: Any, *, xp: Any) -> _Nearest:
    device = device_of(matrix)
    n_clusters = medoids.shape[0]
    # Rows of the medoids (not columns): a candidate's swap is evaluated on its
    # row too, so both read the same numbers.
    to_medoids = xp.permute_dims(
        xp.astype(xp.take(matrix, xp.asarray(medoids, device=device), axis=0), xp.float64), (1, 0)
    )
    slot = xp.argmin(to_medoids, axis=1)
    nearest = xp.min(to_medoids, axis=1)
    slots = xp.arange(n_clusters, dtype=slot.dtype, device=device)
    others = xp.where(slots[None, :] == slot[:, None], xp.full_like(to_medoids, math.inf), to_medoids)
    second = xp.min(others, axis=1)
    removal_loss = segment_weight(slot, n_clusters, weights64 * (second - nearest), xp=xp, dtype=xp.float64)
    weighted_nearest = xp.sum(weights64 * nearest)
    return _Nearest(slot, nearest, second, removal_loss, weighted_nearest, float(weighted_nearest))


@register("pam_swap", ANY_BACKEND, name="array-api")
def _swap_changes(matrix: Any, start: int, stop: int, cache: _Nearest, weights64: Any, *, xp: Any) -> tuple[Any, Any]:
    """FasterPAM's swap evaluation for the candidates ``start:stop``, all at once (operation ``"pam_swap"``).

    For each candidate ``c`` and each medoid slot ``j``, the change of the
    objective when ``c`` replaces medoid ``j`` is
    ``removal_loss[j] + sum over points o of (a per-slot correction) + shared``:
    points that ``c`` would serve better than their nearest medoid give the
    shared gain ``d(o, c) - dn(o)`` whichever medoid leaves; the correction
    accounts for the points of slot ``nearest(o)`` that would move to ``c``
    or to their second-nearest medoid.

    Returns
    -------
    best_slot : integer array of shape (b,)
        Medoid slot whose replacement by each candidate is best.
    change : array of shape (b,), float64
        Objective change of that swap (negative: an improvement).
    """
    n_clusters = cache.removal_loss.shape[0]
    to_candidates = xp.astype(matrix[start:stop, :], xp.float64, copy=False)  # (b, n)
    nearest, second = cache.nearest[None, :], cache.second[None, :]
    # sum_o w_o * min(d(o, c) - dn(o), 0), without a (b, n) difference.
    shared = xp.matmul(xp.minimum(to_candidates, nearest), weights64) - cache.weighted_nearest
    # dn - ds where c is nearer than dn, d(o, c) - ds where it is between dn
    # and ds, else 0: one clip between the two distances, minus ds.
    correction = xp.clip(to_candidates, min=nearest, max=second) - second
    per_slot = segment_sum(xp.permute_dims(correction, (1, 0)), cache.slot, n_clusters, weights64, xp=xp)  # (k, b)
    losses = cache.removal_loss[:, None] + per_slot
    return xp.argmin(losses, axis=0), xp.min(losses, axis=0) + shared


def fasterpam(
    matrix: Any,
    sample_weight: Any,
    medoids_init: np.ndarray,
    *,
    max_iter: int,
    xp: Any,
    budget_mib: float | None = None,
) -> MedoidResult:
    """FasterPAM's swaps from ``medoids_init`` (operation ``"fasterpam"``).

    Runs the implementation the kernel table picks for ``xp``
    (:mod:`kgpu._kernels.dispatch`): on NumPy, the whole loop compiled in one
    call; :func:`fasterpam_reference` is the array-API reference, documented
    there, with the same result.
    """
    return call("fasterpam", matrix, sample_weight, medoids_init, xp=xp, max_iter=max_iter, budget_mib=budget_mib)


@register("fasterpam", ANY_BACKEND, name="array-api")
def fasterpam_reference(
    matrix: Any,
    sample_weight: Any,
    medoids_init: np.ndarray,
    *,
    max_iter: int,
    xp: Any,
    budget_mib: float | None = None,
) -> MedoidResult:
    """FasterPAM (Schubert & Rousseeuw 2021): eager best-medoid swaps, batched.

    Candidates are visited in row order, cyclically. For each, the best medoid
    to replace and the objective change are computed (in O(n), FastPAM1's
    trick); the first candidate whose swap lowers the objective is swapped in
    at once and the scan goes on after it. The run ends after a full cycle
    without a swap, or after ``max_iter`` sweeps. Batches of candidates are
    evaluated together; a batch that finds no swap doubles the next one (up
    to ``budget_mib``), one that does shrinks it, so late sweeps (few swaps)
    run in large batches and early ones waste little work.

    Parameters
    ----------
    matrix : array of shape (n, n)
        Distances, zero on the diagonal.
    sample_weight : array of shape (n,)
    medoids_init : ndarray of shape (k,), int64 (host), distinct
    max_iter : int
        Most sweeps over the candidates.
    xp : namespace
    budget_mib : float or None
        Budget of one batch's ``(batch, n)`` float64 temporaries.

    Returns
    -------
    MedoidResult
    """
    n_rows = matrix.shape[0]
    n_clusters = medoids_init.shape[0]
    weights64 = xp.astype(sample_weight, xp.float64)
    medoids = np.array(medoids_init, dtype=np.int64)
    if n_clusters == 1:
        # The exact optimum: the row of least weighted distance to all others.
        costs = [
            xp.matmul(xp.astype(matrix[start:stop, :], xp.float64), weights64)
            for start, stop in row_blocks(n_rows, block_rows(n_rows, n_rows * 8, xp, budget_mib))
        ]
        return MedoidResult(np.asarray([int(xp.argmin(xp.concat(costs) if len(costs) > 1 else costs[0]))]), 1)

    cache = _nearest_two(matrix, medoids, weights64, xp=xp)
    is_medoid = np.zeros(n_rows, dtype=bool)
    is_medoid[medoids] = True
    # (batch, n) float64 temporaries: the distances, the correction and a few
    # masks. On NumPy the pool's cores evaluate pieces of a batch; their number
    # is fixed, so that the batches (and the swaps found) do not depend on the
    # machine's core count.
    n_pieces = PARALLEL_BLOCKS if backend_name(xp) == "numpy" else 1
    largest_batch = n_pieces * block_rows(n_rows, n_rows * 8 * 6, xp, budget_mib)
    smallest_batch = min(16, largest_batch)
    batch = smallest_batch
    position, since_swap, sweep = 0, 0, 1
    while since_swap < n_rows:
        stop = min(position + batch, n_rows)
        piece_rows = max(8, -(-(stop - position) // n_pieces))
        pieces = [(position + first, position + last) for first, last in row_blocks(stop - position, piece_rows)]
        results = map_blocks(
            lambda first, last, cache=cache: call("pam_swap", matrix, first, last, cache, weights64, xp=xp), pieces, xp
        )
        best_slot = results[0][0] if len(results) == 1 else xp.concat([result[0] for result in results])
        change = results[0][1] if len(results) == 1 else xp.concat([result[1] for result in results])
        change_host = to_numpy(change).copy()
        change_host[is_medoid[position:stop]] = math.inf
        improving = np.flatnonzero(change_host < -_SWAP_RELATIVE_TOLERANCE * cache.loss)
        if improving.size:
            first = int(improving[0])
            candidate = position + first
            slot = int(to_numpy(best_slot)[first])
            is_medoid[medoids[slot]] = False
            medoids[slot] = candidate
            is_medoid[candidate] = True
            cache = _nearest_two(matrix, medoids, weights64, xp=xp)
            since_swap, position = 0, candidate + 1
            batch = min(max(2 * (first + 1), smallest_batch), largest_batch)
        else:
            since_swap += stop - position
            position = stop
            batch = min(2 * batch, largest_batch)
        if position >= n_rows:
            position = 0
            if since_swap < n_rows:
                if sweep == max_iter:
                    break
                sweep += 1
    return MedoidResult(medoids, sweep)


#: What the memory guard assumes when the device cannot say how much is free.
UNKNOWN_MEMORY_BYTES = 4 * 2**30


def check_pam_memory(n_samples: int, bytes_per_value: int, xp: Any, device: Any, working_memory: float | None) -> None:
    """Refuse ``method="pam"`` when its ``n x n`` distance matrix does not fit the budget.

    The budget is ``working_memory`` MiB when set, else
    :data:`PAM_MEMORY_FRACTION` of the memory available on the compute device.

    Raises
    ------
    MemoryError
        Naming the matrix size, the budget and what to do instead.
    """
    needed = n_samples * n_samples * bytes_per_value
    if working_memory is not None:
        budget = int(working_memory * 2**20)
        source = f"working_memory={working_memory} MiB"
    else:
        available = free_memory_bytes(xp, device)
        if available is None:
            available = UNKNOWN_MEMORY_BYTES
        budget = int(PAM_MEMORY_FRACTION * available)
        source = f"{PAM_MEMORY_FRACTION:.0%} of the {_size(available)} available on the {backend_name(xp)} device"
    if needed > budget:
        raise MemoryError(
            f"method='pam' needs the full {n_samples:,} x {n_samples:,} distance matrix "
            f"({_size(needed)}), more than the budget of {_size(budget)} ({source}). "
            "Use method='alternate' (batched, it never builds an n x n matrix), "
            "fit on a sample of the data, or raise working_memory."
        )


def _size(n_bytes: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n_bytes < 1024:
            return f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} TiB"


# ------------------------------------------------------------- estimator


class KMedoids(CentroidEstimatorMixin):
    """K-Medoids clustering: the centers are data points, under any of kgpu's metrics.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters (medoids).
    metric : {"euclidean", "sqeuclidean", "manhattan", "cosine", "minkowski"}, default="euclidean"
        Dissimilarity between points; ``"l1"``, ``"cityblock"`` and ``"l2"``
        are accepted aliases.
    p : float or None, default=None
        Order of the Minkowski metric (``>= 1``, ``math.inf`` for Chebyshev);
        2 when ``None``.
    method : {"alternate", "pam"}, default="alternate"
        - ``"alternate"``: Voronoi iteration, batched; memory stays within
          ``working_memory`` whatever ``n_samples`` is (a cluster's medoid
          update costs ``O(n_c^2)`` distances, computed in blocks).
        - ``"pam"``: FasterPAM's eager swaps (Schubert & Rousseeuw 2021) on the
          full ``n x n`` distance matrix; a better objective, usually. The
          matrix must fit ``working_memory`` when that is set, else
          :data:`PAM_MEMORY_FRACTION` of the free memory of the compute device;
          otherwise ``fit`` raises a ``MemoryError`` saying to use
          ``"alternate"`` or a sample.
    init : {"k-medoids++", "build", "random"}, callable or array-like of shape \
(n_clusters,), default="k-medoids++"
        - ``"k-medoids++"``: greedy "++" seeding, probability proportional to
          ``sample_weight * D`` (``D``: distance to the closest medoid so far
          under ``metric``).
        - ``"build"``: PAM's deterministic BUILD (the best single medoid, then
          greedy additions; ``n_clusters`` passes over all pairs).
        - ``"random"``: distinct rows drawn with probability proportional to
          ``sample_weight``.
        - array of ``n_clusters`` distinct row indices.
        - callable ``init(X, n_clusters, random_state) -> indices``.
    n_init : int or "auto", default="auto"
        Runs from different initialisations; the lowest objective wins.
        ``"auto"`` is 10 for ``"random"`` and 1 otherwise.
    max_iter : int, default=300
        Most iterations (``"alternate"``) or sweeps over the candidates
        (``"pam"``) per run.
    random_state : int, RandomState instance or None, default=None
        Seeds the random initialisations (drawn on the host, so a seed gives
        the same medoids on every backend).
    backend : {None, "auto", "numpy", "cupy", "torch", "array_api_strict"}, default=None
        Library that computes (see :class:`kgpu.KMeans`).
    device : object, default=None
        Device for ``backend``.
    working_memory : float or None, default=None
        Memory budget in MiB for one block of distances; with
        ``method="pam"`` also the cap on the ``n x n`` matrix.

    progress : bool or "auto", default=False
        Show a progress bar (tqdm, on standard error) counting initialisations (runs), with the objective of each.
        ``"auto"`` shows it only when standard error is a terminal.
        Independent of ``verbose``.
    Attributes
    ----------
    medoid_indices_ : integer array of shape (n_clusters,)
        Rows of the training data that are the medoids.
    cluster_centers_ : array of shape (n_clusters, n_features)
        The medoids themselves.
    labels_ : integer array of shape (n_samples,)
    inertia_ : float
        Sum of (weighted) distances of samples to their medoid under ``metric``.
    n_iter_ : int
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when fitted on a frame with string column names.
    backend_ : str

    Examples
    --------
    >>> import numpy as np
    >>> from kgpu import KMedoids
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [4, 2], [4, 4], [4, 0]], dtype=float)
    >>> km = KMedoids(n_clusters=2, method="pam", init="build").fit(X)
    >>> km.medoid_indices_.tolist(), km.labels_.tolist()
    ([0, 3], [0, 0, 0, 1, 1, 1])
    """

    _init_methods = INIT_METHODS
    _single_run_inits = ("k-medoids++",)
    _deterministic_inits = ("build",)
    _explicit_init = "an array of n_clusters row indices"

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        metric: str = "euclidean",
        p: float | None = None,
        method: str = "alternate",
        init: str | Callable | Any = "k-medoids++",
        n_init: int | str = "auto",
        max_iter: int = 300,
        random_state: Any = None,
        backend: str | None = None,
        device: Any = None,
        working_memory: float | None = None,
        progress: bool | str = False,
    ):
        self.n_clusters = n_clusters
        self.metric = metric
        self.p = p
        self.method = method
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.random_state = random_state
        self.backend = backend
        self.device = device
        self.working_memory = working_memory
        self.progress = progress

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> "KMedoids":
        """Compute k-medoids clustering.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample in the objective (and the random
            initialisations). An integer weight acts like repeating the sample.

        Returns
        -------
        self

        Raises
        ------
        MemoryError
            ``method="pam"`` on data whose ``n x n`` matrix does not fit.
        """
        n_clusters = check_n_clusters(self.n_clusters)
        max_iter = check_positive_int(self.max_iter, "max_iter")
        metric = check_metric(self.metric, self.p)
        check_progress(self.progress)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}.")
        n_init = self._resolve_n_init()
        placement = self._place(X, reset=True)
        xp, X_fit = placement.xp, placement.X
        n_samples = X_fit.shape[0]
        check_n_clusters(n_clusters, n_samples)
        sample_weight = self._place_weights(sample_weight, placement)
        random_state = check_random_state(self.random_state)
        # Distances in the working frame (kgpu._scale): relative to the data's
        # mean (float32 far from zero keeps its digits) and rescaled at extreme
        # magnitudes. The medoids themselves are taken from X.
        frame = self._fit_working_frame(X_fit, sample_weight, xp=xp)
        X_source, X_fit = X_fit, frame.apply(X_fit)
        explicit = None
        if not isinstance(self.init, str) and not callable(self.init):
            explicit = _check_indices(self.init, n_samples, n_clusters, "init")

        if self.method == "pam":
            check_pam_memory(n_samples, itemsize(X_fit, xp), xp, placement.device, self.working_memory)
            matrix = distance_matrix(X_fit, metric, xp=xp, budget_mib=self.working_memory)

            def row_distances(start: int, stop: int) -> Any:
                return matrix[start:stop, :]

        else:
            sq_norms = row_sq_norms(X_fit, xp=xp) if metric.name in ("sqeuclidean", "euclidean") else None

            def row_distances(start: int, stop: int) -> Any:
                return pairwise_distances(
                    X_fit[start:stop, :], X_fit, metric, xp=xp,
                    x_sq_norms=None if sq_norms is None else sq_norms[start:stop], center_sq_norms=sq_norms,
                )

        rows_per_block = assignment_block_rows(
            n_samples, n_clusters, X_fit.shape[1], itemsize(X_fit, xp), xp, self.working_memory, metric
        )
        best = None
        with self._progress_bar(total=n_init, unit="run") as bar:
            for _ in range(n_init):
                medoids = explicit
                if medoids is None:
                    medoids = self._initial_medoids(X, X_fit, sample_weight, n_clusters, random_state, metric, row_distances, xp)
                if self.method == "pam":
                    result = fasterpam(matrix, sample_weight, medoids, max_iter=max_iter, xp=xp, budget_mib=self.working_memory)
                else:
                    result = alternate(
                        X_fit, sample_weight, medoids, metric, max_iter=max_iter, xp=xp,
                        rows_per_block=rows_per_block, budget_mib=self.working_memory,
                    )
                centers = take_rows(X_fit, result.medoids, xp=xp)
                labels, distances = assign(X_fit, centers, xp=xp, metric=metric, rows_per_block=rows_per_block)
                inertia = frame.restore_distances(weighted_sum(distances, sample_weight, xp=xp), metric_power(metric))
                if best is None or inertia < best[0]:
                    best = (inertia, result, centers, labels)
                bar.update(objective=inertia)

        inertia, result, centers, labels = best
        warn_if_fewer_distinct_clusters(labels, n_clusters, xp=xp)
        self.medoid_indices_ = placement.to_input(xp.asarray(result.medoids, device=placement.device))
        self.cluster_centers_ = placement.to_input(take_rows(X_source, result.medoids, xp=xp))
        self.labels_ = placement.to_input(labels)
        self.inertia_ = inertia
        self.n_iter_ = result.n_iter
        self.backend_ = fitted_backend_name(placement)
        return self

    def _objective_metric(self) -> Metric:
        return check_metric(self.metric, self.p)

    def _initial_medoids(self, X_user, X_fit, sample_weight, n_clusters, random_state, metric, row_distances, xp):
        n_samples = X_fit.shape[0]
        if callable(self.init):
            return _check_indices(self.init(X_user, n_clusters, random_state), n_samples, n_clusters, "the init callable")
        if self.init == "k-medoids++":
            return plusplus_indices(X_fit, n_clusters, sample_weight, random_state, xp=xp, metric=metric)
        if self.init == "random":
            return forgy_indices(n_samples, n_clusters, sample_weight, random_state)
        # (b, n) distances plus their float64 copy and the gains.
        rows = block_rows(n_samples, n_samples * (itemsize(X_fit, xp) + 24), xp, self.working_memory)
        return build_indices(row_distances, sample_weight, n_clusters, xp=xp, rows_per_block=rows)


def _check_indices(indices: Any, n_samples: int, n_clusters: int, what: str) -> np.ndarray:
    """Validate initial medoids: ``n_clusters`` distinct row indices."""
    host = to_numpy(indices) if is_array_api_obj(indices) else np.asarray(indices)
    if host.dtype.kind not in "iu":
        raise TypeError(
            f"The initial medoids given by {what} must be integer row indices, got dtype {host.dtype}."
        )
    if host.shape != (n_clusters,):
        raise ValueError(
            f"The initial medoids given by {what} have shape {host.shape}; expected ({n_clusters},): "
            "one row index per cluster."
        )
    if host.min() < 0 or host.max() >= n_samples:
        raise ValueError(f"The initial medoids given by {what} must be row indices in [0, {n_samples}).")
    if np.unique(host).shape[0] != n_clusters:
        raise ValueError(f"The initial medoids given by {what} must be distinct rows.")
    return host.astype(np.int64)


__all__ = ["KMedoids"]
