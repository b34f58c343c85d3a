"""Scalable k-means++ ("k-means||", Bahmani, Moseley, Vattani, Kumar & Vassilvitskii 2012).

k-means++ makes ``k`` passes over the data, one per center. k-means|| makes a
few (``n_rounds``): each round samples every point independently with
probability ``min(1, l * w_i * D(x_i)^2 / phi)`` (``l = oversampling_factor *
k`` expected picks per round, ``phi`` the current weighted potential). The
candidates are then weighted by the weight of the points closest to them and
reduced to ``k`` centers by weighted k-means++ followed by weighted Lloyd
iterations on the candidates alone.

The algorithm (:func:`parallel_candidates`, :func:`parallel_centers`) is
written once against :class:`CandidateRows`, the handful of data passes it
needs. :class:`BlockRows` runs them over row blocks
(:func:`kgpu._blocks.map_blocks`) of a device array or of streamed rows
(:class:`kgpu._stream.StreamedRows`); the Dask engine (:mod:`kgpu._dask`) runs
the same per-block functions of this module on every chunk and reduces their
results. A full run reads the data ``n_rounds + 1`` times.

Random draws are made on the host from the ``RandomState``, in a fixed order:
one uniform for the first candidate, then one key per round. Within a round,
the uniform of row ``i`` is output ``i`` of a counter-based generator (Philox)
keyed by the round's key (:func:`row_uniforms`): a block or a chunk starting at
row ``s`` generates its own uniforms from ``s`` on. No ``n``-long vector is
drawn or shipped, and the picks are the same however the rows are split
(blocks, streamed blocks, Dask chunks) and on every backend.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import scipy.sparse as sp

from ._assign import assign, assignment_block_rows, itemsize, weighted_sum
from ._backend import device_of, to_numpy
from ._blocks import block_rows, map_blocks, row_blocks
from ._distances import homogeneous, sq_euclidean
from ._init import kmeans_plusplus_indices
from ._lloyd import lloyd
from ._segment import segment_weight
from ._stream import take_rows
from . import _sparse
from ._sparse import is_sparse

#: Philox outputs four 64-bit words per counter step.
_WORDS_PER_COUNTER = 4


class CandidateRows(Protocol):
    """The data passes k-means|| makes, over rows held anywhere.

    Attributes
    ----------
    xp : namespace
        Namespace of the rows :meth:`take` returns (the candidates are reduced there).
    n_rows : int
    """

    xp: Any
    n_rows: int

    def pick_by_weight(self, uniform: float) -> int:
        """Row whose cumulative weight first exceeds ``uniform * total weight``."""

    def take(self, ids: np.ndarray) -> Any:
        """Rows ``ids`` (sorted host integers), shape ``(m, d)``."""

    def update_closest(self, new_rows: Any) -> None:
        """``D(x)^2 <- min(D(x)^2, min_c ||x - c||^2)`` over the rows ``new_rows``."""

    def potential(self) -> float:
        """``sum(w_i * D(x_i)^2)``."""

    def sample(self, round_key: int, scale: float) -> np.ndarray:
        """Sorted host ids of the rows with ``u_i < scale * w_i * D(x_i)^2``."""

    def attracted_weight(self, candidates: Any) -> Any:
        """Total weight of the rows nearest to each candidate, ``(m,)``."""

    def weights_host(self) -> np.ndarray:
        """Every row's weight on the host (float64)."""


# ------------------------------------------------------------- the algorithm


def parallel_candidates(
    rows: CandidateRows,
    n_clusters: int,
    random_state: np.random.RandomState,
    *,
    oversampling_factor: float = 2.0,
    n_rounds: int = 5,
) -> tuple[np.ndarray, Any]:
    """The k-means|| candidates: their row ids and the rows themselves.

    Parameters
    ----------
    rows : CandidateRows
    n_clusters : int
    random_state : numpy.random.RandomState
    oversampling_factor : float
        ``l / k``: expected candidates per round, per cluster.
    n_rounds : int
        Sampling rounds.

    Returns
    -------
    candidate_ids : ndarray of shape (m,), int64
        Distinct rows, first pick first, then each round's picks in row order;
        ``m`` is about ``1 + n_rounds * oversampling_factor * n_clusters``.
    candidates : array of shape (m, d), namespace ``rows.xp``
    """
    first = rows.pick_by_weight(float(random_state.random_sample()))
    round_keys = random_state.randint(0, np.iinfo(np.int64).max, size=n_rounds, dtype=np.int64)
    ids = [np.array([first], dtype=np.int64)]
    chosen = [rows.take(ids[0])]
    pending = chosen[0]
    expected_per_round = oversampling_factor * n_clusters
    for round_key in round_keys.tolist():
        # The distances to the previous round's picks are folded in here, so
        # the last round's picks cost no pass of their own.
        if pending is not None:
            rows.update_closest(pending)
        potential = rows.potential()
        if potential <= 0:
            break  # every point coincides with a candidate
        picked = rows.sample(round_key, expected_per_round / potential)
        pending = None
        if picked.shape[0] > 0:
            ids.append(picked)
            pending = rows.take(picked)
            chosen.append(pending)
    if len(chosen) == 1:
        return np.concatenate(ids), chosen[0]
    if is_sparse(chosen[0]):  # SciPy sparse candidates (kgpu._sparse_parallel) stay sparse
        return np.concatenate(ids), sp.vstack(chosen, format="csr")
    return np.concatenate(ids), rows.xp.concat(chosen, axis=0)


def parallel_centers(
    rows: CandidateRows,
    n_clusters: int,
    random_state: np.random.RandomState,
    *,
    oversampling_factor: float = 2.0,
    n_rounds: int = 5,
    reduce_max_iter: int = 30,
) -> Any:
    """Initial centers by k-means|| over ``rows``: candidates, weights, reduction.

    Parameters
    ----------
    rows : CandidateRows
    n_clusters : int
    random_state : numpy.random.RandomState
    oversampling_factor, n_rounds :
        See :func:`parallel_candidates`.
    reduce_max_iter : int
        Weighted Lloyd iterations on the candidates after their weighted
        k-means++ seeding; 0 keeps the k-means++ seeds.

    Returns
    -------
    centers : array of shape (n_clusters, d), namespace ``rows.xp``
    """
    candidate_ids, candidates = parallel_candidates(
        rows, n_clusters, random_state, oversampling_factor=oversampling_factor, n_rounds=n_rounds
    )
    if candidate_ids.shape[0] <= n_clusters:
        # Fewer distinct candidates than clusters (all mass on few points):
        # they are the centers; the empty-cluster policy handles the rest.
        return rows.take(np.sort(pad_ids(candidate_ids, n_clusters, rows.weights_host(), random_state)))
    xp = rows.xp
    candidate_weight = xp.astype(rows.attracted_weight(candidates), candidates.dtype)
    return reduce_candidates(candidates, candidate_weight, n_clusters, random_state, xp=xp, max_iter=reduce_max_iter)


def reduce_candidates(
    candidates: Any,
    candidate_weight: Any,
    n_clusters: int,
    random_state: np.random.RandomState,
    *,
    xp: Any,
    max_iter: int = 30,
) -> Any:
    """``n_clusters`` centers from weighted candidates: weighted k-means++, then weighted Lloyd.

    Parameters
    ----------
    candidates : array of shape (m, d)
    candidate_weight : array of shape (m,), dtype of ``candidates``
    n_clusters : int
    random_state : numpy.random.RandomState
    xp : namespace
    max_iter : int
        Lloyd iterations after the seeding (0: return the seeds).

    Returns
    -------
    centers : array of shape (n_clusters, d)
        Dense, also for SciPy sparse candidates (then reduced by the sparse
        k-means++ and Lloyd of :mod:`kgpu._sparse`, the same draws).
    """
    if is_sparse(candidates):
        weights = np.asarray(candidate_weight, dtype=np.float64)
        seeds = _sparse.take_dense_rows(candidates, _sparse.plusplus_indices(candidates, n_clusters, weights, random_state))
        if max_iter == 0:
            return seeds
        return _sparse.lloyd(candidates, weights, seeds, max_iter=max_iter, tol=0.0).centers
    seed_ids = kmeans_plusplus_indices(candidates, n_clusters, candidate_weight, random_state, xp=xp)
    seeds = take_rows(candidates, seed_ids, xp=xp)
    if max_iter == 0:
        return seeds
    rows_per_block = block_rows(candidates.shape[0], (n_clusters + candidates.shape[1] + 2) * 8, xp)
    result = lloyd(
        homogeneous(candidates, xp=xp), candidate_weight, seeds,
        max_iter=max_iter, tol=0.0, rows_per_block=rows_per_block, xp=xp,
    )
    return result.centers


# ---------------------------------------------------- rows in blocks (local)


class BlockRows:
    """:class:`CandidateRows` over a device array or :class:`~kgpu._stream.StreamedRows`.

    Parameters
    ----------
    X : array of shape (n, d) or StreamedRows
    sample_weight : array of shape (n,)
    xp : namespace
    budget_mib : float or None
        Memory budget of one row block (``working_memory``).
    row_offset : int
        Global index of the first row (a Dask chunk's start): the uniforms of
        row ``i`` are those of global row ``row_offset + i``.
    """

    def __init__(self, X: Any, sample_weight: Any, *, xp: Any, budget_mib: float | None = None, row_offset: int = 0):
        self.X = X
        self.sample_weight = sample_weight
        self.xp = xp
        self.budget_mib = budget_mib
        self.row_offset = row_offset
        self.n_rows = X.shape[0]
        self.weights64 = xp.astype(sample_weight, xp.float64)
        self.closest_sq_dist = None

    def pick_by_weight(self, uniform: float) -> int:
        return pick_by_cumulative_weight(np.cumsum(self.weights_host()), uniform)

    def take(self, ids: np.ndarray) -> Any:
        return take_rows(self.X, ids, xp=self.xp)

    def update_closest(self, new_rows: Any) -> None:
        self.closest_sq_dist = min_sq_dist_update(
            self.X, new_rows, self.closest_sq_dist, xp=self.xp, budget_mib=self.budget_mib
        )

    def potential(self) -> float:
        return weighted_sum(self.closest_sq_dist, self.weights64, xp=self.xp)

    def sample(self, round_key: int, scale: float) -> np.ndarray:
        return sample_rows(
            self.closest_sq_dist, self.weights64, round_key, scale,
            xp=self.xp, row_offset=self.row_offset, budget_mib=self.budget_mib,
        )

    def attracted_weight(self, candidates: Any) -> Any:
        return attracted_weight(self.X, candidates, self.sample_weight, xp=self.xp, budget_mib=self.budget_mib)

    def weights_host(self) -> np.ndarray:
        return to_numpy(self.weights64)


def pick_by_cumulative_weight(cumulative: np.ndarray, uniform: float, total: float | None = None) -> int:
    """Index of the first ``cumulative`` entry above ``uniform * total`` (a weighted draw).

    Parameters
    ----------
    cumulative : ndarray of shape (n,), float64
        Running sum of the weights. For one chunk of a larger array: the
        weight of the rows before the chunk plus the chunk's running sum.
    uniform : float in [0, 1)
    total : float or None
        Total weight of all rows (default ``cumulative[-1]``).

    Returns
    -------
    index : int
        Never a zero-weight row: rounding that lands past the end falls back
        to the last row of positive weight.
    """
    total = float(cumulative[-1]) if total is None else total
    index = int(np.searchsorted(cumulative, uniform * total, side="right"))
    if index >= cumulative.shape[0]:
        index = int(np.searchsorted(cumulative, cumulative[-1], side="left"))
    return index


def row_uniforms(round_key: int, start: int, stop: int) -> np.ndarray:
    """Uniforms in ``[0, 1)`` of global rows ``start .. stop - 1`` for one round, float64.

    Output ``i`` of ``numpy.random.Generator(Philox(key=round_key)).random``:
    the generator is advanced straight to row ``start``, so any block or chunk
    draws its own rows' uniforms, the same whatever the split.
    """
    bit_generator = np.random.Philox(key=round_key)
    bit_generator.advance(start // _WORDS_PER_COUNTER)
    skip = start % _WORDS_PER_COUNTER
    return np.random.Generator(bit_generator).random(stop - start + skip)[skip:]


def min_sq_dist_update(X: Any, new_rows: Any, closest_sq_dist: Any, *, xp: Any, budget_mib: float | None = None) -> Any:
    """``min(closest_sq_dist, D(x, new_rows)^2)`` for every row, float64 ``(n,)``.

    Parameters
    ----------
    X : array of shape (n, d) or StreamedRows
    new_rows : array of shape (m, d)
    closest_sq_dist : array of shape (n,), float64, or None (no rows chosen yet)
    xp : namespace
    budget_mib : float or None
    """
    n_rows, n_features = X.shape
    rows_per_block = block_rows(n_rows, (new_rows.shape[0] + n_features + 2) * 8, xp, budget_mib)

    def one_block(start: int, stop: int) -> Any:
        block_min = xp.astype(xp.min(sq_euclidean(X[start:stop, :], new_rows, xp=xp), axis=1), xp.float64)
        if closest_sq_dist is None:
            return block_min
        return xp.minimum(block_min, closest_sq_dist[start:stop])

    parts = map_blocks(one_block, row_blocks(n_rows, rows_per_block), xp)
    return parts[0] if len(parts) == 1 else xp.concat(parts)


def sample_rows(
    closest_sq_dist: Any,
    weights64: Any,
    round_key: int,
    scale: float,
    *,
    xp: Any,
    row_offset: int = 0,
    budget_mib: float | None = None,
) -> np.ndarray:
    """Global ids of the rows with ``u_i < scale * w_i * D(x_i)^2`` (host int64, sorted).

    Parameters
    ----------
    closest_sq_dist : array of shape (n,), float64
    weights64 : array of shape (n,), float64
    round_key : int
        Key of the round's uniforms (:func:`row_uniforms`).
    scale : float
        ``l / phi``.
    xp : namespace
    row_offset : int
        Global index of the first row.
    budget_mib : float or None

    Points with ``D = 0`` (the candidates themselves) and zero-weight points
    have probability 0, so they are never picked.
    """
    n_rows = closest_sq_dist.shape[0]
    # Host and device uniforms, the probability and the comparison.
    rows_per_block = block_rows(n_rows, 4 * 8, xp, budget_mib)
    device = device_of(closest_sq_dist)

    def one_block(start: int, stop: int) -> np.ndarray:
        uniforms = xp.asarray(row_uniforms(round_key, row_offset + start, row_offset + stop), device=device)
        probability = weights64[start:stop] * closest_sq_dist[start:stop] * scale
        (picked,) = xp.nonzero(uniforms < probability)
        return to_numpy(picked).astype(np.int64) + (row_offset + start)

    return np.concatenate(map_blocks(one_block, row_blocks(n_rows, rows_per_block), xp))


def attracted_weight(X: Any, candidates: Any, sample_weight: Any, *, xp: Any, budget_mib: float | None = None) -> Any:
    """Total weight of the rows of ``X`` nearest to each candidate: ``(m,)``, float64.

    Parameters
    ----------
    X : array of shape (n, d) or StreamedRows
    candidates : array of shape (m, d)
    sample_weight : array of shape (n,)
    xp : namespace
    budget_mib : float or None
    """
    n_rows, n_features = X.shape
    n_candidates = candidates.shape[0]
    rows_per_block = assignment_block_rows(n_rows, n_candidates, n_features, itemsize(X, xp), xp, budget_mib)

    def one_block(start: int, stop: int) -> Any:
        labels = assign(X[start:stop, :], candidates, xp=xp, rows_per_block=stop - start).labels
        return segment_weight(labels, n_candidates, sample_weight[start:stop], xp=xp, dtype=xp.float64)

    parts = map_blocks(one_block, row_blocks(n_rows, rows_per_block), xp)
    total = parts[0]
    for part in parts[1:]:
        total = total + part
    return total


def pad_ids(
    candidate_ids: np.ndarray, n_clusters: int, weights: np.ndarray, random_state: np.random.RandomState
) -> np.ndarray:
    """The candidates, then other rows until there are ``n_clusters``.

    Other rows of positive weight are drawn first (with probability
    proportional to weight); zero-weight rows only fill what is left.
    """
    n_missing = n_clusters - candidate_ids.shape[0]
    others = np.setdiff1d(np.arange(weights.shape[0]), candidate_ids)
    positive = others[weights[others] > 0]
    n_positive = min(n_missing, positive.shape[0])
    extra = []
    if n_positive > 0:
        chances = weights[positive] / weights[positive].sum()
        extra.append(random_state.choice(positive, size=n_positive, replace=False, p=chances))
    if n_missing > n_positive:
        zero = others[weights[others] <= 0]
        extra.append(random_state.choice(zero, size=n_missing - n_positive, replace=False))
    return np.concatenate([candidate_ids] + [ids.astype(np.int64) for ids in extra])


# ------------------------------------------------------------ array front ends


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
    budget_mib: float | None = None,
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
    budget_mib : float or None
        Memory budget of one row block (``working_memory``).

    Returns
    -------
    centers : array of shape (n_clusters, d), dtype and namespace of ``X``
    """
    return parallel_centers(
        BlockRows(X, sample_weight, xp=xp, budget_mib=budget_mib), n_clusters, random_state,
        oversampling_factor=oversampling_factor, n_rounds=n_rounds, reduce_max_iter=reduce_max_iter,
    )


def kmeans_parallel_candidates(
    X: Any,
    n_clusters: int,
    sample_weight: Any,
    random_state: np.random.RandomState,
    *,
    xp: Any,
    oversampling_factor: float = 2.0,
    n_rounds: int = 5,
    budget_mib: float | None = None,
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
    candidate_ids, _ = parallel_candidates(
        BlockRows(X, sample_weight, xp=xp, budget_mib=budget_mib), n_clusters, random_state,
        oversampling_factor=oversampling_factor, n_rounds=n_rounds,
    )
    return candidate_ids
