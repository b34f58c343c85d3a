"""Lloyd's iterations on a Dask array: one task per chunk per iteration, reduced in a tree.

Each iteration is one pass: a task per row chunk runs the fused Lloyd step of
an in-memory fit on its chunk of the working copy (:func:`chunk_lloyd_sums`:
the kernel table's ``lloyd_step``, numba on NumPy chunks) and returns the
per-cluster sums and weights; the partial sums are added in a tree whose root
also takes the weighted means (:func:`lloyd_update`), so the M-step costs no
task of its own.

On a ``dask.distributed`` cluster (:class:`ClusterPasses`) the passes are
futures, and the next pass is submitted before the host has read this one.
Its tasks take the top of this pass's reduction (at most ``SPLIT_EVERY``
partial sums, a few kilobytes each) and take the means themselves, exactly
as the root does, so they start as soon as the partial sums exist: the
centers reach each worker once per iteration and are never embedded in the
tasks, and the scheduler does not wait for the root. The host reads the root
(center shift, empty clusters): one host round trip per iteration,
overlapping the workers' next pass. When the host decides to stop, or must
re-seed an empty cluster, the pass sent ahead is cancelled. With Dask's local
scheduler (:class:`LocalPasses`) each pass is one ``dask.compute``.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

import numpy as np

from ._assign import assign, assign_and_accumulate, weighted_sum
from ._backend import to_numpy
from ._dask_chunks import (
    Chunk,
    SPLIT_EVERY,
    DaskRows,
    _numpy_namespace,
    add_parts,
    concat_parts,
    distributed_client,
    run_on_chunk,
    tree_reduce,
)
from ._empty import farthest_points
from ._lloyd import IterationRecord, _centers_from_sums, _means, assign_cost_to_current, finish_iteration
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
    """Root of a Lloyd pass: the parts added in row order, then the weighted means."""
    centers = np.asarray(centers_of(source))
    state = add_parts(*parts)
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


class SentPass(NamedTuple):
    """A pass submitted to the cluster.

    Attributes
    ----------
    root : Future
        The pass's result (a :class:`LloydUpdate`, or the objective).
    tasks : list of Future
        Every task of the pass (what :meth:`ClusterPasses.cancel` drops).
    next_source : tuple or None
        What a Lloyd pass after this one starts from (see :class:`ClusterPasses`).
    """

    root: Any
    tasks: list
    next_source: Any = None


class ClusterPasses:
    """Passes as ``dask.distributed`` futures over the persisted chunks: one task per chunk.

    A pass starts from a *source* ``(previous, parts, held)``: its centers are
    the means of ``parts`` (the top of the previous pass's reduction, at most
    :data:`~kgpu._dask_chunks.SPLIT_EVERY` partial sums) from the centers of
    ``previous`` (:func:`lloyd_update`), or the centers of ``previous`` alone
    when there are no parts; ``held`` is a future holding those centers. The
    chunk tasks of the next pass therefore wait only for the partial sums of
    this one, not for its root: the root (the means, for the host) is
    computed beside them. The context (frame, budget) is scattered once per
    fit with the first centers, later centers only when the host re-seeds an
    empty cluster (:meth:`put`).
    """

    ahead = True

    def __init__(self, client: Any, rows: DaskRows):
        import uuid

        self.client = client
        self.rows = rows
        self.chunks, self.weights = rows.futures()
        self.context = None
        # Keys name the fit, the pass and the node (no random key per task).
        self.token = uuid.uuid4().hex
        self.n_tasks = 0

    def _key(self, fn: Callable[..., Any]) -> str:
        self.n_tasks += 1
        return f"kgpu-{fn.__name__}-{self.token}-{self.n_tasks}"

    def _submit(self, fn: Callable[..., Any], *args: Any) -> Any:
        return self.client.submit(fn, *args, key=self._key(fn))

    def _map(self, fn: Callable[..., Any], source: tuple) -> list:
        """One task per chunk, submitted as one graph."""
        previous, parts, _ = source
        n_chunks = len(self.chunks)
        columns = [[previous] * n_chunks] + [[part] * n_chunks for part in parts]
        return self.client.map(
            run_on_chunk, [fn] * n_chunks, self.chunks, self.weights or [None] * n_chunks,
            [int(start) for start in self.rows.starts], [self.context] * n_chunks, *columns,
            key=[self._key(fn) for _ in range(n_chunks)],
        )

    def _reduce(self, parts: list, tasks: list) -> list:
        """Tree levels of :func:`add_parts` until at most ``SPLIT_EVERY`` parts are left."""
        while len(parts) > SPLIT_EVERY:
            parts = [self._submit(add_parts, *parts[i : i + SPLIT_EVERY]) for i in range(0, len(parts), SPLIT_EVERY)]
            tasks += parts
        return parts

    def put(self, centers: np.ndarray) -> tuple:
        # One round trip; the context travels with the first centers (in a
        # list: a named tuple would be scattered field by field).
        if self.context is None:
            self.context, held = self.client.scatter([self.rows.context, np.asarray(centers)], broadcast=True, hash=False)
        else:
            [held] = self.client.scatter([np.asarray(centers)], broadcast=True, hash=False)
        return (held, (), held)

    def follow(self, pending: SentPass, centers: np.ndarray | None = None) -> tuple:
        """What the next pass starts from: ``pending``'s partial sums (already submitted)."""
        return pending.next_source

    def lloyd(self, source: tuple) -> SentPass:
        tasks = self._map(chunk_lloyd_sums, source)
        top = self._reduce(list(tasks), tasks)
        root = self._submit(lloyd_update, source[2], *top)
        return SentPass(root, tasks + [root], (source[2], tuple(top), root))

    def objective(self, source: tuple) -> SentPass:
        tasks = self._map(chunk_objective, source)
        top = self._reduce(list(tasks), tasks)
        root = self._submit(add_parts, *top) if len(top) > 1 else top[0]
        return SentPass(root, tasks + [root])

    def result(self, handle: SentPass) -> Any:
        return handle.root.result()

    def cancel(self, handle: SentPass | None) -> None:
        # Tasks of the pass not started yet are dropped; running ones finish unused.
        if handle is not None:
            self.client.cancel(handle.tasks)


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
