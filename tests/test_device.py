"""Data on a non-default device: every estimator, metric and choose_k keeps it there.

``array_api_strict.Device("device1")`` refuses implicit host copies
(``np.asarray`` raises), as CuPy does: a code path that converts a device
array behind the caller's back fails here first. Results must come back on
``device1`` and equal the results on the default device.
"""

from __future__ import annotations

import numpy as np
import pytest

import kgpu
from kgpu import _backend, metrics, select

from ._helpers import assert_close, assert_equal

xps = pytest.importorskip("array_api_strict")
DEVICE1 = xps.Device("device1")


def _blobs(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([rng.normal(center, 0.3, (30, 3)) for center in (0.0, 3.0, 6.0)])


@pytest.fixture(scope="module")
def host_data():
    X = _blobs()
    weights = np.random.default_rng(1).uniform(0.5, 2.0, X.shape[0])
    labels = np.repeat(np.arange(3), 30)
    return X, weights, labels


def _on(array: np.ndarray, device=None):
    return xps.asarray(array, device=device)


def _assert_on_device1(value, name: str) -> None:
    assert type(value).__module__.startswith("array_api_strict"), f"{name} is {type(value)!r}, not an array_api_strict array"
    assert value.device == DEVICE1, f"{name} came back on {value.device}, not on device1"


ESTIMATORS = {
    "KMeans": lambda: kgpu.KMeans(3, n_init=1, random_state=0),
    "KMeans-random": lambda: kgpu.KMeans(3, init="random", n_init=2, random_state=0),
    "KMeans-k-means||": lambda: kgpu.KMeans(3, init="k-means||", n_init=1, random_state=0),
    "KMeans-random-partition": lambda: kgpu.KMeans(3, init="random-partition", n_init=1, random_state=0),
    "MiniBatchKMeans": lambda: kgpu.MiniBatchKMeans(3, batch_size=32, n_init=1, random_state=0),
    "KMedians": lambda: kgpu.KMedians(3, random_state=0),
    "KMedoids-alternate": lambda: kgpu.KMedoids(3, random_state=0),
    "KMedoids-pam": lambda: kgpu.KMedoids(3, method="pam", random_state=0),
    "BisectingKMeans": lambda: kgpu.BisectingKMeans(3, random_state=0),
}


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_estimator_fits_and_predicts_on_device1(name, host_data):
    X, weights, _ = host_data
    on_device1 = ESTIMATORS[name]().fit(_on(X, DEVICE1), sample_weight=_on(weights, DEVICE1))
    on_default = ESTIMATORS[name]().fit(_on(X), sample_weight=_on(weights))

    _assert_on_device1(on_device1.cluster_centers_, "cluster_centers_")
    _assert_on_device1(on_device1.labels_, "labels_")
    assert_close(on_device1.cluster_centers_, on_default.cluster_centers_, rtol=1e-12)
    assert_equal(on_device1.labels_, on_default.labels_)
    assert on_device1.inertia_ == pytest.approx(on_default.inertia_, rel=1e-12)

    predicted = on_device1.predict(_on(X, DEVICE1))
    _assert_on_device1(predicted, "predict")
    assert_equal(predicted, on_default.labels_)
    if hasattr(on_device1, "transform"):
        _assert_on_device1(on_device1.transform(_on(X, DEVICE1)), "transform")
    assert np.isfinite(on_device1.score(_on(X, DEVICE1)))


def test_minibatch_partial_fit_on_device1(host_data):
    X, _, _ = host_data
    model = kgpu.MiniBatchKMeans(3, random_state=0)
    for start in range(0, X.shape[0], 30):
        model.partial_fit(_on(X[start:start + 30], DEVICE1))
    _assert_on_device1(model.cluster_centers_, "cluster_centers_")


def test_kmeans_plusplus_on_device1(host_data):
    X, weights, _ = host_data
    centers, indices = kgpu.kmeans_plusplus(_on(X, DEVICE1), 3, sample_weight=_on(weights, DEVICE1), random_state=0)
    reference_centers, reference_indices = kgpu.kmeans_plusplus(_on(X), 3, sample_weight=_on(weights), random_state=0)
    _assert_on_device1(centers, "centers")
    _assert_on_device1(indices, "indices")
    assert_equal(indices, reference_indices)
    assert_close(centers, reference_centers, rtol=0)


def test_metrics_on_device1(host_data):
    X, weights, labels = host_data
    X1, labels1 = _on(X, DEVICE1), _on(labels, DEVICE1)
    centers = np.stack([X[labels == j].mean(axis=0) for j in range(3)])
    samples = metrics.silhouette_samples(X1, labels1)
    _assert_on_device1(samples, "silhouette_samples")
    assert_close(samples, metrics.silhouette_samples(_on(X), _on(labels)), rtol=1e-12)
    pairs = [
        (metrics.silhouette_score(X1, labels1), metrics.silhouette_score(X, labels)),
        (metrics.calinski_harabasz_score(X1, labels1), metrics.calinski_harabasz_score(X, labels)),
        (metrics.davies_bouldin_score(X1, labels1), metrics.davies_bouldin_score(X, labels)),
        (
            metrics.inertia(X1, labels1, _on(centers, DEVICE1), _on(weights, DEVICE1)),
            metrics.inertia(X, labels, centers, weights),
        ),
    ]
    for on_device1, on_host in pairs:
        assert on_device1 == pytest.approx(on_host, rel=1e-10)


def test_choose_k_and_sweeps_on_device1(host_data):
    X, _, _ = host_data
    X1 = _on(X, DEVICE1)
    result = select.choose_k(X1, range(2, 5), random_state=0)
    expected = select.choose_k(X, range(2, 5), random_state=0)
    assert result.picks == expected.picks
    np.testing.assert_allclose(result.inertia, expected.inertia, rtol=1e-10)
    np.testing.assert_allclose(result.silhouette, expected.silhouette, rtol=1e-10)
    np.testing.assert_allclose(select.elbow(X1, range(2, 5), random_state=0).inertia,
                               select.elbow(X, range(2, 5), random_state=0).inertia, rtol=1e-10)
    gap = select.gap_statistic(X1, range(2, 5), random_state=0, n_refs=2)
    assert np.all(np.isfinite(gap.gap))


def test_host_round_trip_helpers_keep_the_device():
    values = np.arange(6.0).reshape(2, 3)
    on_device1 = _backend.from_host(values, xps, DEVICE1)
    assert on_device1.device == DEVICE1
    back = _backend.to_host(on_device1)
    assert isinstance(back, np.ndarray)
    np.testing.assert_array_equal(back, values)
    # The source array is untouched and still on its device.
    assert on_device1.device == DEVICE1
