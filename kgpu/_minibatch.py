"""Mini-Batch K-Means: per-center learning rates on small random batches, and streaming.

The kernel is :func:`minibatch_step`: one E-step on a batch (:func:`kgpu._assign.assign`),
per-cluster weighted sums of the batch (:func:`kgpu._segment.segment_sum`,
:func:`kgpu._segment.segment_weight`), and the update

    n_j <- n_j + W_j
    c_j <- c_j + (S_j - W_j c_j) / n_j

where ``W_j`` and ``S_j`` are the weight and the weighted sum of the batch rows
nearest to ``c_j`` and ``n_j`` is all the weight center ``j`` has ever seen
(scikit-learn's ``_mini_batch_step``: ``c_j`` is always the weighted mean of every
row it has been given). Centers that are starved (``n_j`` below a fraction of the
largest ``n``) are moved to batch rows drawn with probability proportional to
``w * D^2`` (k-means++ sampling on the batch).

Every random draw (initial subsample, seeding, batches, reassignment) is made on
the host from one ``RandomState``, so a seed gives the same batches, hence the same
result, on every backend. The estimator, :class:`MiniBatchKMeans`, adds scikit-learn's
early stopping (no improvement of a smoothed batch inertia, or small center moves)
and ``partial_fit`` for data that arrives in chunks.
"""

from __future__ import annotations

import math
import warnings
from typing import Any, Callable, NamedTuple

import numpy as np
from sklearn.utils import check_random_state

from . import _sparse
from ._assign import Assignment, assign, assignment_block_rows, itemsize as _itemsize, weighted_sum
from ._backend import device_of, to_numpy
from ._base import Placement, fitted_backend_name
from ._blocks import map_blocks, row_blocks
from ._empty import empty_cluster_ids
from ._init import forgy_indices, kmeans_plusplus_indices, take_rows
from ._scale import IDENTITY, Frame, frame_view
from ._kmeans import KMeans, mean_feature_variance
from ._progress import check_progress
from ._segment import segment_sum, segment_weight
from ._sparse import is_sparse
from ._spherical import cosine_inertia, unit_centers, unit_rows_blockwise
from ._distances import unit_rows
from ._stream import StreamedRows, needs_streaming
from ._validation import check_n_clusters, check_non_negative_float, check_positive_int, is_dask_array

#: Seeding methods accepted by ``init`` as a string (k-means++ or Forgy).
SEEDING_METHODS = ("k-means++", "random")


# ----------------------------------------------------------------- kernels ---


def seed_centers(
    method: str,
    X: Any,
    sample_weight: Any,
    n_clusters: int,
    random_state: np.random.RandomState,
    *,
    xp: Any,
) -> Any:
    """Initial centers by greedy k-means++ or by Forgy, drawn on the host.

    Parameters
    ----------
    method : {"k-means++", "random"}
    X : array of shape (n, d)
    sample_weight : array of shape (n,)
    n_clusters : int
    random_state : numpy.random.RandomState
    xp : namespace

    Returns
    -------
    centers : array of shape (n_clusters, d), dtype and device of ``X``
        Rows of ``X``.
    """
    if method == "k-means++" and is_sparse(X):
        indices = _sparse.plusplus_indices(X, n_clusters, to_numpy(sample_weight), random_state)
    elif method == "k-means++":
        indices = kmeans_plusplus_indices(X, n_clusters, sample_weight, random_state, xp=xp)
    else:
        indices = forgy_indices(X.shape[0], n_clusters, sample_weight, random_state)
    return _sparse.take_dense_rows(X, indices) if is_sparse(X) else take_rows(X, indices, xp=xp)


def nearest_centers(X: Any, centers: Any, *, xp: Any, rows_per_block: int) -> Assignment:
    """:func:`kgpu._assign.assign` of dense rows, :func:`kgpu._sparse.assign` of SciPy sparse rows."""
    if is_sparse(X):
        return Assignment(*_sparse.assign(X, to_numpy(centers)))
    return assign(X, centers, xp=xp, rows_per_block=rows_per_block)


def batch_rows_of(X: Any, indices: np.ndarray, *, xp: Any) -> Any:
    """Rows ``indices`` (host) of ``X``: sparse rows stay sparse."""
    return X[np.asarray(indices)] if is_sparse(X) else take_rows(X, indices, xp=xp)


def take_host_ids(values: Any, indices: np.ndarray, *, xp: Any) -> Any:
    """``values[indices]`` along the first axis for host integer ``indices``."""
    device_ids = xp.asarray(np.asarray(indices, dtype=np.int64), device=device_of(values))
    return xp.take(values, device_ids, axis=0)


class WeightedRowSampler:
    """Row indices drawn with replacement ∝ fixed probabilities, as ``RandomState.choice``.

    ``choice(n, size, p=p)`` validates and sums ``p`` at every call (three
    passes over ``n`` values per batch); the cumulative distribution is
    computed here once, and each draw consumes the same uniforms and returns
    the same indices as ``choice`` would.

    Parameters
    ----------
    probabilities : ndarray of shape (n,), float64
        Non-negative, summing to 1.
    """

    def __init__(self, probabilities: np.ndarray):
        cdf = np.cumsum(probabilities)
        cdf /= cdf[-1]
        self.cdf = cdf

    def draw(self, random_state: np.random.RandomState, size: int) -> np.ndarray:
        """``size`` row indices (host, int64)."""
        return self.cdf.searchsorted(random_state.random_sample(size), side="right").astype(np.int64, copy=False)


class MiniBatchStep(NamedTuple):
    """Outcome of one mini-batch step.

    Attributes
    ----------
    centers : array of shape (k, d), dtype of the batch
        Updated (and possibly reassigned) centers.
    counts : ndarray of shape (k,), float64 (host)
        Weight each center has seen, this batch included.
    inertia : float
        ``sum(w_i * ||x_i - c_old[label_i]||^2)`` over the batch, before the update.
    n_reassigned : int
        Centers moved to new rows by the reassignment rule.
    """

    centers: Any
    counts: np.ndarray
    inertia: float
    n_reassigned: int


def batch_cluster_sums(
    X: Any, labels: Any, sample_weight: Any, n_clusters: int, *, xp: Any, rows_per_block: int
) -> Any:
    """Per-cluster weighted sums of ``X`` in float64, ``(k, d)``.

    Row blocks are summed separately and added in float64, so a large
    ``partial_fit`` chunk in float32 does not lose precision.
    """

    def one_block(start: int, stop: int) -> Any:
        block_sums = segment_sum(X[start:stop, :], labels[start:stop], n_clusters, sample_weight[start:stop], xp=xp)
        return xp.astype(block_sums, xp.float64)

    parts = map_blocks(one_block, row_blocks(X.shape[0], rows_per_block), xp)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def minibatch_step(
    X: Any,
    sample_weight: Any,
    centers: Any,
    counts: np.ndarray,
    *,
    xp: Any,
    rows_per_block: int,
    random_state: np.random.RandomState | None = None,
    reassignment_ratio: float = 0.0,
) -> MiniBatchStep:
    """One mini-batch update of the centers (scikit-learn's ``_mini_batch_step``).

    Parameters
    ----------
    X : array of shape (b, d), float32 or float64
        The batch.
    sample_weight : array of shape (b,), dtype of ``X``
    centers : array of shape (k, d), dtype of ``X``
    counts : ndarray of shape (k,), float64 (host)
        Weight each center has seen so far (not modified).
    xp : namespace
    rows_per_block : int
        Rows per assignment block.
    random_state : numpy.random.RandomState or None
        Draws the reassigned rows; needed when ``reassignment_ratio > 0``.
    reassignment_ratio : float
        ``0`` skips reassignment. Otherwise, after the update, the centers whose
        count is below ``reassignment_ratio * counts.max()`` (at most
        ``b // 2`` of them, the least fed first) move to distinct batch rows
        drawn with probability proportional to ``w * D^2`` (``D``: distance to
        the nearest center before the update), and their count is raised to
        the smallest count of the centers that stay, so they are not
        reassigned again at once.

    Returns
    -------
    MiniBatchStep
        The update is computed in float64: for every center ``j`` with batch
        weight ``W_j > 0`` and weighted batch sum ``S_j``,
        ``n_j += W_j`` then ``c_j += (S_j - W_j c_j) / n_j``; centers that get
        no batch weight do not move.
    """
    n_clusters = centers.shape[0]
    nearest = nearest_centers(X, centers, xp=xp, rows_per_block=rows_per_block)
    if is_sparse(X):
        batch_sums, batch_weights = _sparse.cluster_sums(X, nearest.labels, to_numpy(sample_weight), n_clusters)
    else:
        batch_sums = batch_cluster_sums(X, nearest.labels, sample_weight, n_clusters, xp=xp, rows_per_block=rows_per_block)
        batch_weights = segment_weight(nearest.labels, n_clusters, sample_weight, xp=xp, dtype=xp.float64)
    new_counts = counts + to_numpy(batch_weights)
    # 1 / n_j only where the center was fed: elsewhere S_j and W_j are zero
    # and the center stays put.
    rates = np.where(new_counts > 0, 1.0 / np.where(new_counts > 0, new_counts, 1.0), 0.0)
    centers64 = xp.astype(centers, xp.float64)
    rates_device = xp.asarray(rates, device=device_of(centers64))
    centers64 = centers64 + (batch_sums - batch_weights[:, None] * centers64) * rates_device[:, None]
    new_centers = xp.astype(centers64, X.dtype)
    inertia = weighted_sum(nearest.min_dist, sample_weight, xp=xp)

    n_reassigned = 0
    if reassignment_ratio > 0:
        new_centers, new_counts, n_reassigned = _reassign_starved(
            X, sample_weight, nearest.min_dist, new_centers, new_counts,
            reassignment_ratio, random_state, xp=xp,
        )
    return MiniBatchStep(new_centers, new_counts, inertia, n_reassigned)


def _reassign_starved(X, sample_weight, min_sq_dist, centers, counts, reassignment_ratio, random_state, *, xp):
    """Move starved centers to batch rows drawn with probability ``w * D^2``."""
    n_rows, n_clusters = X.shape[0], centers.shape[0]
    starved = counts < reassignment_ratio * counts.max()
    limit = int(0.5 * n_rows)
    if starved.sum() > limit:
        # Reassign at most half a batch worth of centers: the least fed ones.
        starved[np.argsort(counts, kind="stable")[limit:]] = False
    targets = np.flatnonzero(starved)
    if targets.size == 0:
        return centers, counts, 0
    probabilities = to_numpy(xp.astype(sample_weight, xp.float64) * xp.astype(min_sq_dist, xp.float64))
    n_candidates = int(np.count_nonzero(probabilities > 0))
    if n_candidates < targets.size:
        # Rows already on a center cannot seed a new one; keep the least fed.
        targets = targets[np.argsort(counts[targets], kind="stable")[:n_candidates]]
    if targets.size == 0:
        return centers, counts, 0
    chosen = random_state.choice(n_rows, size=targets.size, replace=False, p=probabilities / probabilities.sum())
    # One take from [centers; chosen rows] replaces the targeted rows.
    source_of_row = np.arange(n_clusters)
    source_of_row[targets] = n_clusters + np.arange(targets.size)
    chosen_rows = _sparse.take_dense_rows(X, chosen) if is_sparse(X) else take_host_ids(X, chosen, xp=xp)
    stacked = xp.concat([centers, chosen_rows], axis=0)
    centers = take_host_ids(stacked, source_of_row, xp=xp)
    counts = counts.copy()
    staying = np.ones(n_clusters, dtype=bool)
    staying[targets] = False
    if staying.any():
        counts[targets] = counts[staying].min()
    return centers, counts, int(targets.size)


class StepRecord(NamedTuple):
    """What one mini-batch step did (kept in ``history_``).

    ``batch_inertia`` is the mean weighted squared distance of the batch rows
    to the centers before the step; ``ewa_inertia`` its smoothed value used by
    the early stop (``None`` at the first step).
    """

    step: int
    batch_inertia: float
    ewa_inertia: float | None
    center_shift: float
    n_reassigned: int


class EarlyStopping:
    """scikit-learn's ``_mini_batch_convergence``: when should the batches stop.

    A run stops when the summed squared center shift of a step is at most
    ``tol`` (absolute; 0 disables it), or when the exponentially weighted
    average of the batch inertia, with smoothing ``alpha = 2 b / (n + 1)``, has
    not reached a new minimum for ``max_no_improvement`` consecutive steps
    (``None`` disables it). The first step's inertia is not counted: it
    measures the initialisation.

    Parameters
    ----------
    n_samples, batch_size : int
    tol : float
    max_no_improvement : int or None
    """

    def __init__(self, n_samples: int, batch_size: int, tol: float, max_no_improvement: int | None):
        self.batch_size = batch_size
        self.alpha = min(batch_size * 2.0 / (n_samples + 1), 1.0)
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.ewa_inertia: float | None = None
        self.ewa_inertia_min: float | None = None
        self.no_improvement = 0
        self.reason = ""

    def update(self, step: int, batch_inertia: float, center_shift: float) -> bool:
        """Record step ``step`` (0-based); True when the run should stop."""
        mean_inertia = batch_inertia / self.batch_size
        if step == 0:
            return False
        if self.ewa_inertia is None:
            self.ewa_inertia = mean_inertia
        else:
            self.ewa_inertia = self.ewa_inertia * (1 - self.alpha) + mean_inertia * self.alpha
        if self.tol > 0.0 and center_shift <= self.tol:
            self.reason = "small centers change"
            return True
        if self.ewa_inertia_min is None or self.ewa_inertia < self.ewa_inertia_min:
            self.no_improvement = 0
            self.ewa_inertia_min = self.ewa_inertia
        else:
            self.no_improvement += 1
        if self.max_no_improvement is not None and self.no_improvement >= self.max_no_improvement:
            self.reason = "lack of improvement in inertia"
            return True
        return False


# --------------------------------------------------------------- estimator ---


class MiniBatchKMeans(KMeans):
    """Mini-Batch K-Means, on any array-API backend.

    Each step draws a batch of rows, assigns them to their nearest center and
    moves every center towards the mean of its batch rows with its own learning
    rate ``1 / n_j`` (``n_j``: all the weight the center has seen), as
    scikit-learn's :class:`~sklearn.cluster.MiniBatchKMeans` does.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    init : {"k-means++", "random"}, callable or array-like of shape \
(n_clusters, n_features), default="k-means++"
        Seeding, computed on a random subsample of ``init_size`` rows:

        - ``"k-means++"``: greedy k-means++ (sampling ∝ ``sample_weight * D^2``).
        - ``"random"``: ``n_clusters`` distinct rows drawn ∝ ``sample_weight``.
        - callable ``init(X_sample, n_clusters, random_state) -> centers``,
          called with the subsample in the input's namespace.
        - array: the initial centers.
    max_iter : int, default=100
        Most passes over the data (epochs): the fit takes at most
        ``max_iter * n_samples // batch_size`` steps.
    batch_size : int, default=1024
        Rows per batch (at most ``n_samples``).
    verbose : int, default=0
        Print the inertia of every initialisation and of every step when > 0.
    compute_labels : bool, default=True
        Assign every row after the fit to set ``labels_`` and ``inertia_``.
        When False, ``inertia_`` is the smoothed batch inertia scaled to the
        data's total weight, and ``labels_`` is not set.
    random_state : int, RandomState instance or None, default=None
        Seeds every draw (subsamples, seeding, batches, reassignments), all
        made on the host: one seed gives the same result on every backend.
    tol : float, default=0.0
        Stop when the summed squared center shift of a step is at most ``tol``
        times the mean (weighted) per-feature variance of the data. 0 disables it.
    max_no_improvement : int or None, default=10
        Stop after this many consecutive steps without a new minimum of the
        exponentially weighted average batch inertia. None disables it.
    init_size : int or None, default=None
        Rows of the random subsample the seeding runs on (default
        ``3 * batch_size``, at least ``3 * n_clusters``, at most ``n_samples``).
    n_init : int or "auto", default="auto"
        Seedings tried; the one of least inertia on a separate random
        subsample of ``init_size`` rows is kept. ``"auto"``: 1 for
        ``"k-means++"`` and an array, 3 otherwise. Only ``fit`` uses it.
    reassignment_ratio : float, default=0.01
        Centers whose count is below ``reassignment_ratio`` times the largest
        count are moved to batch rows drawn ∝ ``w * D^2`` (see Notes). 0
        disables reassignment.
    metric : {"euclidean", "cosine"}, default="euclidean"
        ``"cosine"``: online spherical K-Means. Rows are scaled to unit norm
        (a unit-row copy of ``X``; of each chunk for ``partial_fit``), batches
        are assigned by largest inner product, every center is renormalised
        to unit length after each step's running-mean update, and
        ``inertia_`` is the weighted sum of cosine distances (see
        :class:`kgpu.KMeans`, ``metric``).
    backend : {None, "auto", "numpy", "cupy", "torch", "array_api_strict"}, default=None
        Library that computes (see :class:`kgpu.KMeans`). Results come back in
        the namespace and on the device of the input.
    device : object, default=None
        Device for ``backend``.
    working_memory : float or None, default=None
        Memory budget in MiB of one block of the distance matrix.

    progress : bool or "auto", default=False
        Show a progress bar (tqdm, on standard error) counting mini-batch steps, with the smoothed batch inertia.
        ``"auto"`` shows it only when standard error is a terminal.
        Independent of ``verbose``.
    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
    labels_ : integer array of shape (n_samples,)
        Set when ``compute_labels``; after ``partial_fit``, the labels of the
        last chunk.
    inertia_ : float
        Weighted sum of squared distances of the rows to their nearest center
        (of the last chunk after ``partial_fit``).
    n_iter_ : int
        Epochs started: ``ceil(n_steps_ * batch_size / n_samples)``.
    n_steps_ : int
        Mini-batch steps taken (``partial_fit`` adds one per call).
    n_features_in_ : int
    history_ : list of StepRecord
        ``(step, batch_inertia, ewa_inertia, center_shift, n_reassigned)`` for
        every step of ``fit``.
    backend_ : str
        Library the fit computed with.

    Notes
    -----
    ``fit`` follows scikit-learn draw for draw: from ``random_state`` it draws
    a validation subsample, then for each of the ``n_init`` seedings a subsample
    (``randint``) and the seeding itself, then each batch as ``batch_size``
    rows drawn with replacement ∝ ``sample_weight`` (the batch rows then count
    with weight 1, so weights are not counted twice). With
    ``reassignment_ratio=0`` it therefore gives scikit-learn's result for the
    same seed. Reassignment is tried after every ``10 * n_clusters`` rows seen,
    and at every step while a center has seen no weight; scikit-learn draws the
    new rows uniformly, kgpu ∝ ``w * D^2``, which favours rows far from every
    center.

    **Streaming** (``partial_fit(X_chunk, sample_weight)``), one step per call,
    on the whole chunk with its weights:

    1. First call only: ``batch_size`` becomes ``min(batch_size, len(chunk))``
       and the centers are seeded from this chunk as in ``fit`` (one seeding,
       on a subsample of ``init_size`` rows drawn with ``randint`` when
       ``init_size`` is smaller than the chunk — also for an array ``init``);
       every count ``n_j`` starts at 0.
    2. Every row of the chunk goes to its nearest center (squared Euclidean,
       ties to the lowest index). For each center ``j``, ``W_j`` is the total
       weight of its rows and ``S_j`` their weighted sum.
    3. In float64: ``n_j <- n_j + W_j`` and, where ``W_j > 0``,
       ``c_j <- c_j + (S_j - W_j c_j) / n_j``, so every center is the weighted
       mean of all the rows it was ever given.
    4. Reassignment, when due (a count is 0, or ``10 * n_clusters`` rows — in
       units of the first call's ``batch_size`` per call — were seen since the
       last one) and ``reassignment_ratio > 0``: centers with
       ``n_j < reassignment_ratio * max(n)`` (at most half the chunk's rows,
       least fed first) move to distinct chunk rows drawn ∝ ``w * D^2`` (``D``:
       distance to the nearest center before step 3), and take the smallest
       count among the other centers.
    5. With ``compute_labels``, ``labels_`` and ``inertia_`` describe the chunk
       against the new centers.

    The chunks may be slices of a memory-mapped ``.npy`` (``np.load(path,
    mmap_mode="r")``): only the chunk is read and moved to the device. ``fit``
    on a memory-mapped ``X`` reads only the subsamples and batches it draws.

    **Dask arrays**: ``partial_fit(X)`` takes one step per row chunk, chunk
    after chunk in row order (each chunk computed on its own, then given to
    ``partial_fit`` as above); ``fit(X)`` starts a fresh model and does the
    same in one pass (the seeding runs on the first chunk; ``batch_size``,
    ``max_iter`` and the early stop do not apply, ``n_iter_`` is 1). With
    ``compute_labels``, ``labels_`` is then a lazy Dask array over all of
    ``X`` and ``inertia_`` its weighted inertia. ``predict`` and ``transform``
    of a Dask array return lazy Dask arrays.

    Examples
    --------
    >>> import numpy as np
    >>> from kgpu import MiniBatchKMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [4, 2], [4, 0], [4, 4],
    ...               [4, 5], [0, 1], [2, 2], [3, 2], [5, 5], [1, -1]], dtype=float)
    >>> mbk = MiniBatchKMeans(n_clusters=2, random_state=0, batch_size=6).fit(X)
    >>> mbk.cluster_centers_.shape
    (2, 2)
    >>> stream = MiniBatchKMeans(n_clusters=2, random_state=0)
    >>> for start in range(0, 12, 6):
    ...     stream = stream.partial_fit(X[start:start + 6])
    >>> stream.n_steps_
    2
    """

    _init_methods = SEEDING_METHODS
    _single_run_inits = ("k-means++",)
    _default_n_init = 3

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Callable | Any = "k-means++",
        max_iter: int = 100,
        batch_size: int = 1024,
        verbose: int = 0,
        compute_labels: bool = True,
        random_state: Any = None,
        tol: float = 0.0,
        max_no_improvement: int | None = 10,
        init_size: int | None = None,
        n_init: int | str = "auto",
        reassignment_ratio: float = 0.01,
        metric: str = "euclidean",
        backend: str | None = None,
        device: Any = None,
        working_memory: float | None = None,
        progress: bool | str = False,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.max_iter = max_iter
        self.batch_size = batch_size
        self.verbose = verbose
        self.compute_labels = compute_labels
        self.random_state = random_state
        self.tol = tol
        self.max_no_improvement = max_no_improvement
        self.init_size = init_size
        self.n_init = n_init
        self.reassignment_ratio = reassignment_ratio
        self.metric = metric
        self.backend = backend
        self.device = device
        self.working_memory = working_memory
        self.progress = progress

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> "MiniBatchKMeans":
        """Compute the centers by mini-batch steps over ``X``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NumPy, CuPy, PyTorch or any array-API array; lists and frames too.
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Batches are drawn ∝ ``sample_weight`` (with replacement); the
            seeding and the final inertia use it too. An ``init`` array or
            callable does not see it.

        Returns
        -------
        self
        """
        n_clusters, max_iter, tol, reassignment_ratio, max_no_improvement = self._check_params()
        check_progress(self.progress)
        if is_dask_array(X):
            from ._dask import fit_minibatch

            return fit_minibatch(self, X, sample_weight)
        # A memory-mapped X stays on disk: batches are read with take_rows.
        placement = self._place_rows(X, reset=True)
        cosine = self._spherical()
        xp, X_source = placement.xp, placement.X
        n_samples, n_features = X_source.shape
        check_n_clusters(n_clusters, n_samples)
        sample_weight = self._place_weights(sample_weight, placement)
        if cosine:
            X_source, frame = self._unit_source(X_source, xp), IDENTITY
        else:
            # Every batch is read in the working frame (kgpu._scale), without a copy of X.
            frame = self._fit_working_frame(X_source, sample_weight, xp=xp)
        X_fit = frame_view(X_source, frame, xp=xp, device=placement.device)
        batch_size, init_size = self._batch_and_init_size(n_samples, n_clusters)
        self._init_size = init_size
        n_init = self._n_init = self._resolve_n_init()
        random_state = check_random_state(self.random_state)
        if tol == 0:
            absolute_tol = 0.0
        elif is_sparse(X_fit):
            absolute_tol = tol * _sparse.mean_feature_variance(X_fit, to_numpy(sample_weight))
        else:
            absolute_tol = tol * mean_feature_variance(X_fit, sample_weight, xp=xp)
        explicit_centers = self._explicit_init_centers(placement, n_clusters)
        if explicit_centers is not None:
            explicit_centers = frame.apply(explicit_centers)

        # Seedings are compared on their own validation subsample, as scikit-learn does.
        validation_ids = random_state.randint(0, n_samples, init_size)
        X_valid = batch_rows_of(X_fit, validation_ids, xp=xp)
        weight_valid = take_host_ids(sample_weight, validation_ids, xp=xp)
        valid_rows = self._block_rows(init_size, n_features, X_fit, xp)
        best_inertia, centers = None, None
        for run in range(n_init):
            candidate = self._seed(
                placement, X_source, sample_weight, n_clusters, init_size, random_state, explicit_centers, frame=frame
            )
            if cosine:
                candidate = self._unit_seed(candidate, explicit_centers is not None, xp)
            inertia = weighted_sum(nearest_centers(X_valid, candidate, xp=xp, rows_per_block=valid_rows).min_dist, weight_valid, xp=xp)
            if self.verbose:
                print(f"[MiniBatchKMeans] init {run + 1}/{n_init}: inertia {inertia:.6g}")
            if best_inertia is None or inertia < best_inertia:
                best_inertia, centers = inertia, candidate

        weights_host = to_numpy(xp.astype(sample_weight, xp.float64))
        total_weight = float(weights_host.sum())
        batch_sampler = WeightedRowSampler(weights_host / total_weight)
        # Batches are drawn ∝ weight, so their rows count once each.
        unit_weight = xp.ones(batch_size, dtype=X_fit.dtype, device=placement.device)
        batch_rows = self._block_rows(batch_size, n_features, X_fit, xp)
        counts = np.zeros(n_clusters)
        monitor = EarlyStopping(n_samples, batch_size, absolute_tol, max_no_improvement)
        rows_since_reassign = 0
        history: list[StepRecord] = []
        n_steps = (max_iter * n_samples) // batch_size
        step = 0
        last_batch_inertia = 0.0
        with self._progress_bar(total=n_steps, unit="step") as bar:
            for step in range(n_steps):
                batch_ids = batch_sampler.draw(random_state, batch_size)
                rows_since_reassign, reassign = _reassignment_due(rows_since_reassign, batch_size, counts, n_clusters)
                result = minibatch_step(
                    batch_rows_of(X_fit, batch_ids, xp=xp), unit_weight, centers, counts,
                    xp=xp, rows_per_block=batch_rows, random_state=random_state,
                    reassignment_ratio=reassignment_ratio if reassign else 0.0,
                )
                new_centers = unit_rows(result.centers, xp=xp) if cosine else result.centers
                center_shift = float(xp.sum((new_centers - centers) ** 2)) if absolute_tol > 0 else 0.0
                centers, counts = new_centers, result.counts
                last_batch_inertia = result.inertia
                stop = monitor.update(step, result.inertia, center_shift)
                history.append(StepRecord(step + 1, result.inertia / batch_size, monitor.ewa_inertia, center_shift, result.n_reassigned))
                bar.on_iteration(history[-1])
                if self.verbose:
                    self._print_step(history[-1], n_steps)
                if stop:
                    if self.verbose:
                        print(f"Converged ({monitor.reason}) at step {step + 1}/{n_steps}")
                    break

        self.n_steps_ = step + 1
        self.n_iter_ = int(math.ceil(self.n_steps_ * batch_size / n_samples))
        self.history_ = history
        self._counts = counts
        self._batch_size = batch_size
        self._n_since_last_reassign = rows_since_reassign
        self.cluster_centers_ = placement.to_input(frame.restore(centers))
        if self.compute_labels:
            final = nearest_centers(X_fit, centers, xp=xp, rows_per_block=self._block_rows(n_samples, n_features, X_fit, xp))
            self.labels_ = placement.to_input(final.labels)
            if cosine:
                self.inertia_ = self._cosine_inertia(X_fit, sample_weight, centers, final.labels, xp)
            else:
                self.inertia_ = frame.restore_distances(weighted_sum(final.min_dist, sample_weight, xp=xp), 2)
        else:
            ewa = monitor.ewa_inertia if monitor.ewa_inertia is not None else last_batch_inertia / batch_size
            # On unit rows a squared distance is twice the cosine distance.
            self.inertia_ = float(ewa * total_weight) / 2 if cosine else frame.restore_distances(float(ewa * total_weight), 2)
        self.backend_ = fitted_backend_name(placement)
        return self

    def partial_fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> "MiniBatchKMeans":
        """Update the centers with one mini-batch step on the chunk ``X``.

        The first call seeds the centers from this chunk; see the Notes of the
        class for the exact update. Successive calls may come from an iterator
        or slices of a memory-mapped ``.npy``.

        Parameters
        ----------
        X : array-like of shape (n_chunk, n_features)
        y : ignored
        sample_weight : array-like of shape (n_chunk,), default=None
            Weight of each row of the chunk in the update (and the seeding).

        Returns
        -------
        self
        """
        has_centers = hasattr(self, "cluster_centers_")
        n_clusters, _, _, reassignment_ratio, _ = self._check_params()
        if is_dask_array(X):
            from ._dask import partial_fit_minibatch

            return partial_fit_minibatch(self, X, sample_weight)
        placement = self._place_rows(X, reset=not has_centers, streamable=False)
        cosine = self._spherical()
        xp, X_chunk = placement.xp, placement.X
        if cosine:
            X_chunk = self._unit_source(X_chunk, xp)
        n_rows, n_features = X_chunk.shape
        sample_weight = self._place_weights(sample_weight, placement)
        if not hasattr(self, "_random_state"):
            self._random_state = check_random_state(self.random_state)
        if not has_centers:
            check_n_clusters(n_clusters, n_rows)
            self._batch_size, init_size = self._batch_and_init_size(n_rows, n_clusters)
            # The first chunk's frame (kgpu._scale) serves every later chunk.
            if cosine:
                frame = IDENTITY
                self._working_frame = IDENTITY.to_host()
            else:
                frame = self._fit_working_frame(X_chunk, sample_weight, xp=xp)
            explicit_centers = self._explicit_init_centers(placement, n_clusters)
            if explicit_centers is not None:
                explicit_centers = frame.apply(explicit_centers)
            centers = self._seed(
                placement, X_chunk, sample_weight, n_clusters, init_size, self._random_state, explicit_centers,
                frame=frame,
            )
            if cosine:
                centers = self._unit_seed(centers, explicit_centers is not None, xp)
            self._counts = np.zeros(n_clusters)
            self._n_since_last_reassign = 0
        else:
            centers = self._centers_on(placement)
            frame = self._stored_frame(placement, centers)
            centers = frame.apply(centers)
        X_chunk = frame.apply(X_chunk)
        self._n_since_last_reassign, reassign = _reassignment_due(
            self._n_since_last_reassign, self._batch_size, self._counts, n_clusters
        )
        rows_per_block = self._block_rows(n_rows, n_features, X_chunk, xp)
        result = minibatch_step(
            X_chunk, sample_weight, centers, self._counts, xp=xp, rows_per_block=rows_per_block,
            random_state=self._random_state, reassignment_ratio=reassignment_ratio if reassign else 0.0,
        )
        self._counts = result.counts
        new_centers = unit_rows(result.centers, xp=xp) if cosine else result.centers
        self.cluster_centers_ = placement.to_input(frame.restore(new_centers))
        if self.compute_labels:
            final = nearest_centers(X_chunk, new_centers, xp=xp, rows_per_block=rows_per_block)
            self.labels_ = placement.to_input(final.labels)
            if cosine:
                self.inertia_ = self._cosine_inertia(X_chunk, sample_weight, new_centers, final.labels, xp)
            else:
                self.inertia_ = frame.restore_distances(weighted_sum(final.min_dist, sample_weight, xp=xp), 2)
        self.n_steps_ = getattr(self, "n_steps_", 0) + 1
        self.backend_ = fitted_backend_name(placement)
        return self

    # ------------------------------------------------------------- helpers
    def _check_params(self) -> tuple[int, int, float, float, int | None]:
        n_clusters = check_n_clusters(self.n_clusters)
        max_iter = check_positive_int(self.max_iter, "max_iter")
        check_positive_int(self.batch_size, "batch_size")
        tol = check_non_negative_float(self.tol, "tol")
        reassignment_ratio = check_non_negative_float(self.reassignment_ratio, "reassignment_ratio")
        max_no_improvement = self.max_no_improvement
        if max_no_improvement is not None:
            max_no_improvement = check_positive_int(max_no_improvement, "max_no_improvement", minimum=0)
        if self.init_size is not None:
            check_positive_int(self.init_size, "init_size")
        return n_clusters, max_iter, tol, reassignment_ratio, max_no_improvement

    def _batch_and_init_size(self, n_samples: int, n_clusters: int) -> tuple[int, int]:
        """``batch_size`` and ``init_size`` for ``n_samples`` rows (scikit-learn's rules)."""
        batch_size = min(self.batch_size, n_samples)
        init_size = self.init_size
        if init_size is None:
            init_size = 3 * batch_size
            if init_size < n_clusters:
                init_size = 3 * n_clusters
        elif init_size < n_clusters:
            warnings.warn(
                f"init_size={init_size} should be larger than n_clusters={n_clusters}. "
                "Setting it to min(3*n_clusters, n_samples)",
                RuntimeWarning,
                stacklevel=3,
            )
            init_size = 3 * n_clusters
        return batch_size, min(init_size, n_samples)

    def _seed(
        self, placement: Placement, X, sample_weight, n_clusters, init_size, random_state, explicit_centers,
        *, frame: Frame = IDENTITY,
    ):
        """Initial centers (in working coordinates) from a random subsample of ``init_size`` rows of ``X``.

        ``X`` holds the rows in the data's coordinates; ``frame`` is the
        working frame of the fit.
        """
        xp = placement.xp
        n_rows = X.shape[0]
        if isinstance(self.init, str) and self.init not in SEEDING_METHODS:
            self._resolve_n_init()  # raises the message naming the choices
        if init_size < n_rows:
            # Drawn even for an array init, so the later draws stay scikit-learn's.
            sample_ids = random_state.randint(0, n_rows, init_size)
            X = batch_rows_of(X, sample_ids, xp=xp)
            sample_weight = take_host_ids(sample_weight, sample_ids, xp=xp)
            X_work = frame.apply(X)
        else:
            X_work = frame_view(X, frame, xp=xp, device=placement.device)
        if explicit_centers is not None:
            return explicit_centers
        if callable(self.init):
            centers = self.init(X if is_sparse(X) else placement.to_input(X), n_clusters, random_state)
            return frame.apply(self._check_centers(centers, placement, n_clusters, "the init callable"))
        return seed_centers(self.init, X_work, sample_weight, n_clusters, random_state, xp=xp)

    def _unit_source(self, X: Any, xp: Any) -> Any:
        """A unit-row copy of ``X`` for ``metric="cosine"`` (sparse rows stay sparse)."""
        if is_sparse(X):
            return _sparse.unit_rows(X)
        if needs_streaming(X):
            raise ValueError("metric='cosine' needs X in memory; it does not stream a memory-mapped X yet.")
        return unit_rows_blockwise(X, xp=xp, rows_per_block=self._block_rows(X.shape[0], X.shape[1], X, xp))

    @staticmethod
    def _unit_seed(centers: Any, user_given: bool, xp: Any) -> Any:
        """Seeds scaled to unit norm; centers the user gave must have a direction."""
        return unit_centers(centers, xp=xp) if user_given else unit_rows(centers, xp=xp)

    @staticmethod
    def _cosine_inertia(X: Any, sample_weight: Any, centers: Any, labels: Any, xp: Any) -> float:
        """Weighted sum of cosine distances of unit rows to their unit centers."""
        if is_sparse(X):
            weights = np.asarray(to_numpy(sample_weight), dtype=np.float64)
            return float(weights @ (1 - _sparse.own_dots(X, to_numpy(centers), to_numpy(labels))))
        return cosine_inertia(X, sample_weight, centers, labels, xp=xp, rows_per_block=X.shape[0])

    def _block_rows(self, n_rows: int, n_features: int, X: Any, xp: Any) -> int:
        return assignment_block_rows(n_rows, self.n_clusters, n_features, _itemsize(X, xp), xp, self.working_memory)

    @staticmethod
    def _print_step(record: StepRecord, n_steps: int) -> None:
        message = f"Minibatch step {record.step}/{n_steps}: mean batch inertia: {record.batch_inertia:.6g}"
        if record.ewa_inertia is not None:
            message += f", ewa inertia: {record.ewa_inertia:.6g}"
        if record.n_reassigned:
            message += f", {record.n_reassigned} centers reassigned"
        print(message)


def _reassignment_due(rows_since: int, batch_size: int, counts: np.ndarray, n_clusters: int) -> tuple[int, bool]:
    """scikit-learn's ``_random_reassign``: after ``10 * k`` rows, or while a count is 0."""
    rows_since += batch_size
    if empty_cluster_ids(counts).size > 0 or rows_since >= 10 * n_clusters:
        return 0, True
    return rows_since, False


__all__ = ["MiniBatchKMeans", "minibatch_step", "seed_centers"]
