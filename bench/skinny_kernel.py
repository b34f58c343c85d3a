"""The few-centers, many-features Lloyd kernel against the BLAS tile path, interleaved.

Two implementations of one Lloyd step (nearest center, changed count,
per-cluster float64 sums) and of the final assignment, on the same
homogeneous rows ``[x, 1]`` (what a fit passes), on kgpu's thread pool:

- ``tile``: :mod:`kgpu._kernels.cpu_numba`, a BLAS score tile per few rows
  plus a compiled epilogue;
- ``skinny``: :mod:`kgpu._kernels.cpu_numba_skinny`, exact distances with
  explicit SIMD lanes, one pass over each row.

Medians of interleaved repeats, and their ratio; ``guard`` says whether the
skinny kernel's guard takes the shape (what a fit would run).

    python bench/skinny_kernel.py
    python bench/skinny_kernel.py --shapes 60000x784x10 200000x128x32 --repeats 9 --out bench/results/x.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time

import array_api_compat.numpy as xp
import numpy as np

from kgpu._bench import machine_description, publish
from kgpu._distances import homogeneous
from kgpu._kernels import cpu_numba, cpu_numba_skinny

#: (n, d, k): the MNIST shape and its neighbours.
SHAPES = (
    (60_000, 784, 10),
    (100_000, 256, 8),
    (50_000, 1024, 16),
    (200_000, 128, 32),
    (200_000, 128, 16),
    (200_000, 64, 8),
    (400_000, 32, 8),
)


def _median_ms(values: list[float]) -> float:
    return statistics.median(values) * 1e3


VECTOR_PROBE = """
import re
import array_api_compat.numpy as xp
from kgpu._kernels import cpu_numba_skinny as skinny
skinny._lloyd_step_self_check(xp, "cpu")
skinny._assign_self_check(xp, "cpu")
for kernel in (skinny._lloyd_rows, skinny._assign_rows):
    for signature in kernel.signatures:
        asm = kernel.inspect_asm(signature)
        counts = [len(re.findall(r"vfmadd\\w*" + kind, asm)) for kind in (r"p[sd]\\s[^\\n]*zmm", r"p[sd]\\s[^\\n]*ymm", r"s[sd]\\s")]
        print(f"{kernel.py_func.__name__}, {signature[0].dtype}: {counts[0]} zmm, {counts[1]} ymm, {counts[2]} scalar")
"""


def vector_fma_counts() -> list[str]:
    """Fused multiply-adds in the compiled kernels, by register width (a fresh process and cache: numba
    shows the machine code of what it compiled, not of what it loaded from its cache)."""
    with tempfile.TemporaryDirectory() as cache:
        environment = dict(os.environ, NUMBA_CACHE_DIR=cache)
        out = subprocess.run(
            [sys.executable, "-c", VECTOR_PROBE], capture_output=True, text=True, env=environment, check=True
        )
    return out.stdout.strip().splitlines()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--shapes", nargs="*", default=None, help="n x d x k")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=None, help="Markdown file the report is added to (runs collect in one file)")
    args = parser.parse_args(argv)
    shapes = [tuple(int(p) for p in s.split("x")) for s in args.shapes] if args.shapes else SHAPES
    command = " ".join(argv if argv is not None else sys.argv[1:])
    lines = [
        "",
        machine_description(),
        f"{datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC: `python bench/skinny_kernel.py {command}`",
        f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}",
        "",
        f"float32, median of {args.repeats} interleaved repeats (ms); the machine is shared, so compare the ratios.",
        "",
        "| n × d, k | guard | Lloyd step: tile | skinny | skinny/tile | assign: tile | skinny | skinny/tile |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for n, d, k in shapes:
        rng = np.random.default_rng(0)
        design = homogeneous(rng.standard_normal((n, d)).astype(np.float32), xp=xp)
        weights = np.ones(n, dtype=np.float32)
        centers = design[:k, :-1].copy()
        previous = rng.integers(0, k, n)
        contenders = {
            "step tile": lambda: cpu_numba.lloyd_step_numba(
                design, weights, centers, xp=xp, rows_per_block=n, previous_labels=previous
            ),
            "step skinny": lambda: cpu_numba_skinny.lloyd_step_skinny(
                design, weights, centers, xp=xp, rows_per_block=n, previous_labels=previous
            ),
            "assign tile": lambda: cpu_numba.assign_numba(design, centers, xp=xp, float64_distances=True),
            "assign skinny": lambda: cpu_numba_skinny.assign_skinny(design, centers, xp=xp, float64_distances=True),
        }
        times: dict[str, list[float]] = {name: [] for name in contenders}
        for run in contenders.values():
            run()  # compile, warm up
        for _ in range(args.repeats):
            for name, run in contenders.items():
                started = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - started)
        ms = {name: _median_ms(values) for name, values in times.items()}
        guard = "yes" if cpu_numba_skinny.applies_to_shape(k, d) else "no"
        lines.append(
            f"| {n:,} × {d}, {k} | {guard} | {ms['step tile']:.1f} | {ms['step skinny']:.1f} | "
            f"{ms['step skinny'] / ms['step tile']:.2f} | {ms['assign tile']:.1f} | {ms['assign skinny']:.1f} | "
            f"{ms['assign skinny'] / ms['assign tile']:.2f} |"
        )
        print(lines[-1], flush=True)
    lines.append("")
    lines.append(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")
    lines.append("")
    lines.append("Fused multiply-add instructions in the compiled skinny kernels (`inspect_asm`):")
    lines.append("")
    lines.extend(f"- {line}" for line in vector_fma_counts())
    publish("\n".join(lines), args.out, append=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
