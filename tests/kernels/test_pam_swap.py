"""Contract of every registered "pam_swap" implementation (FasterPAM's swap evaluation).

Each is compared with brute force: for every candidate and every medoid slot,
the objective after actually making that swap, minus the objective before.
"""

from __future__ import annotations

import array_api_compat.numpy as xp_numpy
import numpy as np
import pytest
from scipy.spatial.distance import cdist

from kgpu._kernels import dispatch
from kgpu._kmedoids import _nearest_two

IMPLEMENTATIONS = [
    pytest.param(entry.function, id=f"{backend}-{entry.name}")
    for backend, entry in dispatch.registered("pam_swap")
    if backend in (dispatch.ANY_BACKEND, "numpy")
]


def _brute_force(matrix, medoids, weights, start, stop):
    def objective(chosen):
        return float(np.sum(weights * matrix[:, chosen].astype(np.float64).min(axis=1)))

    before = objective(medoids)
    changes = np.empty((stop - start, len(medoids)))
    for row, candidate in enumerate(range(start, stop)):
        for slot in range(len(medoids)):
            swapped = medoids.copy()
            swapped[slot] = candidate
            changes[row, slot] = objective(swapped) - before
    return changes


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("n_points, medoids", [(40, [5, 20, 33]), (9, [0, 8]), (30, [7, 1, 2, 29, 15, 3])])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_swap_changes_match_brute_force(implementation, dtype, n_points, medoids, weighted):
    rng = np.random.default_rng(n_points)
    points = rng.normal(size=(n_points, 2))
    matrix = cdist(points, points).astype(dtype)
    weights = rng.uniform(0.2, 3.0, n_points) if weighted else np.ones(n_points)
    medoids = np.asarray(medoids)
    cache = _nearest_two(matrix, medoids, weights, xp=xp_numpy)
    start, stop = 1, n_points
    matrix_before = matrix.copy()
    best_slot, change = implementation(matrix, start, stop, cache, weights, xp=xp_numpy)
    changes = _brute_force(matrix, medoids, weights, start, stop)
    scale = float(np.sum(weights * matrix.max()))
    np.testing.assert_allclose(np.asarray(change), changes.min(axis=1), rtol=0, atol=1e-9 * scale)
    # The chosen slot reaches the minimum (a tie may pick any slot of equal change).
    chosen = changes[np.arange(stop - start), np.asarray(best_slot)]
    np.testing.assert_allclose(chosen, changes.min(axis=1), rtol=0, atol=1e-9 * scale)
    np.testing.assert_array_equal(matrix, matrix_before)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_ties_go_to_the_lowest_slot(implementation):
    # Four points on a line, two medoids far from a candidate that changes nothing.
    matrix = cdist(np.array([[0.0], [1.0], [10.0], [11.0]]), np.array([[0.0], [1.0], [10.0], [11.0]]))
    cache = _nearest_two(matrix, np.array([0, 3]), np.ones(4), xp=xp_numpy)
    slot, _ = implementation(matrix, 0, 4, cache, np.ones(4), xp=xp_numpy)
    # Candidate 0 is medoid 0: replacing slot 0 by itself changes nothing, slot 1 costs more.
    assert int(np.asarray(slot)[0]) == 0


def test_numba_pam_swap_is_registered():
    pytest.importorskip("numba")
    names = [entry.name for backend, entry in dispatch.registered("pam_swap") if backend == "numpy"]
    assert names == ["numba"]
