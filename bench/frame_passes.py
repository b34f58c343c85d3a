"""The fixed costs of a K-Means fit: the working frame's passes compiled or as array-API code.

A one-iteration fit from fixed initial centers is almost all fixed cost:
input validation (finiteness), the working frame (largest ``|x|``, the
weighted mean, the largest ``|x - origin|``), the working copy, one Lloyd
step and the final assignment. Each fit runs twice per repeat, interleaved:
with the compiled kernels of :mod:`kgpu._kernels.cpu_numba_frame`, and with
their guards turned off so that the array-API references run (Lloyd's own
kernels stay compiled in both). NumPy arrays and torch CPU tensors, the same
data. Medians of the repeats after a warm-up.

    python bench/frame_passes.py --repeats 5 --out bench/results/frame-passes-2core-<date>.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import time

import numpy as np

SHAPES = ((60_000, 784, 10), (1_000_000, 32, 64))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=None)
    args = parser.parse_args(argv)

    import torch

    from kgpu import KMeans
    from kgpu._kernels import cpu_numba_frame

    compiled_guard = cpu_numba_frame._is_matrix
    started = datetime.datetime.now(datetime.timezone.utc)
    load_before = os.getloadavg()
    rows = []
    for n, d, k in SHAPES:
        X = np.random.default_rng(0).standard_normal((n, d)).astype(np.float32)
        inputs = {"NumPy": (X, X[:k].copy()), "torch CPU": (torch.from_numpy(X.copy()), torch.from_numpy(X[:k].copy()))}
        times: dict[tuple[str, bool], list[float]] = {}
        for repeat in range(args.repeats + 1):  # the first is a warm-up
            for name, (data, init) in inputs.items():
                for compiled in (True, False):
                    cpu_numba_frame._is_matrix = compiled_guard if compiled else (lambda X: False)
                    begin = time.perf_counter()
                    KMeans(k, init=init, n_init=1, max_iter=1, tol=0).fit(data)
                    if repeat:
                        times.setdefault((name, compiled), []).append(time.perf_counter() - begin)
        cpu_numba_frame._is_matrix = compiled_guard
        for name in inputs:
            fast = statistics.median(times[(name, True)])
            slow = statistics.median(times[(name, False)])
            rows.append(f"| {n:,} × {d}, k={k} | {name} | {fast * 1e3:.1f} ms | {slow * 1e3:.1f} ms | {fast / slow:.2f} |")
    load_after = os.getloadavg()
    command = "python bench/frame_passes.py " + " ".join(argv if argv is not None else __import__("sys").argv[1:])
    text = "\n".join([
        f"{platform.machine()}, {os.cpu_count()} CPU cores, NumPy {np.__version__}, torch {torch.__version__}",
        f"{started:%Y-%m-%d %H:%M} UTC: `{command.strip()}`",
        f"Load average (1, 5, 15 min) before: {' '.join(f'{v:.2f}' for v in load_before)}; "
        f"after: {' '.join(f'{v:.2f}' for v in load_after)}.",
        "",
        f"One-iteration K-Means fits (float32, fixed initial centers, tol=0), median of {args.repeats} interleaved "
        "repeats after a warm-up: the working frame's passes compiled against their array-API references.",
        "",
        "| data | input | compiled passes | array-API passes | ratio |",
        "|---|---|---:|---:|---:|",
        *rows,
    ])
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
