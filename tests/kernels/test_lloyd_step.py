"""Contract of the ``"lloyd_step"`` operation: every native implementation against the reference."""

from __future__ import annotations

import numpy as np
import pytest

from kgpu._assign import assign_and_accumulate_reference
from kgpu._kernels import dispatch

from .._helpers import to_numpy
from ._contract import native_implementations, require_applies
from ._data import DTYPES, SHAPE_IDS, SHAPES, blobs, compute_dtype, exact_ties, ties_across_tiles, weights_for

IMPLEMENTATIONS = native_implementations("lloyd_step")


def _homogeneous(X: np.ndarray) -> np.ndarray:
    return np.concatenate([X, np.ones((X.shape[0], 1), dtype=X.dtype)], axis=1)


def _check_against_reference(entry, target, X, centers, weights, previous=None, homogeneous=False):
    """Run ``entry`` on ``target`` and the reference on the same values (float16 computed in float32)."""
    X_in = _homogeneous(X) if homogeneous else X
    reference_dtype = compute_dtype(str(X.dtype))
    expected = assign_and_accumulate_reference(
        target.array(X_in.astype(reference_dtype)), target.array(weights.astype(reference_dtype)),
        target.array(centers.astype(reference_dtype)), xp=target.xp, rows_per_block=37,
        previous_labels=None if previous is None else target.array(previous),
    )
    args = (target.array(X_in), target.array(weights.astype(X.dtype)), target.array(centers))
    options = dict(rows_per_block=37, previous_labels=None if previous is None else target.array(previous))
    require_applies(entry, *args, **options)
    result = entry.function(*args, xp=target.xp, **options)
    np.testing.assert_array_equal(to_numpy(result.labels), to_numpy(expected.labels))
    sums, expected_sums = to_numpy(result.sums), to_numpy(expected.sums)
    assert sums.dtype == np.float64 and sums.shape == expected_sums.shape
    # Relative to the largest sum: a cluster's sum may cancel to near zero.
    np.testing.assert_allclose(sums, expected_sums, rtol=1e-6, atol=1e-6 * np.abs(expected_sums).max())
    np.testing.assert_allclose(to_numpy(result.weights), to_numpy(expected.weights), rtol=1e-6, atol=1e-12)
    if previous is None:
        assert result.n_changed is None
    else:
        assert int(result.n_changed) == int(expected.n_changed)
    return result


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_matches_reference(backend, entry, target, dtype, shape):
    X, centers = blobs(*shape, dtype)
    _check_against_reference(entry, target, X, centers, weights_for(shape[0], "uniform"))


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_weights_homogeneous_rows_and_changed_labels(backend, entry, target, dtype):
    X, centers = blobs(180, 9, 11, dtype, seed=3)
    previous = (np.arange(180) * 5) % 9
    _check_against_reference(
        entry, target, X, centers, weights_for(180, "random"), previous=previous, homogeneous=True
    )


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_go_to_the_lowest_index(backend, entry, target, dtype):
    X, centers = exact_ties(dtype)
    result = _check_against_reference(entry, target, X, centers, weights_for(X.shape[0], "uniform"))
    # Row 0 is halfway between centers 0 and 1; row 2 sits on the duplicated centers 2 and 3.
    labels = to_numpy(result.labels)
    assert labels[0] == 0 and labels[2] == 2


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_across_center_tiles_go_to_the_lowest_index(backend, entry, target, dtype):
    X, centers = ties_across_tiles(dtype)
    result = _check_against_reference(entry, target, X, centers, weights_for(X.shape[0], "uniform"))
    np.testing.assert_array_equal(to_numpy(result.labels), [5, 63, 99])


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
def test_empty_cluster_gets_zero_sums(backend, entry, target):
    X, centers = blobs(40, 3, 5, "float64", seed=4)
    far_away = np.vstack([centers, np.full((1, 5), 1e3)])
    result = _check_against_reference(entry, target, X, far_away, weights_for(40, "random"))
    assert to_numpy(result.weights)[3] == 0.0
    assert np.all(to_numpy(result.sums)[3] == 0.0)


def test_table_lists_the_reference_first():
    backends = [backend for backend, _ in dispatch.registered("lloyd_step")]
    assert backends[0] == dispatch.ANY_BACKEND


#: The reference (on NumPy arrays) and every native implementation.
WITH_REFERENCE = [
    pytest.param("numpy", dispatch.registered("lloyd_step")[0][1], id="numpy-array-api"), *IMPLEMENTATIONS
]


@pytest.mark.parametrize("backend, entry", WITH_REFERENCE)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_in_place_gives_the_same_step(backend, entry, target, dtype):
    # in_place lets the step write the new labels over the previous ones:
    # the changed rows must be counted before their labels are overwritten.
    X, centers = blobs(300, 7, 6, dtype, seed=5)
    X_in = _homogeneous(X)
    weights = weights_for(300, "random").astype(X.dtype)
    previous = (np.arange(300) * 3) % 7
    args = (target.array(X_in), target.array(weights), target.array(centers))
    require_applies(entry, *args, rows_per_block=37, previous_labels=target.array(previous))
    expected = entry.function(*args, xp=target.xp, rows_per_block=37, previous_labels=target.array(previous))
    overwritten = target.array(previous)
    result = entry.function(*args, xp=target.xp, rows_per_block=37, previous_labels=overwritten, in_place=True)
    np.testing.assert_array_equal(to_numpy(result.labels), to_numpy(expected.labels))
    assert int(result.n_changed) == int(expected.n_changed) > 0
    np.testing.assert_array_equal(to_numpy(result.sums), to_numpy(expected.sums))
    np.testing.assert_array_equal(to_numpy(result.weights), to_numpy(expected.weights))
    if backend == "numpy":
        # NumPy kernels reuse the previous labels' memory: one label array per run.
        assert result.labels is overwritten
