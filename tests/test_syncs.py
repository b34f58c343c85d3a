"""The host-sync budget: at most 2 syncs per iteration, however many row blocks.

A host sync is ``float``, ``int``, ``bool`` or ``operator.index`` of a 0-d
device array, a copy to the host (:func:`kgpu._backend.to_host`), or an
operation whose result's size depends on the values (``nonzero``, indexing
or assigning through a boolean mask): the host must learn that size. On a GPU
each one idles the device until the queue drains. The counts are taken on
``array_api_strict`` arrays on ``Device("device1")`` by wrapping those entry
points; the per-iteration figure is the difference between two runs that
differ only in their number of iterations (or seeding steps), so the fixed
cost of validation and of the final E-step cancels out.
"""

from __future__ import annotations

import contextlib

import numpy as np
import pytest

import kgpu
from kgpu import _backend, _bisecting
from kgpu._assign import SQEUCLIDEAN
from kgpu._distances import Metric, distance_bytes_per_row

xps = pytest.importorskip("array_api_strict")
from array_api_strict._array_object import Array  # noqa: E402

DEVICE1 = xps.Device("device1")
N_SAMPLES, N_FEATURES, N_CLUSTERS = 2000, 5, 8
#: At most this many host syncs per iteration / step.
BUDGET = 2


class SyncCounter:
    """Counts host syncs while active (see the module docstring)."""

    def __init__(self):
        self.count = 0

    @contextlib.contextmanager
    def active(self, monkeypatch):
        self.count = 0
        with monkeypatch.context() as patch:
            for name in ("__float__", "__int__", "__bool__", "__index__"):
                patch.setattr(Array, name, self._counted(getattr(Array, name)))
            patch.setattr(_backend, "_copy_to_host", self._counted(_backend._copy_to_host))
            patch.setattr(xps, "nonzero", self._counted(xps.nonzero))
            patch.setattr(Array, "__getitem__", self._counted_if_masked(Array.__getitem__))
            patch.setattr(Array, "__setitem__", self._counted_if_masked(Array.__setitem__))
            yield self

    def _counted_if_masked(self, indexing):
        def counted(array, key, *value):
            keys = key if isinstance(key, tuple) else (key,)
            if any(isinstance(part, Array) and part.dtype == xps.bool for part in keys):
                self.count += 1
            return indexing(array, key, *value)

        return counted

    def _counted(self, function):
        def counted(*args, **kwargs):
            self.count += 1
            return function(*args, **kwargs)

        return counted


@pytest.fixture(scope="module")
def X():
    # Uniform data: Lloyd keeps moving for many iterations, none converges early.
    rng = np.random.default_rng(0)
    return xps.asarray(rng.uniform(size=(N_SAMPLES, N_FEATURES)).astype(np.float32), device=DEVICE1)


def budget_for(n_blocks: int, n_rows: int, metric: Metric, n_features: int) -> float | None:
    """``working_memory`` (MiB) cutting ``n_rows`` into at least ``n_blocks`` blocks (None: one block)."""
    if n_blocks == 1:
        return None
    bytes_per_row = distance_bytes_per_row(metric, N_CLUSTERS, n_features, 4)
    rows = n_rows // n_blocks
    assert -(-n_rows // rows) >= n_blocks
    return rows * bytes_per_row / 2**20


def syncs_of(fit, monkeypatch) -> int:
    counter = SyncCounter()
    with counter.active(monkeypatch):
        fit()
    return counter.count


@pytest.mark.parametrize("n_blocks", [1, 50])
def test_kmeans_lloyd_iteration(X, n_blocks, monkeypatch):
    # The data is used in homogeneous coordinates, d + 1 columns.
    budget = budget_for(n_blocks, N_SAMPLES, SQEUCLIDEAN, N_FEATURES + 1)
    counts = {}
    for max_iter in (3, 9):
        model = kgpu.KMeans(N_CLUSTERS, init="random", n_init=1, max_iter=max_iter, tol=0, random_state=0, working_memory=budget)
        counts[max_iter] = syncs_of(lambda: model.fit(X), monkeypatch)
        assert model.n_iter_ == max_iter
    assert (counts[9] - counts[3]) / 6 <= BUDGET


@pytest.mark.parametrize("n_blocks", [1, 50])
def test_kmeans_hamerly_iteration(X, n_blocks, monkeypatch):
    # algorithm="elkan" (Hamerly's bounds): the changed-label counts of every
    # block, the center shift and the empty-cluster flag cross in one copy.
    budget = budget_for(n_blocks, N_SAMPLES, SQEUCLIDEAN, N_FEATURES + 1)
    counts = {}
    for max_iter in (3, 9):
        model = kgpu.KMeans(
            N_CLUSTERS, init="random", n_init=1, max_iter=max_iter, tol=0, random_state=0,
            algorithm="elkan", working_memory=budget,
        )
        counts[max_iter] = syncs_of(lambda: model.fit(X), monkeypatch)
        assert model.n_iter_ == max_iter
    assert (counts[9] - counts[3]) / 6 <= BUDGET


@pytest.mark.parametrize("n_blocks", [1, 50])
def test_spherical_kmeans_iteration(X, n_blocks, monkeypatch):
    # Spherical K-Means runs Lloyd's driver with its own update: same budget.
    budget = budget_for(n_blocks, N_SAMPLES, SQEUCLIDEAN, N_FEATURES + 1)
    counts = {}
    for max_iter in (3, 9):
        model = kgpu.KMeans(
            N_CLUSTERS, metric="cosine", init="random", n_init=1, max_iter=max_iter, tol=0,
            random_state=0, working_memory=budget,
        )
        counts[max_iter] = syncs_of(lambda: model.fit(X), monkeypatch)
        assert model.n_iter_ == max_iter
    assert (counts[9] - counts[3]) / 6 <= BUDGET


@pytest.mark.parametrize("n_blocks", [1, 50])
def test_kmedians_iteration(X, n_blocks, monkeypatch):
    budget = budget_for(n_blocks, N_SAMPLES, Metric("manhattan", 1.0), N_FEATURES)
    counts = {}
    for max_iter in (3, 9):
        model = kgpu.KMedians(N_CLUSTERS, init="random", n_init=1, max_iter=max_iter, tol=0, random_state=0, working_memory=budget)
        counts[max_iter] = syncs_of(lambda: model.fit(X), monkeypatch)
        assert model.n_iter_ == max_iter
    assert (counts[9] - counts[3]) / 6 <= BUDGET


@pytest.mark.parametrize("n_blocks", [1, 50])
def test_lloyd_inside_bisecting(X, n_blocks, monkeypatch):
    budget = budget_for(n_blocks, N_SAMPLES // 2, SQEUCLIDEAN, N_FEATURES + 1)
    lloyd_iterations = [0]
    real_lloyd = _bisecting.lloyd

    def counting_lloyd(*args, **kwargs):
        result = real_lloyd(*args, **kwargs)
        lloyd_iterations[0] += result.n_iter
        return result

    monkeypatch.setattr(_bisecting, "lloyd", counting_lloyd)
    counts, iterations = {}, {}
    for max_iter in (2, 8):
        lloyd_iterations[0] = 0
        model = kgpu.BisectingKMeans(4, init="random", n_init=1, max_iter=max_iter, tol=0, random_state=0, working_memory=budget)
        counts[max_iter] = syncs_of(lambda: model.fit(X), monkeypatch)
        iterations[max_iter] = lloyd_iterations[0]
    assert iterations[8] > iterations[2]
    assert (counts[8] - counts[2]) / (iterations[8] - iterations[2]) <= BUDGET


@pytest.mark.parametrize("n_blocks", [1, 50])
def test_minibatch_step(X, n_blocks, monkeypatch):
    batch_size = 1000
    budget = budget_for(n_blocks, batch_size, SQEUCLIDEAN, N_FEATURES)
    counts, steps = {}, {}
    for max_iter in (1, 3):
        model = kgpu.MiniBatchKMeans(
            N_CLUSTERS, init="random", n_init=1, batch_size=batch_size, max_iter=max_iter, tol=0,
            max_no_improvement=None, random_state=0, working_memory=budget,
        )
        counts[max_iter] = syncs_of(lambda: model.fit(X), monkeypatch)
        steps[max_iter] = model.n_steps_
    assert steps[3] > steps[1]
    assert (counts[3] - counts[1]) / (steps[3] - steps[1]) <= BUDGET


@pytest.mark.parametrize("n_blocks", [1, 50])
def test_kmeans_plusplus_step(X, n_blocks, monkeypatch):
    n_trials = 2 + int(np.log(N_CLUSTERS))
    bytes_per_row = max((n_trials + N_FEATURES + 2) * 8, distance_bytes_per_row(SQEUCLIDEAN, n_trials, N_FEATURES, 8))
    budget = None if n_blocks == 1 else (N_SAMPLES // n_blocks) * bytes_per_row / 2**20
    counts = {}
    for n_clusters in (4, 12):
        counts[n_clusters] = syncs_of(
            lambda: kgpu.kmeans_plusplus(X, n_clusters, random_state=0, n_local_trials=n_trials) if budget is None
            else _plusplus_with_budget(X, n_clusters, n_trials, budget),
            monkeypatch,
        )
    assert (counts[12] - counts[4]) / 8 <= BUDGET


def _plusplus_with_budget(X, n_clusters, n_trials, budget):
    from kgpu._init import kmeans_plusplus_indices

    weights = xps.ones(X.shape[0], dtype=X.dtype, device=DEVICE1)
    return kmeans_plusplus_indices(
        X, n_clusters, weights, np.random.RandomState(0), xp=xps, n_local_trials=n_trials, budget_mib=budget
    )


def test_counter_sees_a_sync(X, monkeypatch):
    """The counter is live: one float() and one host copy are two syncs."""
    counter = SyncCounter()
    with counter.active(monkeypatch):
        float(xps.sum(X))
        _backend.to_host(X[:2, :])
    assert counter.count == 2
