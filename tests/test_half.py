"""Half-precision input (float16, bfloat16): computed in float32 block by block, results in float32.

Every result is compared with the same data cast to float32 (the values the
kernels compute on), and the fit's memory with that of a float32 copy of X.
"""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
from sklearn.datasets import make_blobs

from kgpu import BisectingKMeans, KMeans, KMedians, KMedoids, MiniBatchKMeans, kmeans_plusplus
from kgpu import metrics
from kgpu._backend import cuda_available
from kgpu._validation import check_data

from ._helpers import dtype_name, peak_traced_bytes, to_numpy

_TORCH_FOUND = importlib.util.find_spec("torch") is not None
_needs_torch = pytest.mark.skipif(not _TORCH_FOUND, reason="PyTorch not installed")
_needs_cupy = pytest.mark.skipif(not cuda_available(), reason="CuPy with a CUDA device not found")

#: (input library, half dtype) pairs; each becomes one test case.
HALF_INPUTS = [
    pytest.param(("numpy", "float16"), id="numpy-float16"),
    pytest.param(("torch", "float16"), id="torch-float16", marks=_needs_torch),
    pytest.param(("torch", "bfloat16"), id="torch-bfloat16", marks=_needs_torch),
    pytest.param(("cupy", "float16"), id="cupy-float16", marks=_needs_cupy),
]

ESTIMATORS = [
    pytest.param(lambda: KMeans(4, random_state=0), id="KMeans-lloyd"),
    pytest.param(lambda: KMeans(4, random_state=0, algorithm="elkan"), id="KMeans-elkan"),
    pytest.param(lambda: KMeans(4, random_state=0, metric="cosine"), id="KMeans-cosine"),
    pytest.param(lambda: MiniBatchKMeans(4, random_state=0, batch_size=256), id="MiniBatchKMeans"),
    pytest.param(lambda: BisectingKMeans(4, random_state=0), id="BisectingKMeans"),
    pytest.param(lambda: KMedians(4, random_state=0), id="KMedians"),
    pytest.param(lambda: KMedoids(4, random_state=0), id="KMedoids"),  # converts X: its n x n matrix dominates
]


def _blobs(n_samples=1200, n_features=5, seed=0):
    X, _ = make_blobs(n_samples, n_features, centers=4, cluster_std=0.4, center_box=(-8, 8), random_state=seed)
    return X


def _half(X: np.ndarray, kind: tuple[str, str]):
    """``X`` in half precision in the given library, and the float32 values it holds (NumPy)."""
    library, dtype = kind
    if library == "numpy":
        half = X.astype(np.float16)
        return half, half.astype(np.float32)
    if library == "torch":
        import torch

        half = torch.from_numpy(X.astype(np.float32)).to(getattr(torch, dtype))
        return half, half.to(torch.float32).numpy()
    import cupy

    half = cupy.asarray(X.astype(np.float16))
    return half, X.astype(np.float16).astype(np.float32)


def _values(X_half) -> np.ndarray:
    """The values of a half-precision array on the host, as float32 (NumPy has no bfloat16)."""
    if _library(X_half) == "torch":
        return X_half.float().numpy()
    return to_numpy(X_half).astype(np.float32)


def _library(x) -> str:
    return type(x).__module__.split(".")[0]


@pytest.mark.parametrize("kind", HALF_INPUTS)
@pytest.mark.parametrize("make", ESTIMATORS)
def test_fit_matches_float32_fit(kind, make):
    X_half, X32 = _half(_blobs(), kind)
    before = _values(X_half).copy()
    weights = np.random.default_rng(3).uniform(0.5, 2.0, X32.shape[0])
    ours = make().fit(X_half, sample_weight=weights)
    reference = make().fit(X32, sample_weight=weights)
    labels = to_numpy(ours.labels_)
    np.testing.assert_array_equal(labels, to_numpy(reference.labels_))
    centers = ours.cluster_centers_
    assert _library(centers) == _library(X_half)
    assert dtype_name(centers) == "float32"
    np.testing.assert_allclose(to_numpy(centers), reference.cluster_centers_, rtol=1e-4, atol=1e-4)
    assert ours.inertia_ == pytest.approx(reference.inertia_, rel=1e-5)
    # predict / transform / score on the half-precision rows agree with the fit.
    np.testing.assert_array_equal(to_numpy(ours.predict(X_half)), labels)
    distances = ours.transform(X_half)
    assert _library(distances) == _library(X_half) and dtype_name(distances) == "float32"
    np.testing.assert_allclose(to_numpy(distances), reference.transform(X32), rtol=1e-4, atol=1e-4)
    assert ours.score(X_half, sample_weight=weights) == pytest.approx(reference.score(X32, sample_weight=weights), rel=1e-5)
    after = _values(X_half)
    np.testing.assert_array_equal(after, before)
    assert str(X_half.dtype).endswith(kind[1])


@pytest.mark.parametrize("backend", [None, "numpy", "array_api_strict", pytest.param("torch", marks=_needs_torch)])
@pytest.mark.parametrize("kind", HALF_INPUTS)
def test_compute_backend_other_than_the_input(kind, backend):
    """Half rows computed by another library (array-api-strict has no half dtype: blocks go over as float32)."""
    X_half, X32 = _half(_blobs(), kind)
    ours = KMeans(4, random_state=0, backend=backend).fit(X_half)
    reference = KMeans(4, random_state=0).fit(X32)
    np.testing.assert_array_equal(to_numpy(ours.labels_), reference.labels_)
    assert _library(ours.cluster_centers_) == _library(X_half)
    assert dtype_name(ours.cluster_centers_) == "float32"
    np.testing.assert_allclose(to_numpy(ours.cluster_centers_), reference.cluster_centers_, rtol=1e-4, atol=1e-4)


def test_array_api_strict_on_device1_computes_half_input():
    xps = pytest.importorskip("array_api_strict")
    X_half, X32 = _half(_blobs(), ("numpy", "float16"))
    device1 = xps.Device("device1")
    ours = KMeans(4, random_state=0, backend="array_api_strict", device=device1).fit(X_half)
    reference = KMeans(4, random_state=0).fit(X32)
    np.testing.assert_array_equal(to_numpy(ours.labels_), reference.labels_)
    assert ours.cluster_centers_.dtype == np.float32


@pytest.mark.parametrize("kind", HALF_INPUTS)
def test_kmeans_plusplus_matches_float32(kind):
    X_half, X32 = _half(_blobs(), kind)
    centers, indices = kmeans_plusplus(X_half, 4, random_state=0)
    ref_centers, ref_indices = kmeans_plusplus(X32, 4, random_state=0)
    np.testing.assert_array_equal(to_numpy(indices), ref_indices)
    assert dtype_name(centers) == "float32" and _library(centers) == _library(X_half)
    np.testing.assert_array_equal(to_numpy(centers), ref_centers)


@pytest.mark.parametrize("kind", HALF_INPUTS)
def test_metrics_match_float32(kind):
    X_half, X32 = _half(_blobs(n_samples=600), kind)
    labels = KMeans(4, random_state=0).fit(X32).labels_
    for score in (metrics.silhouette_score, metrics.calinski_harabasz_score, metrics.davies_bouldin_score):
        assert score(X_half, labels) == pytest.approx(score(X32, labels), rel=1e-5), score.__name__
    samples = metrics.silhouette_samples(X_half, labels)
    assert dtype_name(samples) == "float32" and _library(samples) == _library(X_half)
    np.testing.assert_allclose(to_numpy(samples), metrics.silhouette_samples(X32, labels), rtol=1e-5, atol=1e-6)
    centers = np.stack([X32[labels == j].mean(axis=0) for j in range(4)])
    assert metrics.inertia(X_half, labels, centers) == pytest.approx(metrics.inertia(X32, labels, centers), rel=1e-5)


def test_validation_keeps_half_precision_and_finds_non_finite_values():
    X = _blobs().astype(np.float16)
    assert check_data(X).dtype == np.float16
    X[700, 2] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        KMeans(2).fit(X)
    X[700, 2] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        KMeans(2).fit(X)


def test_fit_memory_follows_the_half_precision_input():
    """No float32 (or float64) copy of all of X: the fit's peak stays well below one.

    Before half precision was read block by block, X was widened at validation
    (a float64 copy, twice the size of a float32 one) and Lloyd's working copy
    came on top; the bound below allows half a float32 copy, for the per-row
    arrays (labels, weights, bounds), plus nothing for the blocks, which a
    1 MiB budget keeps small.
    """
    rng = np.random.default_rng(0)
    n_samples, n_features = 200_000, 64
    X = (rng.normal(size=(n_samples, n_features)) + rng.integers(0, 4, size=(n_samples, 1)) * 6).astype(np.float16)
    float32_copy = n_samples * n_features * 4
    for make in (
        lambda: KMeans(4, random_state=0, max_iter=3, working_memory=1),
        lambda: KMeans(4, random_state=0, max_iter=3, working_memory=1, algorithm="elkan"),
        lambda: MiniBatchKMeans(4, random_state=0, max_iter=1, working_memory=1),
    ):
        make().fit(X[:3000])  # compiled kernels and lazy imports outside the measure
        peak = peak_traced_bytes(lambda: make().fit(X))
        assert peak < 0.5 * float32_copy, f"peak {peak / 2**20:.1f} MiB against a float32 copy of {float32_copy / 2**20:.1f} MiB"


def test_command_line_fit_and_predict_on_a_float16_file(tmp_path, capsys):
    from kgpu.cli import main

    X_half = _blobs().astype(np.float16)
    np.save(tmp_path / "X.npy", X_half)
    assert main(["fit", str(tmp_path / "X.npy"), "--k", "4", "--seed", "0", "--out", str(tmp_path / "run")]) == 0
    centers = np.load(tmp_path / "run" / "centers.npy")
    assert centers.dtype == np.float32
    reference = KMeans(4, random_state=0).fit(X_half.astype(np.float32))
    np.testing.assert_array_equal(np.load(tmp_path / "run" / "labels.npy"), reference.labels_)
    out = tmp_path / "labels.npy"
    assert main(["predict", str(tmp_path / "X.npy"), "--centers", str(tmp_path / "run" / "centers.npy"), "--out", str(out)]) == 0
    np.testing.assert_array_equal(np.load(out), reference.labels_)
