"""Segmented sums (kgpu._segment): every backend fast path against the standard version.

The standard versions (one-hot GEMM) are themselves checked against a plain
NumPy reference (``np.add.at``), so a fast path and the fallback cannot agree
on a wrong answer.
"""

from __future__ import annotations

import numpy as np
import pytest

from kgpu._segment import segment_sum, segment_sum_standard, segment_weight, segment_weight_standard

from ._helpers import asarray, assert_close, assert_namespace, dtype_name, to_numpy

N_ROWS, N_FEATURES = 200, 3

# (n_segments, labels drawn from): the used segments leave holes at the start,
# in the middle and at the end, so empty segments are covered everywhere.
SEGMENT_CASES = [
    pytest.param(4, [0, 1, 2, 3], id="all-used"),
    pytest.param(7, [1, 2, 5], id="empty-first-middle-last"),
    pytest.param(5, [3], id="one-used"),
    pytest.param(1, [0], id="single-segment"),
]


def _data(dtype, used, n_segments, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(N_ROWS, N_FEATURES)).astype(dtype)
    labels = rng.choice(np.asarray(used), size=N_ROWS).astype(np.int64)
    weights = rng.uniform(0.0, 3.0, size=N_ROWS).astype(dtype)
    weights[::17] = 0.0  # zero weights are legal and must add nothing
    return values, labels, weights


def _reference_sum(values, labels, n_segments, weights):
    sums = np.zeros((n_segments, values.shape[1]), dtype=np.float64)
    row_weights = np.ones(values.shape[0]) if weights is None else weights.astype(np.float64)
    np.add.at(sums, labels, values.astype(np.float64) * row_weights[:, None])
    return sums


def _reference_weight(labels, n_segments, weights):
    totals = np.zeros(n_segments, dtype=np.float64)
    np.add.at(totals, labels, 1.0 if weights is None else weights.astype(np.float64))
    return totals


def _tolerance(dtype):
    return 1e-5 if dtype == np.float32 else 1e-12


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize(("n_segments", "used"), SEGMENT_CASES)
def test_segment_sum_matches_standard(xp, dtype, weighted, n_segments, used):
    values_np, labels_np, weights_np = _data(dtype, used, n_segments)
    weights_np = weights_np if weighted else None
    values, labels = asarray(xp, values_np), asarray(xp, labels_np)
    weights = asarray(xp, weights_np) if weighted else None

    fast = segment_sum(values, labels, n_segments, weights, xp=xp)
    standard = segment_sum_standard(values, labels, n_segments, weights, xp=xp)

    for result in (fast, standard):
        assert_namespace(result, xp)
        assert dtype_name(result) == np.dtype(dtype).name
    rtol = _tolerance(dtype)
    atol = 1e-5 if dtype == np.float32 else 1e-12
    assert_close(fast, standard, rtol=rtol, atol=atol)
    assert_close(standard, _reference_sum(values_np, labels_np, n_segments, weights_np), rtol=rtol, atol=atol)
    unused = sorted(set(range(n_segments)) - set(used))
    assert np.all(to_numpy(fast)[unused] == 0), "an empty segment must sum to exactly zero"


@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize(("n_segments", "used"), SEGMENT_CASES)
def test_segment_weight_matches_standard(xp, dtype, weighted, n_segments, used):
    _, labels_np, weights_np = _data(dtype, used, n_segments)
    weights_np = weights_np if weighted else None
    labels = asarray(xp, labels_np)
    weights = asarray(xp, weights_np) if weighted else None

    fast = segment_weight(labels, n_segments, weights, xp=xp)
    standard = segment_weight_standard(labels, n_segments, weights, xp=xp)

    # Default dtype: that of the weights, float64 when counting.
    expected_dtype = np.dtype(dtype).name if weighted else "float64"
    for result in (fast, standard):
        assert_namespace(result, xp)
        assert tuple(result.shape) == (n_segments,)
        assert dtype_name(result) == expected_dtype
    rtol = _tolerance(dtype if weighted else np.float64)
    assert_close(fast, standard, rtol=rtol, atol=rtol)
    assert_close(standard, _reference_weight(labels_np, n_segments, weights_np), rtol=rtol, atol=rtol)
    unused = sorted(set(range(n_segments)) - set(used))
    assert np.all(to_numpy(fast)[unused] == 0), "an empty segment must weigh exactly zero"


@pytest.mark.parametrize("result_dtype", ["float32", "float64"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_segment_weight_explicit_dtype(xp, result_dtype, weighted):
    # Lloyd asks for float64 totals of float32 weights: the dtype argument wins.
    _, labels_np, weights_np = _data(np.float32, [0, 2], 3)
    labels = asarray(xp, labels_np)
    weights = asarray(xp, weights_np) if weighted else None
    dtype = getattr(xp, result_dtype)

    fast = segment_weight(labels, 3, weights, xp=xp, dtype=dtype)
    standard = segment_weight_standard(labels, 3, weights, xp=xp, dtype=dtype)

    assert dtype_name(fast) == result_dtype
    assert dtype_name(standard) == result_dtype
    expected = _reference_weight(labels_np, 3, weights_np if weighted else None)
    assert_close(fast, standard, rtol=1e-6, atol=1e-6)
    assert_close(fast, expected, rtol=1e-6, atol=1e-6)


def test_segment_sum_counts_are_exact(xp):
    # Unit weights on integer-valued data: every path must give exact integers.
    values_np = np.arange(30, dtype=np.float64).reshape(10, 3)
    labels_np = np.array([0, 0, 2, 2, 2, 4, 0, 4, 4, 2], dtype=np.int64)
    values, labels = asarray(xp, values_np), asarray(xp, labels_np)

    expected_sums = _reference_sum(values_np, labels_np, 6, None)
    assert_close(segment_sum(values, labels, 6, xp=xp), expected_sums, rtol=0)
    assert_close(segment_sum_standard(values, labels, 6, xp=xp), expected_sums, rtol=0)
    expected_counts = np.array([3, 0, 4, 0, 3, 0], dtype=np.float64)
    assert_close(segment_weight(labels, 6, xp=xp), expected_counts, rtol=0)
    assert_close(segment_weight_standard(labels, 6, xp=xp), expected_counts, rtol=0)
