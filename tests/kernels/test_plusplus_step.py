"""Contract of the ``"plusplus_step"`` operation (one greedy k-means++ step) against the reference."""

from __future__ import annotations

import numpy as np
import pytest

from kgpu._assign import SQEUCLIDEAN
from kgpu._init import plusplus_step_reference
from kgpu._kernels import dispatch

from .._helpers import to_numpy
from ._contract import native_implementations, require_applies
from ._data import DTYPES, blobs, compute_dtype, weights_for

IMPLEMENTATIONS = native_implementations("plusplus_step")

#: (n_rows, n_candidates, n_features): the usual 2 + log(k) candidates, a
#: count that is not a power of two with d not one either, fewer rows than
#: one tile, and a single candidate.
CASES = [(150, 4, 7), (130, 11, 37), (9, 3, 5), (40, 1, 3)]
CASE_IDS = ["plain", "m11-d37", "n-below-tile", "m1"]


def _step(function, target, X, candidate_rows, closest, weights, entry=None):
    X_t = target.array(X)
    args = (X_t, target.array(X[candidate_rows]), target.array(closest), target.array(weights))
    options = dict(metric=SQEUCLIDEAN, power=1.0, x_sq_norms=target.xp.sum(X_t * X_t, axis=1), rows_per_block=23)
    if entry is not None:
        require_applies(entry, *args, **options)
    return function(*args, xp=target.xp, **options)


def _problem(n_rows, n_candidates, n_features, dtype, seed=0):
    X, _ = blobs(n_rows, max(1, n_candidates), n_features, dtype, seed=seed)
    rng = np.random.default_rng(seed + 10)
    candidate_rows = rng.choice(n_rows, size=n_candidates, replace=False)
    closest = ((X.astype(np.float64) - X[0].astype(np.float64)) ** 2).sum(axis=1)
    return X, candidate_rows, closest


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
@pytest.mark.parametrize("weighting", ["uniform", "random"])
def test_matches_reference(backend, entry, target, dtype, case, weighting):
    X, candidate_rows, closest = _problem(*case, dtype)
    weights = weights_for(X.shape[0], weighting)
    result = _step(entry.function, target, X, candidate_rows, closest, weights, entry)
    reference_X = X.astype(compute_dtype(dtype))
    expected = _step(plusplus_step_reference, target, reference_X, candidate_rows, closest, weights)

    assert int(result.best) == int(expected.best)
    costs, expected_costs = to_numpy(result.closest_cost), to_numpy(expected.closest_cost)
    assert costs.dtype == np.float64
    # The reference expands ||x||^2 - 2 x.c + ||c||^2 in the data's dtype, the
    # kernel sums (x - c)^2: they differ by the expansion's cancellation,
    # a few ulps of ||x||^2 (float32), far below 1e-6 of it in float64.
    scale = float((reference_X.astype(np.float64) ** 2).sum(axis=1).max())
    ulps = 1e-6 if compute_dtype(dtype) == "float32" else 1e-12
    np.testing.assert_allclose(costs, expected_costs, rtol=1e-6, atol=ulps * scale)
    potential, expected_potential = float(result.potential), float(expected.potential)
    assert potential == pytest.approx(expected_potential, rel=1e-6, abs=ulps * scale * weights.sum())


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
def test_repeated_candidate_ties_go_to_the_first(backend, entry, target):
    X, _, closest = _problem(60, 3, 4, "float64")
    candidate_rows = np.array([17, 5, 5, 17])
    result = _step(entry.function, target, X, candidate_rows, closest, weights_for(60, "uniform"), entry)
    expected = _step(plusplus_step_reference, target, X, candidate_rows, closest, weights_for(60, "uniform"))
    assert int(result.best) == int(expected.best) < 2


@pytest.mark.parametrize(
    "backend, entry",
    [pytest.param("numpy", dispatch.registered("plusplus_step")[0][1], id="numpy-array-api"), *IMPLEMENTATIONS],
)
def test_costs_written_in_place_with_float32_weights(backend, entry, target):
    # out=closest_cost updates the costs in place (one cost vector per
    # seeding); float32 weights are widened block by block, exactly.
    X, candidate_rows, closest = _problem(130, 5, 6, "float64", seed=3)
    weights = weights_for(130, "random")
    expected = _step(entry.function, target, X, candidate_rows, closest, weights, entry)
    X_t = target.array(X)
    costs = target.array(closest)
    weights32 = weights.astype(np.float32)
    result = entry.function(
        X_t, target.array(X[candidate_rows]), costs, target.array(weights32), xp=target.xp, metric=SQEUCLIDEAN,
        power=1.0, x_sq_norms=target.xp.sum(X_t * X_t, axis=1), rows_per_block=23, out=costs,
    )
    widened = _step(entry.function, target, X, candidate_rows, closest, weights32.astype(np.float64), entry)
    assert int(result.best) == int(widened.best)
    np.testing.assert_array_equal(to_numpy(result.closest_cost), to_numpy(widened.closest_cost))
    np.testing.assert_array_equal(to_numpy(costs), to_numpy(widened.closest_cost))
    assert float(result.potential) == float(widened.potential)
    np.testing.assert_allclose(to_numpy(result.closest_cost), to_numpy(expected.closest_cost), rtol=1e-7)
