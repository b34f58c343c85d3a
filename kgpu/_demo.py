"""The built-in demo: cluster a synthetic data set on the best backend present."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ._backend import best_backend, move_to, resolve_compute, synchronize, to_numpy


def demo_data(n_samples: int = 300_000, n_features: int = 16, n_clusters: int = 8, random_state: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Gaussian blobs in float32 (scikit-learn's ``make_blobs``), with their true labels."""
    from sklearn.datasets import make_blobs

    X, y = make_blobs(
        n_samples=n_samples, n_features=n_features, centers=n_clusters,
        cluster_std=1.5, random_state=random_state,
    )
    return X.astype(np.float32), y


def run_demo(
    n_samples: int = 300_000,
    n_features: int = 16,
    n_clusters: int = 8,
    backend: str = "auto",
    random_state: int = 0,
    printer: Any = print,
) -> dict:
    """Fit :class:`kgpu.KMeans` on :func:`demo_data` and report what happened.

    Returns
    -------
    summary : dict
        backend, device, n, d, k, iterations, inertia, seconds, adjusted Rand
        index against the true blobs.
    """
    from sklearn.metrics import adjusted_rand_score

    from ._kmeans import KMeans

    X, y = demo_data(n_samples, n_features, n_clusters, random_state)
    name = best_backend() if backend == "auto" else backend
    xp, device = resolve_compute(name, None, X)
    X_device = move_to(X, xp, device)
    model = KMeans(n_clusters=n_clusters, random_state=random_state)
    model.fit(X_device)  # warm-up: kernels compiled, pools created
    started = time.perf_counter()
    model.fit(X_device)
    synchronize(name)
    seconds = time.perf_counter() - started
    summary = {
        "backend": model.backend_,
        "device": str(device),
        "n": int(X.shape[0]),
        "d": int(X.shape[1]),
        "k": n_clusters,
        "iterations": int(model.n_iter_),
        "inertia": float(model.inertia_),
        "seconds": round(seconds, 4),
        "adjusted_rand_index": round(float(adjusted_rand_score(y, to_numpy(model.labels_))), 4),
    }
    if printer is not None:
        width = max(len(key) for key in summary)
        for key, value in summary.items():
            printer(f"{key:<{width}}  {value}")
    return summary
