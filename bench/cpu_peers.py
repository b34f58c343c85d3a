"""K-Means on the CPU: kgpu (numba kernels, and the array-API reference) against its peers.

Peers: scikit-learn (lloyd), scikit-learn-intelex (oneDAL) and faiss-cpu, each
skipped when not installed. Every contender clusters the same data from the
same initial centers for the same number of iterations (``tol=0``); repeats
are interleaved (A, B, C, then A, B, C again...) in one process so that a
noisy machine slows all of them alike. Medians are reported with the ratio to
the best peer, and a roofline estimate per iteration:

- compute: ``2 n (d + 1) k`` flops at the SGEMM peak of all cores;
- memory: reading the ``n x (d + 1)`` float32 working copy once at the read
  bandwidth of one core times the cores.

Both limits are measured at the start of the run (:func:`machine_limits`),
per second of CPU time on one thread (a single-threaded 2048^3 SGEMM, a sum
over 256 MiB), which a busy machine disturbs less than wall time; the
defaults :data:`PEAK_GFLOPS` and :data:`READ_GBS_PER_CORE` stand in when
``--no-measure`` is given. The load average before and after the run is
written with the results. Also: torch CPU tensors against NumPy arrays on the
same data, and numba's first-call compile time (cold cache) against a warm
cache, each in a fresh process.

    python bench/cpu_peers.py                          # the four shapes, 3 repeats
    python bench/cpu_peers.py --shapes 200000x16x8x10 --repeats 1
    python bench/cpu_peers.py --out bench/results/cpu-2core-<date>.md
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib.util
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from typing import Callable, NamedTuple

import numpy as np

from kgpu._bench import faiss_contender, initial_centers, machine_description, publish, sklearn_contender, synthetic_data

#: SGEMM peak of the benchmark machine, all cores (an estimate; see the module docstring).
PEAK_GFLOPS = 310.0
#: Memory read bandwidth of one core, GB/s (an estimate).
READ_GBS_PER_CORE = 9.0


def machine_limits(cores: int) -> tuple[float, float]:
    """``(SGEMM GFLOP/s of all cores, read GB/s of one core)``, per second of CPU time on one thread.

    Best of 5: a single-threaded 2048 x 2048 SGEMM, and a sum over 256 MiB of
    float32 (larger than the caches).
    """
    from threadpoolctl import threadpool_limits

    rng = np.random.default_rng(0)
    a = rng.standard_normal((2048, 2048)).astype(np.float32)
    values = np.ones(64 * 2**20, dtype=np.float32)
    gemm_s = read_s = float("inf")
    with threadpool_limits(1, user_api="blas"):
        a @ a
        for _ in range(5):
            started = time.process_time()
            a @ a
            gemm_s = min(gemm_s, time.process_time() - started)
            started = time.process_time()
            values.sum()
            read_s = min(read_s, time.process_time() - started)
    return 2.0 * 2048**3 / gemm_s / 1e9 * cores, values.nbytes / read_s / 1e9


def load_average() -> str:
    with open("/proc/loadavg") as source:
        return " ".join(source.read().split()[:3])

#: (n, d, k, iterations): the K-Means rows of the CPU benchmark table.
SHAPES = ((1_000_000, 32, 64, 20), (200_000, 128, 256, 10), (4_000_000, 8, 8, 20), (60_000, 784, 10, 20))

PEERS = ("scikit-learn", "scikit-learn-intelex", "faiss-cpu")


class Contender(NamedTuple):
    name: str
    fit: Callable[[], float]  # one full clustering; returns the inertia it reached
    #: Median seconds of one Lloyd iteration in the last fit (kgpu's ``history_``), fixed costs left out.
    iteration_seconds: Callable[[], float] | None = None


@contextlib.contextmanager
def environment(name: str, value: str | None):
    """``os.environ[name] = value`` for the duration (``None``: unchanged)."""
    if value is None:
        yield
        return
    before = os.environ.get(name)
    os.environ[name] = value
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]
        else:
            os.environ[name] = before


def kgpu_contender(name: str, X, centers, iterations: int, fast: bool = True) -> Contender:
    from kgpu import KMeans

    model = KMeans(n_clusters=centers.shape[0], init=centers, n_init=1, max_iter=iterations, tol=0.0)

    def fit() -> float:
        with environment("KGPU_FAST", None if fast else "0"):
            model.fit(X)
        return float(model.inertia_)

    def iteration_seconds() -> float:
        return statistics.median(record.seconds for record in model.history_)

    return Contender(name, fit, iteration_seconds)


def sklearnex_contender(X: np.ndarray, centers: np.ndarray, iterations: int) -> Contender | None:
    if importlib.util.find_spec("sklearnex") is None:
        return None
    from sklearnex.cluster import KMeans

    model = KMeans(n_clusters=centers.shape[0], init=centers, n_init=1, max_iter=iterations, tol=0.0, algorithm="lloyd")

    def fit() -> float:
        model.fit(X)
        return float(model.inertia_)

    return Contender("scikit-learn-intelex", fit)


def run_interleaved(contenders: list[Contender], repeats: int) -> dict[str, tuple[float, float]]:
    """``{name: (median seconds, inertia)}`` after one untimed warm-up each."""
    inertia = {c.name: c.fit() for c in contenders}
    times: dict[str, list[float]] = {c.name: [] for c in contenders}
    for _ in range(repeats):
        for contender in contenders:
            started = time.perf_counter()
            inertia[contender.name] = contender.fit()
            times[contender.name].append(time.perf_counter() - started)
    return {name: (statistics.median(values), inertia[name]) for name, values in times.items()}


def roofline_ms(n: int, d: int, k: int, cores: int, limits: tuple[float, float]) -> tuple[float, str]:
    """Lower bound of one Lloyd iteration in ms, and which limit sets it."""
    peak_gflops, read_gbs_per_core = limits
    compute = 2.0 * n * (d + 1) * k / (peak_gflops * 1e9) * 1e3
    memory = n * (d + 1) * 4 / (read_gbs_per_core * 1e9 * cores) * 1e3
    return (compute, "compute") if compute >= memory else (memory, "memory")


def kmeans_table(shapes, repeats: int, limits: tuple[float, float]) -> str:
    cores = len(os.sched_getaffinity(0))
    lines = [
        "| data (float32) | k | iters | kgpu (numba) | kgpu (reference, KGPU_FAST=0) | "
        + " | ".join(PEERS)
        + " | kgpu / best peer | roofline / iter | kgpu fit / iters | kgpu Lloyd iteration | iteration / roofline |",
        "|---|---:|---:|---:|---:|" + "---:|" * len(PEERS) + "---:|---:|---:|---:|---:|",
    ]
    for n, d, k, iterations in shapes:
        X = synthetic_data(n, d)
        centers = initial_centers(X, k)
        contenders = [
            kgpu_contender("kgpu", X, centers, iterations),
            kgpu_contender("kgpu-reference", X, centers, iterations, fast=False),
            sklearn_contender(X, centers, iterations),
        ]
        contenders += [c for c in (sklearnex_contender(X, centers, iterations), faiss_contender(X, centers, iterations)) if c]
        results = run_interleaved(contenders, repeats)
        iteration_ms = contenders[0].iteration_seconds() * 1e3
        peers = {name: results[name][0] for name in PEERS if name in results}
        best = min(peers.values())
        kgpu_s = results["kgpu"][0]
        limit_ms, limit_kind = roofline_ms(n, d, k, cores, limits)
        per_iter_ms = kgpu_s / iterations * 1e3
        cells = [f"{peers[name]:.3f} s" if name in peers else "absent" for name in PEERS]
        lines.append(
            f"| {n:,} × {d} | {k} | {iterations} | {kgpu_s:.3f} s | {results['kgpu-reference'][0]:.3f} s | "
            + " | ".join(cells)
            + f" | **{kgpu_s / best:.2f}** | {limit_ms:.1f} ms ({limit_kind}) | {per_iter_ms:.1f} ms | {iteration_ms:.1f} ms"
            f" | {iteration_ms / limit_ms:.1f} |"
        )
        inertias = ", ".join(f"{name} {value[1]:.7g}" for name, value in results.items())
        print(f"{n}x{d} k={k}: inertia {inertias}", file=sys.stderr)
    return "\n".join(lines)


def torch_table(n: int, d: int, k: int, iterations: int, repeats: int) -> str:
    if importlib.util.find_spec("torch") is None:
        return "torch not installed: no torch CPU row."
    import torch

    X = synthetic_data(n, d)
    centers = initial_centers(X, k)
    contenders = [
        kgpu_contender("NumPy array", X, centers, iterations),
        kgpu_contender("the same data as a torch CPU tensor", torch.from_numpy(X), torch.from_numpy(centers), iterations),
    ]
    results = run_interleaved(contenders, repeats)
    numpy_s = results["NumPy array"][0]
    lines = [
        f"| input | {n:,} × {d}, k={k}, {iterations} iterations | time / NumPy |",
        "|---|---:|---:|",
    ]
    lines += [f"| {name} | {seconds:.3f} s | {seconds / numpy_s:.2f} |" for name, (seconds, _) in results.items()]
    return "\n".join(lines)


COMPILE_PROBE = textwrap.dedent(
    """
    import time
    started = time.perf_counter()
    import numpy as np
    import array_api_compat.numpy as xp
    from kgpu._kernels import cpu_numba
    from kgpu._distances import homogeneous
    imported = time.perf_counter()
    X = homogeneous(np.random.default_rng(0).standard_normal((5000, 8)), xp=xp)
    for dtype in (np.float32, np.float64):
        rows = X.astype(dtype)
        cpu_numba.lloyd_step_numba(rows, np.ones(5000, dtype), rows[:4, :-1].copy(), xp=xp, rows_per_block=5000)
        cpu_numba.assign_numba(rows, rows[:4, :-1].copy(), xp=xp)
    done = time.perf_counter()
    print(f"{imported - started:.3f} {done - imported:.3f}")
    """
)


def compile_times() -> str:
    """First calls of lloyd_step and assign (float32 and float64) in fresh processes: cold, then warm cache."""
    lines = ["| numba cache | import (s) | first lloyd_step + assign, float32 and float64 (s) |", "|---|---:|---:|"]
    with tempfile.TemporaryDirectory() as cache:
        env = dict(os.environ, NUMBA_CACHE_DIR=cache)
        for label in ("cold (empty cache)", "warm (second process)"):
            out = subprocess.run([sys.executable, "-c", COMPILE_PROBE], env=env, capture_output=True, text=True, check=True)
            imported, first_calls = out.stdout.split()
            lines.append(f"| {label} | {imported} | {first_calls} |")
    return "\n".join(lines)


def parse_shape(text: str) -> tuple[int, int, int, int]:
    n, d, k, iterations = (int(part) for part in text.split("x"))
    return n, d, k, iterations


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="*", type=parse_shape, default=list(SHAPES), help="n x d x k x iterations")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-torch", action="store_true")
    parser.add_argument("--no-compile", action="store_true")
    parser.add_argument("--no-measure", action="store_true", help="roofline from the default limits")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    command = " ".join(argv if argv is not None else sys.argv[1:])
    cores = len(os.sched_getaffinity(0))
    load_before = load_average()
    limits = (PEAK_GFLOPS, READ_GBS_PER_CORE) if args.no_measure else machine_limits(cores)
    how = "defaults" if args.no_measure else "measured at the start of this run, per CPU-second"
    started = datetime.datetime.now(datetime.timezone.utc)
    table = kmeans_table(args.shapes, args.repeats, limits)
    parts = [
        machine_description(),
        f"{started:%Y-%m-%d %H:%M} UTC: `python bench/cpu_peers.py {command}`".rstrip(),
        f"Load average (1, 5, 15 min) before: {load_before}; after the K-Means table: {load_average()}.",
        "",
        f"K-Means, standard normal float32 data, same initial centers, tol=0, median of {args.repeats} "
        "interleaved repeats (after one warm-up each). Roofline: "
        f"{limits[0]:.0f} GFLOP/s SGEMM on {cores} cores, {limits[1]:.1f} GB/s read per core ({how}).",
        "",
        table,
    ]
    if not args.no_torch:
        parts += ["", "torch CPU tensors against NumPy arrays (same data, same kgpu KMeans):", "",
                  torch_table(1_000_000, 32, 64, 20, args.repeats)]
    if not args.no_compile:
        parts += ["", "numba compile time (fresh processes, NUMBA_CACHE_DIR in a temporary folder):", "", compile_times()]
    publish("\n".join(parts), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
