"""Dask arrays: K-Means as map-reduce over row chunks, on whatever scheduler is active.

A Dask array is never gathered. Every pass over the data is one Dask graph:
a task per row chunk runs the same kernels as an in-memory fit on that chunk
(:func:`kgpu._assign.assign_and_accumulate`, :mod:`kgpu._segment`,
:mod:`kgpu._init_parallel`...) and returns a small partial result (per-cluster
sums and weights, a partial objective, a few candidate rows), and Dask adds
the partial results up in a tree (:func:`tree_reduce`). ``dask.compute`` runs
the graph on the active scheduler: a ``dask.distributed`` client when one is
set (a ``LocalCluster``, a ``dask-cuda`` ``LocalCUDACluster``, a remote
cluster), else Dask's local threads. The centers (``k x d``) are the only thing
sent to every task at each iteration.

Each chunk is computed in its own namespace (array-api-compat resolves it per
chunk: NumPy chunks on the CPU, CuPy chunks on their GPU), or moved to the
``backend=`` / ``device=`` of the estimator. Inside a task, kgpu's row blocks
run one after the other: Dask already runs one task per worker thread.

What a fit does, pass by pass (``k`` clusters):

1. one pass: finiteness of ``X`` and of the weights, total weight, weighted
   mean (the centering offset) and, when ``tol > 0``, variance (the scale of
   ``tol``), merged across chunks with Chan's pairwise update;
2. Lloyd's working copy ``[x - mean, 1]`` of every chunk, as in memory;
3. the initialisation: ``"k-means||"`` (``n_rounds + 1`` passes), ``"random"``
   (host-drawn rows), an array or a callable; ``"k-means++"`` is run on the
   k-means|| candidates (see :func:`initial_centers`);
4. one pass per Lloyd iteration, plus one more for the few farthest points
   when a cluster is left empty (the empty-cluster policy of
   :mod:`kgpu._empty`, applied to the per-chunk top candidates);
5. one pass for the inertia of the final centers.

With a ``dask.distributed`` client, the working copy is persisted on the
workers for the duration of the fit (about the size of ``X``), so the passes
read worker memory rather than recomputing the input graph; a worker that dies
has its chunks recomputed by Dask from the input's graph and the fit goes on.
With Dask's local threads nothing is persisted: every pass recomputes its
chunks, and only a few chunks are in memory at a time. ``labels_``,
``predict`` and ``transform`` return lazy Dask arrays (``map_blocks`` of the
assignment kernel).
"""

from __future__ import annotations

import numbers
import time
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ._assign import (
    assign,
    assign_and_accumulate,
    assignment_block_rows,
    distance_matrix,
    itemsize,
    weighted_sum,
)
from ._backend import device_of, move_to, namespace_of, resolve_compute, to_numpy
from ._blocks import _in_worker, block_rows, map_blocks, row_blocks
from ._distances import check_metric, homogeneous
from ._empty import farthest_points
from ._init import forgy_indices
from ._init_parallel import (
    attracted_weight,
    min_sq_dist_update,
    parallel_centers,
    pick_by_cumulative_weight,
    sample_rows,
)
from ._lloyd import IterationRecord, _centers_from_sums, assign_cost_to_current
from ._segment import segment_weight
from ._validation import check_dask_data, check_data, check_n_clusters, check_sample_weight, is_dask_array

#: Partial results combined per reduction task (the tree's fan-in).
SPLIT_EVERY = 8

#: ``transform`` gives Euclidean distances, as in memory.
EUCLIDEAN_METRIC = check_metric("euclidean")

#: ``init`` values the Dask engine accepts as a string.
DASK_INIT_METHODS = ("k-means||", "k-means++", "random")

__all__ = ["DaskRows", "check_dask_data", "fit_kmeans", "is_dask_array", "predict_labels", "score", "transform"]


def _numpy_namespace() -> Any:
    import array_api_compat.numpy as xp_numpy

    return xp_numpy


# ------------------------------------------------------------------ chunks


class ChunkContext(NamedTuple):
    """What every chunk task needs besides its chunk: where to compute, and how.

    Attributes
    ----------
    backend, device :
        The estimator's ``backend`` / ``device`` (``None``: the chunk's own).
    budget_mib : float or None
        ``working_memory``: memory budget of one row block inside a chunk.
    offset : ndarray of shape (d,) or None
        Centering offset (host, dtype of ``X``) subtracted from every row.
    homogeneous : bool
        The chunks already are Lloyd's working copy ``[x - offset, 1]``
        (:func:`working_copy`), not the rows themselves.
    """

    backend: Any
    device: Any
    budget_mib: float | None
    offset: np.ndarray | None
    homogeneous: bool = False


class Chunk(NamedTuple):
    """One row chunk on its compute device.

    Attributes
    ----------
    X : array of shape (b, d), or (b, d + 1)
        The rows, not centered; or, when ``context.homogeneous``, the
        working copy ``[x - offset, 1]``.
    weights : array of shape (b,), dtype of ``X``
    start : int
        Global index of the first row.
    xp, device :
        Compute namespace and device.
    input_xp, input_device :
        Namespace and device of the chunk as Dask holds it.
    context : ChunkContext
    """

    X: Any
    weights: Any
    start: int
    xp: Any
    device: Any
    input_xp: Any
    input_device: Any
    context: ChunkContext

    @property
    def n_features(self) -> int:
        return self.X.shape[1] - 1 if self.context.homogeneous else self.X.shape[1]

    def centered(self) -> Any:
        """The rows minus the offset: a view of the working copy, a new array, or the rows."""
        if self.context.homogeneous:
            return self.X[:, :-1]
        offset = self.offset()
        return self.X if offset is None else self.X - offset

    def design(self) -> Any:
        """``[x - offset, 1]``: the rows in Lloyd's homogeneous coordinates."""
        if self.context.homogeneous:
            return self.X
        return homogeneous(self.X, xp=self.xp, offset=self.offset())

    def offset(self) -> Any:
        if self.context.offset is None:
            return None
        return self.on_device(self.context.offset)

    def on_device(self, host_array: Any) -> Any:
        """A host (or other) array moved to this chunk's device, in its dtype if floating."""
        array = move_to(host_array, self.xp, self.device)
        if self.xp.isdtype(array.dtype, "real floating") and array.dtype != self.X.dtype:
            array = self.xp.astype(array, self.X.dtype)
        return array

    def rows_per_block(self, n_clusters: int) -> int:
        return assignment_block_rows(
            self.X.shape[0], n_clusters, self.n_features, itemsize(self.X, self.xp), self.xp, self.context.budget_mib
        )


def _open_chunk(block: Any, weights: Any, start: int, context: ChunkContext) -> Chunk:
    input_xp = namespace_of(block)
    input_device = device_of(block)
    xp, device = resolve_compute(context.backend, context.device, block)
    X = move_to(block, xp, device)
    if weights is None:
        weights = xp.ones(X.shape[0], dtype=X.dtype, device=device)
    else:
        weights = move_to(weights, xp, device)
        if weights.dtype != X.dtype:
            weights = xp.astype(weights, X.dtype)
    return Chunk(X, weights, int(start), xp, device, input_xp, input_device, context)


def run_on_chunk(fn: Callable[..., Any], block: Any, weights: Any, start: int, context: ChunkContext, *args: Any) -> Any:
    """Task body: ``fn(chunk, *args)`` with kgpu's row blocks run one after the other.

    Dask runs one task per worker thread: splitting a chunk's blocks over
    kgpu's own thread pool as well would oversubscribe the cores.
    """
    return _in_worker(lambda: fn(_open_chunk(block, weights, start, context), *args))


class DaskRows:
    """A validated Dask matrix seen as a list of row chunks, with their weights.

    Parameters
    ----------
    X : dask.array.Array of shape (n, d)
        From :func:`kgpu._validation.check_dask_data` (whole rows per chunk).
    sample_weight : dask.array.Array of shape (n,) or None
        Chunked like the rows of ``X``; ``None`` for unit weights.
    context : ChunkContext
    persist : bool
        Keep the chunks (and weights) in the workers' memory for the passes
        to come (``dask.persist``).
    """

    def __init__(self, X: Any, sample_weight: Any, context: ChunkContext, *, persist: bool = False):
        import dask

        if persist:
            X, sample_weight = dask.persist(X, sample_weight)
        self.X = X
        self.sample_weight = sample_weight
        self.context = context
        self.n_rows = int(X.shape[0])
        self.n_features = int(X.shape[1]) - 1 if context.homogeneous else int(X.shape[1])
        self.dtype = X.dtype
        sizes = np.asarray(X.chunks[0], dtype=np.int64)
        starts = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.int64)
        # Empty chunks (e.g. after filtering rows) take no part in any pass.
        keep = np.flatnonzero(sizes > 0)
        self.starts = starts[keep]
        blocks = X.to_delayed()[:, 0]
        self.blocks = [blocks[i] for i in keep]
        weight_blocks = None if sample_weight is None else sample_weight.to_delayed()
        self.weight_blocks = None if weight_blocks is None else [weight_blocks[i] for i in keep]
        self.input_xp = namespace_of(X._meta)

    def working_copy(self, offset: np.ndarray | None, *, persist: bool) -> "DaskRows":
        """Rows as Lloyd's working copy ``[x - offset, 1]``, chunk by chunk.

        With ``persist``, the working copy is kept in the workers' memory for
        every pass to come (as an in-memory fit keeps its copy); otherwise
        each pass makes it again from the input's chunks.
        """
        context = self.context._replace(offset=offset)
        design = self.X.map_blocks(
            _working_copy_block, context, dtype=self.dtype, meta=self.X._meta,
            chunks=(self.X.chunks[0], (self.n_features + 1,)),
        )
        return DaskRows(design, self.sample_weight, context._replace(homogeneous=True), persist=persist)

    def weight_block(self, index: int) -> Any:
        return None if self.weight_blocks is None else self.weight_blocks[index]

    def map_chunks(self, fn: Callable[..., Any], *args: Any, chunk_ids: Sequence[int] | None = None) -> list:
        """One lazy ``fn(chunk, *args)`` per row chunk (Dask ``Delayed`` objects)."""
        import dask

        shared = [_shared(arg) for arg in args]
        context = _shared(self.context)
        ids = range(len(self.blocks)) if chunk_ids is None else chunk_ids
        return [
            dask.delayed(run_on_chunk, pure=True)(
                fn, self.blocks[i], self.weight_block(i), int(self.starts[i]), context, *shared
            )
            for i in ids
        ]

    def map_reduce(self, fn: Callable[..., Any], *args: Any, combine: Callable[..., Any] | None = None) -> Any:
        """``combine`` of ``fn(chunk, *args)`` over every chunk, computed now."""
        import dask

        (result,) = dask.compute(tree_reduce(self.map_chunks(fn, *args), combine or add_parts))
        return result


def _shared(value: Any) -> Any:
    """Arrays become one graph key that every task reads (not a copy per task)."""
    import dask

    if isinstance(value, np.ndarray):
        return dask.delayed(value, pure=True)
    if isinstance(value, ChunkContext):
        return dask.delayed(value, pure=True, traverse=False)
    return value


def tree_reduce(parts: list, combine: Callable[..., Any], split_every: int = SPLIT_EVERY) -> Any:
    """Lazy reduction of ``parts`` by ``combine`` in a tree of fan-in ``split_every``.

    ``combine`` takes any number of partial results (in row order) and
    returns one; adjacent parts are combined, so the order is kept.
    """
    import dask

    while len(parts) > 1:
        parts = [
            dask.delayed(combine, pure=True)(*parts[i : i + split_every]) for i in range(0, len(parts), split_every)
        ]
    return parts[0]


def add_parts(*parts: Any) -> Any:
    """Element-wise sum of partial results (arrays, floats, or tuples of them)."""
    first = parts[0]
    if isinstance(first, tuple):
        return type(first)(*(add_parts(*fields) for fields in zip(*parts))) if hasattr(first, "_fields") else tuple(
            add_parts(*fields) for fields in zip(*parts)
        )
    total = first
    for part in parts[1:]:
        total = total + part
    return total


def concat_parts(*parts: tuple) -> tuple:
    """Field-wise concatenation of tuples of host arrays (in row order)."""
    return tuple(np.concatenate(fields) for fields in zip(*parts))


# ------------------------------------------------------------- validation


class Moments(NamedTuple):
    """Per-chunk facts gathered by the first pass, merged by :func:`merge_moments`.

    Attributes
    ----------
    finite : bool
        No NaN or infinity in ``X``.
    has_nan : bool
    weights_finite, weights_non_negative : bool
    total_weight : float
    mean : ndarray of shape (d,), float64
        Weighted mean of the rows.
    sq_dev : ndarray of shape (d,), float64
        Weighted sum of squared deviations from ``mean``.
    """

    finite: bool
    has_nan: bool
    weights_finite: bool
    weights_non_negative: bool
    total_weight: float
    mean: np.ndarray
    sq_dev: np.ndarray


def _working_copy_block(block: Any, context: ChunkContext) -> Any:
    """``[x - offset, 1]`` of one chunk, in the chunk's own namespace and device."""
    xp = namespace_of(block)
    offset = None if context.offset is None else move_to(context.offset, xp, device_of(block))
    return _in_worker(lambda: homogeneous(block, xp=xp, offset=offset))


def chunk_moments(chunk: Chunk, with_variance: bool = True) -> Moments:
    """:class:`Moments` of one chunk: the mean, then the squared deviations from it.

    Both passes run over row blocks of the chunk (``working_memory``), in
    float64, so no float64 copy of the whole chunk is made. Without
    ``with_variance`` the second pass is skipped (``sq_dev`` is zero).
    """
    xp, X = chunk.xp, chunk.X
    n_rows, n_features = X.shape
    weights64 = xp.astype(chunk.weights, xp.float64)
    weights_finite = bool(xp.all(xp.isfinite(weights64)))
    weights_non_negative = bool(xp.all(weights64 >= 0))
    blocks = row_blocks(n_rows, block_rows(n_rows, n_features * 8 * 3, xp, chunk.context.budget_mib))

    def block_sum(start: int, stop: int) -> tuple[bool, Any]:
        block = X[start:stop, :]
        finite = bool(xp.all(xp.isfinite(block)))
        return finite, xp.matmul(weights64[start:stop], xp.astype(block, xp.float64)) if finite else None

    sums = map_blocks(block_sum, blocks, xp)
    finite = all(part[0] for part in sums)
    has_nan = not finite and bool(xp.any(xp.isnan(X)))
    zeros = np.zeros(n_features)
    if not (finite and weights_finite and weights_non_negative):
        return Moments(finite, has_nan, weights_finite, weights_non_negative, 0.0, zeros, zeros)
    total = float(xp.sum(weights64))
    if total <= 0:
        return Moments(True, False, True, True, 0.0, zeros, zeros)
    weighted_sum_of_rows = sums[0][1]
    for part in sums[1:]:
        weighted_sum_of_rows = weighted_sum_of_rows + part[1]
    mean = weighted_sum_of_rows / total
    if not with_variance:
        return Moments(True, False, True, True, total, to_numpy(mean), zeros)

    def block_sq_dev(start: int, stop: int) -> Any:
        deviation = xp.astype(X[start:stop, :], xp.float64) - mean
        return xp.matmul(weights64[start:stop], deviation * deviation)

    sq_devs = map_blocks(block_sq_dev, blocks, xp)
    sq_dev = sq_devs[0]
    for part in sq_devs[1:]:
        sq_dev = sq_dev + part
    return Moments(True, False, True, True, total, to_numpy(mean), to_numpy(sq_dev))


def merge_moments(*parts: Moments) -> Moments:
    """Chan, Golub & LeVeque's pairwise update of weighted means and squared deviations."""
    merged = parts[0]
    for part in parts[1:]:
        flags = (
            merged.finite and part.finite,
            merged.has_nan or part.has_nan,
            merged.weights_finite and part.weights_finite,
            merged.weights_non_negative and part.weights_non_negative,
        )
        total = merged.total_weight + part.total_weight
        if part.total_weight <= 0:
            merged = Moments(*flags, merged.total_weight, merged.mean, merged.sq_dev)
        elif merged.total_weight <= 0:
            merged = Moments(*flags, part.total_weight, part.mean, part.sq_dev)
        else:
            delta = part.mean - merged.mean
            mean = merged.mean + delta * (part.total_weight / total)
            sq_dev = merged.sq_dev + part.sq_dev + delta * delta * (merged.total_weight * part.total_weight / total)
            merged = Moments(*flags, total, mean, sq_dev)
    return merged


def check_moments(moments: Moments) -> None:
    """Raise the errors the in-memory checks raise, from the merged first pass."""
    if not moments.finite:
        problem = "NaN" if moments.has_nan else "infinity"
        raise ValueError(f"Input X contains {problem}: remove or impute non-finite values first.")
    if not moments.weights_finite:
        raise ValueError("sample_weight contains NaN or infinity.")
    if not moments.weights_non_negative:
        raise ValueError("Negative values in data passed to sample_weight.")
    if moments.total_weight <= 0:
        raise ValueError("sample_weight sums to zero: at least one weight must be positive.")


def check_dask_sample_weight(sample_weight: Any, X: Any) -> Any:
    """``sample_weight`` as a Dask array chunked like the rows of ``X``, or None.

    Shape and dtype are checked now; the values (finite, non-negative, not all
    zero) with the first pass over the data (:func:`check_moments`).
    """
    import dask.array as da

    if sample_weight is None:
        return None
    n_samples = X.shape[0]
    if is_dask_array(sample_weight):
        if sample_weight.ndim != 1 or sample_weight.shape[0] != n_samples:
            raise ValueError(
                f"sample_weight.shape == {tuple(sample_weight.shape)}, expected ({n_samples},): "
                "one weight per sample."
            )
        if sample_weight.dtype.kind not in "biuf":
            raise TypeError(f"sample_weight must be numeric, got dtype {sample_weight.dtype}.")
        return sample_weight.astype(X.dtype).rechunk((X.chunks[0],))
    if isinstance(sample_weight, numbers.Number) and not isinstance(sample_weight, bool):
        check_sample_weight(sample_weight, X, _numpy_namespace())
        return None if float(sample_weight) == 1.0 else da.full(n_samples, float(sample_weight), dtype=X.dtype, chunks=(X.chunks[0],))
    host = check_sample_weight(sample_weight, X, _numpy_namespace())
    return da.from_array(host, chunks=(X.chunks[0],))


def _distributed_client() -> Any:
    """The active ``dask.distributed`` client, or None."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


# ------------------------------------------------------------------- Lloyd


class LloydState(NamedTuple):
    """Per-cluster weighted sums and weights of one Lloyd pass (float64, host)."""

    sums: np.ndarray
    weights: np.ndarray


def chunk_lloyd_sums(chunk: Chunk, centers: Any) -> LloydState:
    """The fused E-step and M-step sums of one chunk (:func:`assign_and_accumulate`)."""
    step = assign_and_accumulate(
        chunk.design(), chunk.weights, chunk.on_device(centers), xp=chunk.xp,
        rows_per_block=chunk.rows_per_block(centers.shape[0]),
    )
    return LloydState(to_numpy(step.sums), to_numpy(step.weights))


def chunk_relocation_candidates(chunk: Chunk, centers: Any, n_points: int) -> tuple:
    """The ``n_points`` positive-weight rows of the chunk farthest from their center.

    Returns host arrays ``(global ids, centered rows, weights, labels, costs)``
    in row order: the union over chunks holds the ``n_points`` farthest rows
    of the whole data, with the same tie-breaking (lowest row first).
    """
    xp = chunk.xp
    design = chunk.design()
    centers_device = chunk.on_device(centers)
    rows_per_block = chunk.rows_per_block(centers.shape[0])
    # The labels of the Lloyd pass, computed the same way.
    labels = assign_and_accumulate(design, chunk.weights, centers_device, xp=xp, rows_per_block=rows_per_block).labels
    X_work = design[:, :-1]
    cost = assign_cost_to_current(X_work, centers_device, labels, xp=xp, rows_per_block=rows_per_block)
    local = np.sort(farthest_points(cost, chunk.weights, n_points, xp=xp))
    ids = xp.asarray(local, device=chunk.device)
    return (
        local + chunk.start,
        to_numpy(xp.take(X_work, ids, axis=0)),
        to_numpy(xp.take(chunk.weights, ids, axis=0)),
        to_numpy(xp.take(labels, ids, axis=0)),
        to_numpy(xp.take(cost, ids, axis=0)),
    )


def chunk_objective(chunk: Chunk, centers: Any) -> tuple[float, np.ndarray]:
    """Weighted inertia of the chunk on ``centers`` and the row count of each cluster."""
    nearest = assign(
        chunk.centered(), chunk.on_device(centers), xp=chunk.xp, rows_per_block=chunk.rows_per_block(centers.shape[0])
    )
    counts = segment_weight(nearest.labels, centers.shape[0], xp=chunk.xp, dtype=chunk.xp.float64)
    return weighted_sum(nearest.min_dist, chunk.weights, xp=chunk.xp), to_numpy(counts)


class DaskLloydResult(NamedTuple):
    """Outcome of one Lloyd run on Dask (centers in the centered coordinates)."""

    centers: np.ndarray
    inertia: float
    counts: np.ndarray
    n_iter: int
    history: list


def lloyd_dask(
    rows: DaskRows,
    centers_init: np.ndarray,
    *,
    max_iter: int,
    tol: float,
    on_iteration: Callable[[IterationRecord], None] | None = None,
) -> DaskLloydResult:
    """Lloyd iterations as map-reduce over the chunks of ``rows``.

    The rule of :func:`kgpu._lloyd.lloyd`: stop when the summed squared center
    shift is at most ``tol`` (absolute), so ``tol=0`` stops when the centers
    no longer change (the labels did not change either); an empty cluster is
    re-seeded by the farthest positive-weight point (:mod:`kgpu._empty`),
    found among each chunk's farthest points. The labels are not kept between
    passes, so :class:`IterationRecord` ``n_changed`` is -1.

    Parameters
    ----------
    rows : DaskRows
        With the centering offset in its context.
    centers_init : ndarray of shape (k, d), dtype of the data
        In the centered coordinates.
    max_iter : int
    tol : float
    on_iteration : callable or None

    Returns
    -------
    DaskLloydResult
        The inertia and cluster counts are those of the returned centers
        (one more pass).
    """
    xp = _numpy_namespace()
    centers = np.asarray(centers_init)
    history: list[IterationRecord] = []
    no_rows = np.empty((0, rows.n_features), dtype=centers.dtype)
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        started = time.perf_counter()
        state = rows.map_reduce(chunk_lloyd_sums, centers)
        if np.any(state.weights <= 0):
            n_empty = int(np.count_nonzero(state.weights <= 0))
            _, candidates, weights, labels, _ = rows.map_reduce(
                chunk_relocation_candidates, centers, n_empty, combine=concat_parts
            )
            new_centers = _centers_from_sums(
                candidates.astype(centers.dtype, copy=False), weights, centers, labels, state.sums, state.weights,
                xp=xp, rows_per_block=max(1, candidates.shape[0]),
            )
        else:
            new_centers = _centers_from_sums(
                no_rows, None, centers, None, state.sums, state.weights, xp=xp, rows_per_block=1
            )
        center_shift = float(np.sum((new_centers - centers) ** 2))
        centers = new_centers
        record = IterationRecord(n_iter, center_shift, -1, time.perf_counter() - started)
        history.append(record)
        if on_iteration is not None:
            on_iteration(record)
        if center_shift <= tol:
            break
    inertia, counts = rows.map_reduce(chunk_objective, centers)
    return DaskLloydResult(centers, float(inertia), counts, n_iter, history)


# ------------------------------------------------------ k-means|| on chunks


def chunk_weight_total(chunk: Chunk) -> float:
    """Running-sum total of the chunk's weights (float64)."""
    return float(np.cumsum(to_numpy(chunk.xp.astype(chunk.weights, chunk.xp.float64)))[-1])


def chunk_pick(chunk: Chunk, weight_before: float, uniform: float, total: float) -> int:
    """Global row of a weighted draw that falls in this chunk."""
    cumulative = weight_before + np.cumsum(to_numpy(chunk.xp.astype(chunk.weights, chunk.xp.float64)))
    return chunk.start + pick_by_cumulative_weight(cumulative, uniform, total)


def chunk_take(chunk: Chunk, local_ids: np.ndarray) -> np.ndarray:
    """Centered rows ``local_ids`` of the chunk, on the host."""
    ids = chunk.xp.asarray(local_ids, device=chunk.device)
    if chunk.context.homogeneous:
        return to_numpy(chunk.xp.take(chunk.centered(), ids, axis=0))
    rows = chunk.xp.take(chunk.X, ids, axis=0)
    offset = chunk.offset()
    return to_numpy(rows if offset is None else rows - offset)


def chunk_closest(chunk: Chunk, closest_sq_dist: Any, new_rows: np.ndarray) -> Any:
    """The chunk's ``min(D^2)`` to the candidates so far (kept on the worker)."""
    return min_sq_dist_update(
        chunk.centered(), chunk.on_device(new_rows), closest_sq_dist, xp=chunk.xp, budget_mib=chunk.context.budget_mib
    )


def chunk_potential(chunk: Chunk, closest_sq_dist: Any) -> float:
    return weighted_sum(closest_sq_dist, chunk.weights, xp=chunk.xp)


def chunk_sample(chunk: Chunk, closest_sq_dist: Any, round_key: int, scale: float) -> np.ndarray:
    xp = chunk.xp
    return sample_rows(
        closest_sq_dist, xp.astype(chunk.weights, xp.float64), round_key, scale,
        xp=xp, row_offset=chunk.start, budget_mib=chunk.context.budget_mib,
    )


def chunk_attracted_weight(chunk: Chunk, candidates: np.ndarray) -> np.ndarray:
    return to_numpy(
        attracted_weight(
            chunk.centered(), chunk.on_device(candidates), chunk.weights, xp=chunk.xp, budget_mib=chunk.context.budget_mib
        )
    )


def chunk_weights_host(chunk: Chunk) -> np.ndarray:
    return to_numpy(chunk.xp.astype(chunk.weights, chunk.xp.float64))


class DaskCandidateRows:
    """:class:`kgpu._init_parallel.CandidateRows` over the chunks of a Dask array.

    The distances to the closest candidate (one float64 per row) stay on the
    workers between rounds (``dask.persist``); candidates come back to the
    host, where they are reduced.
    """

    def __init__(self, rows: DaskRows):
        self.rows = rows
        self.xp = _numpy_namespace()
        self.n_rows = rows.n_rows
        self.closest: list | None = None

    def pick_by_weight(self, uniform: float) -> int:
        import dask

        (totals,) = dask.compute(self.rows.map_chunks(chunk_weight_total))
        ends = np.cumsum(np.asarray(totals, dtype=np.float64))
        total = float(ends[-1])
        chunk_id = pick_by_cumulative_weight(ends, uniform, total)
        weight_before = float(ends[chunk_id - 1]) if chunk_id > 0 else 0.0
        (pick,) = self.rows.map_chunks(chunk_pick, weight_before, uniform, total, chunk_ids=[chunk_id])
        return int(pick.compute())

    def take(self, ids: np.ndarray) -> np.ndarray:
        """Rows ``ids`` (any order, host integers), centered, as a host array."""
        import dask

        ids = np.asarray(ids, dtype=np.int64)
        order = np.argsort(ids, kind="stable")
        sorted_ids = ids[order]
        chunk_of = np.searchsorted(self.rows.starts, sorted_ids, side="right") - 1
        chunk_ids = np.unique(chunk_of).tolist()
        tasks = []
        for chunk_id in chunk_ids:
            local = sorted_ids[chunk_of == chunk_id] - self.rows.starts[chunk_id]
            tasks += self.rows.map_chunks(chunk_take, local, chunk_ids=[chunk_id])
        (parts,) = dask.compute(tasks)
        rows = np.concatenate(parts, axis=0) if parts else np.empty((0, self.rows.n_features), dtype=self.rows.dtype)
        taken = np.empty_like(rows)
        taken[order] = rows
        return taken

    def update_closest(self, new_rows: np.ndarray) -> None:
        import dask

        shared_rows = _shared(np.asarray(new_rows))
        context = _shared(self.rows.context)
        previous = self.closest or [None] * len(self.rows.blocks)
        tasks = [
            dask.delayed(run_on_chunk, pure=True)(
                chunk_closest, self.rows.blocks[i], self.rows.weight_block(i), int(self.rows.starts[i]), context,
                previous[i], shared_rows,
            )
            for i in range(len(self.rows.blocks))
        ]
        self.closest = list(dask.persist(*tasks))

    def _map_closest(self, fn: Callable[..., Any], *args: Any) -> list:
        import dask

        context = _shared(self.rows.context)
        return [
            dask.delayed(run_on_chunk, pure=True)(
                fn, self.rows.blocks[i], self.rows.weight_block(i), int(self.rows.starts[i]), context,
                self.closest[i], *args,
            )
            for i in range(len(self.rows.blocks))
        ]

    def potential(self) -> float:
        import dask

        (total,) = dask.compute(tree_reduce(self._map_closest(chunk_potential), add_parts))
        return float(total)

    def sample(self, round_key: int, scale: float) -> np.ndarray:
        import dask

        (parts,) = dask.compute(self._map_closest(chunk_sample, round_key, scale))
        return np.concatenate(parts)

    def attracted_weight(self, candidates: np.ndarray) -> np.ndarray:
        # The distances are not needed any more: free the workers' memory.
        self.closest = None
        return self.rows.map_reduce(chunk_attracted_weight, candidates)

    def weights_host(self) -> np.ndarray:
        import dask

        (parts,) = dask.compute(self.rows.map_chunks(chunk_weights_host))
        return np.concatenate(parts)


# ----------------------------------------------------------------- seeding


def initial_centers(
    init: Any,
    rows: DaskRows,
    X_user: Any,
    n_clusters: int,
    random_state: np.random.RandomState,
) -> np.ndarray:
    """Initial centers (host, dtype of the data, centered coordinates).

    - ``"k-means||"``: as in memory (:func:`kgpu._init_parallel.parallel_centers`);
      for the same seed, the same candidates and centers as an in-memory fit.
    - ``"k-means++"``: greedy k-means++ would read the data ``n_clusters``
      times; on Dask it runs on the k-means|| candidates instead (weighted by
      the rows nearest to each), without the Lloyd refinement that
      ``"k-means||"`` adds. ``n_rounds + 1`` passes over the data.
    - ``"random"``: Forgy, row ids drawn on the host (with the same draws as in memory).
    - an array, or a callable ``init(X, n_clusters, random_state)`` given the Dask array.
    """
    offset = rows.context.offset
    if isinstance(init, str):
        candidate_rows = DaskCandidateRows(rows)
        if init == "random":
            ids = forgy_indices(rows.n_rows, n_clusters, candidate_rows.weights_host(), random_state)
            return candidate_rows.take(ids)
        return np.asarray(
            parallel_centers(candidate_rows, n_clusters, random_state, reduce_max_iter=30 if init == "k-means||" else 0),
            dtype=rows.dtype,
        )
    centers = init(X_user, n_clusters, random_state) if callable(init) else init
    what = "the init callable" if callable(init) else "init"
    centers = check_centers(centers, n_clusters, rows.n_features, rows.dtype, what)
    return centers if offset is None else centers - offset


def check_centers(centers: Any, n_clusters: int, n_features: int, dtype: Any, what: str) -> np.ndarray:
    """Initial centers given by the user, as a host array of ``dtype``."""
    if is_dask_array(centers):
        centers = centers.compute()
    centers = to_numpy(check_data(centers))
    if tuple(centers.shape) != (n_clusters, n_features):
        raise ValueError(
            f"The shape of the initial centers given by {what} {tuple(centers.shape)} "
            f"does not match (n_clusters, n_features) = ({n_clusters}, {n_features})."
        )
    return centers.astype(dtype, copy=False)


# --------------------------------------------------------------- estimator


def dask_rows(estimator: Any, X: Any, sample_weight: Any, *, reset: bool, persist: bool = False) -> DaskRows:
    """Validate Dask input for ``estimator`` and split it into chunks."""
    X = check_dask_data(X, estimator=estimator, reset=reset)
    weights = check_dask_sample_weight(sample_weight, X)
    context = ChunkContext(estimator.backend, estimator.device, estimator.working_memory, None)
    return DaskRows(X, weights, context, persist=persist)


def fit_kmeans(estimator: Any, X: Any, sample_weight: Any, *, n_clusters: int, max_iter: int, tol: float) -> Any:
    """:meth:`kgpu.KMeans.fit` on a Dask array (map-reduce over the row chunks).

    Sets the estimator's attributes: ``cluster_centers_`` (NumPy, or CuPy for
    CuPy chunks), ``labels_`` (a lazy Dask array), ``inertia_``, ``n_iter_``,
    ``history_``, ``n_features_in_``, ``backend_ = "dask"``.
    """
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.utils import check_random_state

    from ._progress import chain_callbacks, progress_bar

    init = estimator.init
    if isinstance(init, str) and init not in DASK_INIT_METHODS:
        estimator._resolve_n_init()  # names the valid choices for an unknown string
        raise ValueError(
            f"init={init!r} is not available for Dask input; use one of {DASK_INIT_METHODS}, "
            "an array or a callable."
        )
    n_init = estimator._resolve_n_init()
    rows = dask_rows(estimator, X, sample_weight, reset=True)
    check_n_clusters(n_clusters, rows.n_rows)
    moments = rows.map_reduce(chunk_moments, tol > 0, combine=merge_moments)
    check_moments(moments)
    offset = moments.mean.astype(rows.dtype) if estimator.copy_x else None
    variance = float(np.mean(moments.sq_dev / moments.total_weight))
    absolute_tol = tol * variance if tol > 0 else 0.0
    # On a cluster, the working copy stays in the workers' memory for the
    # whole fit (and Dask recomputes a lost chunk from the input's graph);
    # with local threads, keeping it would hold all of X in this process.
    raw_context = rows.context._replace(offset=offset)
    rows = rows.working_copy(offset, persist=_distributed_client() is not None)
    random_state = check_random_state(estimator.random_state)

    best = None
    with progress_bar(estimator.progress, description=type(estimator).__name__, unit="iter") as bar:
        for run in range(n_init):
            if n_init > 1:
                bar.describe(f"{type(estimator).__name__} run {run + 1}/{n_init}")
            centers = initial_centers(init, rows, X, n_clusters, random_state)
            result = lloyd_dask(
                rows, centers, max_iter=max_iter, tol=absolute_tol,
                on_iteration=chain_callbacks(estimator._printer(run), bar.on_iteration),
            )
            if best is None or result.inertia < best.inertia:
                best = result

    centers = best.centers if offset is None else best.centers + offset
    n_distinct = int(np.count_nonzero(best.counts > 0))
    if n_distinct < n_clusters:
        warnings.warn(
            f"Number of distinct clusters ({n_distinct}) found smaller than "
            f"n_clusters ({n_clusters}). Possibly due to duplicate points in X.",
            ConvergenceWarning,
            stacklevel=3,
        )
    estimator.cluster_centers_ = move_to(centers, rows.input_xp)
    estimator.labels_ = lazy_labels(check_dask_data(X), best.centers, raw_context)
    estimator.inertia_ = best.inertia
    estimator.n_iter_ = best.n_iter
    estimator.history_ = best.history
    estimator.backend_ = "dask"
    return estimator


# ----------------------------------------------------- lazy outputs, score


def _labels_block(block: Any, centers: np.ndarray, context: ChunkContext) -> Any:
    if block.shape[0] == 0:
        return namespace_of(block).zeros((0,), dtype=namespace_of(block).int64)

    def labels_of(chunk: Chunk) -> Any:
        nearest = assign(
            chunk.centered(), chunk.on_device(centers), xp=chunk.xp, rows_per_block=chunk.rows_per_block(centers.shape[0])
        )
        return move_to(nearest.labels, chunk.input_xp, chunk.input_device)

    return run_on_chunk(labels_of, block, None, 0, context)


def _distances_block(block: Any, centers: np.ndarray, context: ChunkContext) -> Any:
    if block.shape[0] == 0:
        return namespace_of(block).zeros((0, centers.shape[0]), dtype=block.dtype)

    def distances_of(chunk: Chunk) -> Any:
        distances = distance_matrix(
            chunk.X, chunk.on_device(centers), xp=chunk.xp, metric=EUCLIDEAN_METRIC, budget_mib=context.budget_mib
        )
        return move_to(distances, chunk.input_xp, chunk.input_device)

    return run_on_chunk(distances_of, block, None, 0, context)


def lazy_labels(X: Any, centers: np.ndarray, context: ChunkContext) -> Any:
    """Nearest center of every row as a lazy Dask array of int64 (``map_blocks``).

    ``centers`` and ``context.offset`` are in the same coordinates.
    """
    from dask.array.utils import meta_from_array

    return X.map_blocks(
        _labels_block, centers, context, dtype=np.int64, drop_axis=1,
        meta=meta_from_array(X._meta, ndim=1, dtype=np.int64),
    )


def predict_labels(estimator: Any, X: Any) -> Any:
    """:meth:`kgpu.KMeans.predict` of a Dask array: a lazy Dask array of int64.

    Non-finite rows are reported when the labels are computed.
    """
    rows = dask_rows(estimator, X, None, reset=False)
    return lazy_labels(_checked_finite(rows.X), _fitted_centers(estimator, rows.dtype), rows.context)


def transform(estimator: Any, X: Any) -> Any:
    """:meth:`kgpu.KMeans.transform` of a Dask array: lazy ``(n, k)`` Euclidean distances."""
    rows = dask_rows(estimator, X, None, reset=False)
    centers = _fitted_centers(estimator, rows.dtype)
    data = _checked_finite(rows.X)
    return data.map_blocks(
        _distances_block, centers, rows.context, dtype=rows.dtype, chunks=(data.chunks[0], (centers.shape[0],)),
    )


def score(estimator: Any, X: Any, sample_weight: Any) -> float:
    """:meth:`kgpu.KMeans.score` of a Dask array: minus the weighted inertia (one pass)."""
    rows = dask_rows(estimator, X, sample_weight, reset=False)
    centers = _fitted_centers(estimator, rows.dtype)
    moments_and_objective = rows.map_reduce(_chunk_checked_objective, centers, combine=_merge_checked)
    moments, inertia = moments_and_objective
    check_moments(moments)
    return -float(inertia)


def _chunk_checked_objective(chunk: Chunk, centers: np.ndarray) -> tuple[Moments, float]:
    moments = chunk_moments(chunk, with_variance=False)
    if not (moments.finite and moments.weights_finite and moments.weights_non_negative):
        return moments, 0.0
    return moments, chunk_objective(chunk, centers)[0]


def _merge_checked(*parts: tuple[Moments, float]) -> tuple[Moments, float]:
    return merge_moments(*(part[0] for part in parts)), sum(part[1] for part in parts)


def _fitted_centers(estimator: Any, dtype: Any) -> np.ndarray:
    from sklearn.utils.validation import check_is_fitted

    check_is_fitted(estimator, "cluster_centers_")
    return to_numpy(estimator.cluster_centers_).astype(dtype, copy=False)


def _raise_if_not_finite(block: Any) -> Any:
    xp = namespace_of(block)
    if not bool(xp.all(xp.isfinite(block))):
        problem = "NaN" if bool(xp.any(xp.isnan(block))) else "infinity"
        raise ValueError(f"Input X contains {problem}: remove or impute non-finite values first.")
    return block


def _checked_finite(X: Any) -> Any:
    """``X`` with a finiteness check in every chunk task (raised when computed)."""
    return X.map_blocks(_raise_if_not_finite, dtype=X.dtype, meta=X._meta)


# ------------------------------------------------------------ mini-batches


def partial_fit_minibatch(estimator: Any, X: Any, sample_weight: Any) -> Any:
    """:meth:`kgpu.MiniBatchKMeans.partial_fit` of a Dask array: one step per row chunk, in order.

    Chunk ``i`` is computed (to NumPy or CuPy, as Dask holds it) and given to
    the in-memory ``partial_fit`` as one mini-batch, then chunk ``i + 1``: the
    steps depend on each other, so the chunks are read one at a time, in row
    order, and the model is updated on the host that calls ``partial_fit``.
    Afterwards ``labels_`` is a lazy Dask array and ``inertia_`` the weighted
    inertia of all of ``X`` (one more pass) when ``compute_labels`` is set.
    """
    X = check_dask_data(X)
    weights = check_dask_sample_weight(sample_weight, X)
    weight_blocks = None if weights is None else weights.blocks
    for index in range(X.numblocks[0]):
        if X.chunks[0][index] == 0:
            continue
        block = X.blocks[index].compute()
        block_weights = None if weight_blocks is None else weight_blocks[index].compute()
        type(estimator).partial_fit(estimator, block, sample_weight=block_weights)
    if estimator.compute_labels and hasattr(estimator, "cluster_centers_"):
        rows = dask_rows(estimator, X, weights, reset=False)
        centers = _fitted_centers(estimator, rows.dtype)
        estimator.labels_ = lazy_labels(rows.X, centers, rows.context)
        estimator.inertia_ = float(rows.map_reduce(chunk_objective, centers)[0])
    return estimator


def fit_minibatch(estimator: Any, X: Any, sample_weight: Any) -> Any:
    """:meth:`kgpu.MiniBatchKMeans.fit` of a Dask array: a fresh model, then one pass of
    :func:`partial_fit_minibatch` over the row chunks in order (each chunk one step).

    The seeding runs on the first chunk; ``batch_size``, ``max_iter`` and the
    early stop do not apply (the chunks are the batches). ``n_iter_`` is 1.
    """
    for name in ("cluster_centers_", "labels_", "inertia_", "n_steps_", "_counts", "_random_state",
                 "_batch_size", "_n_since_last_reassign", "history_"):
        if hasattr(estimator, name):
            delattr(estimator, name)
    partial_fit_minibatch(estimator, X, sample_weight)
    estimator.n_iter_ = 1
    estimator.history_ = []
    return estimator
