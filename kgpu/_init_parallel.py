"""Scalable k-means++ ("k-means||", Bahmani, Moseley, Vattani, Kumar & Vassilvitskii 2012).

k-means++ makes ``k`` passes over the data, one per center. k-means|| makes a
few (``n_rounds``): each round samples every point independently with
probability ``min(1, l * w_i * D(x_i)^2 / phi)`` (``l = oversampling_factor *
k`` expected picks per round, ``phi`` the current weighted potential). The
candidates are then weighted by the weight of the points closest to them and
reduced to ``k`` centers by weighted k-means++ followed by weighted Lloyd
iterations on the candidates alone.

Every pass reads the data in row blocks (:func:`kgpu._blocks.map_blocks`), so it
works on in-memory, streamed (:class:`kgpu._stream.StreamedRows`) data alike;
the Dask engine runs the same per-block steps over chunks. Every random draw
is made on the host from the ``RandomState``, in a fixed order, so one seed
gives the same candidates on every backend.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ._assign import assign, weighted_sum
from ._backend import to_numpy
from ._blocks import block_rows, map_blocks, row_blocks
from ._distances import homogeneous, sq_euclidean
from ._init import kmeans_plusplus_indices
from ._lloyd import lloyd
from ._segment import segment_weight
from ._stream import take_rows


def kmeans_parallel_centers(
    X: Any,
    n_clusters: int,
    sample_weight: Any,
    random_state: np.random.RandomState,
    *,
    xp: Any,
    oversampling_factor: float = 2.0,
    n_rounds: int = 5,
    reduce_max_iter: int = 30,
) -> Any:
    """Initial centers by k-means||.

    Parameters
    ----------
    X : array of shape (n, d) or StreamedRows
    n_clusters : int
    sample_weight : array of shape (n,)
    random_state : numpy.random.RandomState
        Host generator; every draw is made from it.
    xp : namespace
    oversampling_factor : float, default=2.0
        ``l / k``: expected candidates drawn per round, per cluster.
    n_rounds : int, default=5
        Sampling rounds (the paper finds 5 enough in practice).
    reduce_max_iter : int, default=30
        Weighted Lloyd iterations when reducing the candidates to ``k``.

    Returns
    -------
    centers : array of shape (n_clusters, d), dtype and namespace of ``X``
    """
    candidate_ids = kmeans_parallel_candidates(
        X, n_clusters, sample_weight, random_state, xp=xp,
        oversampling_factor=oversampling_factor, n_rounds=n_rounds,
    )
    candidates = take_rows(X, candidate_ids, xp=xp)
    if candidate_ids.shape[0] <= n_clusters:
        # Fewer distinct candidates than clusters (all mass on few points):
        # they are the centers; the empty-cluster policy handles the rest.
        return take_rows(X, _pad_ids(candidate_ids, n_clusters, X.shape[0], random_state), xp=xp)
    labels = assign(X, candidates, xp=xp).labels
    candidate_weight = segment_weight(labels, candidate_ids.shape[0], sample_weight, xp=xp, dtype=candidates.dtype)
    return reduce_candidates(candidates, candidate_weight, n_clusters, random_state, xp=xp, max_iter=reduce_max_iter)


def kmeans_parallel_candidates(
    X: Any,
    n_clusters: int,
    sample_weight: Any,
    random_state: np.random.RandomState,
    *,
    xp: Any,
    oversampling_factor: float = 2.0,
    n_rounds: int = 5,
) -> np.ndarray:
    """Row indices of the k-means|| candidates (host ``int64``, first pick first).

    Parameters
    ----------
    See :func:`kmeans_parallel_centers`.

    Returns
    -------
    candidate_ids : ndarray of shape (m,)
        Distinct rows; ``m`` is about ``1 + n_rounds * oversampling_factor * n_clusters``.
    """
    n_rows, n_features = X.shape
    weights_host = to_numpy(sample_weight).astype(np.float64)
    first = int(random_state.choice(n_rows, p=weights_host / weights_host.sum()))
    candidate_ids = [np.array([first], dtype=np.int64)]
    weights64 = xp.astype(sample_weight, xp.float64)
    closest_sq_dist = _min_sq_dist_to(X, take_rows(X, candidate_ids[0], xp=xp), None, xp=xp)
    expected_per_round = oversampling_factor * n_clusters
    for _ in range(n_rounds):
        potential = weighted_sum(closest_sq_dist, weights64, xp=xp)
        if potential <= 0:
            break  # every point coincides with a candidate
        # One uniform per row, drawn on the host in row order: the picks do not
        # depend on how the backend splits the rows into blocks.
        uniforms = random_state.uniform(size=n_rows)
        picked = _sample_rows(closest_sq_dist, weights64, uniforms, expected_per_round / potential, xp=xp)
        if picked.shape[0] == 0:
            continue
        candidate_ids.append(picked)
        closest_sq_dist = _min_sq_dist_to(X, take_rows(X, picked, xp=xp), closest_sq_dist, xp=xp)
    return np.concatenate(candidate_ids)


def reduce_candidates(
    candidates: Any,
    candidate_weight: Any,
    n_clusters: int,
    random_state: np.random.RandomState,
    *,
    xp: Any,
    max_iter: int = 30,
) -> Any:
    """``n_clusters`` centers from weighted candidates: weighted k-means++, then weighted Lloyd."""
    seed_ids = kmeans_plusplus_indices(candidates, n_clusters, candidate_weight, random_state, xp=xp)
    seeds = take_rows(candidates, seed_ids, xp=xp)
    rows_per_block = block_rows(candidates.shape[0], (n_clusters + candidates.shape[1] + 2) * 8, xp)
    result = lloyd(
        homogeneous(candidates, xp=xp), candidate_weight, seeds,
        max_iter=max_iter, tol=0.0, rows_per_block=rows_per_block, xp=xp,
    )
    return result.centers


def _min_sq_dist_to(X: Any, new_rows: Any, closest_sq_dist: Any, *, xp: Any) -> Any:
    """``min(closest_sq_dist, D(x, new_rows)^2)`` for every row, float64 ``(n,)``."""
    n_rows, n_features = X.shape
    rows_per_block = block_rows(n_rows, (new_rows.shape[0] + n_features + 2) * 8, xp)

    def one_block(start: int, stop: int) -> Any:
        block_min = xp.min(sq_euclidean(X[start:stop, :], new_rows, xp=xp), axis=1)
        block_min = xp.astype(block_min, xp.float64)
        if closest_sq_dist is None:
            return block_min
        return xp.minimum(block_min, closest_sq_dist[start:stop])

    parts = map_blocks(one_block, row_blocks(n_rows, rows_per_block), xp)
    return parts[0] if len(parts) == 1 else xp.concat(parts)


def _sample_rows(closest_sq_dist: Any, weights64: Any, uniforms: np.ndarray, scale: float, *, xp: Any) -> np.ndarray:
    """Rows with ``uniform < min(1, scale * w * D^2)``, as host indices."""
    probability = weights64 * closest_sq_dist * scale
    uniforms_device = xp.asarray(uniforms, dtype=xp.float64, device=_device(closest_sq_dist))
    # Points with D = 0 (the candidates themselves) have probability 0.
    (picked,) = xp.nonzero(uniforms_device < probability)
    return to_numpy(picked).astype(np.int64)


def _pad_ids(candidate_ids: np.ndarray, n_clusters: int, n_rows: int, random_state: np.random.RandomState) -> np.ndarray:
    """The candidates, then random other rows until there are ``n_clusters``."""
    others = np.setdiff1d(np.arange(n_rows), candidate_ids)
    extra = random_state.choice(others, size=n_clusters - candidate_ids.shape[0], replace=False)
    return np.concatenate([candidate_ids, extra.astype(np.int64)])


def _device(x: Any) -> Any:
    import array_api_compat

    return array_api_compat.device(x)
