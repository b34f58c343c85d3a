"""What every kgpu estimator shares: where to compute, and handing results back.

An estimator validates its input once, picks the compute namespace and device
(``backend=`` / ``device=``), moves the data there, calls kernels, and returns
every array in the namespace and on the device of the caller's input.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from sklearn.base import BaseEstimator, ClassNamePrefixFeaturesOutMixin, ClusterMixin, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from ._backend import backend_name, device_of, move_to, namespace_of, resolve_compute
from ._stream import StreamedRows, should_stream
from ._validation import check_data, check_sample_weight


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
    """Backend plumbing and scikit-learn tags shared by the centroid estimators.

    Subclasses define ``backend``, ``device`` and ``working_memory`` parameters.
    """

    def _place(self, X: Any, *, reset: bool, min_samples: int = 1, streamable: bool = False) -> Placement:
        """Validate ``X`` and move it to the compute namespace.

        With ``streamable=True`` (for code that only reads ``X`` in row blocks)
        a memory-mapped file, or host data whose working copy would not fit
        the compute device, stays on the host and is streamed block by block
        (:class:`kgpu._stream.StreamedRows`).
        """
        X_valid = check_data(X, estimator=self, reset=reset, min_samples=min_samples)
        input_xp = namespace_of(X_valid)
        input_device = device_of(X_valid)
        xp, device = resolve_compute(self.backend, self.device, X_valid)
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
        tags.input_tags.sparse = False
        tags.transformer_tags.preserves_dtype = ["float64", "float32"]
        return tags


def fitted_backend_name(placement: Placement) -> str:
    """Name of the library a fit computed with (for ``backend_`` and summaries)."""
    return backend_name(placement.xp)
