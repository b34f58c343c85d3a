"""Contract of the few-centers, many-features kernels on the shapes their guard takes.

The shared contract cases (:mod:`tests.kernels._data`) have too few features
for this module's guard, so its kernels are checked here: against a brute
force computed from the definition on integer data (every distance and sum
is then exact in float32 and float64, so labels, ties included, and sums must
match exactly), against the array-API reference on blobs, across thread
counts and out-of-memory splits (same bits), and through a whole fit.
"""

from __future__ import annotations

import platform
import re

import array_api_compat.numpy as xp_numpy
import numpy as np
import pytest

from kgpu import KMeans, _blocks
from kgpu._assign import SQEUCLIDEAN, assign_and_accumulate_reference, assign_reference
from kgpu._distances import Metric, homogeneous
from kgpu._kernels import dispatch

from ._data import blobs

numba = pytest.importorskip("numba")
cpu_numba = pytest.importorskip("kgpu._kernels.cpu_numba")
skinny = pytest.importorskip("kgpu._kernels.cpu_numba_skinny")

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]
ROWS = [pytest.param(True, id="homogeneous"), pytest.param(False, id="plain")]
EUCLIDEAN = Metric("euclidean", 2.0)

#: (n_rows, n_features, n_clusters), all taken by the guard: one center at the
#: fewest features; fewer rows than twice the centers (and an odd count) with
#: features past the last whole lane vector; the most centers (groups of
#: centers and a lone last row); several thread-pool tasks; the MNIST width.
SHAPES = [
    pytest.param(50, skinny.MIN_FEATURES, 1, id="k1-fewest-features"),
    pytest.param(7, skinny.MIN_FEATURES + 7, 4, id="n-lt-2k-tail"),
    pytest.param(1001, skinny.MIN_FEATURES + 13, skinny.MAX_CENTERS, id="most-centers-tail"),
    pytest.param(4101, 150, 10, id="several-tasks"),
    pytest.param(300, 784, 10, id="mnist-width"),
    pytest.param(203, skinny.WIDE_FEATURES + 1, skinny.WIDE_MAX_CENTERS, id="wide-most-centers"),
]


def _integer_data(n_rows, n_features, n_clusters, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(-4, 5, size=(n_rows, n_features)).astype(dtype)
    centers = rng.integers(-4, 5, size=(n_clusters, n_features)).astype(dtype)
    if n_clusters > 3:
        centers[n_clusters - 1] = centers[1]  # an exact tie between groups of centers
    weights = rng.integers(1, 4, size=n_rows).astype(dtype)
    return X, centers, weights


def _brute_force(X, weights, centers):
    distances = ((X.astype(np.float64)[:, None, :] - centers.astype(np.float64)[None, :, :]) ** 2).sum(axis=2)
    labels = np.argmin(distances, axis=1)
    sums = np.zeros(centers.shape, dtype=np.float64)
    np.add.at(sums, labels, X.astype(np.float64) * weights.astype(np.float64)[:, None])
    cluster_weights = np.bincount(labels, weights=weights.astype(np.float64), minlength=centers.shape[0])
    return labels, distances.min(axis=1), sums, cluster_weights


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_rows, n_features, n_clusters", SHAPES)
@pytest.mark.parametrize("homogeneous_rows", ROWS)
def test_lloyd_step_exact_on_integer_data(dtype, n_rows, n_features, n_clusters, homogeneous_rows):
    X, centers, weights = _integer_data(n_rows, n_features, n_clusters, dtype)
    previous = np.random.default_rng(1).integers(0, n_clusters, n_rows)
    rows = homogeneous(X, xp=xp_numpy) if homogeneous_rows else X
    rows_before, weights_before, previous_before = rows.copy(), weights.copy(), previous.copy()
    assert dispatch.implementation("lloyd_step", xp_numpy, "cpu", rows, weights, centers) is skinny.lloyd_step_skinny
    step = skinny.lloyd_step_skinny(rows, weights, centers, xp=xp_numpy, rows_per_block=97, previous_labels=previous)
    labels, _, sums, cluster_weights = _brute_force(X, weights, centers)
    np.testing.assert_array_equal(step.labels, labels)
    np.testing.assert_array_equal(step.sums, sums)
    np.testing.assert_array_equal(step.weights, cluster_weights)
    assert step.sums.dtype == np.float64 and step.weights.dtype == np.float64
    assert step.n_changed.shape == () and int(step.n_changed) == int(np.count_nonzero(labels != previous))
    np.testing.assert_array_equal(rows, rows_before)
    np.testing.assert_array_equal(weights, weights_before)
    np.testing.assert_array_equal(previous, previous_before)


def test_lloyd_step_in_place_writes_over_the_previous_labels():
    X, centers, weights = _integer_data(501, skinny.MIN_FEATURES + 1, 6, np.float32)
    previous = np.random.default_rng(2).integers(0, 6, 501)
    expected_changed = int(np.count_nonzero(_brute_force(X, weights, centers)[0] != previous))
    step = skinny.lloyd_step_skinny(X, weights, centers, xp=xp_numpy, rows_per_block=50, previous_labels=previous, in_place=True)
    assert step.labels is previous
    assert int(step.n_changed) == expected_changed
    np.testing.assert_array_equal(previous, _brute_force(X, weights, centers)[0])


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_rows, n_features, n_clusters", SHAPES)
@pytest.mark.parametrize("homogeneous_rows", ROWS)
def test_assign_exact_on_integer_data(dtype, n_rows, n_features, n_clusters, homogeneous_rows):
    X, centers, _ = _integer_data(n_rows, n_features, n_clusters, dtype, seed=4)
    rows = homogeneous(X, xp=xp_numpy) if homogeneous_rows else X
    rows_before = rows.copy()
    labels, min_dist, _, _ = _brute_force(X, np.ones(n_rows), centers)
    assert dispatch.implementation("assign", xp_numpy, "cpu", rows, centers) is skinny.assign_skinny
    result = skinny.assign_skinny(rows, centers, xp=xp_numpy)
    np.testing.assert_array_equal(result.labels, labels)
    np.testing.assert_array_equal(result.min_dist, min_dist)
    assert result.min_dist.dtype == dtype
    widened = skinny.assign_skinny(rows, centers, xp=xp_numpy, float64_distances=True)
    assert widened.min_dist.dtype == np.float64
    np.testing.assert_array_equal(widened.min_dist, result.min_dist.astype(np.float64))
    rooted = skinny.assign_skinny(rows, centers, xp=xp_numpy, metric=EUCLIDEAN)
    np.testing.assert_array_equal(rooted.labels, labels)
    np.testing.assert_array_equal(rooted.min_dist, np.sqrt(result.min_dist))
    np.testing.assert_array_equal(rows, rows_before)


def test_ties_go_to_the_lowest_index():
    # Every center at distance 1 from the origin, including copies in other groups of centers.
    n_features = skinny.MIN_FEATURES + 3
    centers = np.zeros((10, n_features))
    for j in range(10):
        centers[j, j % 4] = 1.0 if j % 2 == 0 else -1.0
    X = np.zeros((9, n_features))
    step = skinny.lloyd_step_skinny(X, np.ones(9), centers, xp=xp_numpy, rows_per_block=4)
    np.testing.assert_array_equal(step.labels, np.zeros(9))
    assert step.n_changed is None
    # A row on a center copied later (centers 2 and 9 equal): the lower index.
    centers[9] = centers[2] = 5.0
    X[4] = 5.0
    result = skinny.assign_skinny(X, centers, xp=xp_numpy)
    assert result.labels[4] == 2 and result.min_dist[4] == 0.0


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("homogeneous_rows", ROWS)
def test_blobs_match_the_reference(dtype, homogeneous_rows):
    X, centers = blobs(3001, 12, skinny.MIN_FEATURES + 9, dtype.__name__, seed=5)
    centers = centers + dtype(0.01)
    weights = np.random.default_rng(6).uniform(0.25, 3.0, X.shape[0]).astype(dtype)
    weights[::7] = 0
    rows = homogeneous(X, xp=xp_numpy) if homogeneous_rows else X
    got = skinny.lloyd_step_skinny(rows, weights, centers, xp=xp_numpy, rows_per_block=300)
    want = assign_and_accumulate_reference(rows, weights, centers, xp=xp_numpy, rows_per_block=300)
    np.testing.assert_array_equal(got.labels, want.labels)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(got.sums, want.sums, rtol=rtol, atol=rtol * np.abs(want.sums).max())
    np.testing.assert_allclose(got.weights, want.weights, rtol=rtol)
    for metric in (SQEUCLIDEAN, EUCLIDEAN):
        got_assign = skinny.assign_skinny(rows, centers, xp=xp_numpy, metric=metric)
        want_assign = assign_reference(rows, centers, xp=xp_numpy, metric=metric)
        np.testing.assert_array_equal(got_assign.labels, want_assign.labels)
        np.testing.assert_allclose(got_assign.min_dist, want_assign.min_dist, rtol=1e-4 if dtype == np.float32 else 1e-10)


def test_same_bits_whatever_threads_and_rounds(monkeypatch):
    rng = np.random.default_rng(7)
    X = homogeneous(rng.normal(size=(40 * 64 + 3, skinny.MIN_FEATURES + 5)).astype(np.float32), xp=xp_numpy)
    weights = rng.uniform(0.5, 1.5, X.shape[0]).astype(np.float32)
    centers = X[:6, :-1].copy()
    pooled = skinny.lloyd_step_skinny(X, weights, centers, xp=xp_numpy, rows_per_block=1000)
    pooled_assign = skinny.assign_skinny(X, centers, xp=xp_numpy)
    assert len(cpu_numba.task_rounds(X.shape[0], skinny._rows_per_tile(centers, X), 1)[0]) > 1
    # One thread: map_blocks runs the tasks in order on the caller's thread;
    # a tiny partials budget makes one round per task.
    monkeypatch.setattr(_blocks, "cpu_threads", lambda: 1)
    monkeypatch.setattr(cpu_numba, "PARTIALS_BUDGET_BYTES", 1)
    serial = skinny.lloyd_step_skinny(X, weights, centers, xp=xp_numpy, rows_per_block=77)
    np.testing.assert_array_equal(serial.labels, pooled.labels)
    assert serial.sums.tobytes() == pooled.sums.tobytes()
    assert serial.weights.tobytes() == pooled.weights.tobytes()
    serial_assign = skinny.assign_skinny(X, centers, xp=xp_numpy)
    assert serial_assign.min_dist.tobytes() == pooled_assign.min_dist.tobytes()


def test_a_distance_has_the_same_bits_in_any_block():
    # Rows computed two at a time or alone, centers in groups of 4, 3, 2 or 1:
    # each distance is the same sum, so the same bits.
    rng = np.random.default_rng(8)
    X = rng.normal(size=(5, skinny.MIN_FEATURES + 75)).astype(np.float32)
    centers = rng.normal(size=(skinny.MAX_CENTERS, X.shape[1])).astype(np.float32)
    whole = skinny.assign_skinny(X, centers, xp=xp_numpy)
    for n_clusters in range(1, skinny.MAX_CENTERS + 1):
        for first in range(5):
            alone = skinny.assign_skinny(X[first:first + 1], centers[:n_clusters], xp=xp_numpy)
            gaps = ((X[first:first + 1, None, :] - centers[None, :n_clusters, :]) ** 2).sum(axis=2)
            assert alone.labels[0] == np.argmin(gaps)
            if whole.labels[first] < n_clusters:
                assert alone.labels[0] == whole.labels[first]
                assert alone.min_dist.tobytes() == whole.min_dist[first:first + 1].tobytes()


def test_guard_takes_few_centers_and_many_features_only():
    X = np.ones((10, skinny.MIN_FEATURES))
    centers = np.ones((skinny.MAX_CENTERS, skinny.MIN_FEATURES))
    weights = np.ones(10)
    assert skinny.applies_to_shape(skinny.MAX_CENTERS, skinny.MIN_FEATURES)
    assert not skinny.applies_to_shape(skinny.MAX_CENTERS + 1, skinny.MIN_FEATURES)
    assert not skinny.applies_to_shape(skinny.MAX_CENTERS, skinny.MIN_FEATURES - 1)
    assert not skinny.applies_to_shape(skinny.MAX_CENTERS + 1, skinny.WIDE_FEATURES - 1)
    assert skinny.applies_to_shape(skinny.WIDE_MAX_CENTERS, skinny.WIDE_FEATURES)
    assert not skinny.applies_to_shape(skinny.WIDE_MAX_CENTERS + 1, 10 * skinny.WIDE_FEATURES)
    assert not skinny.applies_to_shape(0, skinny.WIDE_FEATURES)
    implementation = dispatch.implementation
    assert implementation("lloyd_step", xp_numpy, "cpu", X, weights, centers) is skinny.lloyd_step_skinny
    assert implementation("assign", xp_numpy, "cpu", X, centers) is skinny.assign_skinny
    # More centers, fewer features, half precision, a strided view, another metric: not this module.
    refused = [
        ("lloyd_step", (np.ones((10, 64)), weights, np.ones((skinny.MAX_CENTERS + 1, 64))), {}),
        ("lloyd_step", (X[:, :-1], weights, centers[:, :-1]), {}),
        ("assign", (X.astype(np.float16), centers.astype(np.float16)), {}),
        ("assign", (np.ones((10, 2 * skinny.MIN_FEATURES))[:, ::2], centers), {}),
        ("assign", (X, centers), {"metric": Metric("manhattan", 1.0)}),
    ]
    for operation, args, kwargs in refused:
        chosen = implementation(operation, xp_numpy, "cpu", *args, **kwargs)
        assert chosen not in (skinny.lloyd_step_skinny, skinny.assign_skinny), (operation, kwargs)


def test_torch_adapters_give_the_numpy_kernels_bits_as_tensors():
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as xp_torch

    X, centers, weights = _integer_data(700, skinny.MIN_FEATURES + 10, 9, np.float32, seed=9)
    X = X + np.random.default_rng(10).normal(size=X.shape).astype(np.float32)
    design = homogeneous(X, xp=xp_numpy)
    previous = np.random.default_rng(11).integers(0, 9, 700)
    design_t, weights_t, centers_t, previous_t = map(torch.from_numpy, (design, weights, centers, previous))
    assert dispatch.implementation("lloyd_step", xp_torch, design_t.device, design_t, weights_t, centers_t) is (
        skinny.lloyd_step_skinny_torch
    )
    assert dispatch.implementation("assign", xp_torch, design_t.device, design_t, centers_t) is skinny.assign_skinny_torch
    step_t = skinny.lloyd_step_skinny_torch(
        design_t, weights_t, centers_t, xp=xp_torch, rows_per_block=100, previous_labels=previous_t
    )
    step = skinny.lloyd_step_skinny(design, weights, centers, xp=xp_numpy, rows_per_block=100, previous_labels=previous)
    for got, want in zip(step_t, step):
        assert isinstance(got, torch.Tensor)
        np.testing.assert_array_equal(got.numpy(), want)
    got = skinny.assign_skinny_torch(torch.from_numpy(X), centers_t, xp=xp_torch)
    want = skinny.assign_skinny(X, centers, xp=xp_numpy)
    np.testing.assert_array_equal(got.labels.numpy(), want.labels)
    np.testing.assert_array_equal(got.min_dist.numpy(), want.min_dist)


def test_self_checks_pass():
    for operation in ("lloyd_step", "assign"):
        for backend in ("numpy", "torch"):
            entries = [entry for b, entry in dispatch.registered(operation) if b == backend and entry.name == "numba-skinny"]
            assert len(entries) == 1
            if backend == "torch":
                pytest.importorskip("torch")
            assert entries[0].self_check(xp_numpy, "cpu")


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_fit_runs_these_kernels_and_predict_matches_labels(monkeypatch, dtype):
    calls = {"lloyd": 0, "assign": 0}
    lloyd_rows, assign_rows = skinny._lloyd_rows, skinny._assign_rows

    def counted_lloyd(*args):
        calls["lloyd"] += 1
        return lloyd_rows(*args)

    def counted_assign(*args):
        calls["assign"] += 1
        return assign_rows(*args)

    monkeypatch.setattr(skinny, "_lloyd_rows", counted_lloyd)
    monkeypatch.setattr(skinny, "_assign_rows", counted_assign)
    monkeypatch.delenv("KGPU_FAST", raising=False)
    X, _ = blobs(2000, 8, skinny.MIN_FEATURES + 8, dtype.__name__, seed=12)
    X = X + np.random.default_rng(13).normal(scale=0.5, size=X.shape).astype(dtype)
    model = KMeans(8, n_init=1, max_iter=5, tol=0.0, random_state=0).fit(X)
    np.testing.assert_array_equal(model.predict(X), model.labels_)
    assert calls["lloyd"] > 0 and calls["assign"] > 0
    monkeypatch.setenv("KGPU_FAST", "0")
    reference = KMeans(8, n_init=1, max_iter=5, tol=0.0, random_state=0).fit(X)
    np.testing.assert_array_equal(model.labels_, reference.labels_)
    np.testing.assert_allclose(model.cluster_centers_, reference.cluster_centers_, rtol=1e-5, atol=1e-5)


def test_distances_and_sums_are_packed_fused_multiply_adds():
    # A fresh compilation (numba does not disassemble cached code): on an x86
    # CPU with AVX2 and FMA the lanes are vector registers, 16 float32
    # distances' lanes and 8 float64 sums per instruction or pair of them.
    from llvmlite import binding

    features = binding.get_host_cpu_features()
    if platform.machine() not in ("x86_64", "AMD64") or not (features.get("avx2") and features.get("fma")):
        pytest.skip("the instructions checked are x86's AVX2 and FMA")
    X = np.zeros((8, skinny.MIN_FEATURES + 1), dtype=np.float32)
    centers = np.zeros((5, skinny.MIN_FEATURES), dtype=np.float32)
    distances = numba.njit(fastmath=False, nogil=True)(skinny._centers_in_groups.py_func)
    distances(X, 0, centers, np.empty((1, 5), dtype=np.float32))
    assert re.search(r"vfmadd\w*ps\s[^\n]*%[yz]mm", distances.inspect_asm(distances.signatures[0]))
    accumulate = skinny._accumulate

    @numba.njit(fastmath=False, nogil=True)
    def add_row(sums, X):
        accumulate(sums, X, 0, 0, X.shape[1], 2.0)

    add_row(np.zeros(X.shape[1]), X)
    assert re.search(r"vfmadd\w*pd\s[^\n]*%[yz]mm", add_row.inspect_asm(add_row.signatures[0]))
