"""Rows per score tile of the CPU Lloyd step, and the BLAS kernels under it.

One Lloyd step of :mod:`kgpu._kernels.cpu_numba` is a GEMM per tile of rows
(``(k, rows)`` scores, BLAS on the calling thread) plus a compiled epilogue.
This script times, on one thread and interleaved, for each shape:

- ``_lloyd_rows`` over all rows with tiles of 128 ... 4096 rows (the rule
  :func:`kgpu._kernels.cpu_numba.tile_rows` picks one of them);
- the GEMM alone: the same tiles' scores and argmin (``_score_tile``), and
  one GEMM of all rows at once (the BLAS's own speed on this inner dimension).

Times are the thread's CPU seconds (``time.thread_time``, medians), which a
shared machine disturbs less than wall time. Each BLAS setting runs in its
own process: ``OPENBLAS_CORETYPE`` is read when OpenBLAS loads.

    python bench/tile_rows.py --coretypes default SkylakeX --out bench/results/x.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

_CHILD = r"""
import json, sys, time, statistics
import numpy as np
from threadpoolctl import threadpool_limits
import array_api_compat.numpy as xp
from kgpu._distances import homogeneous
from kgpu._kernels import cpu_numba as cn
from kgpu._doctor import blas_libraries

n, d, k, repeats = (int(v) for v in sys.argv[1:5])
tiles = [int(v) for v in sys.argv[5].split(",")]
rng = np.random.default_rng(0)
X = homogeneous(rng.standard_normal((n, d)).astype(np.float32), xp=xp)
weights = np.ones(n, np.float32)
operand_t, norms = cn._operand_t(X[:k, :-1].copy(), X)
previous, labels = np.empty(0, np.int64), np.empty(n, np.int64)
scores = np.empty((k, n), np.float32)


def lloyd_rows(rows):
    cn._lloyd_rows(X, weights, operand_t, norms, d, 0, n, rows, previous, labels, np.zeros((k, d + 1)))


def score_tiles(rows):
    buffer, nearest, best = np.empty(k * rows, np.float32), np.empty(rows, np.int64), np.empty(rows, np.float32)
    for first in range(0, n, rows):
        cn._score_tile(X, operand_t, norms, first, min(n, first + rows), buffer, nearest, best)


cases = {f"lloyd_rows {rows}": (lambda rows=rows: lloyd_rows(rows)) for rows in tiles}
cases.update({f"score_tiles {rows}": (lambda rows=rows: score_tiles(rows)) for rows in tiles})
cases["one GEMM"] = lambda: np.dot(operand_t, X.T, scores)
times = {name: [] for name in cases}
with threadpool_limits(1):
    for case in cases.values():
        case()
    for _ in range(repeats):
        for name, case in cases.items():
            started = time.thread_time()
            case()
            times[name].append(time.thread_time() - started)
kernels = sorted({str(info.get("architecture")) for info in blas_libraries()})
print(json.dumps({"kernels": kernels, "median": {name: statistics.median(v) for name, v in times.items()},
                  "rule": cn.tile_rows(k, d, 4)}))
"""


def parse_shape(text: str) -> tuple[int, int, int]:
    n, d, k = (int(part) for part in text.lower().split("x"))
    return n, d, k


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="*", type=parse_shape, default=[(100_000, 128, 256), (250_000, 32, 64)])
    parser.add_argument("--tiles", default="128,256,512,1024,2048,4096")
    parser.add_argument("--coretypes", nargs="*", default=["Haswell", "SkylakeX"],
                        help="OPENBLAS_CORETYPE values ('unset': OpenBLAS picks by CPU model)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    from kgpu._bench import machine_description, publish

    lines = [
        "Rows per score tile of the CPU Lloyd step: one thread's CPU time (median of "
        f"{args.repeats}, interleaved), float32",
        "",
        machine_description(),
        f"{datetime.date.today().isoformat()}: `python bench/tile_rows.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}; "
        f"OPENBLAS_CORETYPE in this environment: {os.environ.get('OPENBLAS_CORETYPE', 'unset')}",
        "",
        "| n x d, k | OPENBLAS_CORETYPE (kernels) | rule's tile rows | what | "
        + " | ".join(f"{rows} rows (ms)" for rows in args.tiles.split(","))
        + " | one GEMM (ms) | one GEMM GFLOP/s |",
        "|---|---|---:|---|" + "---:|" * (len(args.tiles.split(",")) + 2),
    ]
    for n, d, k in args.shapes:
        for coretype in args.coretypes:
            env = dict(os.environ)
            env.pop("OPENBLAS_CORETYPE", None)
            if coretype != "unset":
                env["OPENBLAS_CORETYPE"] = coretype
            result = subprocess.run(
                [sys.executable, "-c", _CHILD, str(n), str(d), str(k), str(args.repeats), args.tiles],
                capture_output=True, text=True, env=env, check=False,
            )
            if result.returncode != 0:
                raise RuntimeError(result.stderr[-3000:])
            found = json.loads(result.stdout.strip().splitlines()[-1])
            median = found["median"]
            gemm = median["one GEMM"]
            for what in ("lloyd_rows", "score_tiles"):
                cells = " | ".join(f"{median[f'{what} {rows}'] * 1e3:.1f}" for rows in args.tiles.split(","))
                lines.append(
                    f"| {n:,} x {d}, k={k} | {coretype} ({', '.join(found['kernels'])}) | {found['rule']} | {what} | "
                    f"{cells} | {gemm * 1e3:.1f} | {2 * n * k * (d + 1) / gemm / 1e9:.0f} |"
                )
    lines.append(f"\nload average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    publish("\n".join(lines) + "\n", args.out, append=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
