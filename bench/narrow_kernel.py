"""The kernels for few features and centers against the BLAS tile, interleaved in one process.

For each shape (float32, standard normal rows, homogeneous ``[x, 1]`` as a fit
holds them), one Lloyd step (``lloyd_step``: labels, changed count, float64
sums; the new labels written over the previous ones, as in a fit) and one
assignment (``assign``) of:

- ``blas-tile``: :mod:`kgpu._kernels.cpu_numba` (a BLAS GEMM score tile plus
  a compiled epilogue), what ran for every shape before;
- ``narrow``: :mod:`kgpu._kernels.cpu_numba_narrow` (rows in the SIMD lanes),
  called directly, also on shapes outside its guard (to place the crossover);

then a whole K-Means fit (same initial centers, ``tol=0``, fixed iterations)
with the narrow kernels on and off. Repeats are interleaved; medians; the
kernels are timed in CPU seconds of the process (steadier than wall time on a
shared machine), the fits in wall seconds. Also
reports the first-call compile time and the vector instructions of the
distance loop (``inspect_asm`` of a fresh, uncached compilation).

    python bench/narrow_kernel.py
    python bench/narrow_kernel.py --shapes 4000000x8x8 1000000x4x5 --repeats 7 --out bench/results/x.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import re
import statistics
import sys
import time

import array_api_compat.numpy as xp
import numpy as np

from kgpu import KMeans
from kgpu._bench import machine_description, publish
from kgpu._distances import homogeneous
from kgpu._kernels import cpu_numba
from kgpu._kernels import cpu_numba_narrow as narrow

#: (n, d, k).
SHAPES = ((4_000_000, 8, 8), (1_000_000, 4, 5), (1_000_000, 16, 16), (1_000_000, 32, 8))


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1e3


def _vector_instructions() -> str:
    """Counts of vector instructions in a fresh compilation of the distance loop (float32, d = 8)."""
    from numba import njit

    fresh = njit(fastmath=False, nogil=True)(narrow._nearest_in_tile.py_func)
    X = np.zeros((64, 9), dtype=np.float32)
    fresh(X, np.zeros((8, 8), np.float32), 0, 64, (0,) * 8, np.empty((8, 64), np.float32), np.empty(64, np.int64),
          np.empty(64, np.float32))
    asm = fresh.inspect_asm(fresh.signatures[0])
    counts = {name: len(re.findall(pattern, asm)) for name, pattern in (
        ("packed FMA (vfmadd…ps)", r"vfmadd\w*ps\s+%[yz]mm"), ("packed sub (vsubps)", r"vsubps\s+%[yz]mm"),
        ("packed compare (vcmp…ps)", r"vcmp\w*ps\s+%[yz]mm"), ("scalar FMA (vfmadd…ss)", r"vfmadd\w*ss"),
    )}
    return ", ".join(f"{name}: {count}" for name, count in counts.items())


def _kernel_times(design: np.ndarray, centers: np.ndarray, repeats: int) -> dict[str, float]:
    n_rows = design.shape[0]
    weights = np.ones(n_rows, dtype=design.dtype)
    previous = np.random.default_rng(1).integers(0, centers.shape[0], n_rows)
    # As in a fit: the new labels overwrite the previous ones (one array per contender).
    previous_blas, previous_narrow = previous.copy(), previous.copy()
    plain = np.ascontiguousarray(design[:, :-1])
    contenders = {
        "step blas-tile": lambda: cpu_numba.lloyd_step_numba(
            design, weights, centers, xp=xp, rows_per_block=n_rows, previous_labels=previous_blas, in_place=True),
        "step narrow": lambda: narrow.lloyd_step_narrow(
            design, weights, centers, xp=xp, rows_per_block=n_rows, previous_labels=previous_narrow, in_place=True),
        "assign blas-tile": lambda: cpu_numba.assign_numba(plain, centers, xp=xp),
        "assign narrow": lambda: narrow.assign_narrow(plain, centers, xp=xp),
    }
    times: dict[str, list[float]] = {name: [] for name in contenders}
    for run in contenders.values():
        run()  # compile (or load from the cache), warm up
    for _ in range(repeats):
        for name, run in contenders.items():
            # CPU seconds of the process (both pool threads): on a shared
            # machine they move far less than wall time with the load.
            started = time.process_time()
            run()
            times[name].append(time.process_time() - started)
    return {name: _median_ms(values) for name, values in times.items()}


def _fit_times(X: np.ndarray, n_clusters: int, iterations: int, repeats: int) -> dict[str, float]:
    init = X[np.random.default_rng(2).choice(X.shape[0], n_clusters, replace=False)]
    limits = narrow.MAX_FEATURES, narrow.MAX_CLUSTERS

    def fit(use_narrow: bool) -> float:
        # Switched off through the guard's bounds, so the BLAS tile runs instead.
        narrow.MAX_FEATURES, narrow.MAX_CLUSTERS = limits if use_narrow else (0, 0)
        try:
            started = time.perf_counter()
            KMeans(n_clusters, init=init, n_init=1, max_iter=iterations, tol=0.0).fit(X)
            return time.perf_counter() - started
        finally:
            narrow.MAX_FEATURES, narrow.MAX_CLUSTERS = limits

    times: dict[str, list[float]] = {"fit blas-tile": [], "fit narrow": []}
    fit(True), fit(False)
    for _ in range(repeats):
        times["fit blas-tile"].append(fit(False))
        times["fit narrow"].append(fit(True))
    return {name: _median_ms(values) for name, values in times.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="*", default=None, help="n x d x k")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--fit-repeats", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    shapes = [tuple(int(p) for p in s.split("x")) for s in args.shapes] if args.shapes else SHAPES

    started = time.perf_counter()
    narrow._lloyd_step_self_check(xp, "cpu")
    narrow._assign_self_check(xp, "cpu")
    first_call = time.perf_counter() - started
    lines = [
        machine_description(),
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: "
        f"`python bench/narrow_kernel.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"Load average before: {' '.join(f'{load:.2f}' for load in os.getloadavg())}",
        "",
        f"First call of the narrow kernels (their self-checks: d = 4 and 8, float32 and float64, "
        f"compiled or loaded from numba's cache): {first_call:.2f} s.",
        f"Distance loop, fresh compilation (float32, d = 8): {_vector_instructions()}.",
        "",
        f"float32, homogeneous rows. Kernels (step, assign): CPU milliseconds of the process (both threads), "
        f"median of {args.repeats} interleaved repeats. Fit: wall milliseconds of {args.iterations} Lloyd "
        f"iterations (tol=0, same initial centers), median of {args.fit_repeats} interleaved repeats. "
        "Ratio = narrow / blas-tile. The machine is shared: ratios count, not absolute times.",
        "",
        "| n × d, k | in guard | step blas-tile | step narrow | ratio | assign blas-tile | assign narrow | ratio "
        "| fit blas-tile | fit narrow | ratio | fit / iteration (narrow) |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for n, d, k in shapes:
        X = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
        design = homogeneous(X, xp=xp)
        centers = np.ascontiguousarray(design[:k, :-1])
        kernels = _kernel_times(design, centers, args.repeats)
        del design
        in_guard = narrow.narrow_shape(d, k)
        fits = _fit_times(X, k, args.iterations, args.fit_repeats) if in_guard else None
        fit_cells = (
            f"{fits['fit blas-tile']:.0f} | {fits['fit narrow']:.0f} | {fits['fit narrow'] / fits['fit blas-tile']:.2f} "
            f"| {fits['fit narrow'] / args.iterations:.1f}"
            if fits else "– | – | – | –"
        )
        lines.append(
            f"| {n:,} × {d}, {k} | {'yes' if in_guard else 'no'} "
            f"| {kernels['step blas-tile']:.1f} | {kernels['step narrow']:.1f} "
            f"| {kernels['step narrow'] / kernels['step blas-tile']:.2f} "
            f"| {kernels['assign blas-tile']:.1f} | {kernels['assign narrow']:.1f} "
            f"| {kernels['assign narrow'] / kernels['assign blas-tile']:.2f} | {fit_cells} |"
        )
        print(lines[-1], flush=True)
    lines.append("")
    lines.append(f"Load average after: {' '.join(f'{load:.2f}' for load in os.getloadavg())}")
    publish("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
