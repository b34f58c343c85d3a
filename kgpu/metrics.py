"""Judging a clustering: inertia, silhouette, Calinski-Harabasz and Davies-Bouldin.

Every score is computed where the data lives (or on ``backend=``), in row
blocks sized to a memory budget, from the same distance and segmented-sum
kernels the estimators use:

- the silhouette takes a block of rows, computes its distances to all rows
  chunk by chunk (:func:`kgpu._distances.pairwise_distances`) and reduces each
  chunk per cluster with a segmented sum (:func:`kgpu._segment.segment_sum`),
  so no ``n x n`` matrix is ever built beyond ``working_memory``;
- Calinski-Harabasz, Davies-Bouldin and the gap statistic's within-cluster
  dispersion share one kernel (:func:`cluster_stats`): per-cluster sums and
  counts in one pass, the distance of every row to its cluster mean in a second.

On float64 input the scores agree with :mod:`sklearn.metrics` to 1e-6
relative; labels may be any values (strings, gaps, negative numbers), encoded
the way scikit-learn does. Scores come back as Python floats; per-sample
silhouettes as an array in the namespace and on the device of ``X``.
"""

from __future__ import annotations

import numbers
from typing import Any, NamedTuple

import numpy as np
from sklearn.utils import check_random_state

from ._assign import itemsize, weighted_inertia
from ._backend import device_of, is_array_api_obj, move_to, namespace_of, resolve_compute, to_numpy
from ._base import Placement
from ._blocks import block_rows, map_blocks, row_blocks
from ._distances import (
    Metric,
    check_metric,
    distance_bytes_per_row,
    pairwise_distances,
    row_sq_norms,
    sq_distance_to_own_center,
)
from ._scale import fit_frame, frame_view, is_translation_invariant
from ._segment import segment_sum, segment_weight
from ._kernels.dispatch import ANY_BACKEND, call, register
from . import _sparse, _sparse_metrics
from ._sparse import is_sparse
from ._stream import StreamedRows, half_precision_rows, widened
from ._validation import check_data, check_sample_weight, is_half_precision

#: Metrics the silhouette accepts.
SILHOUETTE_METRICS = ("euclidean", "sqeuclidean", "manhattan", "cosine")

#: Fewest query rows a silhouette block holds before the other axis is chunked:
#: thinner blocks would make every GEMM and segmented sum too small to be efficient.
_MIN_QUERY_ROWS = 64

_EUCLIDEAN = Metric("euclidean", 2.0)


# --------------------------------------------------------------------- labels
class EncodedLabels(NamedTuple):
    """Cluster labels as contiguous integer codes on the compute device.

    Attributes
    ----------
    codes : int64 array of shape (n,)
        Values in ``[0, n_labels)``; code ``j`` is the ``j``-th smallest label.
    n_labels : int
        Number of distinct labels (every code is used).
    """

    codes: Any
    n_labels: int


def encode_labels(labels: Any, n_samples: int, *, xp: Any, device: Any = None) -> EncodedLabels:
    """Validate arbitrary cluster labels and encode them as ``0 .. n_labels - 1``.

    Labels are encoded in their own namespace (on the GPU for GPU labels), the
    way :class:`sklearn.preprocessing.LabelEncoder` does: sorted distinct values.

    Parameters
    ----------
    labels : array-like of shape (n_samples,)
        Any values: integers (gaps and negatives allowed), strings, floats.
    n_samples : int
        Rows of the data the labels belong to.
    xp : namespace
        Compute namespace the codes are moved to.
    device : device or None

    Returns
    -------
    EncodedLabels

    Raises
    ------
    ValueError
        For labels that are not 1-D, of the wrong length, or hold NaN.
    """
    if is_array_api_obj(labels) and not isinstance(labels, np.ndarray):
        labels_xp = namespace_of(labels)
        _check_labels_shape(tuple(labels.shape), n_samples)
        if labels_xp.isdtype(labels.dtype, "real floating") and bool(labels_xp.any(labels_xp.isnan(labels))):
            raise ValueError("labels contain NaN: every sample needs a cluster label.")
        values, inverse = labels_xp.unique_inverse(labels)
        codes = labels_xp.astype(inverse, labels_xp.int64)
        return EncodedLabels(move_to(codes, xp, device), int(values.shape[0]))
    host = np.asarray(labels)
    _check_labels_shape(host.shape, n_samples)
    if host.dtype.kind == "f" and np.isnan(host).any():
        raise ValueError("labels contain NaN: every sample needs a cluster label.")
    if host.dtype.kind == "c":
        raise ValueError("labels must not be complex.")
    try:
        values, inverse = np.unique(host, return_inverse=True)
    except TypeError as exc:
        raise TypeError(f"labels must be comparable values of one type: {exc}") from exc
    return EncodedLabels(move_to(inverse.reshape(-1).astype(np.int64), xp, device), int(values.shape[0]))


def _check_labels_shape(shape: tuple, n_samples: int) -> None:
    if len(shape) != 1:
        raise ValueError(f"labels must be 1-D with one label per sample, got shape {shape}.")
    if shape[0] != n_samples:
        raise ValueError(
            f"labels has {shape[0]} entries but X has {n_samples} samples: "
            "one label per sample is needed."
        )


def compact_codes(codes: Any, n_codes: int, *, xp: Any) -> EncodedLabels:
    """Renumber integer codes in ``[0, n_codes)`` so that every code is used.

    A clustering may leave some of its ``k`` labels unused, and a sample of
    rows may miss some clusters; the scores count only the labels present.
    Order is kept, so the result equals :func:`encode_labels` of ``codes``.

    Parameters
    ----------
    codes : integer array of shape (n,)
        Values in ``[0, n_codes)``.
    n_codes : int
    xp : namespace

    Returns
    -------
    EncodedLabels
    """
    codes = xp.astype(codes, xp.int64)
    present = to_numpy(segment_weight(codes, n_codes, xp=xp)) > 0
    n_labels = int(present.sum())
    if n_labels == n_codes:
        return EncodedLabels(codes, n_labels)
    new_code = (np.cumsum(present) - 1).astype(np.int64)
    return EncodedLabels(xp.take(move_to(new_code, xp, device_of(codes)), codes, axis=0), n_labels)


def check_number_of_labels(n_labels: int, n_samples: int) -> None:
    """The silhouette, Calinski-Harabasz and Davies-Bouldin scores need ``2 <= n_labels < n_samples``."""
    if not 1 < n_labels < n_samples:
        raise ValueError(
            f"Number of labels is {n_labels}. Valid values are 2 to n_samples - 1 "
            f"(inclusive), here 2 to {n_samples - 1}: the score compares clusters "
            "with each other, so it needs at least two clusters and one that holds "
            "two samples."
        )


# -------------------------------------------------------------------- kernels
class ClusterStats(NamedTuple):
    """Per-cluster summaries of a labelled data set (all on the host, float64).

    Attributes
    ----------
    counts : ndarray of shape (n_labels,)
        Samples per cluster.
    means : ndarray of shape (n_labels, n_features)
        Cluster centroids.
    within_ss : float
        Pooled within-cluster sum of squares ``sum_i ||x_i - mean[label_i]||^2``
        (the K-Means inertia about the centroids; ``W_k`` of the gap statistic).
    mean_distance : ndarray of shape (n_labels,)
        Mean Euclidean distance of a cluster's samples to its centroid.
    """

    counts: np.ndarray
    means: np.ndarray
    within_ss: float
    mean_distance: np.ndarray


def cluster_stats(X: Any, codes: Any, n_labels: int, *, xp: Any, budget_mib: float | None = None) -> ClusterStats:
    """Counts, centroids, pooled within-cluster sum of squares and mean distances.

    Two passes over ``X`` in row blocks: per-cluster sums (a segmented sum,
    accumulated in float64), then every row's squared distance to its own
    centroid, computed exactly as ``||x - c||^2``.

    Parameters
    ----------
    X : array of shape (n, d), float32 or float64
    codes : int64 array of shape (n,)
        Cluster of every row, in ``[0, n_labels)``.
    n_labels : int
    xp : namespace
    budget_mib : float or None
        Memory budget of one block (default: the backend's).

    Returns
    -------
    ClusterStats
    """
    n_rows, n_features = X.shape
    rows = block_rows(n_rows, (2 * n_features + n_labels + 4) * 8, xp, budget_mib)
    blocks = row_blocks(n_rows, rows)

    def block_sums(start: int, stop: int) -> tuple[Any, Any]:
        codes_block = codes[start:stop]
        sums = segment_sum(X[start:stop, :], codes_block, n_labels, xp=xp)
        return xp.astype(sums, xp.float64), segment_weight(codes_block, n_labels, xp=xp, dtype=xp.float64)

    parts = map_blocks(block_sums, blocks, xp)
    sums = to_numpy(_add_all([part[0] for part in parts]))
    counts = to_numpy(_add_all([part[1] for part in parts]))
    # Every code is present (see compact_codes), so no count is zero.
    means = sums / counts[:, None]
    means_on_device = xp.asarray(means.astype(_numpy_dtype(X, xp)), device=X.device if isinstance(X, StreamedRows) else device_of(X))

    def block_dispersion(start: int, stop: int) -> tuple[Any, Any]:
        codes_block = codes[start:stop]
        sq_dist = xp.astype(sq_distance_to_own_center(X[start:stop, :], means_on_device, codes_block, xp=xp), xp.float64)
        distance_sums = segment_weight(codes_block, n_labels, xp.sqrt(sq_dist), xp=xp, dtype=xp.float64)
        return xp.sum(sq_dist), distance_sums

    parts = map_blocks(block_dispersion, blocks, xp)
    within_ss = float(sum(float(part[0]) for part in parts))
    mean_distance = to_numpy(_add_all([part[1] for part in parts])) / counts
    return ClusterStats(counts, means, within_ss, mean_distance)


def calinski_harabasz_from_stats(stats: ClusterStats, n_samples: int) -> float:
    """Calinski-Harabasz score (variance ratio) from :func:`cluster_stats`."""
    n_labels = stats.counts.shape[0]
    overall_mean = stats.counts @ stats.means / n_samples
    between_ss = float(stats.counts @ np.sum((stats.means - overall_mean) ** 2, axis=1))
    if stats.within_ss == 0.0:
        return 1.0
    return between_ss * (n_samples - n_labels) / (stats.within_ss * (n_labels - 1.0))


def davies_bouldin_from_stats(stats: ClusterStats) -> float:
    """Davies-Bouldin score from :func:`cluster_stats` (scikit-learn's conventions)."""
    import array_api_compat.numpy as host_xp

    centroid_distances = np.array(pairwise_distances(stats.means, stats.means, _EUCLIDEAN, xp=host_xp))
    # The GEMM expansion leaves rounding noise where the exact distance is 0.
    np.fill_diagonal(centroid_distances, 0.0)
    if np.allclose(stats.mean_distance, 0.0) or np.allclose(centroid_distances, 0.0):
        return 0.0
    centroid_distances[centroid_distances == 0] = np.inf
    combined = stats.mean_distance[:, None] + stats.mean_distance[None, :]
    return float(np.mean(np.max(combined / centroid_distances, axis=1)))


def silhouette_kernel(
    X: Any,
    codes: Any,
    n_labels: int,
    metric: Metric,
    *,
    xp: Any,
    budget_mib: float | None = None,
) -> Any:
    """Silhouette coefficient of every row (operation ``"silhouette"``).

    Runs the implementation the kernel table picks for ``xp``
    (:mod:`kgpu._kernels.dispatch`); :func:`silhouette_reference` is the
    array-API reference, documented there.
    """
    return call("silhouette", X, codes, n_labels, metric, xp=xp, budget_mib=budget_mib)


@register("silhouette", ANY_BACKEND, name="array-api")
def silhouette_reference(
    X: Any,
    codes: Any,
    n_labels: int,
    metric: Metric,
    *,
    xp: Any,
    budget_mib: float | None = None,
) -> Any:
    """Silhouette coefficient of every row, batched on the device.

    For a block of query rows, the distances to all rows are computed chunk by
    chunk (each tile within ``budget_mib``) and summed per cluster with a
    segmented sum; the block's ``a`` (mean distance to its own cluster, itself
    excluded) and ``b`` (smallest mean distance to another cluster) follow.

    Parameters
    ----------
    X : array of shape (n, d)
    codes : int64 array of shape (n,)
        Values in ``[0, n_labels)``, every one present.
    n_labels : int
        At least 2.
    metric : Metric
    xp : namespace
    budget_mib : float or None

    Returns
    -------
    silhouette : float64 array of shape (n,)
        ``(b - a) / max(a, b)``; 0 for a sample alone in its cluster (as in
        scikit-learn).
    """
    n_rows, n_features = X.shape
    size = itemsize(X, xp)
    query_rows = block_rows(n_rows, distance_bytes_per_row(metric, n_rows, n_features, size), xp, budget_mib)
    chunk_rows = n_rows
    if query_rows < min(n_rows, _MIN_QUERY_ROWS):
        query_rows = min(n_rows, _MIN_QUERY_ROWS)
        chunk_rows = block_rows(n_rows, distance_bytes_per_row(metric, query_rows, n_features, size), xp, budget_mib)
    chunks = row_blocks(n_rows, chunk_rows)
    counts = segment_weight(codes, n_labels, xp=xp, dtype=xp.float64)
    sq_norms = row_sq_norms(X, xp=xp) if metric.name in ("sqeuclidean", "euclidean") else None
    device = device_of(X)

    def one_block(start: int, stop: int) -> Any:
        query = X[start:stop, :]
        query_norms = None if sq_norms is None else sq_norms[start:stop]
        cluster_sums = None
        for chunk_start, chunk_stop in chunks:
            distances = pairwise_distances(
                X[chunk_start:chunk_stop, :], query, metric, xp=xp,
                x_sq_norms=None if sq_norms is None else sq_norms[chunk_start:chunk_stop],
                center_sq_norms=query_norms,
            )
            if chunk_start < stop and start < chunk_stop:
                # A row's distance to itself is 0 exactly; the GEMM expansion
                # would leave rounding noise (and its square root) there.
                is_self = (
                    xp.arange(chunk_start, chunk_stop, device=device)[:, None]
                    == xp.arange(start, stop, device=device)[None, :]
                )
                distances = xp.where(is_self, 0.0, distances)
            partial = xp.astype(segment_sum(distances, codes[chunk_start:chunk_stop], n_labels, xp=xp), xp.float64)
            cluster_sums = partial if cluster_sums is None else cluster_sums + partial
        return _silhouette_from_sums(cluster_sums, codes[start:stop], counts, xp=xp)

    parts = map_blocks(one_block, row_blocks(n_rows, query_rows), xp)
    return parts[0] if len(parts) == 1 else xp.concat(parts)


def _silhouette_from_sums(cluster_sums: Any, codes_block: Any, counts: Any, *, xp: Any) -> Any:
    """Silhouettes of a block from its per-cluster distance sums ``(n_labels, b)``."""
    cluster_ids = xp.arange(counts.shape[0], dtype=codes_block.dtype, device=device_of(codes_block))
    own = cluster_ids[:, None] == codes_block[None, :]
    intra_sum = xp.sum(xp.where(own, cluster_sums, 0.0), axis=0)
    inter = xp.min(xp.where(own, xp.inf, cluster_sums / counts[:, None]), axis=0)
    others = xp.take(counts, codes_block, axis=0) - 1
    intra = intra_sum / xp.where(others > 0, others, 1.0)
    larger = xp.maximum(intra, inter)
    # Alone in its cluster, or at distance 0 from everything: scikit-learn's 0.
    defined = (others > 0) & (larger > 0)
    return xp.where(defined, (inter - intra) / xp.where(defined, larger, 1.0), 0.0)


def _add_all(parts: list) -> Any:
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def _in_working_frame(X: Any, metric: Metric, *, xp: Any, budget_mib: Any = None) -> Any:
    """A copy of ``X`` in its working frame (:mod:`kgpu._scale`): the data's mean as origin, rescaled when extreme.

    Every score computed here is unchanged by the translation (for metrics
    that allow it) and by the power-of-two scale, so the copy keeps the
    digits float32 would lose far from zero and keeps squares finite.
    """
    frame = fit_frame(X, xp=xp, center=is_translation_invariant(metric), budget_mib=_check_working_memory(budget_mib))
    if isinstance(X, StreamedRows):
        return frame_view(X, frame, xp=xp, device=X.device)
    return frame.apply(X)


def _numpy_dtype(X: Any, xp: Any) -> type:
    return np.float32 if X.dtype == xp.float32 else np.float64


# ----------------------------------------------------------------- public API
def _place(X: Any, backend: str | None, device: Any, *, min_samples: int = 1, streamable: bool = False) -> Placement:
    """Validate ``X`` and move it to the compute namespace (as the estimators do).

    Half-precision ``X`` is read in float32 row blocks when ``streamable``
    (scores that only walk row blocks), else converted to float32 whole.
    """
    X_valid = check_data(X, min_samples=min_samples)
    xp, compute_device = resolve_compute(backend, device, X_valid)
    if is_half_precision(X_valid.dtype):
        if streamable:
            return Placement(
                half_precision_rows(X_valid, xp, compute_device), xp, compute_device,
                namespace_of(X_valid), device_of(X_valid),
            )
        X_valid = widened(X_valid)
    return Placement(
        move_to(X_valid, xp, compute_device), xp, compute_device, namespace_of(X_valid), device_of(X_valid)
    )


def _check_silhouette_metric(metric: Any) -> Metric:
    checked = check_metric(metric)
    if checked.name not in SILHOUETTE_METRICS:
        raise ValueError(f"metric must be one of {SILHOUETTE_METRICS}, got {metric!r}.")
    return checked


def _check_working_memory(working_memory: Any) -> float | None:
    if working_memory is None:
        return None
    if isinstance(working_memory, bool) or not isinstance(working_memory, numbers.Real):
        raise TypeError(f"working_memory must be a number of MiB or None, got {working_memory!r}.")
    if not np.isfinite(working_memory) or working_memory <= 0:
        raise ValueError(f"working_memory must be a positive number of MiB, got {working_memory}.")
    return float(working_memory)


def check_sample_size(sample_size: Any) -> int | None:
    """``None`` or a positive int (the rows a sampled silhouette uses)."""
    if sample_size is None:
        return None
    if isinstance(sample_size, bool) or not isinstance(sample_size, numbers.Integral):
        raise TypeError(f"sample_size must be a positive int or None, got {sample_size!r}.")
    if sample_size < 1:
        raise ValueError(f"sample_size must be >= 1, got {sample_size}.")
    return int(sample_size)


def sample_indices(n_samples: int, sample_size: int, random_state: Any) -> np.ndarray:
    """Host indices of a silhouette sample, drawn exactly as scikit-learn draws them.

    ``check_random_state(random_state).permutation(n_samples)[:sample_size]``:
    the same seed gives the same rows as :func:`sklearn.metrics.silhouette_score`.
    """
    return check_random_state(random_state).permutation(n_samples)[:sample_size]


def inertia(
    X: Any,
    labels: Any,
    centers: Any,
    sample_weight: Any = None,
    *,
    backend: str | None = None,
    device: Any = None,
    working_memory: float | None = None,
) -> float:
    """Weighted sum of squared distances of the samples to their assigned centers.

    ``sum_i w_i ||x_i - centers[labels_i]||^2``, the K-Means objective,
    computed exactly (no ``||x||^2 - 2x.c + ||c||^2`` expansion) in row blocks.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Any backend's array (NumPy, CuPy, PyTorch, array-api-strict), list or frame.
    labels : integer array-like of shape (n_samples,)
        Index of each sample's center, in ``[0, n_clusters)``.
    centers : array-like of shape (n_clusters, n_features)
    sample_weight : array-like of shape (n_samples,), default=None
        Weight of each sample (``None``: all 1).
    backend, device : see :class:`kgpu.KMeans`
        Where to compute (default: where ``X`` lives).
    working_memory : float or None
        MiB one block of rows may use.

    Returns
    -------
    inertia : float

    Examples
    --------
    >>> import numpy as np
    >>> from kgpu.metrics import inertia
    >>> X = np.array([[0.0, 0.0], [2.0, 0.0], [10.0, 0.0]])
    >>> inertia(X, [0, 0, 1], np.array([[1.0, 0.0], [10.0, 0.0]]))
    2.0
    """
    if is_sparse(X):
        return _sparse_inertia(X, labels, centers, sample_weight, backend)
    placed = _place(X, backend, device, streamable=True)
    xp, X_c = placed.xp, placed.X
    n_samples, n_features = X_c.shape
    centers_valid = check_data(centers)
    if centers_valid.shape[1] != n_features:
        raise ValueError(
            f"centers has {centers_valid.shape[1]} features but X has {n_features}."
        )
    n_clusters = centers_valid.shape[0]
    centers_c = xp.astype(move_to(centers_valid, xp, placed.device), X_c.dtype)
    labels_c = _center_indices(labels, n_samples, n_clusters, xp=xp, device=placed.device)
    weights = check_sample_weight(sample_weight, X_c, xp, placed.device)
    rows = block_rows(n_samples, (2 * n_features + 4) * itemsize(X_c, xp), xp, _check_working_memory(working_memory))
    frame = fit_frame(X_c, xp=xp, budget_mib=_check_working_memory(working_memory))
    total = weighted_inertia(
        frame_view(X_c, frame, xp=xp, device=placed.device), weights, frame.apply(centers_c), labels_c,
        xp=xp, rows_per_block=rows,
    )
    return frame.restore_distances(total, 2)


def _center_indices(labels: Any, n_samples: int, n_clusters: int, *, xp: Any, device: Any) -> Any:
    """Labels that index the centers, validated and moved to ``xp`` as int64."""
    if is_array_api_obj(labels) and not isinstance(labels, np.ndarray):
        labels_xp = namespace_of(labels)
        _check_labels_shape(tuple(labels.shape), n_samples)
        if not labels_xp.isdtype(labels.dtype, "integral"):
            raise TypeError(f"labels must be integer indices of centers, got dtype {labels.dtype}.")
        low, high = int(labels_xp.min(labels)), int(labels_xp.max(labels))
        indices = labels_xp.astype(labels, labels_xp.int64)
    else:
        host = np.asarray(labels)
        _check_labels_shape(host.shape, n_samples)
        if host.dtype.kind not in "iu":
            raise TypeError(f"labels must be integer indices of centers, got dtype {host.dtype}.")
        low, high = int(host.min()), int(host.max())
        indices = host.astype(np.int64)
    if low < 0 or high >= n_clusters:
        raise ValueError(
            f"labels must index the {n_clusters} centers (0 to {n_clusters - 1}), "
            f"got values from {low} to {high}."
        )
    return move_to(indices, xp, device)


def silhouette_samples(
    X: Any,
    labels: Any,
    metric: str = "euclidean",
    *,
    backend: str | None = None,
    device: Any = None,
    working_memory: float | None = None,
) -> Any:
    """Silhouette coefficient of every sample, batched on the device.

    ``s_i = (b_i - a_i) / max(a_i, b_i)`` where ``a_i`` is the mean distance
    from sample ``i`` to the other members of its cluster and ``b_i`` the
    smallest mean distance to the members of another cluster (Rousseeuw 1987).
    A sample alone in its cluster gets 0, as in scikit-learn.

    The distances are computed in tiles of at most ``working_memory`` MiB and
    reduced per cluster with a segmented sum, so memory stays bounded whatever
    ``n_samples`` is; the work is ``O(n_samples^2 * n_features)``.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
        Any backend's array, list or frame.
    labels : array-like of shape (n_samples,)
        Cluster of each sample (any values: encoded like scikit-learn).
    metric : {"euclidean", "sqeuclidean", "manhattan", "cosine"}, default="euclidean"
    backend, device : see :class:`kgpu.KMeans`
        Where to compute (default: where ``X`` lives).
    working_memory : float or None
        MiB one distance tile may use (default: the backend's budget).

    Returns
    -------
    silhouette : array of shape (n_samples,)
        In the namespace and on the device of ``X``, in its dtype (float32
        stays float32).

    Raises
    ------
    ValueError
        Labels of the wrong length, fewer than 2 clusters or as many clusters
        as samples, NaN or infinity in ``X``, an unknown metric.
    """
    metric_checked = _check_silhouette_metric(metric)
    if is_sparse(X):
        return _sparse_silhouette(X, labels, metric_checked, None, None, backend, working_memory)
    placed = _place(X, backend, device)
    xp, X_c = placed.xp, placed.X
    encoded = encode_labels(labels, X_c.shape[0], xp=xp, device=placed.device)
    check_number_of_labels(encoded.n_labels, X_c.shape[0])
    values = silhouette_kernel(
        _in_working_frame(X_c, metric_checked, xp=xp, budget_mib=working_memory), encoded.codes, encoded.n_labels, metric_checked, xp=xp,
        budget_mib=_check_working_memory(working_memory),
    )
    return placed.to_input(xp.astype(values, X_c.dtype))


def silhouette_score(
    X: Any,
    labels: Any,
    metric: str = "euclidean",
    sample_size: int | None = None,
    random_state: Any = None,
    *,
    backend: str | None = None,
    device: Any = None,
    working_memory: float | None = None,
) -> float:
    """Mean silhouette coefficient of all samples (or of a random sample of them).

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    metric : {"euclidean", "sqeuclidean", "manhattan", "cosine"}, default="euclidean"
    sample_size : int or None, default=None
        Compute the score on this many rows drawn without replacement (all
        rows when ``None`` or when it exceeds ``n_samples``). The cost drops
        from ``O(n^2)`` to ``O(sample_size^2)``.
    random_state : int, RandomState instance or None
        Draws the sample on the host exactly as
        :func:`sklearn.metrics.silhouette_score` does, so one seed gives the
        same rows (and, on float64, the same score to 1e-6) as scikit-learn.
    backend, device, working_memory :
        See :func:`silhouette_samples`.

    Returns
    -------
    score : float
        In ``[-1, 1]``; higher is better.

    Examples
    --------
    >>> import numpy as np
    >>> from kgpu.metrics import silhouette_score
    >>> X = np.array([[0.0], [1.0], [10.0], [11.0]])
    >>> round(silhouette_score(X, [0, 0, 1, 1]), 4)
    0.8997
    """
    metric_checked = _check_silhouette_metric(metric)
    sample_size = check_sample_size(sample_size)
    if is_sparse(X):
        return float(np.mean(to_numpy(_sparse_silhouette(X, labels, metric_checked, sample_size, random_state, backend, working_memory))))
    placed = _place(X, backend, device)
    xp, X_c = placed.xp, placed.X
    encoded = encode_labels(labels, X_c.shape[0], xp=xp, device=placed.device)
    if sample_size is not None:
        rows = move_to(sample_indices(X_c.shape[0], sample_size, random_state), xp, placed.device)
        X_c = xp.take(X_c, rows, axis=0)
        encoded = compact_codes(xp.take(encoded.codes, rows, axis=0), encoded.n_labels, xp=xp)
    check_number_of_labels(encoded.n_labels, X_c.shape[0])
    values = silhouette_kernel(
        _in_working_frame(X_c, metric_checked, xp=xp, budget_mib=working_memory), encoded.codes, encoded.n_labels, metric_checked, xp=xp,
        budget_mib=_check_working_memory(working_memory),
    )
    return float(xp.mean(values))


def _sparse_silhouette(
    X: Any, labels: Any, metric: Metric, sample_size: int | None, random_state: Any, backend: Any, working_memory: Any
) -> np.ndarray:
    """Silhouettes of SciPy sparse rows (of a sample of them): host NumPy, in ``X``'s dtype."""
    X_csr = _sparse.check_sparse(X)
    host = _sparse.placement(X_csr, backend, X)
    encoded = encode_labels(labels, X_csr.shape[0], xp=host.xp, device=host.device)
    if sample_size is not None:
        rows = sample_indices(X_csr.shape[0], sample_size, random_state)
        X_csr = X_csr[rows]
        encoded = compact_codes(encoded.codes[rows], encoded.n_labels, xp=host.xp)
    check_number_of_labels(encoded.n_labels, X_csr.shape[0])
    values = _sparse_metrics.silhouette(
        X_csr, np.asarray(encoded.codes), encoded.n_labels, metric.name, budget_mib=_check_working_memory(working_memory)
    )
    return host.to_input(values.astype(X_csr.dtype))


def _sparse_inertia(X: Any, labels: Any, centers: Any, sample_weight: Any, backend: Any) -> float:
    """:func:`inertia` of SciPy sparse rows (host, float64 arithmetic)."""
    X_csr = _sparse.check_sparse(X)
    host = _sparse.placement(X_csr, backend)
    n_samples, n_features = X_csr.shape
    centers_valid = np.asarray(to_numpy(check_data(centers)), dtype=np.float64)
    if centers_valid.shape[1] != n_features:
        raise ValueError(f"centers has {centers_valid.shape[1]} features but X has {n_features}.")
    indices = to_numpy(_center_indices(labels, n_samples, centers_valid.shape[0], xp=host.xp, device=host.device))
    weights = to_numpy(check_sample_weight(sample_weight, X_csr, host.xp))
    return _sparse.inertia(X_csr, weights, centers_valid, indices)


def _labelled_cluster_stats(
    X: Any, labels: Any, backend: str | None, device: Any, working_memory: float | None
) -> ClusterStats:
    """:func:`cluster_stats` of user input: placed, labels encoded and checked."""
    placed = _place(X, backend, device, streamable=True)
    xp, X_c = placed.xp, placed.X
    encoded = encode_labels(labels, X_c.shape[0], xp=xp, device=placed.device)
    check_number_of_labels(encoded.n_labels, X_c.shape[0])
    # Both scores are ratios of dispersions: the working frame changes no value.
    X_work = _in_working_frame(X_c, _EUCLIDEAN, xp=xp, budget_mib=working_memory)
    return cluster_stats(X_work, encoded.codes, encoded.n_labels, xp=xp, budget_mib=_check_working_memory(working_memory))


def calinski_harabasz_score(
    X: Any,
    labels: Any,
    *,
    backend: str | None = None,
    device: Any = None,
    working_memory: float | None = None,
) -> float:
    """Calinski-Harabasz score: between- over within-cluster dispersion.

    ``CH = [B / (k - 1)] / [W / (n - k)]`` with ``B`` the between-cluster and
    ``W`` the pooled within-cluster sum of squares (Calinski & Harabasz 1974);
    1.0 when ``W`` is 0, as in scikit-learn. Higher is better.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    backend, device, working_memory :
        See :func:`silhouette_samples`.

    Returns
    -------
    score : float
    """
    if is_sparse(X):
        raise _sparse_metrics.refuse("calinski_harabasz_score")
    stats = _labelled_cluster_stats(X, labels, backend, device, working_memory)
    return calinski_harabasz_from_stats(stats, int(stats.counts.sum()))


def davies_bouldin_score(
    X: Any,
    labels: Any,
    *,
    backend: str | None = None,
    device: Any = None,
    working_memory: float | None = None,
) -> float:
    """Davies-Bouldin score: mean over clusters of the worst similarity ratio.

    ``DB = mean_i max_{j != i} (s_i + s_j) / d(c_i, c_j)`` with ``s_i`` the mean
    Euclidean distance of cluster ``i``'s samples to its centroid ``c_i``
    (Davies & Bouldin 1979). Lower is better; 0 is the minimum.

    Parameters
    ----------
    X : array-like of shape (n_samples, n_features)
    labels : array-like of shape (n_samples,)
    backend, device, working_memory :
        See :func:`silhouette_samples`.

    Returns
    -------
    score : float
    """
    if is_sparse(X):
        raise _sparse_metrics.refuse("davies_bouldin_score")
    return davies_bouldin_from_stats(_labelled_cluster_stats(X, labels, backend, device, working_memory))


__all__ = [
    "calinski_harabasz_score",
    "davies_bouldin_score",
    "inertia",
    "silhouette_samples",
    "silhouette_score",
]
