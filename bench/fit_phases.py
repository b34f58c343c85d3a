"""A K-Means fit phase by phase, in two kgpu source trees, interleaved.

``KMeans(init=<array>, n_init=1, tol=0, algorithm="lloyd").fit(X)`` on
float32 data, with a timer around each piece the fit calls:

- validation: ``check_data`` (scikit-learn's ``validate_data``, finiteness);
- init array: the initial centers' checks and conversion;
- working frame + copy: the largest ``|x|``, the weighted mean, the
  working copy ``[x - origin, 1]`` (and the finiteness check where the frame
  makes it);
- Lloyd steps: the fused step of every iteration;
- final assignment: the E-step against the returned centers, with the
  inertia;
- rest: everything else (per-iteration center update, empty-cluster and
  tolerance checks, attributes).

Each measurement runs in a fresh process importing kgpu from the tree named,
after a warm-up fit; trees alternate (A, B, A, B...). Medians of wall and of
process CPU seconds (all threads; on a shared machine CPU time does not count
the time other processes hold the cores).

    python bench/fit_phases.py --a /path/to/baseline --b . --shapes 60000x784x10x20 4000000x8x8x20
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys

_CHILD = r"""
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
import kgpu._base as base, kgpu._lloyd as lloyd, kgpu._scale as scale
from kgpu import KMeans

n, d, k, iterations, repeats = (int(v) for v in sys.argv[1:6])
X = np.random.default_rng(0).normal(size=(n, d)).astype(np.float32)
centers = X[:k].copy()
spent = {}


def timed(phase, function):
    def wrapper(*args, **kwargs):
        started, cpu = time.perf_counter(), time.process_time()
        try:
            return function(*args, **kwargs)
        finally:
            wall, used = spent.setdefault(phase, [0.0, 0.0])
            spent[phase] = [wall + time.perf_counter() - started, used + time.process_time() - cpu]
    return wrapper


base.check_data = timed("validation", base.check_data)
KMeans._explicit_init_centers = timed("init array", KMeans._explicit_init_centers)
scale.fit_frame_and_working_copy = timed("working frame + copy", scale.fit_frame_and_working_copy)
lloyd.assign_and_accumulate = timed("Lloyd steps", lloyd.assign_and_accumulate)
lloyd.assign = timed("final assignment", lloyd.assign)


def fit():
    return KMeans(k, init=centers, n_init=1, max_iter=iterations, tol=0, algorithm="lloyd", backend="numpy").fit(X)


fit()
runs = []
for _ in range(repeats):
    spent.clear()
    started, cpu = time.perf_counter(), time.process_time()
    model = fit()
    total = [time.perf_counter() - started, time.process_time() - cpu]
    phases = dict(spent)
    phases["rest"] = [total[i] - sum(value[i] for value in spent.values()) for i in (0, 1)]
    phases["whole fit"] = total
    runs.append(phases)
print(json.dumps({"runs": runs, "inertia": model.inertia_, "n_iter": model.n_iter_}))
"""

PHASES = ("validation", "init array", "working frame + copy", "Lloyd steps", "final assignment", "rest", "whole fit")


def parse_shape(text: str) -> tuple[int, int, int, int]:
    n, d, k, iterations = (int(part) for part in text.lower().split("x"))
    return n, d, k, iterations


def run(tree: str, shape: tuple[int, int, int, int], repeats: int) -> dict:
    from kgpu._bench import run_in_tree

    return run_in_tree(tree, _CHILD, [*(str(v) for v in shape), str(repeats)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="baseline source tree")
    parser.add_argument("--b", required=True, help="contender source tree")
    parser.add_argument("--shapes", nargs="*", type=parse_shape, default=[(60_000, 784, 10, 20), (4_000_000, 8, 8, 20)])
    parser.add_argument("--processes", type=int, default=3, help="processes per tree and shape (interleaved)")
    parser.add_argument("--repeats", type=int, default=3, help="fits per process after the warm-up")
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    from kgpu._bench import machine_description, publish

    lines = [
        f"K-Means fit from given centers, phase by phase, float32, tol=0: tree A against tree B "
        f"({args.processes} processes each, interleaved, {args.repeats} fits per process; medians in ms)",
        "",
        machine_description(),
        f"{datetime.date.today().isoformat()}: `python bench/fit_phases.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}",
        "",
        "| n x d, k, iterations | phase | A wall | B wall | B - A wall | A CPU | B CPU | B - A CPU |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for shape in args.shapes:
        found: dict[str, list[dict]] = {"A": [], "B": []}
        for _ in range(args.processes):
            found["A"].append(run(args.a, shape, args.repeats))
            found["B"].append(run(args.b, shape, args.repeats))
        inertias = {tree: {result["inertia"] for result in results} for tree, results in found.items()}
        n, d, k, iterations = shape
        for phase in PHASES:
            cells = []
            for index in (0, 1):
                a = statistics.median(r[phase][index] for result in found["A"] for r in result["runs"]) * 1e3
                b = statistics.median(r[phase][index] for result in found["B"] for r in result["runs"]) * 1e3
                cells += [f"{a:.1f}", f"{b:.1f}", f"{b - a:+.1f}"]
            lines.append(f"| {n:,} x {d}, k={k}, {iterations} | {phase} | {' | '.join(cells)} |")
        same = "same" if inertias["A"] == inertias["B"] and len(inertias["A"]) == 1 else "DIFFERENT"
        lines.append(f"| | inertia A / B | {same}: {sorted(inertias['A'])} / {sorted(inertias['B'])} | | | | | |")
    lines.append(f"\nload average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    publish("\n".join(lines) + "\n", args.out, append=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
