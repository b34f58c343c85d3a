"""Contract of the ``"assign"`` operation: every native implementation against the reference."""

from __future__ import annotations

import numpy as np
import pytest

from kgpu._assign import assign_reference
from kgpu._distances import Metric
from kgpu._kernels import dispatch

from .._helpers import to_numpy
from ._contract import native_implementations, require_applies
from ._data import DTYPES, SHAPE_IDS, SHAPES, blobs, compute_dtype, exact_ties, ties_across_tiles, weights_for

IMPLEMENTATIONS = native_implementations("assign")

METRICS = [
    Metric("sqeuclidean", 2.0),
    Metric("euclidean", 2.0),
    Metric("manhattan", 1.0),
    Metric("minkowski", 3.0),
]
METRIC_IDS = ["sqeuclidean", "euclidean", "manhattan", "minkowski3"]


def _check_against_reference(entry, target, X, centers, metric):
    """Labels equal, distances and the weighted objective within 1e-6 of the reference's."""
    reference_dtype = compute_dtype(str(X.dtype))
    expected = assign_reference(
        target.array(X.astype(reference_dtype)), target.array(centers.astype(reference_dtype)), xp=target.xp,
        metric=metric, rows_per_block=37,
    )
    args = (target.array(X), target.array(centers))
    require_applies(entry, *args, metric=metric, rows_per_block=37)
    result = entry.function(*args, xp=target.xp, metric=metric, rows_per_block=37)
    np.testing.assert_array_equal(to_numpy(result.labels), to_numpy(expected.labels))
    distances, expected_distances = to_numpy(result.min_dist), to_numpy(expected.min_dist)
    assert distances.dtype == X.dtype, "distances come back in the input's dtype"
    # float16 results are rounded to float16 once: compare at that precision.
    rtol = 1e-3 if X.dtype == np.float16 else 1e-6
    scale = float(np.abs(expected_distances.astype(np.float64)).max())
    np.testing.assert_allclose(distances, expected_distances, rtol=rtol, atol=rtol * scale)
    weights = weights_for(X.shape[0], "random")
    inertia = float(weights @ distances.astype(np.float64))
    expected_inertia = float(weights @ expected_distances.astype(np.float64))
    assert inertia == pytest.approx(expected_inertia, rel=rtol, abs=rtol * scale)
    return result


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("shape", SHAPES, ids=SHAPE_IDS)
def test_matches_reference(backend, entry, target, metric, dtype, shape):
    X, centers = blobs(*shape, dtype)
    _check_against_reference(entry, target, X, centers, metric)


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_go_to_the_lowest_index(backend, entry, target, metric, dtype):
    X, centers = exact_ties(dtype)
    result = _check_against_reference(entry, target, X, centers, metric)
    labels = to_numpy(result.labels)
    assert labels[0] == 0 and labels[2] == 2


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("dtype", DTYPES)
def test_ties_across_center_tiles_go_to_the_lowest_index(backend, entry, target, metric, dtype):
    X, centers = ties_across_tiles(dtype)
    labels = to_numpy(_check_against_reference(entry, target, X, centers, metric).labels)
    np.testing.assert_array_equal(labels, [5, 63, 99])


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
def test_homogeneous_rows(backend, entry, target):
    """Rows ``[x, 1]`` (the Lloyd working copy) give the labels and distances of ``x``."""
    X, centers = blobs(90, 6, 9, "float32", seed=5)
    design = np.concatenate([X, np.ones((90, 1), dtype=np.float32)], axis=1)
    metric = METRICS[0]
    require_applies(entry, target.array(design), target.array(centers), metric=metric)
    result = entry.function(target.array(design), target.array(centers), xp=target.xp, metric=metric)
    expected = assign_reference(target.array(X), target.array(centers), xp=target.xp, metric=metric)
    np.testing.assert_array_equal(to_numpy(result.labels), to_numpy(expected.labels))
    np.testing.assert_allclose(to_numpy(result.min_dist), to_numpy(expected.min_dist), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "backend, entry",
    [pytest.param("numpy", dispatch.registered("assign")[0][1], id="numpy-array-api"), *IMPLEMENTATIONS],
)
@pytest.mark.parametrize("metric", METRICS, ids=METRIC_IDS)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_float64_distances_are_the_distances_widened(backend, entry, target, metric, dtype):
    X, centers = blobs(200, 6, 5, dtype, seed=2)
    args = (target.array(X), target.array(centers))
    require_applies(entry, *args, metric=metric, rows_per_block=37)
    plain = entry.function(*args, xp=target.xp, metric=metric, rows_per_block=37)
    wide = entry.function(*args, xp=target.xp, metric=metric, rows_per_block=37, float64_distances=True)
    np.testing.assert_array_equal(to_numpy(wide.labels), to_numpy(plain.labels))
    distances = to_numpy(wide.min_dist)
    assert distances.dtype == np.float64
    # Computed and rounded in the data's dtype, then widened: exactly the plain distances.
    np.testing.assert_array_equal(distances, to_numpy(plain.min_dist).astype(np.float64))
