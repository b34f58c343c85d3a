"""Dask arrays: K-Means as map-reduce over row chunks, on whatever scheduler is active.

A Dask array is never gathered. Every pass over the data is one task per row
chunk (:mod:`kgpu._dask_chunks`) running the same kernels as an in-memory fit
on that chunk (:func:`kgpu._assign.assign_and_accumulate`, :mod:`kgpu._segment`,
:mod:`kgpu._init_parallel`...) and returning a small partial result
(per-cluster sums and weights, a partial objective, a few candidate rows);
Dask adds the partial results up in a tree. The passes run on the active
scheduler: a ``dask.distributed`` client when one is set (a ``LocalCluster``, a
``dask-cuda`` ``LocalCUDACluster``, a remote cluster), else Dask's local
threads. On a cluster, Lloyd's iterations (:mod:`kgpu._dask_lloyd`) are one
task per worker thread running that worker's chunks, and keep the workers
busy while the host reads each iteration's result.

The fit computes in the same working frame as in memory (:mod:`kgpu._scale`:
the weighted mean as origin and a power-of-two scale, found in the first
pass), so data far from the origin or at extreme magnitudes is clustered as
it is in memory, and ``predict`` / ``transform`` / ``score`` of a Dask array
use the fitted model's frame.

Each chunk is computed in its own namespace (array-api-compat resolves it per
chunk: NumPy chunks on the CPU, CuPy chunks on their GPU), or moved to the
``backend=`` / ``device=`` of the estimator. Inside a task, kgpu's row blocks
run one after the other: Dask already runs one task per worker thread.

What a fit does, pass by pass (``k`` clusters):

1. one pass: finiteness of ``X`` and of the weights, total weight, column
   extremes, weighted mean (the origin of the working frame) and, when
   ``tol > 0``, variance (the scale of ``tol``), merged across chunks with
   Chan's pairwise update (:func:`kgpu._dask_chunks.merge_moments`);
2. Lloyd's working copy ``[x_work, 1]`` of every chunk, as in memory;
3. the initialisation: ``"k-means||"`` (``n_rounds + 1`` passes), ``"random"``
   (host-drawn rows), an array or a callable; ``"k-means++"`` is run on the
   k-means|| candidates (see :func:`initial_centers`);
4. one pass per Lloyd iteration, plus one more for the few farthest points
   when a cluster is left empty (the empty-cluster policy of
   :mod:`kgpu._empty`, applied to the per-chunk top candidates);
5. one pass for the inertia of the final centers (on a cluster, sent with the
   last iteration's).

With a ``dask.distributed`` client, the working copy is persisted on the
workers for the duration of the fit (about the size of ``X``; balanced across
the worker threads when ``X`` is persisted, :mod:`kgpu._dask_placement`), so the passes read
worker memory rather than recomputing the input graph; a worker that dies has
its chunks recomputed by Dask from the input's graph and the fit goes on.
With Dask's local threads nothing is persisted: every pass recomputes its
chunks, and only a few chunks are in memory at a time. ``labels_``,
``predict`` and ``transform`` return lazy Dask arrays (``map_blocks`` of the
assignment kernel).
"""

from __future__ import annotations

import numbers
from typing import Any, Callable

import numpy as np

from ._assign import assign, distance_matrix, weighted_sum
from ._backend import move_to, namespace_of, to_numpy
from ._dask_chunks import (
    Chunk,
    ChunkContext,
    DaskRows,
    Moments,
    _numpy_namespace,
    _shared,
    add_parts,
    check_moments,
    chunk_moments,
    distributed_client,
    frame_of_moments,
    merge_moments,
    run_on_chunk,
    tree_reduce,
    working_variance,
)
from ._dask_lloyd import DaskLloydResult, chunk_objective, lloyd_dask
from ._distances import check_metric
from ._init import forgy_indices
from ._init_parallel import (
    attracted_weight,
    min_sq_dist_update,
    parallel_centers,
    pick_by_cumulative_weight,
    sample_rows,
)
from ._scale import Frame, frame_of_centers
from ._validation import check_dask_data, check_data, check_n_clusters, check_sample_weight, is_dask_array

#: ``transform`` gives Euclidean distances, as in memory.
EUCLIDEAN_METRIC = check_metric("euclidean")

#: ``init`` values the Dask engine accepts as a string.
DASK_INIT_METHODS = ("k-means||", "k-means++", "random")

__all__ = [
    "ChunkContext", "DaskLloydResult", "DaskRows", "check_dask_data", "fit_kmeans", "is_dask_array", "lloyd_dask",
    "predict_labels", "score", "transform",
]


# ------------------------------------------------------------- validation


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


# ------------------------------------------------------ k-means|| on chunks


def chunk_weight_total(chunk: Chunk) -> float:
    """Running-sum total of the chunk's weights (float64)."""
    return float(np.cumsum(to_numpy(chunk.xp.astype(chunk.weights, chunk.xp.float64)))[-1])


def chunk_pick(chunk: Chunk, weight_before: float, uniform: float, total: float) -> int:
    """Global row of a weighted draw that falls in this chunk."""
    cumulative = weight_before + np.cumsum(to_numpy(chunk.xp.astype(chunk.weights, chunk.xp.float64)))
    return chunk.start + pick_by_cumulative_weight(cumulative, uniform, total)


def chunk_take(chunk: Chunk, local_ids: np.ndarray) -> np.ndarray:
    """Rows ``local_ids`` of the chunk in the working frame, on the host."""
    ids = chunk.xp.asarray(local_ids, device=chunk.device)
    if chunk.context.homogeneous:
        return to_numpy(chunk.xp.take(chunk.working(), ids, axis=0))
    rows = chunk.xp.take(chunk.X, ids, axis=0)
    return to_numpy(chunk.frame().apply(rows))


def chunk_closest(chunk: Chunk, closest_sq_dist: Any, new_rows: np.ndarray) -> Any:
    """The chunk's ``min(D^2)`` to the candidates so far (kept on the worker)."""
    return min_sq_dist_update(
        chunk.working(), chunk.on_device(new_rows), closest_sq_dist, xp=chunk.xp, budget_mib=chunk.context.budget_mib
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
            chunk.working(), chunk.on_device(candidates), chunk.weights, xp=chunk.xp, budget_mib=chunk.context.budget_mib
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
    """Initial centers (host, dtype of the data, in the working frame of ``rows``).

    - ``"k-means||"``: as in memory (:func:`kgpu._init_parallel.parallel_centers`);
      for the same seed, the same candidates and centers as an in-memory fit.
    - ``"k-means++"``: greedy k-means++ would read the data ``n_clusters``
      times; on Dask it runs on the k-means|| candidates instead (weighted by
      the rows nearest to each), without the Lloyd refinement that
      ``"k-means||"`` adds. ``n_rounds + 1`` passes over the data.
    - ``"random"``: Forgy, row ids drawn on the host (with the same draws as in memory).
    - an array, or a callable ``init(X, n_clusters, random_state)`` given the Dask array.
    """
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
    frame = rows.context.frame
    return centers if frame is None else frame.apply(centers)


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
    # The in-memory fit's working frame (kgpu._scale), from the same first pass.
    frame = frame_of_moments(moments, rows.dtype, center=bool(estimator.copy_x))
    estimator._working_frame = frame.to_host()
    absolute_tol = tol * working_variance(moments, frame) if tol > 0 else 0.0
    # On a cluster, the working copy stays in the workers' memory for the
    # whole fit (and Dask recomputes a lost chunk from the input's graph);
    # with local threads, keeping it would hold all of X in this process.
    raw_context = rows.context._replace(frame=frame)
    rows = rows.working_copy(frame, persist=distributed_client() is not None)
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

    centers = frame.restore(best.centers)
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
    estimator.inertia_ = frame.restore_distances(best.inertia, 2)
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
            chunk.working(), chunk.on_device(centers), xp=chunk.xp, rows_per_block=chunk.rows_per_block(centers.shape[0])
        )
        return move_to(nearest.labels, chunk.input_xp, chunk.input_device)

    return run_on_chunk(labels_of, block, None, 0, context)


def _distances_block(block: Any, centers: np.ndarray, context: ChunkContext) -> Any:
    if block.shape[0] == 0:
        return namespace_of(block).zeros((0, centers.shape[0]), dtype=block.dtype)

    def distances_of(chunk: Chunk) -> Any:
        distances = distance_matrix(
            chunk.working(), chunk.on_device(centers), xp=chunk.xp, metric=EUCLIDEAN_METRIC,
            budget_mib=context.budget_mib,
        )
        distances = chunk.frame().restore_distances(distances, 1)
        return move_to(distances, chunk.input_xp, chunk.input_device)

    return run_on_chunk(distances_of, block, None, 0, context)


def lazy_labels(X: Any, centers: np.ndarray, context: ChunkContext) -> Any:
    """Nearest center of every row as a lazy Dask array of int64 (``map_blocks``).

    ``centers`` are in the working frame of ``context`` (the rows are read in it).
    """
    from dask.array.utils import meta_from_array

    return X.map_blocks(
        _labels_block, centers, context, dtype=np.int64, drop_axis=1,
        meta=meta_from_array(X._meta, ndim=1, dtype=np.int64),
    )


def fitted_model(estimator: Any, rows: DaskRows) -> tuple[np.ndarray, ChunkContext, Frame]:
    """``(centers, context, frame)``: the fitted centers in the model's working frame, and a
    context that reads the rows in it.

    As in memory (``_in_working_frame`` of the estimators): the fit's frame,
    so that ``predict(X)`` equals ``labels_`` far from the origin; a model
    whose fit kept no frame uses the centers' mean and scale.
    """
    from ._scale import is_translation_invariant

    centers = _fitted_centers(estimator, rows.dtype)
    stored = getattr(estimator, "_working_frame", None)
    if stored is None or (stored[0] is not None and np.shape(stored[0]) != (centers.shape[1],)):
        center = is_translation_invariant(estimator._objective_metric())
        frame = frame_of_centers(centers, xp=_numpy_namespace(), center=center)
    else:
        origin = None if stored[0] is None else to_numpy(stored[0]).astype(rows.dtype)
        frame = Frame(origin, int(stored[1]))
    return frame.apply(centers), rows.context._replace(frame=frame), frame


def predict_labels(estimator: Any, X: Any) -> Any:
    """:meth:`kgpu.KMeans.predict` of a Dask array: a lazy Dask array of int64.

    Non-finite rows are reported when the labels are computed.
    """
    rows = dask_rows(estimator, X, None, reset=False)
    centers, context, _ = fitted_model(estimator, rows)
    return lazy_labels(_checked_finite(rows.X), centers, context)


def transform(estimator: Any, X: Any) -> Any:
    """:meth:`kgpu.KMeans.transform` of a Dask array: lazy ``(n, k)`` Euclidean distances."""
    rows = dask_rows(estimator, X, None, reset=False)
    centers, context, _ = fitted_model(estimator, rows)
    data = _checked_finite(rows.X)
    return data.map_blocks(
        _distances_block, centers, context, dtype=rows.dtype, chunks=(data.chunks[0], (centers.shape[0],)),
    )


def score(estimator: Any, X: Any, sample_weight: Any) -> float:
    """:meth:`kgpu.KMeans.score` of a Dask array: minus the weighted inertia (one pass)."""
    rows = dask_rows(estimator, X, sample_weight, reset=False)
    centers, context, frame = fitted_model(estimator, rows)
    moments, inertia = rows.with_context(context).map_reduce(_chunk_checked_objective, centers, combine=_merge_checked)
    check_moments(moments)
    return -frame.restore_distances(float(inertia), 2)


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
        centers, context, frame = fitted_model(estimator, rows)
        estimator.labels_ = lazy_labels(rows.X, centers, context)
        inertia = rows.with_context(context).map_reduce(chunk_objective, centers)[0]
        estimator.inertia_ = frame.restore_distances(float(inertia), 2)
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
