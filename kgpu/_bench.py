"""Side-by-side timing of kgpu's KMeans against its peers, in one process.

Every contender clusters the same data from the same initial centers for the
same number of Lloyd iterations (``tol=0``), and the repeats are interleaved
(contender A, B, C, then A, B, C again...) so that a noisy machine slows all of
them alike. Medians and ratios to scikit-learn are reported.

Used by ``bench/compare.py`` and ``kgpu bench``.
"""

from __future__ import annotations

import importlib.util
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Any, Callable, NamedTuple

import numpy as np

from ._backend import cuda_available, move_to, resolve_compute, synchronize


class Contender(NamedTuple):
    """One implementation under test.

    Attributes
    ----------
    name : str
        What the table calls it, e.g. ``"kgpu[numpy]"``.
    device : str
        ``"cpu"`` or the GPU it runs on.
    fit : callable
        ``fit() -> inertia``: one full clustering of the prepared data.
    """

    name: str
    device: str
    fit: Callable[[], float]


class Row(NamedTuple):
    """One line of the comparison table."""

    name: str
    device: str
    median_s: float
    ratio_to_sklearn: float
    inertia: float


def synthetic_data(n_samples: int, n_features: int, dtype: Any = np.float32, random_state: int = 0) -> np.ndarray:
    """Standard normal data: the worst case for K-Means (no early convergence)."""
    rng = np.random.default_rng(random_state)
    return rng.standard_normal((n_samples, n_features)).astype(dtype)


def initial_centers(X: np.ndarray, n_clusters: int, random_state: int = 0) -> np.ndarray:
    """``n_clusters`` distinct rows of ``X``, shared by every contender."""
    rng = np.random.default_rng(random_state + 1)
    return X[rng.choice(X.shape[0], n_clusters, replace=False)].copy()


def available_backends() -> list[str]:
    """kgpu backends present here: NumPy always, CuPy with a GPU, PyTorch when installed.

    PyTorch computes on its default device: CUDA when it sees one, else the CPU.
    """
    names = ["numpy"]
    if cuda_available():
        names.append("cupy")
    if importlib.util.find_spec("torch") is not None:
        names.append("torch")
    return names


def kgpu_contender(X: np.ndarray, centers: np.ndarray, max_iter: int, backend: str) -> Contender:
    """kgpu's KMeans with the data already on the backend's device.

    ``backend`` is a backend name, or ``"name:device"`` (e.g. ``"torch:cpu"``
    next to ``"torch:cuda"``) to time one library on two devices.
    """
    from ._kmeans import KMeans

    library, _, device_name = backend.partition(":")
    xp, device = resolve_compute(library, device_name or None, X)
    X_device = move_to(X, xp, device)
    centers_device = move_to(centers, xp, device)
    model = KMeans(n_clusters=centers.shape[0], init=centers_device, n_init=1, max_iter=max_iter, tol=0.0)

    def fit() -> float:
        model.fit(X_device)
        synchronize(library)
        return float(model.inertia_)

    return Contender(f"kgpu[{backend}]", str(device), fit)


def sklearn_contender(X: np.ndarray, centers: np.ndarray, max_iter: int) -> Contender:
    """scikit-learn's Lloyd K-Means (OpenMP, every core)."""
    from sklearn.cluster import KMeans

    model = KMeans(n_clusters=centers.shape[0], init=centers, n_init=1, max_iter=max_iter, tol=0.0, algorithm="lloyd")

    def fit() -> float:
        model.fit(X)
        return float(model.inertia_)

    return Contender("scikit-learn", "cpu", fit)


def faiss_contender(X: np.ndarray, centers: np.ndarray, max_iter: int, gpu: bool = False) -> Contender | None:
    """FAISS ``Kmeans`` on every point (no subsampling), or None when not installed."""
    if importlib.util.find_spec("faiss") is None:
        return None
    import faiss

    if gpu and not hasattr(faiss, "StandardGpuResources"):
        return None
    X32 = np.ascontiguousarray(X, dtype=np.float32)
    centers32 = np.ascontiguousarray(centers, dtype=np.float32)

    def fit() -> float:
        model = faiss.Kmeans(
            X32.shape[1], centers32.shape[0], niter=max_iter, gpu=gpu, seed=0,
            # FAISS samples 256 points per centroid by default: use them all,
            # like every other contender.
            max_points_per_centroid=X32.shape[0], min_points_per_centroid=1, verbose=False,
        )
        model.train(X32, init_centroids=centers32)
        _, labels = model.index.search(X32, 1)
        labels = labels.ravel()
        return float(np.sum((X32 - model.centroids[labels]).astype(np.float64) ** 2))

    return Contender("faiss-gpu" if gpu else "faiss-cpu", "gpu" if gpu else "cpu", fit)


def cuml_contender(X: np.ndarray, centers: np.ndarray, max_iter: int) -> Contender | None:
    """RAPIDS cuML's KMeans, or None when not installed."""
    if importlib.util.find_spec("cuml") is None or not cuda_available():
        return None
    import cupy
    from cuml.cluster import KMeans

    X_device = cupy.asarray(X)
    model = KMeans(n_clusters=centers.shape[0], init=cupy.asarray(centers), n_init=1, max_iter=max_iter, tol=0.0)

    def fit() -> float:
        model.fit(X_device)
        cupy.cuda.Device().synchronize()
        return float(model.inertia_)

    return Contender("cuml", "gpu", fit)


def compare(
    n_samples: int = 1_000_000,
    n_features: int = 32,
    n_clusters: int = 64,
    max_iter: int = 20,
    repeats: int = 5,
    backends: list[str] | None = None,
    dtype: Any = np.float32,
    random_state: int = 0,
) -> list[Row]:
    """Time every contender present on the same problem; medians of ``repeats`` runs.

    Parameters
    ----------
    n_samples, n_features, n_clusters : int
        Problem size.
    max_iter : int
        Lloyd iterations for everyone (``tol=0``, so all run exactly this many).
    repeats : int
        Timed runs per contender, interleaved, after one untimed warm-up each.
    backends : list of str or None
        kgpu backends (default: :func:`available_backends`).
    dtype : numpy dtype
    random_state : int

    Returns
    -------
    rows : list of Row
        The scikit-learn row has ratio 1; a ratio below 1 is faster than it.
    """
    X = synthetic_data(n_samples, n_features, dtype, random_state)
    centers = initial_centers(X, n_clusters, random_state)
    contenders = [kgpu_contender(X, centers, max_iter, name) for name in (backends or available_backends())]
    contenders.append(sklearn_contender(X, centers, max_iter))
    for extra in (
        faiss_contender(X, centers, max_iter),
        faiss_contender(X, centers, max_iter, gpu=True) if cuda_available() else None,
        cuml_contender(X, centers, max_iter),
    ):
        if extra is not None:
            contenders.append(extra)

    inertia = {contender.name: contender.fit() for contender in contenders}  # warm-up
    seconds: dict[str, list[float]] = {contender.name: [] for contender in contenders}
    for _ in range(repeats):
        for contender in contenders:
            started = time.perf_counter()
            contender.fit()
            seconds[contender.name].append(time.perf_counter() - started)
    medians = {name: statistics.median(times) for name, times in seconds.items()}
    reference = medians["scikit-learn"]
    return [
        Row(c.name, c.device, medians[c.name], medians[c.name] / reference, inertia[c.name])
        for c in contenders
    ]


def format_table(rows: list[Row], header: str = "") -> str:
    """The rows as a Markdown table (what README and bench/results/ quote)."""
    lines = [header] if header else []
    lines += [
        "| implementation | device | median (s) | time / scikit-learn | inertia |",
        "|---|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row.name} | {row.device} | {row.median_s:.3f} | {row.ratio_to_sklearn:.2f} | {row.inertia:.6g} |"
        )
    return "\n".join(lines)


def problem_header(
    n_samples: int, n_features: int, n_clusters: int, max_iter: int, repeats: int, command: str = "",
    dtype: Any = np.float32,
) -> str:
    """The lines above a table: problem size, machine, date and the command that made it."""
    import datetime

    lines = [
        f"K-Means, {n_samples:,} x {n_features} {np.dtype(dtype).name}, k={n_clusters}, "
        f"{max_iter} iterations, median of {repeats}",
        "",
        machine_description(),
    ]
    if command:
        lines.append(f"{datetime.date.today().isoformat()}: `{command}`")
    return "\n".join(lines) + "\n"


def machine_description() -> str:
    """CPU count, Python and library versions, and the GPU when there is one."""
    import sklearn

    parts = [f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPU cores", f"Python {platform.python_version()}",
             f"NumPy {np.__version__}", f"scikit-learn {sklearn.__version__}"]
    try:
        from ._doctor import blas_libraries, blas_lines

        # The BLAS's kernel set (AVX2 or AVX-512) changes GEMM-bound timings by more than half.
        parts.append("BLAS " + "; ".join(blas_lines(blas_libraries())))
    except Exception:  # noqa: BLE001 - the description is informative only
        pass
    if cuda_available():
        import cupy

        props = cupy.cuda.runtime.getDeviceProperties(0)
        parts.append(f"GPU {props['name'].decode()}, CuPy {cupy.__version__}")
    return ", ".join(parts)


def publish(report: str, out: str | None = None, *, append: bool = False) -> None:
    """Print a benchmark report, and write it to ``out`` too when given.

    With ``append``, the report goes after what ``out`` already holds (runs
    collected in one file); the file is still replaced atomically.
    """
    print(report)
    if out:
        from pathlib import Path

        from ._io import atomic_path

        before = Path(out).read_text() if append and Path(out).exists() else ""
        with atomic_path(out) as temporary:
            temporary.write_text(before + report + "\n")


def run_in_tree(tree: str, source: str, args: list[str]) -> dict:
    """Run ``python -c source *args`` on the kgpu of source tree ``tree``; the JSON its last line prints.

    The child runs in ``tree`` itself: ``python -c`` puts the working
    directory first on ``sys.path``, so a kgpu found there (the caller's own
    tree, say) would shadow the one named.

    Raises
    ------
    RuntimeError
        When the child fails, with the end of its standard error.
    """
    tree = os.path.abspath(tree)
    result = subprocess.run(
        [sys.executable, "-c", source, *args], capture_output=True, text=True,
        env=dict(os.environ, PYTHONPATH=tree), cwd=tree, check=False,
    )
    if result.returncode != 0:
        raise RuntimeError(f"{tree} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])
