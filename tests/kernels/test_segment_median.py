"""Contract of the ``"segment_median"`` operation: every native implementation against the reference.

Medians are values of the data (or the midpoint of two), so the results must
be identical, not merely close.
"""

from __future__ import annotations

import numpy as np
import pytest

from kgpu._segment import segment_median_reference

from .._helpers import to_numpy
from ._contract import native_implementations, require_applies
from ._data import DTYPES

IMPLEMENTATIONS = native_implementations("segment_median")

#: (n_rows, n_segments, n_features): plain, d not a power of two over several
#: column blocks, fewer rows than one tile, a single segment.
CASES = [(120, 5, 6), (90, 4, 19), (7, 3, 2), (31, 1, 3)]
CASE_IDS = ["plain", "d19", "n-below-tile", "one-segment"]


def _problem(n_rows, n_segments, n_features, dtype, seed=0):
    rng = np.random.default_rng(seed)
    values = rng.normal(0, 10, size=(n_rows, n_features))
    # Repeated values and signed zeros: ties inside a segment, and keys around 0.
    values[::4] = np.round(values[::4])
    values[1::9] = -0.0
    labels = rng.integers(0, n_segments, n_rows)
    if n_segments > 2:
        labels[labels == n_segments - 1] = 0  # the last segment is empty
    return values.astype(dtype), labels.astype(np.int64)


def _weights(kind, n_rows, seed=1):
    rng = np.random.default_rng(seed)
    if kind == "none":
        return None
    if kind == "integer":
        weights = rng.integers(0, 4, n_rows).astype(np.float64)  # zeros included
    else:
        weights = rng.uniform(0.1, 2.0, n_rows)
        weights[::5] = 0.0
    return weights


def _run(function, target, values, labels, n_segments, weights, entry=None):
    args = (
        target.array(values), target.array(labels), n_segments,
        None if weights is None else target.array(weights.astype(values.dtype)),
    )
    if entry is not None:
        require_applies(entry, *args)
    return to_numpy(function(*args, xp=target.xp))


# Every dtype unweighted; the weighted rules in float32 and float64 (the
# interpreter is slow: these stay few).
COMBINATIONS = [(dtype, "none") for dtype in DTYPES] + [
    (dtype, weighting) for dtype in ("float32", "float64") for weighting in ("integer", "fractional")
]


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype, weighting", COMBINATIONS, ids=[f"{d}-{w}" for d, w in COMBINATIONS])
@pytest.mark.parametrize("case", CASES, ids=CASE_IDS)
def test_matches_reference(backend, entry, target, dtype, case, weighting):
    values, labels = _problem(*case, dtype)
    weights = _weights(weighting, case[0])
    result = _run(entry.function, target, values, labels, case[1], weights, entry)
    expected = _run(segment_median_reference, target, values, labels, case[1], weights)
    assert result.dtype == values.dtype and result.shape == (case[1], case[2])
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
def test_even_count_takes_the_midpoint_and_zero_weight_rows_are_never_chosen(backend, entry, target):
    values = np.array([[1.0], [2.0], [10.0], [20.0], [-5.0], [100.0]])
    labels = np.array([0, 0, 0, 0, 1, 1])
    weights = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 0.0])
    result = _run(entry.function, target, values, labels, 3, weights, entry)
    np.testing.assert_array_equal(result, [[6.0], [-5.0], [0.0]])


@pytest.mark.parametrize("backend, entry", IMPLEMENTATIONS)
def test_extreme_values(backend, entry, target):
    values = np.array([[-1e300], [1e300], [3.0], [-np.finfo(np.float64).max], [np.finfo(np.float64).max]])
    labels = np.array([0, 0, 0, 1, 1])
    result = _run(entry.function, target, values, labels, 2, None, entry)
    expected = _run(segment_median_reference, target, values, labels, 2, None)
    np.testing.assert_array_equal(result, expected)


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("pooled", [False, True], ids=["in-order", "thread-pool"])
def test_numba_plain_medians_same_in_column_blocks_and_on_the_pool(monkeypatch, dtype, pooled):
    # The plain medians gather segments a block of columns at a time (the
    # budget) and run them on the thread pool above a size: neither may change a bit.
    cpu_numba = pytest.importorskip("kgpu._kernels.cpu_numba")
    import array_api_compat.numpy as xp_numpy

    values, labels = _problem(500, 6, 9, dtype, seed=4)
    expected = segment_median_reference(values, labels, 6, None, xp=xp_numpy)
    if pooled:
        monkeypatch.setattr(cpu_numba, "POOLED_MEDIAN_VALUES", 0)
    for budget_mib in (None, 2 * 100 * values.itemsize / 2**20):  # about 2 columns of a segment per block
        result = cpu_numba.segment_median_numba(values, labels, 6, None, xp=xp_numpy, budget_mib=budget_mib)
        np.testing.assert_array_equal(result, expected)
