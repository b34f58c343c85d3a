"""kgpu KMedoids against kmedoids.fasterpam, and KMedians against NumPy (and pyclustering).

Every contender clusters the same data from the same initial medoids / centers
under the same metric; repeats are interleaved (A, B, C, then A, B, C again...)
in one process so that a noisy machine slows all of them alike. The table
gives the median time, the ratio to the reference (FasterPAM on one thread for
K-Medoids, plain NumPy for K-Medians) and the objective each one reached.

    python bench/bench_algorithms_kmedians_kmedoids.py            # defaults: well under a minute on 2 cores
    python bench/bench_algorithms_kmedians_kmedoids.py --medoids-n 5000 --medians-n 200000 --repeats 5
    python bench/bench_algorithms_kmedians_kmedoids.py --backends numpy torch --out bench/results/kmedx.md

K-Medoids timings include the distance matrix (``scipy.spatial.distance.cdist``
for FasterPAM, kgpu's own blocks for kgpu), since both start from the data.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.util
import statistics
import sys
import time
from typing import Callable, NamedTuple

import numpy as np
from scipy.spatial.distance import cdist

from kgpu import KMedians, KMedoids
from kgpu._backend import move_to, resolve_compute, synchronize
from kgpu._bench import machine_description, publish

SCIPY_METRIC = {"euclidean": "euclidean", "sqeuclidean": "sqeuclidean", "manhattan": "cityblock", "cosine": "cosine"}


class Contender(NamedTuple):
    name: str
    fit: Callable[[], float]  # one full clustering; returns the objective it reached


class Row(NamedTuple):
    name: str
    median_s: float
    ratio: float
    objective: float


def run_interleaved(contenders: list[Contender], repeats: int) -> list[Row]:
    """Time every contender ``repeats`` times, interleaved; the first contender is the reference."""
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    objectives: dict[str, float] = {}
    for contender in contenders:  # warm-up: imports, thread pools, BLAS
        objectives[contender.name] = contender.fit()
    for _ in range(repeats):
        for contender in contenders:
            started = time.perf_counter()
            objectives[contender.name] = contender.fit()
            times[contender.name].append(time.perf_counter() - started)
    reference = statistics.median(times[contenders[0].name])
    return [
        Row(c.name, statistics.median(times[c.name]), statistics.median(times[c.name]) / reference, objectives[c.name])
        for c in contenders
    ]


def table(rows: list[Row], reference: str) -> str:
    lines = [
        f"| contender | median time (s) | time / {reference} | objective |",
        "|---|---:|---:|---:|",
    ]
    lines += [f"| {r.name} | {r.median_s:.3f} | {r.ratio:.2f} | {r.objective:.6g} |" for r in rows]
    return "\n".join(lines)


def blobs(n_samples: int, n_features: int, n_centers: int, seed: int) -> np.ndarray:
    """Gaussian blobs with overlap, so the algorithms have work to do."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform(-10, 10, size=(n_centers, n_features))
    labels = rng.integers(0, n_centers, n_samples)
    return centers[labels] + rng.normal(scale=3.0, size=(n_samples, n_features))


def on_backend(X: np.ndarray, backend: str):
    xp, device = resolve_compute(backend, None, X)
    return move_to(X, xp, device)


# -------------------------------------------------------------- K-Medoids


def medoids_contenders(args: argparse.Namespace) -> tuple[list[Contender], str]:
    import kmedoids

    X = blobs(args.medoids_n, args.medoids_d, args.medoids_k, seed=0)
    init = np.random.default_rng(1).choice(X.shape[0], size=args.medoids_k, replace=False)
    metric = args.metric

    def fasterpam(n_cpu: int) -> Callable[[], float]:
        def fit() -> float:
            matrix = cdist(X, X, SCIPY_METRIC[metric])
            result = kmedoids.fasterpam(matrix, init.copy(), max_iter=args.max_iter, n_cpu=n_cpu)
            return float(result.loss)

        return fit

    contenders = [Contender("kmedoids.fasterpam (1 thread)", fasterpam(1))]
    if args.medoids_n >= 1000:  # below that the package runs one thread anyway
        contenders.append(Contender("kmedoids.fasterpam (all threads, shuffled order)", fasterpam(-1)))
    for backend in args.backends:
        X_backend = on_backend(X, backend)
        for method in ("pam", "alternate"):

            def fit(method=method, X_backend=X_backend, backend=backend) -> float:
                model = KMedoids(args.medoids_k, metric=metric, method=method, init=init, max_iter=args.max_iter).fit(X_backend)
                synchronize(backend)
                return model.inertia_

            contenders.append(Contender(f"kgpu KMedoids {method} [{backend}]", fit))
    header = (
        f"K-Medoids, {args.medoids_n:,} x {args.medoids_d} float64, k={args.medoids_k}, metric={metric}, "
        f"same initial medoids, median of {args.repeats}"
    )
    return contenders, header


# -------------------------------------------------------------- K-Medians


def numpy_kmedians(X: np.ndarray, init: np.ndarray, max_iter: int) -> float:
    """Plain NumPy K-Medians: cdist L1 assignment, np.median per cluster, stop on unchanged labels."""
    centers = init.copy()
    labels_old = None
    for _ in range(max_iter):
        labels = cdist(X, centers, "cityblock").argmin(axis=1)
        if labels_old is not None and np.array_equal(labels, labels_old):
            break
        for cluster in range(centers.shape[0]):
            members = X[labels == cluster]
            if members.shape[0]:
                centers[cluster] = np.median(members, axis=0)
        labels_old = labels
    return float(cdist(X, centers, "cityblock").min(axis=1).sum())


def medians_contenders(args: argparse.Namespace) -> tuple[list[Contender], str]:
    X = blobs(args.medians_n, args.medians_d, args.medians_k, seed=2)
    init = X[np.random.default_rng(3).choice(X.shape[0], size=args.medians_k, replace=False)]
    contenders = [Contender("NumPy reference (cdist + np.median)", lambda: numpy_kmedians(X, init, args.iterations))]
    if importlib.util.find_spec("pyclustering") is not None and not args.no_pyclustering:
        from pyclustering.cluster.kmedians import kmedians
        from pyclustering.utils.metric import distance_metric, type_metric

        def pyclustering_fit() -> float:
            model = kmedians(
                X.tolist(), init.tolist(), tolerance=0.0, itermax=args.iterations, ccore=True,
                metric=distance_metric(type_metric.MANHATTAN),
            )
            model.process()
            return float(cdist(X, np.asarray(model.get_medians()), "cityblock").min(axis=1).sum())

        contenders.append(Contender("pyclustering kmedians (C++ core)", pyclustering_fit))
    for backend in args.backends:
        X_backend = on_backend(X, backend)
        init_backend = on_backend(init, backend)

        def fit(X_backend=X_backend, init_backend=init_backend, backend=backend) -> float:
            model = KMedians(args.medians_k, init=init_backend, max_iter=args.iterations, tol=0).fit(X_backend)
            synchronize(backend)
            return model.inertia_

        contenders.append(Contender(f"kgpu KMedians [{backend}]", fit))
    header = (
        f"K-Medians, {args.medians_n:,} x {args.medians_d} float64, k={args.medians_k}, at most "
        f"{args.iterations} iterations, same initial centers, median of {args.repeats}"
    )
    return contenders, header


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--medoids-n", type=int, default=3000)
    parser.add_argument("--medoids-d", type=int, default=8)
    parser.add_argument("--medoids-k", type=int, default=10)
    parser.add_argument("--metric", default="euclidean", choices=sorted(SCIPY_METRIC))
    parser.add_argument("--max-iter", type=int, default=100, help="K-Medoids iterations / sweeps")
    parser.add_argument("--medians-n", type=int, default=50_000)
    parser.add_argument("--medians-d", type=int, default=8)
    parser.add_argument("--medians-k", type=int, default=8)
    parser.add_argument("--iterations", type=int, default=20, help="K-Medians iterations at most")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--backends", nargs="*", default=["numpy"], help="kgpu backends (numpy, torch, cupy...)")
    parser.add_argument("--no-pyclustering", action="store_true", help="skip pyclustering even when installed")
    parser.add_argument("--out", default=None, help="also write the tables (with machine and command) here")
    args = parser.parse_args(argv)

    command = " ".join(argv if argv is not None else sys.argv[1:])
    parts = [
        machine_description(),
        f"{datetime.date.today().isoformat()}: `python bench/bench_algorithms_kmedians_kmedoids.py {command}`".rstrip(),
    ]
    for build, reference in ((medoids_contenders, "FasterPAM 1 thread"), (medians_contenders, "NumPy")):
        contenders, header = build(args)
        parts.append(f"### {header}\n\n{table(run_interleaved(contenders, args.repeats), reference)}")
    report = "\n\n".join(parts)
    publish(report, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
