"""K-Medians: L1 assignment and a coordinate-wise (weighted) median update.

The kernel :func:`median_lloyd` is Lloyd's loop with the manhattan metric: the
assignment step is :func:`kgpu._assign.assign` (row blocks of L1 distances and
an argmin), the update step the segmented weighted median of
:func:`kgpu._segment.segment_median` (the rule for an even count and for ties
is documented there: the midpoint of the lower and upper weighted medians, so
an unweighted even count gives the mean of the two middle values, as
:func:`numpy.median`). Empty clusters follow the shared policy of
:mod:`kgpu._empty` with the L1 distance as the point cost.

Convergence: a run stops when the labels do not change (the medians are then
those of the previous step, so the centers are final), or when the summed L1
shift of the centers is at most the absolute tolerance; if it stopped on the
shift or on ``max_iter``, one more assignment makes the labels match the
returned centers.
"""

from __future__ import annotations

import time
from typing import Any, Callable, NamedTuple

from sklearn.utils import check_random_state

from ._backend import device_of, host_scalars
from ._assign import assign, assignment_block_rows, itemsize, weighted_sum
from ._base import CentroidEstimatorMixin, fitted_backend_name, warn_if_fewer_distinct_clusters
from ._blocks import map_blocks, row_blocks
from ._distances import Metric, check_metric
from ._empty import relocate_empty_labels
from ._init import forgy_indices, plusplus_indices, take_rows
from ._lloyd import finish_iteration
from ._progress import check_progress
from ._segment import _informative_weights as informative_weights, segment_median, segment_weight
from ._validation import check_n_clusters, check_non_negative_float, check_positive_int

#: The metric of K-Medians.
MANHATTAN = check_metric("manhattan")

INIT_METHODS = ("k-medians++", "random")


class MedianIteration(NamedTuple):
    """What one K-Medians iteration did (kept in ``history_``)."""

    iteration: int
    center_shift: float
    n_changed: int
    n_reseeded: int
    seconds: float


class MedianResult(NamedTuple):
    """Outcome of one K-Medians run.

    Attributes
    ----------
    centers : array of shape (k, d)
    labels : integer array of shape (n,)
    inertia : float
        ``sum(w_i * ||x_i - c[label_i]||_1)`` for the returned labels.
    n_iter : int
    history : list of MedianIteration
    """

    centers: Any
    labels: Any
    inertia: float
    n_iter: int
    history: list


def median_lloyd(
    X: Any,
    sample_weight: Any,
    centers_init: Any,
    *,
    max_iter: int,
    tol: float,
    xp: Any,
    rows_per_block: int | None = None,
    budget_mib: float | None = None,
    on_iteration: Callable[[MedianIteration], None] | None = None,
) -> MedianResult:
    """Run K-Medians iterations from ``centers_init``.

    Parameters
    ----------
    X : array of shape (n, d), float32 or float64
    sample_weight : array of shape (n,), same dtype
    centers_init : array of shape (k, d), same dtype
    max_iter : int
    tol : float
        Absolute tolerance on the summed L1 shift of the centers.
    xp : namespace
    rows_per_block : int or None
        Rows per assignment block (default: from the memory budget).
    budget_mib : float or None
        Memory budget of one block (assignment rows, median columns) in MiB.
    on_iteration : callable or None
        Called with a :class:`MedianIteration` after every iteration.

    Returns
    -------
    MedianResult
    """
    n_clusters = centers_init.shape[0]
    centers = centers_init
    # Equal weights give plain medians: decided once, not on every iteration.
    median_weights = informative_weights(sample_weight, xp=xp)
    labels_old = None
    strict_convergence = False
    history: list[MedianIteration] = []
    n_iter = 0
    for n_iter in range(1, max_iter + 1):
        started = time.perf_counter()
        labels, distances = assign(X, centers, xp=xp, metric=MANHATTAN, rows_per_block=rows_per_block, budget_mib=budget_mib)
        cluster_weights = segment_weight(labels, n_clusters, sample_weight, xp=xp)
        n_reseeded = 0
        # Host sync 1 of 2 per iteration: re-seeding must happen before the medians.
        if bool(xp.any(cluster_weights <= 0)):
            labels, reseeded, _ = relocate_empty_labels(labels, cluster_weights, distances, sample_weight, xp=xp)
            n_reseeded = int(reseeded.size)
            if n_reseeded:
                cluster_weights = segment_weight(labels, n_clusters, sample_weight, xp=xp)
        medians = segment_median(X, labels, n_clusters, median_weights, xp=xp, budget_mib=budget_mib)
        # A cluster with no weight even after re-seeding keeps its center.
        new_centers = xp.where((cluster_weights > 0)[:, None], medians, centers)
        # Host sync 2 of 2: the shift and the changed labels cross together.
        center_shift, n_changed = host_scalars(
            xp.sum(xp.abs(xp.astype(new_centers, xp.float64) - xp.astype(centers, xp.float64))),
            None if labels_old is None else xp.sum(xp.astype(labels != labels_old, xp.int64)),
            xp=xp,
        )
        centers = new_centers
        n_changed = labels.shape[0] if labels_old is None else int(n_changed)
        record = MedianIteration(n_iter, center_shift, n_changed, n_reseeded, time.perf_counter() - started)
        # Same labels as the step before (and nothing re-seeded): the medians,
        # hence the centers, are those the labels were assigned to.
        stop, strict_convergence = finish_iteration(
            history, record, on_iteration,
            labels_stable=labels_old is not None and n_changed == 0 and n_reseeded == 0, tol=tol,
        )
        if stop:
            break
        labels_old = labels
    if not strict_convergence:
        labels, distances = assign(X, centers, xp=xp, metric=MANHATTAN, rows_per_block=rows_per_block, budget_mib=budget_mib)
    return MedianResult(centers, labels, weighted_sum(distances, sample_weight, xp=xp), n_iter, history)


def mean_absolute_deviation(X: Any, sample_weight: Any, *, xp: Any, budget_mib: float | None = None) -> float:
    """Mean over features of the weighted mean absolute deviation from the weighted median.

    The L1 counterpart of the per-feature variance that scales K-Means' ``tol``.
    """
    n_samples = X.shape[0]
    one_segment = xp.zeros(n_samples, dtype=xp.int64, device=device_of(X))
    median = segment_median(X, one_segment, 1, sample_weight, xp=xp, budget_mib=budget_mib)
    weights64 = xp.astype(sample_weight, xp.float64)

    def block_deviation(start: int, stop: int) -> Any:
        deviation = xp.abs(xp.astype(X[start:stop, :], xp.float64) - xp.astype(median, xp.float64))
        return xp.matmul(weights64[start:stop], deviation)

    rows = assignment_block_rows(n_samples, 2, X.shape[1], 8, xp, budget_mib, MANHATTAN)
    parts = map_blocks(block_deviation, row_blocks(n_samples, rows), xp)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return float(xp.mean(total / xp.sum(weights64)))


class KMedians(CentroidEstimatorMixin):
    """K-Medians clustering: L1 distances and coordinate-wise medians, on any array-API backend.

    Each iteration assigns every sample to the center nearest in L1
    (manhattan) distance, in row blocks sized to ``working_memory``, then moves
    each center to the coordinate-wise weighted median of its samples. The
    objective, the sum of (weighted) L1 distances to the centers, never
    increases. Medians make the centers robust to outliers: a far point pulls
    a mean but not a median.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    init : {"k-medians++", "random"}, callable or array-like of shape \
(n_clusters, n_features), default="k-medians++"
        - ``"k-medians++"``: greedy "++" seeding with probability proportional
          to ``sample_weight * D`` (``D``: L1 distance to the closest seed so
          far), ``2 + log(k)`` candidates per step, the best kept.
        - ``"random"``: ``n_clusters`` distinct rows drawn with probability
          proportional to ``sample_weight``.
        - array: the initial centers.
        - callable ``init(X, n_clusters, random_state) -> centers`` called with
          the validated input.
    n_init : int or "auto", default="auto"
        Runs from different initial centers; the lowest objective wins.
        ``"auto"`` is 1 for ``"k-medians++"`` and an array, 10 otherwise.
    max_iter : int, default=300
        Most iterations per run.
    tol : float, default=1e-4
        A run converges when the summed L1 shift of the centers is at most
        ``tol`` times the mean (weighted) absolute deviation of the features
        from their medians. Runs also stop when no label changes.
    verbose : int, default=0
        Print per-iteration statistics when > 0.
    random_state : int, RandomState instance or None, default=None
        Seeds every random draw; draws are made on the host, so a seed gives
        the same initial centers on every backend.
    backend : {None, "auto", "numpy", "cupy", "torch", "array_api_strict"}, default=None
        Library that computes (see :class:`kgpu.KMeans`). Results always come
        back in the namespace and on the device of the input.
    device : object, default=None
        Device for ``backend``.
    working_memory : float or None, default=None
        Memory budget in MiB for one block of distances (and of the median
        sort). ``None`` uses a per-backend default.

    progress : bool or "auto", default=False
        Show a progress bar (tqdm, on standard error) counting iterations, with the run number, center shift and labels changed.
        ``"auto"`` shows it only when standard error is a terminal.
        Independent of ``verbose``, which prints one line per iteration.
    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
    labels_ : integer array of shape (n_samples,)
    inertia_ : float
        Sum of weighted L1 distances of samples to their closest center.
    n_iter_ : int
        Iterations of the best run.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when fitted on a frame with string column names.
    history_ : list of MedianIteration
        ``(iteration, center_shift, n_changed, n_reseeded, seconds)`` for
        each iteration of the best run.
    backend_ : str
        Library the fit computed with.

    Notes
    -----
    The median of an even number of (equally weighted) values is the mean of
    the two middle ones; with weights, the midpoint of the lower and upper
    weighted medians (see :func:`kgpu._segment.segment_median`). Empty
    clusters are re-seeded at the points farthest (in L1) from their centers,
    as in :class:`kgpu.KMeans`.

    Examples
    --------
    >>> import numpy as np
    >>> from kgpu import KMedians
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0], [10, 12]], dtype=float)
    >>> km = KMedians(n_clusters=2, random_state=0).fit(X)
    >>> sorted(km.cluster_centers_.tolist())
    [[1.0, 2.0], [10.0, 3.0]]
    """

    _init_methods = INIT_METHODS
    _single_run_inits = ("k-medians++",)

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Callable | Any = "k-medians++",
        n_init: int | str = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        verbose: int = 0,
        random_state: Any = None,
        backend: str | None = None,
        device: Any = None,
        working_memory: float | None = None,
        progress: bool | str = False,
    ):
        self.n_clusters = n_clusters
        self.init = init
        self.n_init = n_init
        self.max_iter = max_iter
        self.tol = tol
        self.verbose = verbose
        self.random_state = random_state
        self.backend = backend
        self.device = device
        self.working_memory = working_memory
        self.progress = progress

    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> "KMedians":
        """Compute k-medians clustering.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NumPy, CuPy, PyTorch or any array-API array; lists and frames too.
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample, used by the initialisation, the medians and
            the objective. An integer weight acts like repeating the sample.

        Returns
        -------
        self
        """
        n_clusters = check_n_clusters(self.n_clusters)
        max_iter = check_positive_int(self.max_iter, "max_iter")
        tol = check_non_negative_float(self.tol, "tol")
        check_progress(self.progress)
        n_init = self._resolve_n_init()
        placement = self._place(X, reset=True)
        xp, X_fit = placement.xp, placement.X
        n_samples, n_features = X_fit.shape
        check_n_clusters(n_clusters, n_samples)
        sample_weight = self._place_weights(sample_weight, placement)
        random_state = check_random_state(self.random_state)
        init_centers = None
        if not isinstance(self.init, str) and not callable(self.init):
            init_centers = self._check_centers(self.init, placement, n_clusters, "init")
        absolute_tol = tol * mean_absolute_deviation(X_fit, sample_weight, xp=xp, budget_mib=self.working_memory) if tol > 0 else 0.0
        rows_per_block = assignment_block_rows(
            n_samples, n_clusters, n_features, itemsize(X_fit, xp), xp, self.working_memory, MANHATTAN
        )

        best = None
        with self._progress_bar(total=max_iter) as bar:  # per run: restarts begin again at 0
            for run in range(n_init):
                centers = init_centers
                if centers is None:
                    centers = self._initial_centers(X, X_fit, sample_weight, n_clusters, random_state, placement)
                result = median_lloyd(
                    X_fit, sample_weight, centers, max_iter=max_iter, tol=absolute_tol, xp=xp,
                    rows_per_block=rows_per_block, budget_mib=self.working_memory,
                    on_iteration=self._iteration_callback(bar, run, n_init),
                )
                if best is None or result.inertia < best.inertia:
                    best = result

        warn_if_fewer_distinct_clusters(best.labels, n_clusters, xp=xp)
        self.cluster_centers_ = placement.to_input(best.centers)
        self.labels_ = placement.to_input(best.labels)
        self.inertia_ = best.inertia
        self.n_iter_ = best.n_iter
        self.history_ = best.history
        self.backend_ = fitted_backend_name(placement)
        return self

    def _objective_metric(self) -> Metric:
        return MANHATTAN

    def _initial_centers(self, X_user, X_fit, sample_weight, n_clusters, random_state, placement):
        xp = placement.xp
        if callable(self.init):
            centers = self.init(X_user, n_clusters, random_state)
            return self._check_centers(centers, placement, n_clusters, "the init callable")
        if self.init == "k-medians++":
            indices = plusplus_indices(X_fit, n_clusters, sample_weight, random_state, xp=xp, metric=MANHATTAN)
        else:
            indices = forgy_indices(X_fit.shape[0], n_clusters, sample_weight, random_state)
        return take_rows(X_fit, indices, xp=xp)


__all__ = ["KMedians"]
