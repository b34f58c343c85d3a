"""Where a fully fused Lloyd step (no BLAS) would beat a BLAS score tile plus a fused epilogue.

Three implementations of one Lloyd step (scores, argmin, changed count,
per-cluster float64 sums) on the same data, interleaved, median per shape:

- ``reference``: the array-API path (``KGPU_FAST=0``): GEMM, argmin and a
  segmented sum per block, on kgpu's thread pool;
- ``tile+epilogue``: what kgpu runs on NumPy (:mod:`kgpu._kernels.cpu_numba`),
  a GEMM per fixed-size chunk plus one compiled pass for the rest;
- ``fused``: everything in one numba ``prange`` loop, scores included (the
  candidate this script measures; not used by kgpu).

    python bench/numba_crossover.py
    python bench/numba_crossover.py --shapes 4000000x2x3 1000000x32x64 --repeats 5 --out bench/results/x.md
"""

from __future__ import annotations

import argparse
import datetime
import statistics
import sys
import time

import array_api_compat.numpy as xp
import numpy as np
from numba import njit, prange

from kgpu._assign import assign_and_accumulate_reference, assignment_block_rows
from kgpu._bench import machine_description, publish
from kgpu._distances import homogeneous, homogeneous_operand
from kgpu._kernels import cpu_numba

#: (n, d, k), from k * d = 6 to k * d = 32768.
SHAPES = ((4_000_000, 2, 3), (4_000_000, 8, 8), (2_000_000, 16, 4), (1_000_000, 32, 64), (200_000, 128, 256), (60_000, 784, 10))


@njit(parallel=True, fastmath=False, cache=True)
def _fused_step(X, weights, operand, n_features, chunk_rows, previous, partials, changed, labels):
    n_rows = X.shape[0]
    n_clusters = operand.shape[1]
    for g in prange(partials.shape[0]):
        start = g * chunk_rows
        stop = min(start + chunk_rows, n_rows)
        part = partials[g]
        part[:, :] = 0.0
        scores = np.empty(n_clusters, dtype=operand.dtype)
        n_changed = 0
        for i in range(start, stop):
            for j in range(n_clusters):
                scores[j] = operand[n_features, j]
            for f in range(n_features):
                value = X[i, f]
                for j in range(n_clusters):
                    scores[j] += value * operand[f, j]
            best = 0
            for j in range(1, n_clusters):
                if scores[j] < scores[best]:
                    best = j
            labels[i] = best
            if previous[i] != best:
                n_changed += 1
            weight = np.float64(weights[i])
            for f in range(n_features):
                part[best, f] += weight * X[i, f]
            part[best, n_features] += weight
        changed[g] = n_changed


def fused_step(design, weights, centers, previous, chunk_rows=1024):
    n_rows = design.shape[0]
    n_clusters, n_features = centers.shape
    n_chunks = -(-n_rows // chunk_rows)
    partials = np.empty((n_chunks, n_clusters, n_features + 1))
    changed = np.empty(n_chunks, dtype=np.int64)
    labels = np.empty(n_rows, dtype=np.int64)
    _fused_step(design, weights, homogeneous_operand(centers, xp=xp), n_features, chunk_rows, previous, partials, changed, labels)
    return labels, partials.sum(axis=0), changed.sum()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="*", default=None, help="n x d x k")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    shapes = [tuple(int(p) for p in s.split("x")) for s in args.shapes] if args.shapes else SHAPES
    lines = [
        machine_description(),
        f"{datetime.date.today().isoformat()}: `python bench/numba_crossover.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "",
        f"One Lloyd step, float32, median of {args.repeats} interleaved repeats (ms); the machine is shared, so timings are noisy.",
        "",
        "| n × d, k | k·d | reference | tile+epilogue | fused (prange) | fastest |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for n, d, k in shapes:
        rng = np.random.default_rng(0)
        design = homogeneous(rng.standard_normal((n, d)).astype(np.float32), xp=xp)
        weights = np.ones(n, dtype=np.float32)
        centers = design[:k, :-1].copy()
        previous = rng.integers(0, k, n)
        rows_per_block = assignment_block_rows(n, k, d + 1, 4, xp)
        contenders = {
            "reference": lambda: assign_and_accumulate_reference(
                design, weights, centers, xp=xp, rows_per_block=rows_per_block, previous_labels=previous
            ),
            "tile+epilogue": lambda: cpu_numba.lloyd_step_numba(
                design, weights, centers, xp=xp, rows_per_block=rows_per_block, previous_labels=previous
            ),
            "fused": lambda: fused_step(design, weights, centers, previous),
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for run in contenders.values():
            run()  # compile, warm up
        for _ in range(args.repeats):
            for name, run in contenders.items():
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
        medians = {name: statistics.median(values) * 1e3 for name, values in times.items()}
        fastest = min(medians, key=medians.get)
        lines.append(
            f"| {n:,} × {d}, {k} | {k * d} | {medians['reference']:.1f} | {medians['tile+epilogue']:.1f} | "
            f"{medians['fused']:.1f} | {fastest} |"
        )
    publish("\n".join(lines), args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
