"""What every kgpu estimator shares: where to compute, and handing results back.

An estimator validates its input once, picks the compute namespace and device
(``backend=`` / ``device=``), moves the data there, calls kernels, and returns
every array in the namespace and on the device of the caller's input.
"""

from __future__ import annotations

import warnings
from typing import Any, Callable, NamedTuple

from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils.validation import check_is_fitted

from ._assign import SQEUCLIDEAN, assign, distance_matrix, weighted_sum
from ._distances import Metric
from ._progress import chain_callbacks, progress_bar
from ._segment import segment_weight
from . import _sparse
from ._sparse import is_sparse

from ._backend import backend_name, device_of, move_to, namespace_of, resolve_compute
from ._blocks import check_working_memory
from ._scale import IDENTITY, Frame, fit_frame, frame_of_centers, frame_view, is_translation_invariant, metric_power
from ._stream import StreamedRows, half_precision_rows, should_stream, widened
from ._validation import check_data, check_positive_int, check_sample_weight, is_dask_array, is_half_precision


class Placement(NamedTuple):
    """Where an input came from and where it is computed on.

    Attributes
    ----------
    X : array
        The validated input, moved to the compute namespace and device.
    xp, device :
        Compute namespace and device.
    input_xp, input_device :
        Namespace and device of the caller's input (results go back there).
    """

    X: Any
    xp: Any
    device: Any
    input_xp: Any
    input_device: Any

    def to_input(self, array: Any) -> Any:
        """Move a result back to the caller's namespace and device."""
        return move_to(array, self.input_xp, self.input_device)


class CentroidEstimatorMixin(ClassNamePrefixFeaturesOutMixin, TransformerMixin, ClusterMixin, BaseEstimator):
    """What the centroid estimators share: placement, predict / transform / score, init checks.

    Subclasses define ``n_clusters``, ``init``, ``n_init``, ``verbose``,
    ``backend``, ``device`` and ``working_memory`` parameters, a ``fit`` that
    sets ``cluster_centers_``, and say which metric their objective sums
    (:meth:`_objective_metric`). Everything after the fit is then common:
    ``predict`` assigns by that metric, ``score`` is minus its weighted sum,
    ``transform`` gives the distances to the centers.
    """

    #: ``init`` names the estimator accepts.
    _init_methods: tuple[str, ...] = ()
    #: Inits run once when ``n_init="auto"`` (greedy seedings); others run
    #: :attr:`_default_n_init` times.
    _single_run_inits: tuple[str, ...] = ()
    #: Inits that give the same centers every time: ``n_init`` is forced to 1.
    _deterministic_inits: tuple[str, ...] = ()
    _default_n_init = 10
    #: What an explicit ``init`` is, for error messages.
    _explicit_init = "an array of shape (n_clusters, n_features)"
    #: Whether Dask input is fitted and predicted by :mod:`kgpu._dask`.
    _dask_engine = False
    #: Whether SciPy sparse input is fitted and predicted by :mod:`kgpu._sparse`.
    _sparse_engine = False

    # ----------------------------------------------------------- metrics
    def _objective_metric(self) -> Metric:
        """The metric of the objective: ``predict`` assigns by it, ``score`` sums it."""
        return SQEUCLIDEAN

    def _transform_metric(self) -> Metric:
        """The metric of :meth:`transform` (the objective's, unless overridden)."""
        return self._objective_metric()

    # ------------------------------------------------- after the fit
    def predict(self, X: Any) -> Any:
        """Index of the closest center (under the objective's metric) for each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)

        Returns
        -------
        labels : integer array of shape (n_samples,), in the namespace of ``X``
            A lazy Dask array for a Dask ``X`` (K-Means family).
        """
        if self._dask_engine and is_dask_array(X):
            from ._dask import predict_labels

            return predict_labels(self, X)
        if self._sparse_engine and is_sparse(X):
            return _sparse.predict(self, X)
        placement = self._place(X, reset=False, streamable=True)
        X_work, centers, _ = self._in_working_frame(placement)
        assignment = assign(
            X_work, centers, xp=placement.xp, metric=self._objective_metric(), budget_mib=self.working_memory,
        )
        return placement.to_input(assignment.labels)

    def fit_predict(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit and return ``labels_``."""
        return self.fit(X, sample_weight=sample_weight).labels_

    def transform(self, X: Any) -> Any:
        """Distance from each sample to each center.

        Returns
        -------
        distances : array of shape (n_samples, n_clusters), dtype of ``X``
            A lazy Dask array for a Dask ``X`` (K-Means family).
        """
        if self._dask_engine and is_dask_array(X):
            from ._dask import transform

            return transform(self, X)
        if self._sparse_engine and is_sparse(X):
            return _sparse.transform(self, X)
        placement = self._place(X, reset=False, streamable=True)
        X_work, centers, frame = self._in_working_frame(placement)
        metric = self._transform_metric()
        distances = distance_matrix(X_work, centers, xp=placement.xp, metric=metric, budget_mib=self.working_memory)
        return placement.to_input(frame.restore_distances(distances, metric_power(metric)))

    def fit_transform(self, X: Any, y: Any = None, sample_weight: Any = None) -> Any:
        """Fit, then return :meth:`transform` of ``X``."""
        return self.fit(X, sample_weight=sample_weight).transform(X)

    def score(self, X: Any, y: Any = None, sample_weight: Any = None) -> float:
        """Opposite of the objective of ``X`` on the fitted centers (weighted).

        For K-Means the inertia, for K-Medians the sum of L1 distances, for
        K-Medoids the sum of distances under ``metric``.
        """
        if self._dask_engine and is_dask_array(X):
            from ._dask import score

            return score(self, X, sample_weight)
        if self._sparse_engine and is_sparse(X):
            return _sparse.score(self, X, sample_weight)
        placement = self._place(X, reset=False, streamable=True)
        weights = self._place_weights(sample_weight, placement)
        X_work, centers, frame = self._in_working_frame(placement)
        metric = self._objective_metric()
        assignment = assign(X_work, centers, xp=placement.xp, metric=metric, budget_mib=self.working_memory)
        return -frame.restore_distances(weighted_sum(assignment.min_dist, weights, xp=placement.xp), metric_power(metric))

    # --------------------------------------------------- working frame
    def _fit_working_frame(self, X_fit: Any, sample_weight: Any, *, xp: Any, center: bool = True) -> Frame:
        """The working frame of a fit (see :mod:`kgpu._scale`), kept for ``predict``.

        The origin is the weighted mean of ``X_fit`` (none when ``center`` is
        False or the objective's metric depends on the origin); the scale is a
        power of two.
        """
        if is_sparse(X_fit):
            # Centering would make sparse rows dense: sparse fits keep their coordinates.
            self._working_frame = IDENTITY.to_host()
            return IDENTITY
        center = center and is_translation_invariant(self._objective_metric())
        frame = fit_frame(X_fit, sample_weight, xp=xp, center=center, budget_mib=self.working_memory)
        self._working_frame = frame.to_host()
        return frame

    def _fit_working_frame_and_copy(
        self, X_fit: Any, sample_weight: Any, *, xp: Any, center: bool = True, check_finite: bool = False
    ) -> tuple[Frame, Any]:
        """:meth:`_fit_working_frame` and Lloyd's working copy in that frame, with one read of ``X_fit`` fewer.

        See :func:`kgpu._scale.fit_frame_and_working_copy` (``check_finite``
        too: for ``X`` placed with ``check_finite=False``).
        """
        from ._scale import fit_frame_and_working_copy

        center = center and is_translation_invariant(self._objective_metric())
        frame, design = fit_frame_and_working_copy(
            X_fit, sample_weight, xp=xp, center=center, budget_mib=self.working_memory, check_finite=check_finite
        )
        self._working_frame = frame.to_host()
        return frame, design

    def _in_working_frame(self, placement: Placement) -> tuple[Any, Any, Frame]:
        """``(X, centers, frame)``: the rows and the fitted centers in the fit's working frame.

        Streamed rows are transformed block by block as they are read; an
        array in memory is transformed into a new array.

        Computing relative to the fit's origin keeps the digits float32 would
        lose far from zero, so ``predict(X)`` equals ``labels_``; a model
        whose fit kept no frame uses the centers' mean and scale.
        """
        xp = placement.xp
        centers = self._centers_on(placement)
        frame = self._stored_frame(placement, centers)
        if isinstance(placement.X, StreamedRows):
            X_work = frame_view(placement.X, frame, xp=xp, device=placement.device)
        else:
            # A plain array, as the fit had: the same kernels (native ones
            # included) run, so predict(X) and score(X) match the fit's bits.
            X_work = frame.apply(placement.X)
        return X_work, frame.apply(centers), frame

    def _stored_frame(self, placement: Placement, centers: Any) -> Frame:
        xp = placement.xp
        stored = getattr(self, "_working_frame", None)
        if stored is None or (stored[0] is not None and stored[0].shape != (centers.shape[1],)):
            return frame_of_centers(centers, xp=xp, center=is_translation_invariant(self._objective_metric()))
        origin_host, exponent = stored
        origin = None
        if origin_host is not None:
            origin = xp.astype(move_to(origin_host, xp, placement.device), centers.dtype)
        return Frame(origin, exponent)

    # ------------------------------------------------------------ init
    def _resolve_n_init(self) -> int:
        """Validate ``init`` and ``n_init``; the number of runs to make.

        ``n_init="auto"`` follows scikit-learn: one run for the greedy seedings
        and explicit centers, :attr:`_default_n_init` for random ones and
        callables.
        """
        explicit = not isinstance(self.init, str) and not callable(self.init)
        if isinstance(self.init, str) and self.init not in self._init_methods:
            raise ValueError(
                f"init must be one of {self._init_methods}, a callable or "
                f"{self._explicit_init}; got {self.init!r}."
            )
        deterministic = explicit or (isinstance(self.init, str) and self.init in self._deterministic_inits)
        if self.n_init == "auto":
            single = deterministic or (isinstance(self.init, str) and self.init in self._single_run_inits)
            return 1 if single else self._default_n_init
        n_init = check_positive_int(self.n_init, "n_init")
        if deterministic and n_init != 1:
            what = "Explicit initial center position passed" if explicit else f"init={self.init!r} is deterministic"
            warnings.warn(
                f"{what}: performing only one init in {type(self).__name__} instead of n_init={n_init}.",
                RuntimeWarning,
                stacklevel=3,
            )
            return 1
        return n_init

    def _check_centers(self, centers: Any, placement: Placement, n_clusters: int, what: str) -> Any:
        """Initial centers given by the user, validated and moved to the compute namespace.

        ``what`` names where they came from (``"init"``, ``"the init
        callable"``), and every message says it.
        """
        if centers is None or isinstance(centers, (str, bytes)):
            raise TypeError(
                f"The initial centers given by {what} must be {self._explicit_init}; got {centers!r}."
            )
        try:
            centers = check_data(centers)
        except (ValueError, TypeError) as exc:
            raise type(exc)(
                f"The initial centers given by {what} must be {self._explicit_init} of finite numbers; "
                f"got {type(centers).__name__} {_short_repr(centers)}: {exc}"
            ) from exc
        # scikit-learn's wording (which its tests match), then kgpu's detail.
        expected = f"expected (n_clusters, n_features) = ({n_clusters}, {self.n_features_in_}) for centers given by {what}"
        if centers.shape[0] != n_clusters:
            raise ValueError(
                f"The shape of the initial centers {tuple(centers.shape)} does not match "
                f"the number of clusters {n_clusters}: {expected}."
            )
        if centers.shape[1] != self.n_features_in_:
            raise ValueError(
                f"The shape of the initial centers {tuple(centers.shape)} does not match "
                f"the number of features of the data {self.n_features_in_}: {expected}."
            )
        centers = move_to(centers, placement.xp, placement.device)
        return placement.xp.astype(centers, placement.X.dtype)

    def _progress_bar(self, *, total: int | None = None, unit: str = "iter") -> Any:
        """The ``progress`` bar of this fit (a no-op when off); a context manager."""
        return progress_bar(self.progress, total=total, description=type(self).__name__, unit=unit)

    def _iteration_callback(self, bar: Any, run: int, n_init: int) -> Callable[[Any], None] | None:
        """What a kernel calls after every iteration of run ``run``: the bar and ``verbose``."""
        if n_init > 1:
            bar.describe(f"{type(self).__name__} run {run + 1}/{n_init}")
        return chain_callbacks(self._printer(run), bar.on_iteration)

    def _printer(self, run: int) -> Callable[[Any], None] | None:
        """The ``verbose`` callback: one line per iteration record, or None."""
        if not self.verbose:
            return None

        def show(record: Any) -> None:
            fields = ", ".join(
                f"{name.replace('_', ' ')} {value:.6g}" if isinstance(value, float) else f"{name.replace('_', ' ')} {value}"
                for name, value in record._asdict().items()
                if name not in ("iteration", "seconds") and value is not None
            )
            print(f"run {run} iteration {record.iteration}: {fields}, {record.seconds * 1e3:.1f} ms")

        return show

    def _place(
        self, X: Any, *, reset: bool, min_samples: int = 1, streamable: bool = False, check_finite: bool = True
    ) -> Placement:
        """Validate ``X`` and move it to the compute namespace.

        With ``streamable=True`` (for code that only reads ``X`` in row blocks)
        a memory-mapped file, or host data whose working copy would not fit
        the compute device, stays on the host and is streamed block by block
        (:class:`kgpu._stream.StreamedRows`). Half-precision ``X`` is then
        read in float32 blocks (it stays half precision in memory); without
        ``streamable`` it is converted to float32 whole. ``check_finite=False``
        leaves the NaN / infinity check to the caller's first pass
        (:func:`kgpu._validation.check_data`).
        """
        # Checked before any work, so that a bad budget is named as such (not
        # met later as an odd allocation size).
        check_working_memory(getattr(self, "working_memory", None))
        X_valid = check_data(X, estimator=self, reset=reset, min_samples=min_samples, check_finite=check_finite)
        input_xp = namespace_of(X_valid)
        input_device = device_of(X_valid)
        xp, device = resolve_compute(self.backend, self.device, X_valid)
        if is_half_precision(X_valid.dtype):
            if streamable:
                return Placement(half_precision_rows(X_valid, xp, device), xp, device, input_xp, input_device)
            X_valid = widened(X_valid)
        if streamable and should_stream(X_valid, xp, device):
            return Placement(StreamedRows(X_valid, xp, device), xp, device, input_xp, input_device)
        return Placement(move_to(X_valid, xp, device), xp, device, input_xp, input_device)

    def _place_weights(self, sample_weight: Any, placement: Placement) -> Any:
        return check_sample_weight(sample_weight, placement.X, placement.xp, placement.device)

    def _centers_on(self, placement: Placement) -> Any:
        """The fitted centers, in the compute namespace of ``placement`` and its dtype."""
        check_is_fitted(self, "cluster_centers_")
        centers = move_to(self.cluster_centers_, placement.xp, placement.device)
        xp = placement.xp
        if centers.dtype != placement.X.dtype:
            centers = xp.astype(centers, placement.X.dtype)
        return centers

    @property
    def _n_features_out(self) -> int:
        return self.cluster_centers_.shape[0]

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = self._sparse_engine
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def warn_if_fewer_distinct_clusters(labels: Any, n_clusters: int, *, xp: Any) -> None:
    """scikit-learn's ``ConvergenceWarning`` when a fit uses fewer clusters than asked for."""
    n_distinct = int(xp.count_nonzero(segment_weight(labels, n_clusters, xp=xp) > 0))
    if n_distinct < n_clusters:
        warnings.warn(
            f"Number of distinct clusters ({n_distinct}) found smaller than "
            f"n_clusters ({n_clusters}). Possibly due to duplicate points in X.",
            ConvergenceWarning,
            stacklevel=3,
        )


def fitted_backend_name(placement: Placement) -> str:
    """Name of the library a fit computed with (for ``backend_`` and summaries)."""
    return backend_name(placement.xp)
