"""Segmented weighted medians (kgpu._segment.segment_median) on every backend.

The fast path (NumPy) and the standard version are both checked against a
plain NumPy reference written from the documented rule: the midpoint of the
lower weighted median (smallest value whose cumulative weight reaches half the
total) and the upper one (smallest value whose cumulative weight exceeds it).
"""

from __future__ import annotations

import numpy as np
import pytest

from kgpu._segment import segment_median, segment_median_standard

from ._helpers import asarray, assert_close, assert_equal, assert_namespace, dtype_name, to_numpy

N_ROWS, N_FEATURES = 120, 3

# (n_segments, labels drawn from): empty segments first, in the middle and last.
SEGMENT_CASES = [
    pytest.param(4, [0, 1, 2, 3], id="all-used"),
    pytest.param(7, [1, 2, 5], id="empty-first-middle-last"),
    pytest.param(5, [3], id="one-used"),
    pytest.param(1, [0], id="single-segment"),
]
DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
IMPLEMENTATIONS = [
    pytest.param(segment_median, id="dispatch"),
    pytest.param(segment_median_standard, id="standard"),
]


def _reference_median(values, labels, n_segments, weights=None):
    """The documented rule, one segment and one column at a time, in float64."""
    medians = np.zeros((n_segments, values.shape[1]), dtype=np.float64)
    weights = np.ones(values.shape[0]) if weights is None else np.asarray(weights, dtype=np.float64)
    for segment in range(n_segments):
        rows = labels == segment
        if not np.any(weights[rows] > 0):
            continue
        for column in range(values.shape[1]):
            order = np.argsort(values[rows, column], kind="stable")
            sorted_values = values[rows, column][order].astype(np.float64)
            running = np.cumsum(weights[rows][order])
            half = running[-1] / 2
            lower = sorted_values[np.flatnonzero(running >= half)[0]]
            upper = sorted_values[np.flatnonzero(running > half)[0]]
            medians[segment, column] = (lower + upper) / 2
    return medians


def _data(dtype, used, seed=0, n_rows=N_ROWS):
    rng = np.random.default_rng(seed)
    values = rng.normal(size=(n_rows, N_FEATURES)).astype(dtype)
    labels = rng.choice(np.asarray(used), size=n_rows).astype(np.int64)
    weights = rng.uniform(0.1, 3.0, size=n_rows).astype(dtype)
    weights[::13] = 0.0  # zero weights are legal and must never be chosen
    return values, labels, weights


def _tolerance(dtype):
    return 1e-6 if dtype == np.float32 else 1e-12


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n_segments", "used"), SEGMENT_CASES)
def test_unweighted_is_numpy_median(xp, implementation, dtype, n_segments, used):
    values_np, labels_np, _ = _data(dtype, used)
    medians = implementation(asarray(xp, values_np), asarray(xp, labels_np), n_segments, xp=xp)

    assert_namespace(medians, xp)
    assert dtype_name(medians) == np.dtype(dtype).name
    expected = np.zeros((n_segments, N_FEATURES), dtype=dtype)
    for segment in used:
        expected[segment] = np.median(values_np[labels_np == segment], axis=0)
    # Same arithmetic as np.median ((a + b) / 2 in the input dtype): exact.
    assert_equal(medians, expected)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize(("n_segments", "used"), SEGMENT_CASES)
def test_weighted_matches_reference(xp, implementation, dtype, n_segments, used):
    values_np, labels_np, weights_np = _data(dtype, used)
    medians = implementation(
        asarray(xp, values_np), asarray(xp, labels_np), n_segments, asarray(xp, weights_np), xp=xp
    )

    assert_namespace(medians, xp)
    assert dtype_name(medians) == np.dtype(dtype).name
    expected = _reference_median(values_np, labels_np, n_segments, weights_np)
    assert_close(medians, expected, rtol=_tolerance(dtype), atol=_tolerance(dtype))
    unused = sorted(set(range(n_segments)) - set(used))
    assert np.all(to_numpy(medians)[unused] == 0), "an empty segment must give exactly zero"


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_fast_path_equals_standard(xp, dtype, weighted):
    values_np, labels_np, weights_np = _data(dtype, [0, 1, 3, 4], seed=3, n_rows=500)
    values, labels = asarray(xp, values_np), asarray(xp, labels_np)
    weights = asarray(xp, weights_np) if weighted else None

    fast = segment_median(values, labels, 6, weights, xp=xp)
    standard = segment_median_standard(values, labels, 6, weights, xp=xp)

    assert_equal(fast, standard)


def test_even_count_is_mean_of_the_two_middle_values(xp):
    values_np = np.array([[4.0], [1.0], [3.0], [10.0], [7.0], [7.0], [-2.0]])
    labels_np = np.array([0, 0, 0, 0, 1, 1, 2])
    for implementation in (segment_median, segment_median_standard):
        medians = implementation(asarray(xp, values_np), asarray(xp, labels_np), 3, xp=xp)
        # [1, 3, 4, 10] -> (3 + 4) / 2; [7, 7] -> 7; [-2] -> -2.
        assert_equal(medians, np.array([[3.5], [7.0], [-2.0]]))


def test_weight_crossing_half_picks_one_value(xp):
    # Weights 1, 1, 3 over 1, 2, 3: the cumulative weight passes 2.5 at 3.
    values_np = np.array([[1.0], [2.0], [3.0], [1.0], [2.0], [3.0]])
    labels_np = np.array([0, 0, 0, 1, 1, 1])
    weights_np = np.array([1.0, 1.0, 3.0, 1.0, 1.0, 2.0])
    for implementation in (segment_median, segment_median_standard):
        medians = implementation(
            asarray(xp, values_np), asarray(xp, labels_np), 2, asarray(xp, weights_np), xp=xp
        )
        # Segment 1: cumulative 1, 2, 4 against half 2 -> lower 2, upper 3.
        assert_equal(medians, np.array([[3.0], [2.5]]))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_integer_weights_equal_repeated_rows(xp, implementation):
    rng = np.random.default_rng(5)
    values_np = rng.integers(-5, 6, size=(60, 2)).astype(np.float64)  # many ties
    labels_np = rng.integers(0, 3, size=60)
    counts = rng.integers(0, 4, size=60)
    counts[0] = 1  # at least one row kept
    weighted = implementation(
        asarray(xp, values_np), asarray(xp, labels_np), 3, asarray(xp, counts.astype(np.float64)), xp=xp
    )
    repeated = implementation(
        asarray(xp, np.repeat(values_np, counts, axis=0)), asarray(xp, np.repeat(labels_np, counts)), 3, xp=xp
    )
    assert_equal(weighted, repeated)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_zero_weight_row_is_never_chosen(xp, implementation):
    values_np = np.array([[0.0], [1.0], [1e6], [2.0], [5.0], [-1e6]])
    labels_np = np.array([0, 0, 0, 0, 1, 1])
    weights_np = np.array([1.0, 1.0, 0.0, 1.0, 1.0, 0.0])
    medians = implementation(asarray(xp, values_np), asarray(xp, labels_np), 3, asarray(xp, weights_np), xp=xp)
    # As if the zero-weight rows were absent; segment 2 has no rows at all.
    assert_equal(medians, np.array([[1.0], [5.0], [0.0]]))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_segment_of_only_zero_weights_gives_zero(xp, implementation):
    values_np = np.array([[3.0, 4.0], [5.0, 6.0], [7.0, 8.0]])
    labels_np = np.array([0, 1, 1])
    weights_np = np.array([0.0, 2.0, 1.0])
    medians = implementation(asarray(xp, values_np), asarray(xp, labels_np), 2, asarray(xp, weights_np), xp=xp)
    assert_equal(medians, np.array([[0.0, 0.0], [5.0, 6.0]]))


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_equal_fractional_weights_act_as_unweighted(xp, implementation):
    # 0.1 summed in float64 never hits exactly half of the total: the equal
    # weights are dropped, so an even count still averages the middle pair.
    values_np, labels_np, _ = _data(np.float64, [0, 1], seed=2, n_rows=40)
    weights_np = np.full(40, 0.1)
    medians = implementation(asarray(xp, values_np), asarray(xp, labels_np), 2, asarray(xp, weights_np), xp=xp)
    expected = np.stack([np.median(values_np[labels_np == j], axis=0) for j in range(2)])
    assert_equal(medians, expected)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_result_independent_of_budget(xp, implementation, weighted):
    # A tiny budget gives one column (standard) or one segment (NumPy) per block.
    values_np, labels_np, weights_np = _data(np.float64, [0, 1, 2], seed=4, n_rows=300)
    values, labels = asarray(xp, values_np), asarray(xp, labels_np)
    weights = asarray(xp, weights_np) if weighted else None
    small = implementation(values, labels, 3, weights, xp=xp, budget_mib=1e-4)
    large = implementation(values, labels, 3, weights, xp=xp, budget_mib=64)
    assert_equal(small, large)


def test_inputs_not_modified(xp):
    values_np, labels_np, weights_np = _data(np.float64, [0, 1], seed=6)
    values, labels, weights = asarray(xp, values_np), asarray(xp, labels_np), asarray(xp, weights_np)
    for implementation in (segment_median, segment_median_standard):
        implementation(values, labels, 2, weights, xp=xp)
    assert_equal(values, values_np)
    assert_equal(labels, labels_np)
    assert_equal(weights, weights_np)
