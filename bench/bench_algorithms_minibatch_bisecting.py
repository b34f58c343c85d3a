"""kgpu's MiniBatchKMeans and BisectingKMeans against scikit-learn's, side by side.

Same data, same parameters and seed for everyone; repeats interleaved in one
process (kgpu, scikit-learn, kgpu, scikit-learn...) after one untimed warm-up,
so a noisy machine slows all of them alike. Prints medians, the ratio to
scikit-learn (below 1: faster) and the inertia as a Markdown table.

Mini-batch runs a fixed number of steps (``max_no_improvement=None``,
``tol=0``): ``epochs * n // batch_size`` steps for both libraries. Bisecting
runs every 2-means to convergence (``tol=0``), so both build the same tree.

    python bench/bench_algorithms_minibatch_bisecting.py                 # ~30 s on 2 cores
    python bench/bench_algorithms_minibatch_bisecting.py --n 1000000 --d 32 --k 64 --backends numpy cupy
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time
from typing import Callable, NamedTuple

import numpy as np
from sklearn.datasets import make_blobs

from kgpu import BisectingKMeans, MiniBatchKMeans
from kgpu._backend import move_to, resolve_compute, synchronize
from kgpu._bench import available_backends, machine_description, publish


class Contender(NamedTuple):
    algorithm: str
    name: str
    device: str
    fit: Callable[[], float]  # one full fit; returns the inertia


def blobs(n_samples: int, n_features: int, n_centers: int, dtype, seed: int) -> np.ndarray:
    """Gaussian blobs, overlapping enough that the splits and batches matter."""
    X, _ = make_blobs(n_samples=n_samples, n_features=n_features, centers=n_centers, cluster_std=4.0, random_state=seed)
    return X.astype(dtype)


def kgpu_contenders(X: np.ndarray, args: argparse.Namespace, backend: str) -> list[Contender]:
    library, _, device_name = backend.partition(":")
    xp, device = resolve_compute(library, device_name or None, X)
    X_device = move_to(X, xp, device)
    mini = MiniBatchKMeans(**minibatch_params(args))
    bisecting = BisectingKMeans(**bisecting_params(args))

    def fit_with(model) -> Callable[[], float]:
        def fit() -> float:
            model.fit(X_device)
            synchronize(library)
            return float(model.inertia_)

        return fit

    return [
        Contender("MiniBatchKMeans", f"kgpu[{backend}]", str(device), fit_with(mini)),
        Contender("BisectingKMeans", f"kgpu[{backend}]", str(device), fit_with(bisecting)),
    ]


def sklearn_contenders(X: np.ndarray, args: argparse.Namespace) -> list[Contender]:
    import sklearn.cluster

    mini = sklearn.cluster.MiniBatchKMeans(**minibatch_params(args))
    bisecting = sklearn.cluster.BisectingKMeans(**bisecting_params(args))

    def fit_with(model) -> Callable[[], float]:
        def fit() -> float:
            model.fit(X)
            return float(model.inertia_)

        return fit

    def one_thread(fit: Callable[[], float]) -> Callable[[], float]:
        # scikit-learn's OpenMP threads spin while they wait: on a shared
        # machine one thread can be faster, so it is timed too.
        def fit_on_one_thread() -> float:
            from threadpoolctl import threadpool_limits

            with threadpool_limits(1):
                return fit()

        return fit_on_one_thread

    return [
        Contender("MiniBatchKMeans", "scikit-learn", "cpu", fit_with(mini)),
        Contender("BisectingKMeans", "scikit-learn", "cpu", fit_with(bisecting)),
        Contender("BisectingKMeans", "scikit-learn (1 thread)", "cpu", one_thread(fit_with(bisecting))),
    ]


def minibatch_params(args: argparse.Namespace) -> dict:
    return dict(
        n_clusters=args.k, batch_size=args.batch_size, max_iter=args.epochs, tol=0.0,
        max_no_improvement=None, random_state=args.seed, n_init=1,
    )


def bisecting_params(args: argparse.Namespace) -> dict:
    return dict(n_clusters=args.k, init="random", tol=0.0, random_state=args.seed)


def run(args: argparse.Namespace) -> list[dict]:
    dtype = np.float32 if args.dtype == "float32" else np.float64
    X = blobs(args.n, args.d, args.k, dtype, args.seed)
    contenders: list[Contender] = []
    for backend in args.backends or available_backends():
        contenders += kgpu_contenders(X, args, backend)
    contenders += sklearn_contenders(X, args)

    inertia = {(c.algorithm, c.name): c.fit() for c in contenders}  # warm-up, untimed
    seconds: dict[tuple[str, str], list[float]] = {(c.algorithm, c.name): [] for c in contenders}
    for _ in range(args.repeats):
        for contender in contenders:
            started = time.perf_counter()
            contender.fit()
            seconds[(contender.algorithm, contender.name)].append(time.perf_counter() - started)

    rows = []
    for contender in contenders:
        key = (contender.algorithm, contender.name)
        median = statistics.median(seconds[key])
        reference = statistics.median(seconds[(contender.algorithm, "scikit-learn")])
        rows.append(dict(
            algorithm=contender.algorithm, name=contender.name, device=contender.device,
            median_s=median, ratio=median / reference, inertia=inertia[key],
        ))
    rows.sort(key=lambda row: (row["algorithm"] != "MiniBatchKMeans", row["name"].startswith("scikit-learn")))
    return rows


def format_table(rows: list[dict], header: str) -> str:
    lines = [
        header,
        "| algorithm | implementation | device | median (s) | time / scikit-learn | inertia |",
        "|---|---|---|---:|---:|---:|",
    ]
    for row in rows:
        lines.append(
            f"| {row['algorithm']} | {row['name']} | {row['device']} | {row['median_s']:.3f} | "
            f"{row['ratio']:.2f} | {row['inertia']:.6g} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=100_000, help="rows")
    parser.add_argument("--d", type=int, default=16, help="features")
    parser.add_argument("--k", type=int, default=16, help="clusters")
    parser.add_argument("--batch-size", type=int, default=1024, help="mini-batch rows")
    parser.add_argument("--epochs", type=int, default=2, help="mini-batch passes over the data (max_iter)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32")
    parser.add_argument("--repeats", type=int, default=5, help="timed runs per contender (median)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--backends", nargs="*", default=None, help="kgpu backends (default: all present)")
    parser.add_argument("--out", default=None, help="also write the table here")
    args = parser.parse_args(argv)

    rows = run(args)
    steps = args.epochs * args.n // min(args.batch_size, args.n)
    command = "python bench/bench_algorithms_minibatch_bisecting.py " + " ".join(sys.argv[1:] if argv is None else argv)
    header = (
        f"{args.n:,} x {args.d} {args.dtype} blobs, k={args.k}; mini-batch: batch {args.batch_size}, "
        f"{steps} steps; bisecting: init='random', tol=0; median of {args.repeats}\n\n"
        f"{machine_description()}\n{datetime.date.today().isoformat()}: `{command.strip()}`\n"
    )
    table = format_table(rows, header)
    publish(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
