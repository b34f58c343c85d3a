"""Whole K-Means fits of two kgpu source trees, interleaved: did a change make fits slower?

Each measurement is one fit in a fresh subprocess that imports kgpu from the
tree named (``PYTHONPATH``), warms up (imports, thread pool, compiled
kernels) and then times, on the same data:

- *seeding + Lloyd*: ``KMeans(init="k-means++", n_init=1, max_iter=it, tol=0)``;
- *Lloyd*: the same fit from fixed initial centers (the first ``k`` rows).

Runs alternate between the trees (A, B, A, B, ...) so that a shared, noisy
machine slows both alike; medians are reported with the ratio B / A.

    python bench/fit_ab.py --a /path/to/baseline/tree --b . --shapes 1000000x32x64x20 4000000x8x8x20
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import sys
import tempfile

_CHILD = r"""
import json, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
from kgpu import KMeans
path, k, iterations = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
KMeans(8, n_init=1, max_iter=3, random_state=0).fit(np.random.default_rng(1).normal(size=(5000, 8)).astype(np.float32))
X = np.load(path)
started, cpu = time.perf_counter(), time.process_time()
seeded = KMeans(k, init="k-means++", n_init=1, max_iter=iterations, tol=0, random_state=0, backend="numpy").fit(X)
seeding_and_lloyd, seeding_and_lloyd_cpu = time.perf_counter() - started, time.process_time() - cpu
started, cpu = time.perf_counter(), time.process_time()
KMeans(k, init=X[:k], n_init=1, max_iter=iterations, tol=0, backend="numpy").fit(X)
lloyd, lloyd_cpu = time.perf_counter() - started, time.process_time() - cpu
print(json.dumps({"seeding_and_lloyd": seeding_and_lloyd, "lloyd": lloyd, "seeding_and_lloyd_cpu": seeding_and_lloyd_cpu,
                  "lloyd_cpu": lloyd_cpu, "inertia": seeded.inertia_}))
"""


def parse_shape(text: str) -> tuple[int, int, int, int]:
    n, d, k, iterations = (int(part) for part in text.lower().split("x"))
    return n, d, k, iterations


def run(tree: str, path: str, k: int, iterations: int) -> dict:
    from kgpu._bench import run_in_tree

    return run_in_tree(tree, _CHILD, [path, str(k), str(iterations)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--a", required=True, help="baseline source tree")
    parser.add_argument("--b", required=True, help="contender source tree")
    parser.add_argument("--shapes", nargs="*", type=parse_shape, default=[(1_000_000, 32, 64, 20), (4_000_000, 8, 8, 20)])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import numpy as np

    from kgpu._bench import machine_description, publish

    lines = [
        "Whole K-Means fits, float32, tol=0: tree A against tree B, runs interleaved (A, B, A, B...), "
        f"median of {args.repeats}",
        "",
        machine_description(),
        f"{datetime.date.today().isoformat()}: `python bench/fit_ab.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        f"load average before: {' '.join(f'{value:.2f}' for value in os.getloadavg())}",
        "",
        "Wall seconds, and the CPU seconds of the process (all threads): on a shared machine the CPU time "
        "does not count the time other processes hold the cores.",
        "",
        "| n x d, k, iterations | what | A (s) | B (s) | B / A | A CPU (s) | B CPU (s) | B / A CPU | same inertia |",
        "|---|---|---:|---:|---:|---:|---:|---:|---|",
    ]
    with tempfile.TemporaryDirectory() as folder:
        for n, d, k, iterations in args.shapes:
            path = os.path.join(folder, f"X-{n}-{d}.npy")
            np.save(path, np.random.default_rng(0).normal(size=(n, d)).astype(np.float32))
            runs: dict[str, list[dict]] = {"A": [], "B": []}
            for _ in range(args.repeats):
                runs["A"].append(run(args.a, path, k, iterations))
                runs["B"].append(run(args.b, path, k, iterations))
            same = runs["A"][0]["inertia"] == runs["B"][0]["inertia"]
            for what, key in (("k-means++ seeding + Lloyd", "seeding_and_lloyd"), ("Lloyd from given centers", "lloyd")):
                a = statistics.median(run[key] for run in runs["A"])
                b = statistics.median(run[key] for run in runs["B"])
                a_cpu = statistics.median(run[key + "_cpu"] for run in runs["A"])
                b_cpu = statistics.median(run[key + "_cpu"] for run in runs["B"])
                lines.append(
                    f"| {n:,} x {d}, k={k}, {iterations} | {what} | {a:.3f} | {b:.3f} | {b / a:.3f} "
                    f"| {a_cpu:.3f} | {b_cpu:.3f} | {b_cpu / a_cpu:.3f} | {same} |"
                )
    lines.append(f"\nload average after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}")
    publish("\n".join(lines) + "\n", args.out, append=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
