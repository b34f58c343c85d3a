"""Half-precision input against the same data in float32: fit time and peak memory.

The float16 (NumPy) and bfloat16 (PyTorch) data hold the same values as the
float32 copy they are compared with; every contender starts from the same
initial centers with ``tol=0`` and the same ``max_iter``, so they run the same
iterations. Repeats alternate between the contenders (A, B, C, A, B, C...) and
medians are reported. The peak memory added by one fit is measured apart, with
``tracemalloc`` (NumPy's allocations; PyTorch's are not traced).

    python bench/half_precision.py
    python bench/half_precision.py --repeats 5 --out bench/results/half-precision.md
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import time
import tracemalloc

import numpy as np
from sklearn.datasets import make_blobs

import kgpu
from kgpu._bench import machine_description, publish

CASES = [(200_000, 32, 16), (100_000, 128, 64)]


def interleaved(contenders: dict, repeats: int) -> dict:
    """Median seconds of every contender, the repeats interleaved."""
    times = {name: [] for name in contenders}
    for _ in range(repeats):
        for name, fit in contenders.items():
            started = time.perf_counter()
            fit()
            times[name].append(time.perf_counter() - started)
    return {name: statistics.median(values) for name, values in times.items()}


def peak_mib(fit) -> float:
    tracemalloc.start()
    try:
        fit()
        return tracemalloc.get_traced_memory()[1] / 2**20
    finally:
        tracemalloc.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--max-iter", type=int, default=20)
    parser.add_argument("--out", default=None)
    args = parser.parse_args()

    lines = [
        "| n x d, k | contender | X (MiB) | fit (s) | vs float32 | peak added (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for n, d, k in CASES:
        X, _ = make_blobs(n_samples=n, n_features=d, centers=k, cluster_std=2.0, random_state=0)
        X16 = X.astype(np.float16)
        X32 = X16.astype(np.float32)
        init = X32[:k]
        inputs = {"float32 (NumPy)": X32, "float16 (NumPy)": X16}
        try:
            import torch

            inputs["bfloat16 (PyTorch CPU)"] = torch.from_numpy(X32).to(torch.bfloat16)
            inputs["float32 (PyTorch CPU)"] = torch.from_numpy(X32.copy())
        except ImportError:
            pass

        def fit_of(data):
            return lambda: kgpu.KMeans(k, init=init, n_init=1, tol=0, max_iter=args.max_iter).fit(data)

        for data in inputs.values():  # compile and import outside the measure
            kgpu.KMeans(k, init=init, n_init=1, max_iter=2).fit(data[:5000])
        medians = interleaved({name: fit_of(data) for name, data in inputs.items()}, args.repeats)
        for name, data in inputs.items():
            itemsize = 2 if "16" in name else 4
            peak = f"{peak_mib(fit_of(data)):.1f}" if "NumPy" in name else "n/a"
            reference = medians["float32 (PyTorch CPU)" if "PyTorch" in name else "float32 (NumPy)"]
            lines.append(
                f"| {n:,} x {d}, {k} | {name} | {n * d * itemsize / 2**20:.1f} | {medians[name]:.3f} | "
                f"{medians[name] / reference:.2f}x | {peak} |"
            )
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    command = "python bench/half_precision.py" + (f" --repeats {args.repeats}" if args.repeats != 3 else "")
    report = "\n".join([
        f"Half-precision input against float32, KMeans (lloyd), median of {args.repeats} interleaved repeats",
        "",
        f"{machine_description()} (a shared machine: other jobs ran at the same time; load average {load})",
        f"{datetime.date.today()}: `{command}`",
        "",
        f"make_blobs, cluster_std=2, tol=0, max_iter={args.max_iter}, same initial centers; "
        "peak added = tracemalloc peak of one fit (NumPy allocations only)",
        "",
        *lines,
    ])
    publish(report, args.out)


if __name__ == "__main__":
    main()
