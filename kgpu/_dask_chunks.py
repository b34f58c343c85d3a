"""A Dask matrix as row chunks: the task body, the chunk list, tree reductions, the first pass.

Every pass of the Dask engine (:mod:`kgpu._dask`, :mod:`kgpu._dask_lloyd`)
runs a function on each row chunk (:func:`run_on_chunk`, on a :class:`Chunk`
opened on its compute device) and adds the small partial results up in a
tree (:func:`tree_reduce`). The first pass (:func:`chunk_moments`,
:func:`merge_moments`) checks the data and finds the fit's working frame
(:mod:`kgpu._scale`: the weighted mean as origin, a power-of-two scale) in one
read of every chunk.
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Sequence

import numpy as np

from ._assign import assignment_block_rows, itemsize
from ._backend import device_of, move_to, namespace_of, resolve_compute, to_numpy
from ._blocks import _in_worker, block_rows, map_blocks, row_blocks
from ._distances import homogeneous
from ._malloc import reusing_freed_memory
from ._scale import Frame, working_exponent

#: Partial results combined per reduction task (the tree's fan-in).
SPLIT_EVERY = 8


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
    frame : kgpu._scale.Frame or None
        Working frame of the fit (host origin in the dtype of ``X``, or
        ``None``; power-of-two exponent): every row is read as
        ``(x - origin) * 2**-exponent``. ``None``: the rows as they are.
    homogeneous : bool
        The chunks already are Lloyd's working copy ``[x_work, 1]``
        (:meth:`DaskRows.working_copy`), not the rows themselves.
    """

    backend: Any
    device: Any
    budget_mib: float | None
    frame: Frame | None
    homogeneous: bool = False


class Chunk(NamedTuple):
    """One row chunk on its compute device.

    Attributes
    ----------
    X : array of shape (b, d), or (b, d + 1)
        The rows as given; or, when ``context.homogeneous``, the working copy
        ``[x_work, 1]``.
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

    def working(self) -> Any:
        """The rows in the working frame: a view of the working copy, a new array, or the rows."""
        if self.context.homogeneous:
            return self.X[:, :-1]
        frame = self.frame()
        return self.X if frame.is_identity else frame.apply(self.X)

    def design(self) -> Any:
        """``[x_work, 1]``: the rows in Lloyd's homogeneous coordinates (C-contiguous)."""
        if self.context.homogeneous:
            return self.X
        frame = self.frame()
        return homogeneous(self.X, xp=self.xp, offset=frame.origin, scale_exponent=-frame.exponent)

    def frame(self) -> Frame:
        """The context's working frame with its origin on this chunk's device."""
        frame = self.context.frame
        if frame is None:
            return Frame(None, 0)
        return Frame(None if frame.origin is None else self.on_device(frame.origin), frame.exponent)

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
    kgpu's own thread pool as well would oversubscribe the cores. A worker
    whose allocator was told to give memory back at once reuses freed tiles
    while the task runs (:mod:`kgpu._malloc`).
    """
    with reusing_freed_memory():
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

    def __init__(
        self, X: Any, sample_weight: Any, context: ChunkContext, *, persist: bool = False, optimize_graph: bool = True
    ):
        import dask

        if persist:
            # Graph optimisation would drop the annotations of a placed working copy.
            X, sample_weight = dask.persist(X, sample_weight, optimize_graph=optimize_graph)
        #: Chunks held by a ``dask.distributed`` cluster, reachable as futures (:meth:`futures`).
        self.on_cluster = persist and distributed_client() is not None
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
        #: Rows of each (non-empty) chunk.
        self.sizes = sizes[keep]
        blocks = X.to_delayed()[:, 0]
        self.blocks = [blocks[i] for i in keep]
        weight_blocks = None if sample_weight is None else sample_weight.to_delayed()
        self.weight_blocks = None if weight_blocks is None else [weight_blocks[i] for i in keep]
        self.input_xp = namespace_of(X._meta)

    def working_copy(self, frame: Frame, *, persist: bool) -> "DaskRows":
        """Rows as Lloyd's working copy ``[x_work, 1]`` in ``frame``, chunk by chunk.

        With ``persist``, the working copy is kept in the workers' memory for
        every pass to come (as an in-memory fit keeps its copy); otherwise
        each pass makes it again from the input's chunks. On a
        ``dask.distributed`` cluster the chunks of a persisted input (and
        their weights) are copied on the workers :meth:`_balanced_placement`
        chooses.
        """
        import dask

        context = self.context._replace(frame=frame)
        client = distributed_client() if persist else None
        placement = self._balanced_placement(client) if client is not None else None
        with dask.annotate(**_placed(placement)):
            design = self.X.map_blocks(
                _working_copy_block, context, dtype=self.dtype, meta=self.X._meta,
                chunks=(self.X.chunks[0], (self.n_features + 1,)),
            )
            # The weights go with their rows (a view where they already are).
            weights = None if self.sample_weight is None or placement is None else self.sample_weight.map_blocks(
                _same_block, dtype=self.sample_weight.dtype, meta=self.sample_weight._meta
            )
        if weights is None:
            weights = self.sample_weight
        return DaskRows(
            design, weights, context._replace(homogeneous=True), persist=persist, optimize_graph=placement is None
        )

    def _balanced_placement(self, client: Any) -> list[str] | None:
        """A worker for every row chunk, balanced (:func:`kgpu._dask_placement.balanced_placement`).

        Only for an input already in the workers' memory (persisted): its
        chunks stay where they are when that keeps the balance. ``None`` for
        a lazy input: each of its chunks is then read and copied in one task
        (the graph is optimised) wherever the scheduler runs it, rather than
        read on one worker and sent to another.
        """
        from distributed import futures_of

        from ._dask_placement import balanced_placement

        by_key = {future.key: future for future in futures_of(self.X)}
        blocks = self.X.to_delayed()[:, 0]
        present = [by_key[block.key] for block in blocks if block.key in by_key]
        if not present:
            return None
        located = client.who_has(present)
        holders = [located.get(block.key, ()) for block in blocks]
        return balanced_placement(holders, list(self.X.chunks[0]), client.nthreads())

    def with_context(self, context: ChunkContext) -> "DaskRows":
        """The same chunks read with another context (e.g. a fitted model's frame)."""
        import copy

        rows = copy.copy(self)
        rows.context = context
        return rows

    def weight_block(self, index: int) -> Any:
        return None if self.weight_blocks is None else self.weight_blocks[index]

    def futures(self) -> tuple[list, list | None]:
        """The ``dask.distributed`` futures of the persisted chunks and weights, in row order.

        Only for rows persisted on a ``dask.distributed`` client.
        """
        from distributed import futures_of

        def in_order(collection: Any, blocks: list) -> list:
            by_key = {future.key: future for future in futures_of(collection)}
            return [by_key[block.key] for block in blocks]

        weights = None if self.weight_blocks is None else in_order(self.sample_weight, self.weight_blocks)
        return in_order(self.X, self.blocks), weights

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


def _placed(placement: list[str] | None) -> dict:
    """``dask.annotate`` arguments putting row chunk ``i`` of a layer on ``placement[i]``.

    The restriction is loose: a chunk whose worker has left is computed elsewhere.
    """
    if placement is None:
        return {}

    def workers(key: Any) -> list[str]:
        # Keys of a row-chunked layer are (name, row chunk, ...); any other key is not placed.
        index = key[1] if isinstance(key, tuple) and len(key) > 1 else None
        return [placement[index]] if isinstance(index, int) and 0 <= index < len(placement) else []

    return {"workers": workers, "allow_other_workers": True}


def _same_block(block: Any) -> Any:
    return block


def _shared(value: Any) -> Any:
    """Arrays become one graph key that every task reads (not a copy per task)."""
    import dask

    if isinstance(value, np.ndarray):
        return dask.delayed(value, pure=True)
    if isinstance(value, ChunkContext):
        return dask.delayed(value, pure=True, traverse=False)
    return value


def _delayed_submit(fn: Callable[..., Any], *args: Any) -> Any:
    import dask

    return dask.delayed(fn, pure=True)(*args)


def tree_reduce(
    parts: list,
    combine: Callable[..., Any],
    split_every: int = SPLIT_EVERY,
    *,
    submit: Callable[..., Any] | None = None,
    root: Callable[..., Any] | None = None,
    root_args: tuple = (),
) -> Any:
    """Reduction of ``parts`` by ``combine`` in a tree of fan-in ``split_every``.

    ``combine`` takes any number of partial results (in row order) and
    returns one; adjacent parts are combined, so the order is kept.
    ``submit(fn, *args)`` makes one node of the tree: a lazy ``Delayed`` by
    default, or a ``dask.distributed`` future (``client.submit``). ``root``,
    when given, is the last node instead of ``combine``: it is called as
    ``root(*root_args, *parts)`` with the last at most ``split_every`` parts,
    so that the step after the reduction costs no task of its own.
    """
    submit = submit or _delayed_submit
    while len(parts) > split_every or (root is None and len(parts) > 1):
        parts = [submit(combine, *parts[i : i + split_every]) for i in range(0, len(parts), split_every)]
    return parts[0] if root is None else submit(root, *root_args, *parts)


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


def distributed_client() -> Any:
    """The active ``dask.distributed`` client, or None."""
    try:
        from distributed import default_client
    except ImportError:
        return None
    try:
        return default_client()
    except ValueError:
        return None


# ------------------------------------------------------------- first pass


class Moments(NamedTuple):
    """Per-chunk facts gathered by the first pass, merged by :func:`merge_moments`.

    The mean and the squared deviations are kept in units of ``2**exponent``
    (the scale of the largest magnitude seen), so that data near the largest
    or the smallest float neither overflows nor underflows on the way; the
    column extremes are kept as they are, in the dtype of ``X``.

    Attributes
    ----------
    finite : bool
        No NaN or infinity in ``X``.
    has_nan : bool
    weights_finite, weights_non_negative : bool
    total_weight : float
    exponent : int
    mean : ndarray of shape (d,), float64
        Weighted mean of the rows, times ``2**-exponent``.
    sq_dev : ndarray of shape (d,), float64
        Weighted sum of squared deviations from the mean, times ``2**(-2 exponent)``.
    column_min, column_max : ndarray of shape (d,), dtype of ``X``, or None
        Smallest and largest value of every column (all rows, whatever their
        weight); ``None`` when not finite.
    """

    finite: bool
    has_nan: bool
    weights_finite: bool
    weights_non_negative: bool
    total_weight: float
    exponent: int
    mean: np.ndarray
    sq_dev: np.ndarray
    column_min: np.ndarray | None
    column_max: np.ndarray | None


def _working_copy_block(block: Any, context: ChunkContext) -> Any:
    """``[x_work, 1]`` of one chunk, in the chunk's own namespace and device."""
    xp = namespace_of(block)
    frame = context.frame or Frame(None, 0)
    origin = None if frame.origin is None else xp.astype(move_to(frame.origin, xp, device_of(block)), block.dtype)
    return _in_worker(lambda: homogeneous(block, xp=xp, offset=origin, scale_exponent=-frame.exponent))


def _sum_exponent(column_min: np.ndarray, column_max: np.ndarray, itemsize: int) -> int:
    """Exponent of the units the sums are kept in (:func:`kgpu._scale.working_exponent`).

    0 for ordinary data, which is then summed as it is; data near the largest
    or the smallest float is scaled by a power of two first (exact), as the
    in-memory weighted mean does.
    """
    largest = float(max(np.max(np.abs(column_min)), np.max(np.abs(column_max)))) if column_min.size else 0.0
    return working_exponent(largest, itemsize)


#: Values per row of the wide view :func:`column_extremes` reduces.
WIDE_ROW_VALUES = 1024


def column_extremes(block: Any, xp: Any) -> tuple[np.ndarray, np.ndarray]:
    """Smallest and largest value of every column of ``block`` (host arrays; NaN where a column has one).

    A reduction down the rows of a narrow matrix runs a short inner loop per
    row; the rows are folded into wide rows of about :data:`WIDE_ROW_VALUES`
    values first (a view of contiguous rows), which makes it several times
    faster. Minima and maxima are exact in any order, so the result is the
    same.
    """
    n_rows, n_features = block.shape
    group = max(1, min(n_rows, WIDE_ROW_VALUES // max(1, n_features)))
    body = (n_rows // group) * group
    minima, maxima = [], []
    if group > 1 and body:
        wide = xp.reshape(block[:body, :], (body // group, group * n_features))
        minima.append(xp.reshape(xp.min(wide, axis=0), (group, n_features)))
        maxima.append(xp.reshape(xp.max(wide, axis=0), (group, n_features)))
        block = block[body:, :]
    if block.shape[0]:
        minima.append(block)
        maxima.append(block)
    return (
        to_numpy(xp.min(xp.concat(minima, axis=0), axis=0)),
        to_numpy(xp.max(xp.concat(maxima, axis=0), axis=0)),
    )


def chunk_moments(chunk: Chunk, with_variance: bool = True) -> Moments:
    """:class:`Moments` of one chunk: extremes and the mean, then the squared deviations.

    Both passes run over row blocks of the chunk (``working_memory``). The
    weighted sums are taken in the data's dtype block by block (as the
    in-memory weighted mean) and added in float64. Without ``with_variance``
    the second pass is skipped (``sq_dev`` is zero).
    """
    from ._scale import scale_by_power_of_two

    xp, X = chunk.xp, chunk.X
    n_rows, n_features = X.shape
    weights64 = xp.astype(chunk.weights, xp.float64)
    weights_finite = bool(xp.all(xp.isfinite(weights64)))
    weights_non_negative = bool(xp.all(weights64 >= 0))
    blocks = row_blocks(n_rows, block_rows(n_rows, n_features * 8 * 3, xp, chunk.context.budget_mib))

    def block_extremes(start: int, stop: int) -> tuple[np.ndarray, np.ndarray]:
        return column_extremes(X[start:stop, :], xp)

    extremes = map_blocks(block_extremes, blocks, xp)
    column_min = np.min(np.stack([part[0] for part in extremes]), axis=0)
    column_max = np.max(np.stack([part[1] for part in extremes]), axis=0)
    # min and max propagate NaN and reach the infinities: they tell whether X
    # is finite without a pass of their own.
    finite = bool(np.all(np.isfinite(column_min)) and np.all(np.isfinite(column_max)))
    has_nan = not finite and bool(np.any(np.isnan(column_min)) or np.any(np.isnan(column_max)))
    zeros = np.zeros(n_features)
    if not (finite and weights_finite and weights_non_negative):
        return Moments(finite, has_nan, weights_finite, weights_non_negative, 0.0, 0, zeros, zeros, None, None)
    exponent = _sum_exponent(column_min, column_max, itemsize(X, xp))
    total = float(xp.sum(weights64))
    if total <= 0:
        return Moments(True, False, True, True, 0.0, exponent, zeros, zeros, column_min, column_max)

    def block_sum(start: int, stop: int) -> Any:
        block = scale_by_power_of_two(X[start:stop, :], -exponent)
        return xp.astype(xp.matmul(chunk.weights[start:stop], block), xp.float64)

    sums = map_blocks(block_sum, blocks, xp)
    weighted_sum_of_rows = sums[0]
    for part in sums[1:]:
        weighted_sum_of_rows = weighted_sum_of_rows + part
    mean = weighted_sum_of_rows / total
    if not with_variance:
        return Moments(True, False, True, True, total, exponent, to_numpy(mean), zeros, column_min, column_max)

    def block_sq_dev(start: int, stop: int) -> Any:
        # One float64 copy of the block, worked on in place.
        deviation = scale_by_power_of_two(xp.astype(X[start:stop, :], xp.float64), -exponent)
        deviation -= mean
        deviation *= deviation
        return xp.matmul(weights64[start:stop], deviation)

    sq_devs = map_blocks(block_sq_dev, blocks, xp)
    sq_dev = sq_devs[0]
    for part in sq_devs[1:]:
        sq_dev = sq_dev + part
    return Moments(True, False, True, True, total, exponent, to_numpy(mean), to_numpy(sq_dev), column_min, column_max)


def _in_units(moments: Moments, exponent: int) -> tuple[np.ndarray, np.ndarray]:
    """``mean`` and ``sq_dev`` in units of ``2**exponent`` (``exponent`` >= the moments'): exact or smaller."""
    shift = moments.exponent - exponent
    return np.ldexp(moments.mean, shift), np.ldexp(moments.sq_dev, 2 * shift)


def merge_moments(*parts: Moments) -> Moments:
    """Chan, Golub & LeVeque's pairwise update of weighted means and squared deviations.

    The parts are brought to the larger unit first (scaling down by a power
    of two, which cannot overflow).
    """
    merged = parts[0]
    for part in parts[1:]:
        flags = (
            merged.finite and part.finite,
            merged.has_nan or part.has_nan,
            merged.weights_finite and part.weights_finite,
            merged.weights_non_negative and part.weights_non_negative,
        )
        if not all(flags[0:1] + flags[2:]):
            zeros = np.zeros_like(merged.mean)
            merged = Moments(*flags, 0.0, 0, zeros, zeros, None, None)
            continue
        exponent = max(merged.exponent, part.exponent)
        column_min = np.minimum(merged.column_min, part.column_min)
        column_max = np.maximum(merged.column_max, part.column_max)
        (mean_a, sq_dev_a), (mean_b, sq_dev_b) = _in_units(merged, exponent), _in_units(part, exponent)
        total = merged.total_weight + part.total_weight
        if part.total_weight <= 0:
            mean, sq_dev = mean_a, sq_dev_a
        elif merged.total_weight <= 0:
            mean, sq_dev = mean_b, sq_dev_b
        else:
            delta = mean_b - mean_a
            mean = mean_a + delta * (part.total_weight / total)
            sq_dev = sq_dev_a + sq_dev_b + delta * delta * (merged.total_weight * part.total_weight / total)
        merged = Moments(*flags, total, exponent, mean, sq_dev, column_min, column_max)
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


def frame_of_moments(moments: Moments, dtype: Any, *, center: bool) -> Frame:
    """The working frame of a fit from its first pass: as :func:`kgpu._scale.fit_frame` in memory.

    The origin is the weighted mean (in the data's dtype) when ``center``;
    the exponent comes from the largest ``|x - origin|``, which the column
    extremes give exactly (rounding is monotonic, so the largest rounded
    difference is the rounded difference of the extreme).
    """
    dtype = np.dtype(dtype)
    column_min, column_max = moments.column_min, moments.column_max
    largest = float(max(np.max(np.abs(column_min)), np.max(np.abs(column_max)))) if column_min.size else 0.0
    origin = None
    if center and largest > 0 and math.isfinite(largest):
        origin = np.ldexp(moments.mean, moments.exponent).astype(dtype)
        largest = float(max(np.max(column_max - origin), np.max(origin - column_min)))
    return Frame(origin, working_exponent(largest, dtype.itemsize))


def working_variance(moments: Moments, frame: Frame) -> float:
    """Mean over features of the weighted variance, in the working frame's units (scale of ``tol``)."""
    variance = float(np.mean(moments.sq_dev / moments.total_weight))
    return math.ldexp(variance, 2 * (moments.exponent - frame.exponent))
