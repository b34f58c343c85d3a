"""Contract of every registered "silhouette" implementation, against scikit-learn's silhouette_samples."""

from __future__ import annotations

import array_api_compat.numpy as xp_numpy
import numpy as np
import pytest
from sklearn.metrics import silhouette_samples

from kgpu import metrics  # noqa: F401 - registers the reference
from kgpu._distances import Metric
from kgpu._kernels import dispatch

IMPLEMENTATIONS = [
    pytest.param(entry.function, id=f"{backend}-{entry.name}")
    for backend, entry in dispatch.registered("silhouette")
    if backend in (dispatch.ANY_BACKEND, "numpy")
]
METRICS = [
    pytest.param(Metric("euclidean", 2.0), "euclidean", id="euclidean"),
    pytest.param(Metric("sqeuclidean", 2.0), "sqeuclidean", id="sqeuclidean"),
    pytest.param(Metric("manhattan", 1.0), "manhattan", id="manhattan"),
]


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
@pytest.mark.parametrize("metric, sklearn_metric", METRICS)
@pytest.mark.parametrize("dtype", [np.float32, np.float64], ids=["float32", "float64"])
@pytest.mark.parametrize("n_rows, n_labels", [(600, 3), (5000, 7), (12, 2)])
def test_silhouette_matches_scikit_learn(implementation, metric, sklearn_metric, dtype, n_rows, n_labels):
    rng = np.random.default_rng(n_rows)
    X = rng.normal(size=(n_rows, 4)).astype(dtype)
    codes = np.arange(n_rows) % n_labels
    rng.shuffle(codes)
    X_before = X.copy()
    values = implementation(X, codes, n_labels, metric, xp=xp_numpy)
    expected = silhouette_samples(X.astype(np.float64), codes, metric=sklearn_metric)
    tolerance = 1e-4 if dtype == np.float32 else 1e-9
    np.testing.assert_allclose(np.asarray(values), expected, rtol=tolerance, atol=tolerance)
    np.testing.assert_array_equal(X, X_before)


@pytest.mark.parametrize("implementation", IMPLEMENTATIONS)
def test_singletons_and_duplicates(implementation):
    # A cluster of one row gets 0; identical rows are at distance 0 exactly.
    X = np.array([[0.0, 0.0], [0.0, 0.0], [0.0, 0.0], [5.0, 5.0], [9.0, 1.0]])
    codes = np.array([0, 0, 0, 1, 2])
    values = np.asarray(implementation(X, codes, 3, Metric("euclidean", 2.0), xp=xp_numpy))
    np.testing.assert_allclose(values, silhouette_samples(X, codes), atol=1e-12)
    assert values[0] == 1.0 and values[3] == 0.0 and values[4] == 0.0


def test_numba_silhouette_is_registered_and_same_bits_on_one_thread(monkeypatch):
    pytest.importorskip("numba")
    from kgpu import _blocks
    from kgpu._kernels import cpu_numba

    assert [e.name for b, e in dispatch.registered("silhouette") if b == "numpy"] == ["numba"]
    rng = np.random.default_rng(1)
    X = rng.normal(size=(1500, 3)).astype(np.float32)
    codes = rng.integers(0, 4, 1500)
    pooled = cpu_numba.silhouette_numba(X, codes, 4, Metric("euclidean", 2.0), xp=xp_numpy)
    monkeypatch.setattr(_blocks, "cpu_threads", lambda: 1)
    serial = cpu_numba.silhouette_numba(X, codes, 4, Metric("euclidean", 2.0), xp=xp_numpy)
    assert serial.tobytes() == pooled.tobytes()


def test_numba_silhouette_within_a_small_budget():
    pytest.importorskip("numba")
    from kgpu._kernels import cpu_numba

    rng = np.random.default_rng(2)
    X = rng.normal(size=(700, 3))
    codes = rng.integers(0, 3, 700)
    unbounded = cpu_numba.silhouette_numba(X, codes, 3, Metric("euclidean", 2.0), xp=xp_numpy)
    bounded = cpu_numba.silhouette_numba(X, codes, 3, Metric("euclidean", 2.0), xp=xp_numpy, budget_mib=0.01)
    np.testing.assert_allclose(bounded, unbounded, rtol=1e-12, atol=1e-12)
