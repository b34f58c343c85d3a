"""Scale benchmarks: streaming a memory-mapped .npy, and Dask against single-process NumPy.

1. Streaming throughput: rows per second through KMeans Lloyd iterations
   when X is a memory-mapped ``.npy`` (read one row block at a time) and when
   the same data is in memory. The iteration times come from ``history_``, so
   the centering pass and the final assignment are left out; the whole fit
   time is shown too. After the first repeat the file sits in the page cache:
   this measures the streaming machinery, not the disk.
2. Dask: KMeans on a Dask array (persisted on a ``dask.distributed``
   ``LocalCluster``: ``--workers`` processes, one thread each) against the
   in-memory fit in this process (kgpu's own thread pool, every core), on the
   same data from the same initial centers, same number of iterations
   (``tol=0``). The ratio is Dask's time over NumPy's.

Repeats alternate between the contenders (A, B, A, B...) and medians are
reported, so a noisy shared machine slows both alike.

    python bench/bench_scale.py                          # 1,000,000 x 32 float32, k=16, 10 iterations
    python bench/bench_scale.py --n 200000 --repeats 3 --out bench/results/scale.md
    python bench/bench_scale.py --skip stream --n 1000000 4000000 --repeats 5   # the Dask targets
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile
import time
import warnings

import numpy as np

from kgpu import KMeans
from kgpu._bench import initial_centers, machine_description, publish, synthetic_data


def timed_fit(X, centers, iterations, **params):
    """Fit from ``centers`` for exactly ``iterations`` Lloyd iterations.

    Returns
    -------
    fit_seconds, lloyd_seconds, inertia
    """
    model = KMeans(centers.shape[0], init=centers, n_init=1, max_iter=iterations, tol=0.0, **params)
    started = time.perf_counter()
    model.fit(X)
    fit_seconds = time.perf_counter() - started
    if model.n_iter_ != iterations:
        raise RuntimeError(f"converged after {model.n_iter_} iterations: use random data or fewer iterations")
    return fit_seconds, sum(record.seconds for record in model.history_), model.inertia_


def bench_streaming(X, centers, iterations, repeats, working_memory, directory):
    path = os.path.join(directory, "kgpu-bench-scale.npy")
    np.save(path, X)
    try:
        X_map = np.load(path, mmap_mode="r")
        runs = {"in memory": [], "memmap": []}
        inertia = {}
        for _ in range(repeats):
            for name, data in (("in memory", X), ("memmap", X_map)):
                fit_s, lloyd_s, inertia[name] = timed_fit(data, centers, iterations, working_memory=working_memory)
                runs[name].append((fit_s, lloyd_s))
        del X_map
    finally:
        os.remove(path)
    rows = []
    for name, times in runs.items():
        fit_s = statistics.median(t[0] for t in times)
        lloyd_s = statistics.median(t[1] for t in times)
        rows.append((name, fit_s, lloyd_s, X.shape[0] * iterations / lloyd_s, inertia[name]))
    if not np.isclose(inertia["memmap"], inertia["in memory"], rtol=1e-5):
        raise RuntimeError(f"memmap and in-memory fits differ: {inertia}")
    return rows


def bench_dask(sizes, n_features, n_clusters, iterations, repeats, n_chunks, n_workers):
    """Dask on a LocalCluster against the in-memory fit, interleaved, for each row count in ``sizes``.

    Returns
    -------
    list of (n_rows, {engine: (median fit s, median Lloyd s, per-iteration ms)})
    """
    import dask.array as da
    from distributed import Client, LocalCluster, wait

    # Sending X to the workers once (persist) makes a large graph: expected here.
    warnings.filterwarnings("ignore", message=".*Sending large graph.*")
    results = []
    with LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None,
                      silence_logs=40) as cluster, Client(cluster) as client:
        for n_rows in sizes:
            X = synthetic_data(n_rows, n_features)
            centers = initial_centers(X, n_clusters)
            rows_per_chunk = -(-X.shape[0] // n_chunks)
            X_dask = client.persist(da.from_array(X, chunks=(rows_per_chunk, X.shape[1])))
            wait(X_dask)
            timed_fit(X_dask, centers, 1)  # warm up: imports on the workers
            timed_fit(X, centers, 1)
            runs = {"numpy (this process)": [], f"dask ({n_workers} workers)": []}
            inertia = {}
            for _ in range(repeats):
                for name, data in zip(runs, (X, X_dask)):
                    fit_s, lloyd_s, inertia[name] = timed_fit(data, centers, iterations)
                    runs[name].append((fit_s, lloyd_s))
            if not np.isclose(*inertia.values(), rtol=1e-5):
                raise RuntimeError(f"Dask and in-memory fits differ: {inertia}")
            results.append((n_rows, {
                name: (statistics.median(t[0] for t in times), statistics.median(t[1] for t in times))
                for name, times in runs.items()
            }))
            client.cancel(X_dask)
            del X_dask, X
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, nargs="+", default=[1_000_000],
                        help="rows (several: one Dask table per size, the streaming table for the first)")
    parser.add_argument("--d", type=int, default=32, help="features")
    parser.add_argument("--k", type=int, default=16, help="clusters")
    parser.add_argument("--iterations", type=int, default=10, help="Lloyd iterations per fit")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--working-memory", type=float, default=None,
                        help="MiB per row block (default: the backend's, 8 MiB on NumPy)")
    parser.add_argument("--chunks", type=int, default=8, help="row chunks of the Dask array")
    parser.add_argument("--workers", type=int, default=2, help="Dask worker processes (one thread each)")
    parser.add_argument("--dir", default=tempfile.gettempdir(), help="where the .npy file is written")
    parser.add_argument("--skip", choices=["stream", "dask"], default=None)
    parser.add_argument("--out", default=None, help="also write the tables (with machine and command) here")
    args = parser.parse_args(argv)

    command = " ".join(["python bench/bench_scale.py"] + list(argv if argv is not None else sys.argv[1:]))
    sizes = ", ".join(f"{n:,}" for n in args.n)
    lines = [
        f"Scale, {sizes} x {args.d} float32, k={args.k}, {args.iterations} Lloyd iterations, median of {args.repeats}",
        "",
        machine_description(),
        f"{datetime.date.today().isoformat()}: `{command}`",
        "load average (1, 5, 15 min) at the start: " + ", ".join(f"{load:.2f}" for load in os.getloadavg()),
    ]
    if args.skip != "stream":
        X = synthetic_data(args.n[0], args.d)
        centers = initial_centers(X, args.k)
        stream_rows = bench_streaming(X, centers, args.iterations, args.repeats, args.working_memory, args.dir)
        del X
        memory_rate = stream_rows[0][3]
        lines += ["", "| data | fit (s) | Lloyd iterations (s) | rows/s through Lloyd | vs in memory |", "|---|---|---|---|---|"]
        lines += [
            f"| {name} | {fit_s:.3f} | {lloyd_s:.3f} | {rate:,.0f} | {rate / memory_rate:.2f}x |"
            for name, fit_s, lloyd_s, rate, _ in stream_rows
        ]
    if args.skip != "dask":
        import dask
        import distributed

        lines += [
            "",
            f"Dask {dask.__version__}, distributed {distributed.__version__}: {args.chunks} row chunks persisted on a "
            f"LocalCluster ({args.workers} worker processes, one thread each); NumPy: the same array in this process "
            "(kgpu's thread pool, every core). Runs interleaved.",
            "",
            "| rows | engine | fit (s) | Lloyd iterations (s) | ms per iteration | fit time / NumPy | Lloyd time / NumPy |",
            "|---|---|---|---|---|---|---|",
        ]
        for n_rows, engines in bench_dask(args.n, args.d, args.k, args.iterations, args.repeats, args.chunks, args.workers):
            numpy_fit, numpy_lloyd = next(iter(engines.values()))
            lines += [
                f"| {n_rows:,} | {name} | {fit_s:.3f} | {lloyd_s:.3f} | {1e3 * lloyd_s / args.iterations:.1f} | "
                f"{fit_s / numpy_fit:.2f}x | {lloyd_s / numpy_lloyd:.2f}x |"
                for name, (fit_s, lloyd_s) in engines.items()
            ]
    lines.append("load average (1, 5, 15 min) at the end: " + ", ".join(f"{load:.2f}" for load in os.getloadavg()))
    table = "\n".join(lines)
    publish(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
