"""Lloyd's iterations on a Dask array: each pass one task per chunk, or per worker thread on a cluster.

Each iteration is one pass: the fused Lloyd step of an in-memory fit runs on
every row chunk of the working copy (:func:`chunk_lloyd_sums`: the kernel
table's ``lloyd_step``, numba on NumPy chunks) and returns the per-cluster
sums and weights of the chunk; the partial sums are added in row order, in a
tree of fan-in :data:`~kgpu._dask_chunks.SPLIT_EVERY`, and the weighted means
taken (:func:`lloyd_update`). The additions are the same whoever runs them,
so the result has the same bits on any number of workers.

On a ``dask.distributed`` cluster (:class:`ClusterPasses`) a pass is one task
per worker thread, sent to the worker that holds its chunks
(:mod:`kgpu._dask_placement`); it runs its chunks one after the other and
returns their partial sums (:class:`ChunkParts`). The next pass is submitted
before the host has read this one: its tasks take this pass's results and
take the means themselves, exactly as the host does, so they start as soon as
this pass ends, and the centers are never sent by the host after the first
pass. The host reads the same results (center shift, empty clusters): one
host round trip per iteration, overlapping the workers' next pass. When the
host decides to stop, or must re-seed an empty cluster, the pass sent ahead
is cancelled. With Dask's local scheduler (:class:`LocalPasses`) each pass is
one ``dask.compute`` of a task per chunk.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import numpy as np

from ._assign import assign, assign_and_accumulate, weighted_sum
from ._backend import to_numpy
from ._dask_chunks import (
    Chunk,
    ChunkContext,
    DaskRows,
    _numpy_namespace,
    add_parts,
    concat_parts,
    distributed_client,
    run_on_chunk,
    tree_reduce,
)
from ._dask_placement import chunk_groups
from ._empty import farthest_points
from ._lloyd import IterationRecord, _centers_from_sums, _means, assign_cost_to_current, finish_iteration
from ._malloc import reusing_freed_memory
from ._segment import segment_weight


class LloydState(NamedTuple):
    """Per-cluster weighted sums and weights of one Lloyd pass (float64, host)."""

    sums: np.ndarray
    weights: np.ndarray


class LloydUpdate(NamedTuple):
    """The root of a Lloyd pass: its sums reduced and the weighted means taken.

    Attributes
    ----------
    centers : ndarray of shape (k, d), dtype of the data
        The new centers; a cluster without weight keeps its center (the host
        re-seeds it, see :func:`lloyd_dask`).
    sums, weights : ndarrays of shape (k, d) and (k,), float64
    shift : float
        Summed squared shift of the centers.
    n_empty : int
        Clusters without weight.
    """

    centers: np.ndarray
    sums: np.ndarray
    weights: np.ndarray
    shift: float
    n_empty: int


def centers_of(source: Any, *parts: LloydState) -> np.ndarray:
    """The centers a pass starts from.

    ``source`` is an array of centers or the :class:`LloydUpdate` of a pass;
    with ``parts`` (partial sums of the pass that started from ``source``),
    the means of the parts, as :func:`lloyd_update` takes them.
    """
    if parts:
        return lloyd_update(source, *parts).centers
    return source.centers if isinstance(source, LloydUpdate) else source


def chunk_lloyd_sums(chunk: Chunk, source: Any, *parts: LloydState) -> LloydState:
    """The fused E-step and M-step sums of one chunk (:func:`assign_and_accumulate`) from
    the centers of ``source`` and ``parts`` (:func:`centers_of`)."""
    centers = centers_of(source, *parts)
    step = assign_and_accumulate(
        chunk.design(), chunk.weights, chunk.on_device(centers), xp=chunk.xp,
        rows_per_block=chunk.rows_per_block(centers.shape[0]),
    )
    return LloydState(to_numpy(step.sums), to_numpy(step.weights))


def lloyd_update(source: Any, *parts: LloydState) -> LloydUpdate:
    """Root of a Lloyd pass: the parts added in row order, then the weighted means.

    ``parts`` are per-chunk :class:`LloydState` (added in the order given), or
    the :class:`ChunkParts` of a pass on a cluster (:func:`sum_in_row_order`).
    """
    centers = np.asarray(centers_of(source))
    state = sum_in_row_order(*parts) if isinstance(parts[0], ChunkParts) else add_parts(*parts)
    new_centers = _means(centers, centers, state.sums, state.weights, xp=_numpy_namespace())
    shift = float(np.sum((new_centers - centers) ** 2))
    return LloydUpdate(new_centers, state.sums, state.weights, shift, int(np.count_nonzero(state.weights <= 0)))


def chunk_relocation_candidates(chunk: Chunk, centers: Any, n_points: int) -> tuple:
    """The ``n_points`` positive-weight rows of the chunk farthest from their center.

    Returns host arrays ``(global ids, working rows, weights, labels, costs)``
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


def chunk_objective(chunk: Chunk, source: Any, *parts: LloydState) -> tuple[float, np.ndarray]:
    """Weighted inertia of the chunk on the centers (working frame; :func:`centers_of`) and
    the row count of each cluster."""
    centers = centers_of(source, *parts)
    # The working copy (or a chunk read into the working frame) is contiguous:
    # the native assignment kernel takes it as it is.
    rows = chunk.X if chunk.context.homogeneous else chunk.working()
    nearest = assign(rows, chunk.on_device(centers), xp=chunk.xp, rows_per_block=chunk.rows_per_block(centers.shape[0]))
    counts = segment_weight(nearest.labels, centers.shape[0], xp=chunk.xp, dtype=chunk.xp.float64)
    return weighted_sum(nearest.min_dist, chunk.weights, xp=chunk.xp), to_numpy(counts)


# ------------------------------------------------------------------ passes


class LocalPasses:
    """Passes as Dask graphs, each computed by one ``dask.compute`` (Dask's local scheduler).

    Nothing is sent ahead: a graph that took an earlier pass's result as its
    input would compute that pass again.
    """

    ahead = False

    def __init__(self, rows: DaskRows):
        self.rows = rows

    def put(self, centers: np.ndarray) -> Any:
        return centers

    def follow(self, pending: Any, centers: np.ndarray | None = None) -> Any:
        """What the next pass starts from: the host's copy of the centers."""
        return centers

    def lloyd(self, source: Any) -> Any:
        parts = self.rows.map_chunks(chunk_lloyd_sums, source)
        return tree_reduce(parts, add_parts, root=lloyd_update, root_args=(source,))

    def objective(self, source: Any) -> Any:
        return tree_reduce(self.rows.map_chunks(chunk_objective, source), add_parts)

    def result(self, handle: Any) -> Any:
        import dask

        (value,) = dask.compute(handle)
        return value

    def cancel(self, handle: Any) -> None:
        return None


class ChunkParts(NamedTuple):
    """What one task of a pass on a cluster returns (:func:`run_on_chunks`).

    Attributes
    ----------
    ids : tuple of int
        The chunks the task ran, in row order (indices into the fit's chunk list).
    results : tuple
        One result per chunk, in the order of ``ids``.
    centers : ndarray of shape (k, d)
        The centers the pass started from (every task of a pass has the same).
    worker : str or None
        Address of the worker that ran the task.
    """

    ids: tuple
    results: tuple
    centers: np.ndarray
    worker: str | None


def in_row_order(*parts: ChunkParts) -> list:
    """The per-chunk results of a pass's tasks, in row order."""
    pairs = sorted((index, result) for part in parts for index, result in zip(part.ids, part.results))
    return [result for _, result in pairs]


def sum_in_row_order(*parts: ChunkParts) -> Any:
    """The per-chunk results of a pass added up in the tree of :func:`~kgpu._dask_chunks.tree_reduce`.

    The same additions in the same order as a pass with one task per chunk
    (or Dask's local scheduler), so the sums have the same bits however the
    chunks were spread over the workers.
    """
    return tree_reduce(in_row_order(*parts), add_parts, submit=_call)


def _call(fn: Callable[..., Any], *args: Any) -> Any:
    return fn(*args)


def starting_centers(*previous: Any) -> np.ndarray:
    """The centers a pass on a cluster starts from.

    ``previous`` is either the centers the host sent (one array), or every
    :class:`ChunkParts` of the previous Lloyd pass: then the means of their
    sums (:func:`lloyd_update`, the host's computation, bit for bit).
    """
    if isinstance(previous[0], ChunkParts):
        return lloyd_update(previous[0].centers, *previous).centers
    return np.asarray(previous[0])


def run_on_chunks(
    fn: Callable[..., Any], ids: list, blocks: list, weights: list, starts: list, context: ChunkContext, *previous: Any
) -> ChunkParts:
    """Task body on a cluster: ``fn(chunk, centers)`` for each of a worker's chunks, one after the other.

    The centers are taken once (:func:`starting_centers`), then each chunk
    runs as a task of its own would (:func:`~kgpu._dask_chunks.run_on_chunk`);
    glibc keeps reusing freed tiles from one chunk to the next.
    """
    centers = starting_centers(*previous)
    with reusing_freed_memory():
        results = tuple(
            run_on_chunk(fn, block, weight, start, context, centers)
            for block, weight, start in zip(blocks, weights, starts)
        )
    return ChunkParts(tuple(ids), results, centers, _worker_address())


def _worker_address() -> str | None:
    try:
        from distributed import get_worker

        return get_worker().address
    except (ImportError, ValueError):
        return None


def hold(value: Any) -> Any:
    """Task body that holds a value sent by the host (recomputable, unlike scattered data)."""
    return value


class SentPass(NamedTuple):
    """A pass submitted to the cluster.

    Attributes
    ----------
    tasks : list of Future
        The pass's tasks (:class:`ChunkParts`), one per worker thread.
    workers : list of str or None
        Where each task was sent (``None``: anywhere).
    finish : callable
        Host side of the pass: ``finish(*parts)`` of the tasks' results.
    """

    tasks: list
    workers: list
    finish: Callable[..., Any]


class ClusterPasses:
    """Passes as ``dask.distributed`` futures over the persisted chunks: one task per worker thread.

    The chunks stay where the cluster keeps them: each pass sends one task
    per worker thread, restricted to that worker, with that worker's chunk
    futures (:meth:`_plan`, from ``who_has``), so no chunk moves and the
    scheduler and the client pay for a few tasks per iteration, not one per
    chunk. A task returns one partial result per chunk (:class:`ChunkParts`):
    the host, and the tasks of the next pass, add them in row order, so the
    result has the same bits wherever the chunks are.

    A pass starts from a *source*: the centers the host sent (a future of
    :func:`hold`), or the futures of the previous Lloyd pass, whose partial
    sums each task of the new pass turns into its centers itself
    (:func:`starting_centers`). The next pass is therefore submitted before
    the host has read this one, and starts as soon as this one's tasks end:
    the host reads the same results beside it (center shift, empty
    clusters).

    The host's values (the context of the fit and, at the start or after a
    re-seed, the centers) are held by tasks, not scattered: Dask's active
    memory manager keeps one replica of scattered data, which a dying
    worker would take with it, while a task's result is computed again.
    When a worker leaves, the tasks sent to it run elsewhere (the
    restriction is loose) and the host plans the next passes afresh.
    """

    ahead = True

    def __init__(self, client: Any, rows: DaskRows):
        import uuid

        self.client = client
        self.rows = rows
        self.chunks, self.weights = rows.futures()
        self.context = None
        self.groups: list | None = None
        # Keys name the fit, the pass and the node (no random key per task).
        self.token = uuid.uuid4().hex
        self.n_tasks = 0

    def _key(self, name: str) -> str:
        self.n_tasks += 1
        return f"kgpu-{name}-{self.token}-{self.n_tasks}"

    def _plan(self) -> list[tuple[str | None, list[int]]]:
        """The chunks grouped by the worker that holds them (:func:`~kgpu._dask_placement.chunk_groups`)."""
        from distributed import wait

        # The chunks may still be on their way (persisted a moment ago).
        wait(self.chunks)
        located = self.client.who_has(self.chunks)
        holders = [located.get(future.key, ()) for future in self.chunks]
        return chunk_groups(holders, self.rows.sizes, self.client.nthreads())

    def _map(self, fn: Callable[..., Any], source: tuple) -> SentPass:
        """One task of ``fn`` per group of chunks (:meth:`_plan`), starting from ``source``."""
        if self.groups is None:
            self.groups = self._plan()
        tasks = []
        for worker, ids in self.groups:
            weights = [None] * len(ids) if self.weights is None else [self.weights[i] for i in ids]
            # Loose: a task whose worker has left runs elsewhere instead of waiting for it.
            placement = {} if worker is None else {"workers": [worker], "allow_other_workers": True}
            tasks.append(self.client.submit(
                run_on_chunks, fn, [int(i) for i in ids], [self.chunks[i] for i in ids], weights,
                [int(self.rows.starts[i]) for i in ids], self.context, *source,
                key=self._key(fn.__name__), pure=False, **placement,
            ))
        return tasks, [worker for worker, _ in self.groups]

    def _hold(self, name: str, value: Any) -> Any:
        return self.client.submit(hold, value, key=self._key(name), pure=False)

    def put(self, centers: np.ndarray) -> tuple:
        if self.context is None:
            self.context = self._hold("context", self.rows.context)
        return (self._hold("centers", np.asarray(centers)),)

    def follow(self, pending: SentPass, centers: np.ndarray | None = None) -> tuple:
        """What the next pass starts from: ``pending``'s tasks (already submitted)."""
        return tuple(pending.tasks)

    def lloyd(self, source: tuple) -> SentPass:
        tasks, workers = self._map(chunk_lloyd_sums, source)
        return SentPass(tasks, workers, _lloyd_finish)

    def objective(self, source: tuple) -> SentPass:
        tasks, workers = self._map(chunk_objective, source)
        return SentPass(tasks, workers, sum_in_row_order)

    def result(self, handle: SentPass) -> Any:
        parts = self.client.gather(handle.tasks)
        if any(part.worker is None or part.worker != worker for part, worker in zip(parts, handle.workers)):
            self.groups = None  # a worker left, or chunks moved: plan the next passes again
        return handle.finish(*parts)

    def cancel(self, handle: SentPass | None) -> None:
        # Tasks of the pass not started yet are dropped; running ones finish unused.
        if handle is not None:
            self.client.cancel(handle.tasks)


def _lloyd_finish(*parts: ChunkParts) -> LloydUpdate:
    """The host's reading of a Lloyd pass: :func:`lloyd_update` of its tasks' results."""
    return lloyd_update(parts[0].centers, *parts)


def passes_for(rows: DaskRows) -> LocalPasses | ClusterPasses:
    """:class:`ClusterPasses` for rows persisted on a ``dask.distributed`` cluster, else :class:`LocalPasses`."""
    client = distributed_client() if rows.on_cluster else None
    return LocalPasses(rows) if client is None else ClusterPasses(client, rows)


# ------------------------------------------------------------------- Lloyd


class DaskLloydResult(NamedTuple):
    """Outcome of one Lloyd run on Dask (centers in the working frame)."""

    centers: np.ndarray
    inertia: float
    counts: np.ndarray
    n_iter: int
    history: list


def _reseeded_centers(rows: DaskRows, centers: np.ndarray, update: LloydUpdate) -> np.ndarray:
    """The M-step of a pass that left clusters empty: the empty-cluster policy of :mod:`kgpu._empty`.

    One more pass finds each chunk's farthest points; the union holds the
    farthest points of the whole data.
    """
    _, candidates, weights, labels, _ = rows.map_reduce(
        chunk_relocation_candidates, centers, update.n_empty, combine=concat_parts
    )
    return _centers_from_sums(
        candidates.astype(centers.dtype, copy=False), weights, centers, labels, update.sums, update.weights,
        xp=_numpy_namespace(), rows_per_block=max(1, candidates.shape[0]),
    )


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
        Lloyd's working copy ``[x_work, 1]`` (:meth:`DaskRows.working_copy`).
    centers_init : ndarray of shape (k, d), dtype of the data
        In the working frame.
    max_iter : int
    tol : float
    on_iteration : callable or None

    Returns
    -------
    DaskLloydResult
        The inertia and cluster counts are those of the returned centers
        (one more pass, sent ahead with the last iteration's).
    """
    passes = passes_for(rows)
    centers = np.asarray(centers_init)
    history: list[IterationRecord] = []
    pending = passes.lloyd(passes.put(centers))
    final = None
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        started = time.perf_counter()
        last = n_iter == max_iter
        # Sent before this pass is read: the workers go on while the host reads it.
        ahead = None
        if passes.ahead:
            following = passes.follow(pending)
            ahead = passes.objective(following) if last else passes.lloyd(following)
        update = passes.result(pending)
        new_centers, center_shift = update.centers, update.shift
        source = passes.follow(pending, new_centers)
        if update.n_empty:
            passes.cancel(ahead)
            ahead = None
            new_centers = _reseeded_centers(rows, centers, update)
            center_shift = float(np.sum((new_centers - centers) ** 2))
            source = passes.put(new_centers)
        centers = new_centers
        record = IterationRecord(n_iter, center_shift, -1, time.perf_counter() - started)
        stop, _ = finish_iteration(history, record, on_iteration, labels_stable=False, tol=tol)
        if stop or last:
            if not last:  # the pass sent ahead was the next Lloyd pass: not needed
                passes.cancel(ahead)
                ahead = None
            final = ahead if ahead is not None else passes.objective(source)
            break
        pending = ahead if ahead is not None else passes.lloyd(source)
    inertia, counts = passes.result(final)
    return DaskLloydResult(centers, float(inertia), counts, n_iter, history)
