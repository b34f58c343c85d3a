"""Contract of every registered "lloyd_step", "assign" and "segment_median" implementation.

Each implementation in the kernel table (the array-API reference and the
numba kernels) is compared with a brute-force NumPy computation written from
the definition. Integer-valued data keeps every score exact in float32 and
float64, so labels (ties included: the lowest index wins) and sums must match
exactly; random data checks the general case with tolerances.
"""

from __future__ import annotations

import array_api_compat.numpy as xp_numpy
import numpy as np
import pytest

from kgpu import _blocks
from kgpu._assign import SQEUCLIDEAN
from kgpu._distances import Metric, homogeneous
from kgpu._kernels import dispatch

numba = pytest.importorskip("numba")
cpu_numba = pytest.importorskip("kgpu._kernels.cpu_numba")

DTYPES = [pytest.param(np.float32, id="float32"), pytest.param(np.float64, id="float64")]


def _implementations(operation):
    """Every implementation that takes NumPy arrays (torch adapters are tested below)."""
    return [
        pytest.param(_guarded(entry), id=f"{backend}-{entry.name}")
        for backend, entry in dispatch.registered(operation)
        if backend in (dispatch.ANY_BACKEND, "numpy")
    ]


def _guarded(entry):
    """``entry``'s function, skipping the calls its guard sends elsewhere (the table never runs it on them)."""

    def run(*args, **kwargs):
        if entry.applies is not None and not entry.applies(*args, **kwargs):
            pytest.skip(f"the {entry.name} kernel's guard does not take this call")
        return entry.function(*args, **kwargs)

    return run


def _integer_data(n_rows, n_features, n_clusters, dtype, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.integers(-4, 5, size=(n_rows, n_features)).astype(dtype)
    centers = rng.integers(-4, 5, size=(n_clusters, n_features)).astype(dtype)
    weights = rng.integers(1, 4, size=n_rows).astype(dtype)
    return X, centers, weights


def _brute_force_lloyd(X, weights, centers):
    gaps = X.astype(np.float64)[:, None, :] - centers.astype(np.float64)[None, :, :]
    labels = np.argmin(np.sum(gaps**2, axis=2), axis=1)
    sums = np.zeros(centers.shape, dtype=np.float64)
    np.add.at(sums, labels, X.astype(np.float64) * weights.astype(np.float64)[:, None])
    cluster_weights = np.bincount(labels, weights=weights.astype(np.float64), minlength=centers.shape[0])
    return labels, sums, cluster_weights


# (n_rows, n_features, n_clusters): k=1, n < 2k, d=1, and several chunks.
SHAPES = [
    pytest.param(50, 3, 1, id="k1"),
    pytest.param(5, 4, 4, id="n-lt-2k"),
    pytest.param(300, 1, 5, id="d1"),
    pytest.param(3 * cpu_numba.MAX_TILE_ROWS + 7, 6, 9, id="several-chunks"),
]


@pytest.mark.parametrize("implementation", _implementations("lloyd_step"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_rows, n_features, n_clusters", SHAPES)
@pytest.mark.parametrize("homogeneous_rows", [True, False], ids=["homogeneous", "plain"])
def test_lloyd_step_exact_on_integer_data(implementation, dtype, n_rows, n_features, n_clusters, homogeneous_rows):
    X, centers, weights = _integer_data(n_rows, n_features, n_clusters, dtype)
    previous = np.random.default_rng(1).integers(0, n_clusters, n_rows)
    rows = homogeneous(X, xp=xp_numpy) if homogeneous_rows else X
    rows_before, weights_before = rows.copy(), weights.copy()
    step = implementation(rows, weights, centers, xp=xp_numpy, rows_per_block=97, previous_labels=previous)
    labels, sums, cluster_weights = _brute_force_lloyd(X, weights, centers)
    np.testing.assert_array_equal(step.labels, labels)
    np.testing.assert_array_equal(step.sums, sums)
    np.testing.assert_array_equal(step.weights, cluster_weights)
    assert step.sums.dtype == np.float64 and step.weights.dtype == np.float64
    assert step.n_changed.shape == () and int(step.n_changed) == int(np.count_nonzero(labels != previous))
    np.testing.assert_array_equal(rows, rows_before)
    np.testing.assert_array_equal(weights, weights_before)


@pytest.mark.parametrize("implementation", _implementations("lloyd_step"))
def test_lloyd_step_ties_go_to_lowest_index(implementation):
    X = np.zeros((10, 2))
    centers = np.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0], [1.0, 0.0]])  # all at distance 1
    step = implementation(X, np.ones(10), centers, xp=xp_numpy, rows_per_block=4)
    np.testing.assert_array_equal(step.labels, np.zeros(10))
    assert step.n_changed is None


@pytest.mark.parametrize("implementation", _implementations("lloyd_step"))
@pytest.mark.parametrize("dtype", DTYPES)
def test_lloyd_step_random_data(implementation, dtype):
    rng = np.random.default_rng(3)
    true_centers = rng.normal(scale=10.0, size=(7, 5))
    X = (true_centers[rng.integers(0, 7, 5000)] + rng.normal(size=(5000, 5))).astype(dtype)
    weights = rng.uniform(0.1, 2.0, 5000).astype(dtype)
    centers = (true_centers + 0.1).astype(dtype)
    step = implementation(homogeneous(X, xp=xp_numpy), weights, centers, xp=xp_numpy, rows_per_block=1000)
    labels, sums, cluster_weights = _brute_force_lloyd(X, weights, centers)
    np.testing.assert_array_equal(step.labels, labels)
    rtol = 1e-5 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(step.sums, sums, rtol=rtol, atol=rtol * np.abs(sums).max())
    np.testing.assert_allclose(step.weights, cluster_weights, rtol=rtol)


# ---------------------------------------------------------------- assign

METRICS = [
    pytest.param(SQEUCLIDEAN, id="sqeuclidean"),
    pytest.param(Metric("euclidean", 2.0), id="euclidean"),
    pytest.param(Metric("manhattan", 1.0), id="manhattan"),
    pytest.param(Metric("minkowski", 3.0), id="minkowski3"),
    pytest.param(Metric("minkowski", np.inf), id="chebyshev"),
]


def _brute_force_distances(X, centers, metric):
    gaps = np.abs(X.astype(np.float64)[:, None, :] - centers.astype(np.float64)[None, :, :])
    if metric.name == "sqeuclidean":
        return np.sum(gaps**2, axis=2)
    if metric.name == "euclidean":
        return np.sqrt(np.sum(gaps**2, axis=2))
    if metric.name == "manhattan":
        return np.sum(gaps, axis=2)
    if np.isinf(metric.p):
        return np.max(gaps, axis=2)
    return np.sum(gaps**metric.p, axis=2) ** (1 / metric.p)


@pytest.mark.parametrize("implementation", _implementations("assign"))
@pytest.mark.parametrize("metric", METRICS)
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n_rows, n_features, n_clusters", SHAPES)
def test_assign_matches_brute_force(implementation, metric, dtype, n_rows, n_features, n_clusters):
    X, centers, _ = _integer_data(n_rows, n_features, n_clusters, dtype, seed=4)
    X_before = X.copy()
    result = implementation(X, centers, xp=xp_numpy, metric=metric)
    distances = _brute_force_distances(X, centers, metric)
    if metric.name in ("sqeuclidean", "manhattan") or np.isinf(metric.p):
        # Exact on integers; ties (frequent here) go to the lowest index.
        np.testing.assert_array_equal(result.labels, np.argmin(distances, axis=1))
    else:
        # Irrational distances: a tie may round either way, but the distance must be the minimum.
        np.testing.assert_allclose(distances[np.arange(n_rows), result.labels], distances.min(axis=1), rtol=1e-6)
    rtol = 1e-6 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(result.min_dist, distances.min(axis=1), rtol=rtol)
    assert result.min_dist.dtype == dtype
    np.testing.assert_array_equal(X, X_before)


@pytest.mark.parametrize("implementation", _implementations("assign"))
def test_assign_homogeneous_rows(implementation):
    X, centers, _ = _integer_data(400, 3, 6, np.float32, seed=5)
    plain = implementation(X, centers, xp=xp_numpy)
    lifted = implementation(homogeneous(X, xp=xp_numpy), centers, xp=xp_numpy)
    np.testing.assert_array_equal(lifted.labels, plain.labels)
    np.testing.assert_allclose(lifted.min_dist, plain.min_dist, rtol=1e-6)


# ---------------------------------------------------------------- segment_median


def _brute_force_median(values, labels, n_segments, weights):
    medians = np.zeros((n_segments, values.shape[1]), dtype=np.float64)
    weights = np.ones(values.shape[0]) if weights is None else weights.astype(np.float64)
    for segment in range(n_segments):
        rows = labels == segment
        if not np.any(weights[rows] > 0):
            continue
        for column in range(values.shape[1]):
            order = np.argsort(values[rows, column], kind="stable")
            sorted_values = values[rows, column][order].astype(np.float64)
            running = np.cumsum(weights[rows][order])
            lower = sorted_values[np.flatnonzero(running >= running[-1] / 2)[0]]
            upper = sorted_values[np.flatnonzero(running > running[-1] / 2)[0]]
            medians[segment, column] = (lower + upper) / 2
    return medians


@pytest.mark.parametrize("implementation", _implementations("segment_median"))
@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("n_rows, n_segments", [(1, 1), (7, 4), (500, 6), (2000, 1)])
def test_segment_median_matches_rule(implementation, dtype, weighted, n_rows, n_segments):
    rng = np.random.default_rng(6)
    values = rng.integers(-3, 4, size=(n_rows, 3)).astype(dtype)  # many ties
    labels = rng.integers(0, n_segments, n_rows)
    if n_segments > 2:
        labels[labels == 1] = 0  # an empty segment
    weights = rng.integers(0, 4, n_rows).astype(dtype) if weighted else None
    if weighted:
        weights[0] = 1.0  # at least one positive weight
    before = values.copy()
    medians = implementation(values, labels, n_segments, weights, xp=xp_numpy)
    assert medians.dtype == dtype and medians.shape == (n_segments, 3)
    np.testing.assert_array_equal(medians, _brute_force_median(values, labels, n_segments, weights).astype(dtype))
    np.testing.assert_array_equal(values, before)


# ---------------------------------------------------------------- numba specifics


def _numba_entry(operation):
    return next(entry for backend, entry in dispatch.registered(operation) if entry.name == "numba")


def test_numba_kernels_are_registered_for_numpy():
    for operation in ("lloyd_step", "assign", "segment_median"):
        entry = _numba_entry(operation)
        assert entry.self_check(xp_numpy, "cpu")


def test_lloyd_step_same_bits_whatever_threads_and_blocks(monkeypatch):
    rng = np.random.default_rng(7)
    X = homogeneous(rng.normal(size=(5 * cpu_numba.MAX_TILE_ROWS + 3, 4)).astype(np.float32), xp=xp_numpy)
    weights = rng.uniform(0.5, 1.5, X.shape[0]).astype(np.float32)
    centers = X[:6, :-1].copy()
    pooled = cpu_numba.lloyd_step_numba(X, weights, centers, xp=xp_numpy, rows_per_block=1000)
    # One thread: map_blocks runs the chunks in order on the caller's thread;
    # a tiny partials budget makes one round per chunk.
    monkeypatch.setattr(_blocks, "cpu_threads", lambda: 1)
    monkeypatch.setattr(cpu_numba, "PARTIALS_BUDGET_BYTES", 1)
    numba.set_num_threads(1)
    try:
        serial = cpu_numba.lloyd_step_numba(X, weights, centers, xp=xp_numpy, rows_per_block=77)
    finally:
        numba.set_num_threads(numba.config.NUMBA_NUM_THREADS)
    np.testing.assert_array_equal(serial.labels, pooled.labels)
    assert serial.sums.tobytes() == pooled.sums.tobytes()
    assert serial.weights.tobytes() == pooled.weights.tobytes()


@pytest.mark.parametrize("homogeneous_rows", [True, False], ids=["homogeneous", "plain"])
@pytest.mark.parametrize("tile_bytes", [1, 3000], ids=["smallest-tiles", "several-tiles-per-task"])
def test_lloyd_step_and_assign_across_tiles_and_tasks(monkeypatch, homogeneous_rows, tile_bytes):
    # Tasks of several tiles, and a last tile shorter than the others: every
    # row is scored, labelled and summed once, with ties to the lowest index.
    monkeypatch.setattr(cpu_numba, "TILE_BYTES", tile_bytes)
    X, centers, weights = _integer_data(40 * cpu_numba.MIN_TILE_ROWS + 5, 3, 7, np.float32, seed=8)
    rows = homogeneous(X, xp=xp_numpy) if homogeneous_rows else X
    assert cpu_numba.tile_rows(7, 3, 4) < -(-X.shape[0] // _blocks.PARALLEL_BLOCKS)
    step = cpu_numba.lloyd_step_numba(rows, weights, centers, xp=xp_numpy, rows_per_block=50)
    labels, sums, cluster_weights = _brute_force_lloyd(X, weights, centers)
    np.testing.assert_array_equal(step.labels, labels)
    np.testing.assert_array_equal(step.sums, sums)
    np.testing.assert_array_equal(step.weights, cluster_weights)
    assigned = cpu_numba.assign_numba(rows, centers, xp=xp_numpy)
    np.testing.assert_array_equal(assigned.labels, labels)
    np.testing.assert_array_equal(assigned.min_dist, _brute_force_distances(X, centers, SQEUCLIDEAN).min(axis=1))


def test_tile_and_task_layout_depends_on_the_shape_only(monkeypatch):
    rows = cpu_numba.tile_rows(64, 32, 4)
    assert rows & (rows - 1) == 0 and cpu_numba.MIN_TILE_ROWS <= rows <= cpu_numba.MAX_TILE_ROWS
    assert (rows * (32 + 1 + 64) * 4 <= cpu_numba.TILE_BYTES) or rows == cpu_numba.MIN_TILE_ROWS
    layout = cpu_numba.task_rounds(1_000_003, rows, 64 * 33)
    monkeypatch.setattr(_blocks, "cpu_threads", lambda: 1)
    assert cpu_numba.task_rounds(1_000_003, rows, 64 * 33) == layout
    tasks = [task for tasks in layout for task in tasks]
    assert tasks[0][0] == 0 and tasks[-1][1] == 1_000_003
    assert all(stop == start for (_, stop), (start, _) in zip(tasks, tasks[1:]))
    assert all((stop - start) % rows == 0 for start, stop in tasks[:-1])
    assert len(tasks) <= _blocks.PARALLEL_BLOCKS


BLAS_PROBE = """
import numpy as np
from threadpoolctl import threadpool_info
from kgpu import _blocks
with _blocks.single_threaded_blas():  # the pool looks for BLAS libraries before numba's is loaded
    pass
import array_api_compat.numpy as xp
from kgpu._distances import homogeneous
from kgpu._kernels import cpu_numba
X = homogeneous(np.random.default_rng(9).normal(size=(5000, 8)), xp=xp)
cpu_numba.lloyd_step_numba(X, np.ones(5000), X[:4, :-1].copy(), xp=xp, rows_per_block=1000)
blas = [info for info in threadpool_info() if info["user_api"] == "blas"]
assert any("scipy_openblas-" in info["filepath"] or "scipy" in info["filepath"] for info in blas)
with _blocks.single_threaded_blas():
    print([info["num_threads"] for info in threadpool_info() if info["user_api"] == "blas"])
"""


def test_every_blas_is_held_to_one_thread_in_the_pool():
    # numba's np.dot calls SciPy's BLAS, a library of its own, loaded after the
    # pool may have looked: it must be limited too, or each worker's tile GEMM
    # would start a team of threads. A fresh process, to see the first look.
    import ast
    import os
    import subprocess
    import sys

    env = dict(os.environ, OPENBLAS_NUM_THREADS="2")
    out = subprocess.run([sys.executable, "-c", BLAS_PROBE], env=env, capture_output=True, text=True, check=True)
    threads = ast.literal_eval(out.stdout.strip().splitlines()[-1])
    assert len(threads) >= 1 and all(count == 1 for count in threads)


def test_dispatch_picks_numba_for_numpy_only(monkeypatch):
    import array_api_strict

    monkeypatch.delenv("KGPU_FAST", raising=False)

    # 40 features: outside the guard of the kernels for few features (cpu_numba_narrow).
    X = np.ones((10, 40))
    centers = np.ones((2, 40))
    assert dispatch.implementation("lloyd_step", xp_numpy, "cpu", X, np.ones(10), centers) is cpu_numba.lloyd_step_numba
    assert dispatch.implementation("assign", array_api_strict, None) is dispatch.reference("assign")
    # Outside the guard (a strided view): the reference.
    assert dispatch.implementation("assign", xp_numpy, "cpu", X[:, :2], centers[:, :2]) is dispatch.reference("assign")
    monkeypatch.setenv("KGPU_FAST", "0")
    assert dispatch.implementation("lloyd_step", xp_numpy, "cpu", X, np.ones(10), centers) is dispatch.reference(
        "lloyd_step"
    )


# ---------------------------------------------------------------- torch CPU tensors


def test_torch_adapters_give_the_numpy_kernels_bits_as_tensors():
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as xp_torch

    X, centers, weights = _integer_data(3000, 5, 7, np.float32, seed=8)
    X = X + np.random.default_rng(9).normal(size=X.shape).astype(np.float32)
    design = homogeneous(X, xp=xp_numpy)
    previous = np.random.default_rng(10).integers(0, 7, 3000)
    as_tensor = torch.from_numpy
    design_t, weights_t, centers_t, previous_t = map(as_tensor, (design, weights, centers, previous))

    step_t = cpu_numba.lloyd_step_torch(design_t, weights_t, centers_t, xp=xp_torch, rows_per_block=100, previous_labels=previous_t)
    step = cpu_numba.lloyd_step_numba(design, weights, centers, xp=xp_numpy, rows_per_block=100, previous_labels=previous)
    for got, want in zip(step_t, step):
        assert isinstance(got, torch.Tensor)
        np.testing.assert_array_equal(got.numpy(), want)

    for metric in (SQEUCLIDEAN, Metric("manhattan", 1.0)):
        got = cpu_numba.assign_torch(as_tensor(X), centers_t, xp=xp_torch, metric=metric)
        want = cpu_numba.assign_numba(X, centers, xp=xp_numpy, metric=metric)
        np.testing.assert_array_equal(got.labels.numpy(), want.labels)
        np.testing.assert_array_equal(got.min_dist.numpy(), want.min_dist)

    labels = step.labels
    got = cpu_numba.segment_median_torch(as_tensor(X), as_tensor(labels), 7, weights_t, xp=xp_torch)
    assert isinstance(got, torch.Tensor)
    np.testing.assert_array_equal(got.numpy(), cpu_numba.segment_median_numba(X, labels, 7, weights, xp=xp_numpy))


def test_dispatch_sends_host_tensors_to_numba(monkeypatch):
    torch = pytest.importorskip("torch")
    import array_api_compat.torch as xp_torch

    monkeypatch.delenv("KGPU_FAST", raising=False)

    # 40 features: outside the guard of the kernels for few features (cpu_numba_narrow).
    X = torch.ones((10, 40))
    centers = torch.ones((2, 40))
    weights = torch.ones(10)
    assert dispatch.implementation("lloyd_step", xp_torch, X.device, X, weights, centers) is cpu_numba.lloyd_step_torch
    assert dispatch.implementation("assign", xp_torch, X.device, X, centers) is cpu_numba.assign_torch
    # A strided view, or a float16 tensor: the reference.
    assert dispatch.implementation("assign", xp_torch, X.device, X[:, :2], centers[:, :2]) is dispatch.reference("assign")
    half = X.to(torch.float16)
    assert dispatch.implementation("assign", xp_torch, X.device, half, centers.to(torch.float16)) is dispatch.reference(
        "assign"
    )


def test_torch_fit_matches_numpy_fit():
    torch = pytest.importorskip("torch")
    from kgpu import KMeans

    rng = np.random.default_rng(11)
    X = (rng.normal(scale=8.0, size=(6, 4))[rng.integers(0, 6, 4000)] + rng.normal(size=(4000, 4))).astype(np.float32)
    init = X[:6].copy()
    expected = KMeans(6, init=init, n_init=1, max_iter=30).fit(X)
    model = KMeans(6, init=torch.from_numpy(init), n_init=1, max_iter=30).fit(torch.from_numpy(X))
    assert isinstance(model.labels_, torch.Tensor) and isinstance(model.cluster_centers_, torch.Tensor)
    np.testing.assert_array_equal(model.labels_.numpy(), expected.labels_)
    np.testing.assert_allclose(model.cluster_centers_.numpy(), expected.cluster_centers_, rtol=1e-5, atol=1e-5)
