"""K-Means (Lloyd) estimator and the standalone k-means++ seeding."""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
from sklearn.utils import check_random_state

from ._assign import assignment_block_rows, itemsize as _itemsize
from ._backend import device_of, is_array_api_obj, move_to, namespace_of, resolve_compute, to_numpy
from ._base import CentroidEstimatorMixin, Placement, fitted_backend_name, warn_if_fewer_distinct_clusters
from ._blocks import block_rows, map_blocks, row_blocks
from ._distances import Metric, check_metric
from ._stream import working_copy
from ._init import forgy_indices, kmeans_plusplus_indices, random_partition_centers, take_rows
from ._init_parallel import kmeans_parallel_centers
from . import _sparse
from ._elkan import check_algorithm, hamerly
from ._sparse import is_sparse
from ._spherical import spherical_lloyd, unit_centers, unit_rows_blockwise
from ._stream import StreamedRows, half_precision_rows, needs_streaming
from ._distances import unit_rows
from ._lloyd import lloyd
from ._progress import check_progress
from ._scale import IDENTITY, Frame, fit_frame, frame_view, weighted_mean as _scale_weighted_mean
from ._validation import (
    check_data,
    check_n_clusters,
    check_non_negative_float,
    check_positive_int,
    check_sample_weight,
    is_dask_array,
    is_half_precision,
)

EUCLIDEAN = check_metric("euclidean")
COSINE = check_metric("cosine")
INIT_METHODS = ("k-means++", "k-means||", "random", "random-partition")


class KMeans(CentroidEstimatorMixin):
    """K-Means clustering by Lloyd's algorithm, on any array-API backend.

    The assignment step is one batched GEMM plus argmin per block of rows
    (blocks sized to ``working_memory``); the update step is a weighted
    segmented mean. Data on the GPU (CuPy, PyTorch CUDA) is clustered there;
    NumPy data uses every CPU core.

    Parameters
    ----------
    n_clusters : int, default=8
        Number of clusters.
    init : {"k-means++", "k-means||", "random", "random-partition"}, callable or \
array-like of shape (n_clusters, n_features), default="k-means++"
        - ``"k-means++"``: greedy k-means++ (``2 + log(k)`` candidates per step,
          the best kept), sampling proportional to ``sample_weight * D^2``.
        - ``"k-means||"``: scalable k-means++ (Bahmani et al. 2012): 5 rounds
          of oversampled ``D^2`` sampling (``2k`` expected picks per round),
          candidates weighted by the points they attract, reduced to
          ``n_clusters`` by weighted k-means++ and Lloyd. A few passes over the
          data instead of ``n_clusters``: the choice for huge, streamed or
          distributed data.
        - ``"random"``: Forgy, ``n_clusters`` distinct rows drawn with
          probability proportional to ``sample_weight``.
        - ``"random-partition"``: every row gets a random label; the initial
          centers are the weighted means of the parts.
        - array: the initial centers (in the input's coordinates).
        - callable ``init(X, n_clusters, random_state) -> centers`` called with
          the validated input.
    n_init : int or "auto", default="auto"
        Runs from different initial centers; the lowest inertia wins.
        ``"auto"`` is 1 for ``"k-means++"``, ``"k-means||"`` and an array,
        10 otherwise.
    max_iter : int, default=300
        Most Lloyd iterations per run.
    tol : float, default=1e-4
        Convergence when the summed squared center shift is at most
        ``tol`` times the mean (weighted) per-feature variance of the data.
        Runs also stop when no label changes.
    verbose : int, default=0
        Print scikit-learn's lines when > 0: ``Initialization complete``,
        one ``Iteration i, ...`` line per iteration (center shift and
        changed labels rather than the inertia) and the
        ``Converged at iteration i: ...`` line.
    random_state : int, RandomState instance or None, default=None
        Seeds every random draw. Draws are made on the host, so a seed gives
        the same initial centers on every backend.
    algorithm : {"lloyd", "elkan"}, default="lloyd"
        ``"lloyd"``: every iteration computes all ``n * k`` distances.
        ``"elkan"``: the same iterations (same labels, centers and
        ``n_iter_``), skipping the distances the triangle inequality rules
        out, with Hamerly's bounds (one upper and one lower bound per row, and
        the half gap of each center to its nearest neighbour; :mod:`kgpu._elkan`).
        It pays off when the clusters are well separated and ``k`` is not tiny;
        it costs ``3n`` more numbers of memory and a ``k x k`` center distance
        per iteration. A single cluster always uses ``"lloyd"`` (with a
        warning), as in scikit-learn; Dask input always runs ``"lloyd"``.
    metric : {"euclidean", "cosine"}, default="euclidean"
        ``"cosine"``: spherical K-Means, for embeddings and text. Rows are
        scaled to unit norm (in the working copy; all-zero rows stay zero),
        assignment is by largest inner product, each center is the
        renormalised weighted mean of its rows, ``inertia_`` is the weighted
        sum of cosine distances ``1 - cos(x, c)``, k-means++ samples by cosine
        distance, ``cluster_centers_`` have unit norm, and ``predict``,
        ``transform`` (cosine distances) and ``score`` use the cosine
        distance. Costs one normalised copy of ``X`` on top of the working
        copy; ``algorithm`` and ``copy_x`` have no effect (nothing is
        centered). All-zero rows are at cosine distance 1 from every center
        (their label among those ties is arbitrary). Works on sparse rows;
        not available for Dask or memory-mapped streaming.
    copy_x : bool, default=True
        Center the working copy of the data before clustering (better
        precision of the ``||x||^2 - 2x.c + ||c||^2`` expansion, as
        scikit-learn does). kgpu never modifies ``X``: it always clusters a
        copy in homogeneous coordinates (one extra copy of ``X`` in memory);
        ``False`` only skips the centering.
    backend : {None, "auto", "numpy", "cupy", "torch", "array_api_strict"}, default=None
        Library that computes. ``None`` computes where the input lives;
        ``"auto"`` picks a GPU when one is present. Results always come back
        in the namespace and on the device of the input.
    device : object, default=None
        Device for ``backend`` (e.g. ``"cuda:1"``).
    working_memory : float or None, default=None
        Memory budget in MiB for one block of the distance matrix. ``None``
        uses a per-backend default (16 MiB on NumPy, 512 MiB on CuPy).
    progress : bool or "auto", default=False
        Show a progress bar (tqdm, on standard error) counting Lloyd
        iterations, with the run number, center shift and labels changed.
        ``"auto"`` shows it only when standard error is a terminal.
        Independent of ``verbose``, which prints one line per iteration.

    Attributes
    ----------
    cluster_centers_ : array of shape (n_clusters, n_features)
    labels_ : integer array of shape (n_samples,)
    inertia_ : float
        Sum of weighted squared distances of samples to their closest center.
    n_iter_ : int
        Iterations of the best run.
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Only when fitted on a frame with string column names.
    history_ : list of IterationRecord
        ``(iteration, center_shift, n_changed, seconds)`` for each iteration
        of the best run.
    backend_ : str
        Library the fit computed with.

    Notes
    -----
    Empty clusters: an update that leaves a cluster without positive-weight
    members re-seeds it with the point farthest from its current center (taken
    out of its own cluster); see :mod:`kgpu._empty`. No center is ever left at
    zero or NaN.

    Out of core: a memory-mapped ``X`` (``np.load(path, mmap_mode="r")``), or
    host data whose working copy would not fit the compute device, is never
    copied whole: every pass reads it one row block (of ``working_memory``)
    at a time, with the same result as in memory (:mod:`kgpu._stream`).

    Dask: a ``dask.array`` ``X`` (NumPy or CuPy chunks) is clustered by
    map-reduce over its row chunks on the active Dask scheduler
    (:mod:`kgpu._dask`), with the same result as in memory from the same
    initial centers or the same ``"k-means||"`` / ``"random"`` seed.
    ``"k-means++"`` runs on the k-means|| candidates there (not on every
    row); ``"random-partition"`` is not available. ``labels_``, ``predict``
    and ``transform`` give lazy Dask arrays; ``cluster_centers_`` is a NumPy
    (or CuPy) array; ``history_`` records ``n_changed=-1`` (labels are not
    kept between passes).

    Examples
    --------
    >>> import numpy as np
    >>> from kgpu import KMeans
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]], dtype=float)
    >>> km = KMeans(n_clusters=2, random_state=0).fit(X)
    >>> sorted(km.cluster_centers_.tolist())
    [[1.0, 2.0], [10.0, 2.0]]
    """

    _init_methods = INIT_METHODS
    _single_run_inits = ("k-means++", "k-means||")
    _dask_engine = True
    _sparse_engine = True

    def __init__(
        self,
        n_clusters: int = 8,
        *,
        init: str | Callable | Any = "k-means++",
        n_init: int | str = "auto",
        max_iter: int = 300,
        tol: float = 1e-4,
        verbose: int = 0,
        random_state: Any = None,
        copy_x: bool = True,
        algorithm: str = "lloyd",
        metric: str = "euclidean",
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
        self.copy_x = copy_x
        self.algorithm = algorithm
        self.metric = metric
        self.backend = backend
        self.device = device
        self.working_memory = working_memory
        self.progress = progress

    # ------------------------------------------------------------------ fit
    def fit(self, X: Any, y: Any = None, sample_weight: Any = None) -> "KMeans":
        """Compute k-means clustering.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            NumPy, CuPy, PyTorch or any array-API array; lists and frames too;
            a memory-mapped ``.npy`` (streamed) or a Dask array (map-reduce).
        y : ignored
        sample_weight : array-like of shape (n_samples,), default=None
            Weight of each sample, used by the initialisation, the update and
            the objective.

        Returns
        -------
        self
        """
        n_clusters = check_n_clusters(self.n_clusters)
        max_iter = check_positive_int(self.max_iter, "max_iter")
        tol = check_non_negative_float(self.tol, "tol")
        algorithm = check_algorithm(self.algorithm, n_clusters, type(self).__name__)
        cosine = self._spherical()
        check_progress(self.progress)
        if is_sparse(X):
            return self._fit_sparse(X, sample_weight, n_clusters=n_clusters, max_iter=max_iter, tol=tol)
        if is_dask_array(X):
            from ._dask import fit_kmeans

            if cosine:
                raise ValueError("metric='cosine' does not take Dask arrays yet; compute the array first.")

            return fit_kmeans(self, X, sample_weight, n_clusters=n_clusters, max_iter=max_iter, tol=tol)
        # The Euclidean fit's first pass (the working frame's largest |x|)
        # refuses NaN and infinity: X is not read once more for that alone.
        placement = self._place(X, reset=True, streamable=True, check_finite=cosine)
        xp, X_fit = placement.xp, placement.X
        n_samples, n_features = X_fit.shape
        check_n_clusters(n_clusters, n_samples)
        sample_weight = self._place_weights(sample_weight, placement)
        n_init = self._n_init = self._resolve_n_init()
        random_state = check_random_state(self.random_state)
        init_centers = self._explicit_init_centers(placement, n_clusters)

        # Lloyd works on its own copy in homogeneous coordinates, [x - mean, 1]:
        # centering makes the ||x||^2 - 2x.c + ||c||^2 expansion lose less
        # precision (as scikit-learn does), and the column of ones turns the
        # scores into one GEMM. The caller's X is never touched.
        # The working frame (kgpu._scale) also rescales data at extreme magnitudes.
        budget_mib = self.working_memory
        rows_per_block = assignment_block_rows(
            n_samples, n_clusters, n_features, _itemsize(X_fit, xp), xp, self.working_memory
        )
        if cosine:
            # Spherical K-Means clusters the directions: unit rows, neither centered nor scaled.
            if needs_streaming(X_fit):
                raise ValueError("metric='cosine' needs X in memory; it does not stream a memory-mapped X yet.")
            frame = IDENTITY
            self._working_frame = IDENTITY.to_host()
            design = working_copy(unit_rows_blockwise(X_fit, xp=xp, rows_per_block=rows_per_block), xp=xp, frame=frame)
        else:
            frame, design = self._fit_working_frame_and_copy(
                X_fit, sample_weight, xp=xp, center=bool(self.copy_x), check_finite=True
            )
        X_work = design[:, :-1]
        absolute_tol = tol * mean_feature_variance(X_work, sample_weight, xp=xp, budget_mib=budget_mib) if tol > 0 else 0.0
        # k-means++ computes the rows' squared norms itself, once per run:
        # kept here, they would stay alive through Lloyd's iterations too.
        x_sq_norms = None

        best = None
        with self._progress_bar(total=max_iter) as bar:  # per run: restarts begin again at 0
            for run in range(n_init):
                if init_centers is not None:
                    centers = frame.apply(init_centers)
                else:
                    centers = self._initial_centers(X, X_work, frame, sample_weight, n_clusters, random_state, x_sq_norms, placement)
                if cosine:
                    user_given = init_centers is not None or callable(self.init)
                    centers = unit_centers(centers, xp=xp) if user_given else unit_rows(centers, xp=xp)
                if self.verbose:
                    print("Initialization complete")
                iterate = spherical_lloyd if cosine else hamerly if algorithm == "elkan" else lloyd
                result = iterate(
                    design, sample_weight, centers, max_iter=max_iter, tol=absolute_tol,
                    rows_per_block=rows_per_block, xp=xp,
                    on_iteration=self._iteration_callback(bar, run, n_init),
                    track_inertia=bool(self.verbose),
                )
                self._print_convergence(result, absolute_tol)
                if best is None or result.inertia < best.inertia:
                    best = result

        centers = frame.restore(best.centers)
        warn_if_fewer_distinct_clusters(best.labels, n_clusters, xp=xp)
        self.cluster_centers_ = placement.to_input(centers)
        self.labels_ = placement.to_input(best.labels)
        self.inertia_ = frame.restore_distances(best.inertia, 2)
        self.n_iter_ = best.n_iter
        self.history_ = best.history
        self.backend_ = fitted_backend_name(placement)
        return self

    def _fit_sparse(self, X: Any, sample_weight: Any, *, n_clusters: int, max_iter: int, tol: float) -> "KMeans":
        """:meth:`fit` for SciPy sparse ``X``: Lloyd's iterations on the CSR rows (:mod:`kgpu._sparse`).

        ``algorithm="elkan"`` runs the same iterations (same result); the
        data is not centered (that would densify it).
        """
        placement = self._place_rows(X, reset=True)
        cosine = self._spherical()
        # Spherical K-Means clusters the directions: a unit-row copy, O(nnz).
        X_csr = _sparse.unit_rows(placement.X) if cosine else placement.X
        # Sparse rows are never centered or scaled: predict works in the input's coordinates.
        self._working_frame = IDENTITY.to_host()
        check_n_clusters(n_clusters, X_csr.shape[0])
        weights = to_numpy(self._place_weights(sample_weight, placement))
        n_init = self._n_init = self._resolve_n_init()
        random_state = check_random_state(self.random_state)
        init_centers = self._explicit_init_centers(placement, n_clusters)
        x_sq_norms = _sparse.row_sq_norms(X_csr)
        absolute_tol = tol * _sparse.mean_feature_variance(X_csr, weights) if tol > 0 else 0.0
        best = None
        with self._progress_bar() as bar:
            for run in range(n_init):
                if init_centers is not None:
                    centers = to_numpy(init_centers)
                else:
                    centers = self._sparse_initial_centers(X, X_csr, weights, n_clusters, random_state, x_sq_norms, placement)
                if cosine:
                    user_given = init_centers is not None or callable(self.init)
                    centers = to_numpy(unit_centers(centers, xp=placement.xp) if user_given else unit_rows(centers, xp=placement.xp))
                if self.verbose:
                    print("Initialization complete")
                result = _sparse.lloyd(
                    X_csr, weights, centers, max_iter=max_iter, tol=absolute_tol, x_sq_norms=x_sq_norms,
                    budget_mib=self.working_memory, on_iteration=self._iteration_callback(bar, run, n_init),
                    spherical=cosine,
                )
                self._print_convergence(result, absolute_tol)
                if best is None or result.inertia < best.inertia:
                    best = result
        warn_if_fewer_distinct_clusters(placement.xp.asarray(best.labels), n_clusters, xp=placement.xp)
        self.cluster_centers_ = placement.to_input(best.centers)
        self.labels_ = placement.to_input(best.labels)
        self.inertia_ = best.inertia
        self.n_iter_ = best.n_iter
        self.history_ = best.history
        self.backend_ = "numpy"
        return self

    def _sparse_initial_centers(self, X_user, X_csr, weights, n_clusters, random_state, x_sq_norms, placement):
        if callable(self.init):
            centers = self.init(X_user, n_clusters, random_state)
            return to_numpy(self._check_centers(centers, placement, n_clusters, "the init callable"))
        if self.init == "k-means++":
            indices = _sparse.plusplus_indices(X_csr, n_clusters, weights, random_state, x_sq_norms=x_sq_norms)
            return _sparse.take_dense_rows(X_csr, indices)
        if self.init == "random":
            return _sparse.take_dense_rows(X_csr, forgy_indices(X_csr.shape[0], n_clusters, weights, random_state))
        if self.init == "random-partition":
            return _sparse.random_partition_centers(X_csr, n_clusters, weights, random_state)
        if self.init == "k-means||":
            from ._sparse_parallel import kmeans_parallel_centers as sparse_parallel_centers

            return sparse_parallel_centers(X_csr, n_clusters, weights, random_state, budget_mib=self.working_memory)
        raise ValueError(
            f"init={self.init!r} does not take sparse input; use 'k-means++', 'k-means||', 'random' or 'random-partition'."
        )

    # ------------------------------------------------------------- helpers
    def _place_rows(self, X: Any, *, reset: bool, streamable: bool = True) -> Placement:
        """:meth:`_place` for dense ``X``; SciPy sparse ``X`` stays sparse, as CSR on the host."""
        if is_sparse(X):
            return _sparse.placement(_sparse.check_sparse(X, estimator=self, reset=reset), self.backend, X)
        return self._place(X, reset=reset, streamable=streamable)

    def _printer(self, run: int) -> Callable[[Any], None] | None:
        """``verbose``: one line per iteration, worded as scikit-learn's (iterations counted from 0).

        The inertia printed is that of the iteration's labels against the
        centers they were assigned to, as scikit-learn prints it; recording it
        costs the fused Lloyd step one more pass, paid only when ``verbose``.
        """
        if not self.verbose:
            return None
        # The fit runs in its working frame: inertia is printed in the data's units.
        working_scale = Frame(None, getattr(self, "_working_frame", (None, 0))[1])

        def show(record: Any) -> None:
            inertia = working_scale.restore_distances(record.inertia, 2)
            print(
                f"Iteration {record.iteration - 1}, inertia {inertia}, center shift {record.center_shift:.6g}, "
                f"{record.n_changed} labels changed, {record.seconds * 1e3:.1f} ms."
            )

        return show

    def _print_convergence(self, result: Any, absolute_tol: float) -> None:
        """scikit-learn's closing line of a run, when ``verbose``."""
        if not self.verbose or not result.history:
            return
        last = result.history[-1]
        if len(result.history) > 1 and last.n_changed == 0:
            print(f"Converged at iteration {last.iteration - 1}: strict convergence.")
        elif last.center_shift <= absolute_tol:
            print(
                f"Converged at iteration {last.iteration - 1}: center shift {last.center_shift} "
                f"within tolerance {absolute_tol}."
            )

    def _spherical(self) -> bool:
        """Validate ``metric``; whether this is spherical K-Means."""
        metric = getattr(self, "metric", "euclidean")
        if metric not in ("euclidean", "cosine"):
            raise ValueError(f"metric must be 'euclidean' or 'cosine' for {type(self).__name__}; got {metric!r}.")
        return metric == "cosine"

    def _objective_metric(self) -> Metric:
        return COSINE if self._spherical() else super()._objective_metric()

    def _transform_metric(self) -> Metric:
        # Distances, not the squared distances the objective sums (scikit-learn's transform).
        return COSINE if self._spherical() else EUCLIDEAN

    def _init_name(self) -> str | None:
        return self.init if isinstance(self.init, str) else None

    def _explicit_init_centers(self, placement: Placement, n_clusters: int) -> Any:
        """The ``init`` array validated and moved to the compute namespace, or None."""
        if isinstance(self.init, str) or callable(self.init):
            return None
        return self._check_centers(self.init, placement, n_clusters, "init")

    def _initial_centers(self, X_user, X_fit, frame, sample_weight, n_clusters, random_state, x_sq_norms, placement):
        xp = placement.xp
        if callable(self.init):
            centers = self.init(X_user, n_clusters, random_state)
            centers = self._check_centers(centers, placement, n_clusters, "the init callable")
            return frame.apply(centers)
        if self.init == "k-means++":
            indices = kmeans_plusplus_indices(
                X_fit, n_clusters, sample_weight, random_state, xp=xp, x_sq_norms=x_sq_norms, budget_mib=self.working_memory
            )
            return take_rows(X_fit, indices, xp=xp)
        if self.init == "k-means||":
            return kmeans_parallel_centers(X_fit, n_clusters, sample_weight, random_state, xp=xp, budget_mib=self.working_memory)
        if self.init == "random":
            return take_rows(X_fit, forgy_indices(X_fit.shape[0], n_clusters, sample_weight, random_state), xp=xp)
        return random_partition_centers(X_fit, n_clusters, sample_weight, random_state, xp=xp, budget_mib=self.working_memory)


def weighted_mean(X: Any, sample_weight: Any, *, xp: Any, budget_mib: float | None = None) -> Any:
    """Weighted mean of the rows: shape ``(d,)``, dtype of ``X`` (accumulated in float64).

    ``budget_mib`` bounds one row block's temporaries (default: the backend's).
    One implementation serves every caller: :func:`kgpu._scale.weighted_mean`.
    """
    return _scale_weighted_mean(X, sample_weight, xp=xp, budget_mib=budget_mib)


def mean_feature_variance(X: Any, sample_weight: Any, *, xp: Any, budget_mib: float | None = None) -> float:
    """Mean over features of the weighted variance (scikit-learn's ``tol`` scale).

    Two passes (mean, then squared deviations), so a large offset does not
    cancel the variance away.
    """
    weights64 = xp.astype(sample_weight, xp.float64)
    mean = xp.astype(weighted_mean(X, sample_weight, xp=xp, budget_mib=budget_mib), xp.float64)

    def block_sq_dev(start: int, stop: int) -> Any:
        deviation = xp.astype(X[start:stop, :], xp.float64) - mean
        return xp.matmul(weights64[start:stop], deviation * deviation)

    variances = _sum_over_blocks(block_sq_dev, X, xp, budget_mib) / xp.sum(weights64)
    return float(xp.mean(variances))


def _sum_over_blocks(block_fn: Callable[[int, int], Any], X: Any, xp: Any, budget_mib: float | None = None) -> Any:
    """Sum of ``block_fn(start, stop)`` over float64-sized row blocks of ``X``."""
    rows = block_rows(X.shape[0], X.shape[1] * 8 * 2, xp, budget_mib)
    parts = map_blocks(block_fn, row_blocks(X.shape[0], rows), xp)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def kmeans_plusplus(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any = None,
    x_squared_norms: Any = None,
    random_state: Any = None,
    n_local_trials: int | None = None,
    backend: str | None = None,
    device: Any = None,
) -> tuple[Any, Any]:
    """Greedy k-means++ seeding, like :func:`sklearn.cluster.kmeans_plusplus`.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_clusters : int
    sample_weight : array-like of shape (n_samples,), default=None
    x_squared_norms : array-like of shape (n_samples,), default=None
        Precomputed ``||x||^2``: checked, but the seeding computes its own in
        its working frame (relative to the weighted mean, see
        :mod:`kgpu._scale`), where the distances keep their digits.
    random_state : int, RandomState instance or None
    n_local_trials : int or None
        Candidates per step (default ``2 + int(log(n_clusters))``).
    backend, device :
        Where to compute (see :class:`KMeans`).

    Returns
    -------
    centers : array of shape (n_clusters, n_features), namespace of ``X``
    indices : integer array of shape (n_clusters,), namespace of ``X``

    Examples
    --------
    >>> import numpy as np
    >>> from kgpu import kmeans_plusplus
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]], dtype=float)
    >>> centers, indices = kmeans_plusplus(X, n_clusters=2, random_state=0)
    >>> indices.tolist()
    [3, 2]
    """
    if is_sparse(X):
        return _sparse_kmeans_plusplus(X, n_clusters, sample_weight, x_squared_norms, random_state, n_local_trials, backend)
    X_valid = check_data(X)
    n_clusters = check_n_clusters(n_clusters, X_valid.shape[0])
    if n_local_trials is not None:
        n_local_trials = check_positive_int(n_local_trials, "n_local_trials")
    input_xp, input_device = namespace_of(X_valid), device_of(X_valid)
    xp, compute_device = resolve_compute(backend, device, X_valid)
    if is_half_precision(X_valid.dtype):
        # Read in float32 blocks; X stays half precision in memory.
        X_fit = half_precision_rows(X_valid, xp, compute_device)
    else:
        X_fit = move_to(X_valid, xp, compute_device)
    weights = check_sample_weight(sample_weight, X_fit, xp, compute_device)
    norms = None
    if x_squared_norms is not None:
        norms = xp.astype(move_to(_as_array(x_squared_norms), xp, compute_device), X_fit.dtype)
        if tuple(norms.shape) != (X_fit.shape[0],):
            raise ValueError(
                f"The length of x_squared_norms {tuple(norms.shape)} should be equal to "
                f"the length of n_samples {X_fit.shape[0]}."
            )
    # Distances in the working frame (kgpu._scale): exact far from the origin
    # and at extreme magnitudes. ||x||^2 given by the caller are of the raw
    # rows, so they are checked but the frame's own are used.
    frame = fit_frame(X_fit, weights, xp=xp)
    X_work = frame_view(X_fit, frame, xp=xp, device=compute_device) if isinstance(X_fit, StreamedRows) else frame.apply(X_fit)
    indices = kmeans_plusplus_indices(
        X_work, n_clusters, weights, check_random_state(random_state), xp=xp,
        x_sq_norms=norms if frame.is_identity else None, n_local_trials=n_local_trials,
    )
    centers = take_rows(X_fit, indices, xp=xp)
    return move_to(centers, input_xp, input_device), move_to(xp.asarray(indices, device=compute_device), input_xp, input_device)


def k_means(
    X: Any,
    n_clusters: int,
    *,
    sample_weight: Any = None,
    return_n_iter: bool = False,
    **params: Any,
) -> tuple:
    """K-Means in function form, like :func:`sklearn.cluster.k_means`.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    n_clusters : int
    sample_weight : array-like of shape (n_samples,), default=None
    return_n_iter : bool, default=False
        Also return the number of iterations of the best run.
    **params :
        Any other parameter of :class:`KMeans` (``init``, ``n_init``,
        ``max_iter``, ``verbose``, ``tol``, ``random_state``, ``copy_x``,
        ``algorithm``, ``backend``...).

    Returns
    -------
    centers : array of shape (n_clusters, n_features)
    labels : integer array of shape (n_samples,)
    inertia : float
    n_iter : int
        Only when ``return_n_iter`` is True.

    Examples
    --------
    >>> import numpy as np
    >>> from kgpu import k_means
    >>> X = np.array([[1, 2], [1, 4], [1, 0], [10, 2], [10, 4], [10, 0]], dtype=float)
    >>> centers, labels, inertia = k_means(X, n_clusters=2, random_state=0)
    >>> sorted(centers.tolist())
    [[1.0, 2.0], [10.0, 2.0]]
    """
    estimator = KMeans(n_clusters=n_clusters, **params).fit(X, sample_weight=sample_weight)
    result = (estimator.cluster_centers_, estimator.labels_, estimator.inertia_)
    return (*result, estimator.n_iter_) if return_n_iter else result


def _sparse_kmeans_plusplus(X, n_clusters, sample_weight, x_squared_norms, random_state, n_local_trials, backend):
    """:func:`kmeans_plusplus` of SciPy sparse rows: dense centers, host indices."""
    X_csr = _sparse.check_sparse(X)
    placement = _sparse.placement(X_csr, backend, X)
    n_clusters = check_n_clusters(n_clusters, X_csr.shape[0])
    if n_local_trials is not None:
        n_local_trials = check_positive_int(n_local_trials, "n_local_trials")
    weights = to_numpy(check_sample_weight(sample_weight, X_csr, placement.xp))
    norms = None
    if x_squared_norms is not None:
        norms = np.asarray(to_numpy(_as_array(x_squared_norms)), dtype=np.float64)
        if norms.shape != (X_csr.shape[0],):
            raise ValueError(
                f"The length of x_squared_norms {norms.shape} should be equal to "
                f"the length of n_samples {X_csr.shape[0]}."
            )
    indices = _sparse.plusplus_indices(
        X_csr, n_clusters, weights, check_random_state(random_state), x_sq_norms=norms, n_local_trials=n_local_trials
    )
    return placement.to_input(_sparse.take_dense_rows(X_csr, indices)), placement.to_input(indices)


def _as_array(values: Any) -> Any:
    return values if is_array_api_obj(values) else np.asarray(values)


__all__ = ["KMeans", "k_means", "kmeans_plusplus"]
