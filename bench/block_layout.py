"""Row-block layout: sized by the core count (before) against fixed (now), side by side.

The fixed layout makes results independent of the number of cores; this
checks it costs no speed. Both layouts run in one process, repeats
interleaved, on the same data and initial centers; prints medians and the
ratio as a Markdown table. The machine may be shared: read small ratios as noise.

    python bench/block_layout.py                          # 200,000 x 32 float32, k=64, 20 iterations
    python bench/block_layout.py --fast 0 --out bench/results/block_layout.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import time

import numpy as np


def core_count_block_rows(n_rows, bytes_per_row, xp, budget_mib=None):
    """The layout before: at least one block per core (so it changed with the core count)."""
    from kgpu import _blocks

    if budget_mib is None:
        budget_mib = _blocks.DEFAULT_BLOCK_MIB.get(_blocks.backend_name(xp), 64)
    _blocks.check_working_memory(budget_mib)
    rows = int(budget_mib * 2**20) // max(1, int(bytes_per_row))
    threads = _blocks.cpu_threads()
    if _blocks.backend_name(xp) == "numpy" and n_rows >= _blocks.MIN_ROWS_TO_SHARE * threads:
        rows = min(rows, -(-n_rows // threads))
    return max(1, min(n_rows, rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--fast", default=None, help="KGPU_FAST for the run (0: array-API kernels only)")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)
    if args.fast is not None:
        os.environ["KGPU_FAST"] = args.fast

    from kgpu import KMeans, _blocks
    from kgpu._bench import machine_description, publish

    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.n, args.d)).astype(np.float32)
    init = X[rng.choice(args.n, args.k, replace=False)]
    fixed_block_rows = _blocks.block_rows
    layouts = {"fixed (now)": fixed_block_rows, "core count (before)": core_count_block_rows}

    def fit_once(block_rows):
        _blocks.block_rows = block_rows
        for module in ("kgpu._assign", "kgpu._kmeans", "kgpu._kmedoids", "kgpu._scale"):
            if module in sys.modules and hasattr(sys.modules[module], "block_rows"):
                setattr(sys.modules[module], "block_rows", block_rows)
        model = KMeans(n_clusters=args.k, init=init, n_init=1, max_iter=args.iterations, tol=0)
        started = time.perf_counter()
        model.fit(X)
        return time.perf_counter() - started

    times = {name: [] for name in layouts}
    fit_once(fixed_block_rows)  # warm-up (compilation, thread pool)
    for _ in range(args.repeats):
        for name, block_rows in layouts.items():
            times[name].append(fit_once(block_rows))
    _blocks.block_rows = fixed_block_rows

    base = statistics.median(times["core count (before)"])
    lines = [
        f"K-Means fit, {args.n:,} x {args.d} float32, k={args.k}, {args.iterations} iterations (tol=0), "
        f"median of {args.repeats}, repeats interleaved; KGPU_FAST={os.environ.get('KGPU_FAST', '1')}",
        "",
        machine_description(),
        f"{datetime.date.today().isoformat()}: `python bench/block_layout.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "Shared machine: other work ran at the same time; small ratios are noise.",
        "",
        "| layout | median s | all runs (s) | time / before |",
        "|---|---:|---|---:|",
    ]
    for name, runs in times.items():
        median = statistics.median(runs)
        lines.append(f"| {name} | {median:.3f} | {', '.join(f'{t:.2f}' for t in runs)} | {median / base:.3f} |")
    publish("\n".join(lines) + "\n", args.out, append=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
