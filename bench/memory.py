"""Peak memory a K-Means fit adds on top of its data: kgpu (in memory, memory-mapped) against scikit-learn.

Each fit runs in its own subprocess: the libraries are imported and warmed
up (a small fit compiles kgpu's kernels), the data is loaded, the peak
resident set size is reset (``/proc/self/clear_refs``), and the fit's peak
(``VmHWM``) less the resident size just before it is reported, in MiB and as a
multiple of the data's size, beside the peak of the process's anonymous memory
(``RssAnon``, sampled), which leaves out the page cache of a memory-mapped
file. Linux only. The machine may be shared: memory
figures are exact per process, the seconds are not.

    python bench/memory.py                                   # 2,000,000 x 32 float32, k=256, 20 iterations
    python bench/memory.py --n 500000 --out bench/results/memory.md
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import subprocess
import sys
import tempfile

_CHILD = r"""
import json, os, sys, time, warnings
import numpy as np
warnings.simplefilter("ignore")
library, path, mode, n_clusters, iterations, init = sys.argv[1:7]
n_clusters, iterations = int(n_clusters), int(iterations)

def status(field):
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise KeyError(field)

if library == "kgpu":
    from kgpu import KMeans
    make = lambda k, it: KMeans(n_clusters=k, init=init, n_init=1, max_iter=it, tol=0, random_state=0, backend="numpy")
else:
    from sklearn.cluster import KMeans
    make = lambda k, it: KMeans(n_clusters=k, init=init, n_init=1, max_iter=it, tol=0, random_state=0, algorithm="lloyd")
warm = np.random.default_rng(1).normal(size=(5000, 8)).astype(np.float32)
make(8, 3).fit(warm)  # imports, thread pools and compiled kernels exist before the measurement
X = np.load(path, mmap_mode="r") if mode == "memmap" else np.load(path)
import threading
anonymous_peak = [status("RssAnon")]
done = threading.Event()

def sample():
    # Anonymous memory (not the page cache of a memory-mapped file), sampled.
    while not done.wait(0.005):
        anonymous_peak[0] = max(anonymous_peak[0], status("RssAnon"))

with open("/proc/self/clear_refs", "w") as clear:
    clear.write("5")  # reset the peak resident size
before, anonymous_before = status("VmRSS"), status("RssAnon")
sampler = threading.Thread(target=sample, daemon=True)
sampler.start()
started = time.perf_counter()
make(n_clusters, iterations).fit(X)
seconds = time.perf_counter() - started
done.set()
sampler.join()
print(json.dumps({"added": status("VmHWM") - before, "anonymous": anonymous_peak[0] - anonymous_before, "seconds": seconds}))
"""


def start_child(library: str, path: str, mode: str, k: int, iterations: int, init: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-c", _CHILD, library, path, mode, str(k), str(iterations), init],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )


def finish_child(child: subprocess.Popen, library: str, mode: str) -> dict:
    stdout, stderr = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"{library} {mode} failed:\n{stderr[-3000:]}")
    return json.loads(stdout.strip().splitlines()[-1])


def run_child(library: str, path: str, mode: str, k: int, iterations: int, init: str) -> dict:
    return finish_child(start_child(library, path, mode, k, iterations, init), library, mode)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=2_000_000)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--k", type=int, default=256)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--init", default="k-means++")
    parser.add_argument("--out", default=None)
    parser.add_argument(
        "--concurrent", action="store_true",
        help="run the fits at the same time (each in its own process: the memory figures do not change, the seconds do)",
    )
    args = parser.parse_args(argv)

    import numpy as np

    from kgpu._bench import machine_description, publish

    rng = np.random.default_rng(0)
    X = rng.normal(size=(args.n, args.d)).astype(np.float32)
    data_bytes = X.nbytes
    runs = [("kgpu", "memory"), ("scikit-learn", "memory"), ("kgpu", "memmap")]
    rows = []
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "X.npy")
        np.save(path, X)
        del X
        def child(library: str, mode: str) -> subprocess.Popen:
            return start_child("kgpu" if library == "kgpu" else "sklearn", path, mode, args.k, args.iterations, args.init)

        if args.concurrent:
            children = [child(library, mode) for library, mode in runs]
        for index, (library, mode) in enumerate(runs):
            measured = finish_child(children[index] if args.concurrent else child(library, mode), library, mode)
            rows.append((library, mode, measured["added"], measured["anonymous"], measured["seconds"]))

    lines = [
        f"Peak memory added by one K-Means fit: {args.n:,} x {args.d} float32 ({data_bytes / 2**20:.0f} MiB), "
        f"k={args.k}, init={args.init!r}, {args.iterations} iterations (tol=0)",
        "",
        machine_description(),
        f"{datetime.date.today().isoformat()}: `python bench/memory.py {' '.join(argv if argv is not None else sys.argv[1:])}`",
        "Each fit in its own process. *fit added*: peak RSS (VmHWM, reset before the fit) less RSS before it; "
        "for a memmap it counts the file's pages read into the page cache. *anonymous*: peak of the process's "
        "own memory (RssAnon, sampled every 5 ms) less its value before the fit. "
        "Shared machine: the seconds are noisy, the memory is not"
        + (" (the fits ran at the same time, each in its own process)." if args.concurrent else "."),
        f"Load average before: {' '.join(f'{value:.2f}' for value in load_before)}; "
        f"after: {' '.join(f'{value:.2f}' for value in os.getloadavg())}.",
        "",
        "| library | data | fit added (MiB) | x data size | anonymous (MiB) | x data size | seconds |",
        "|---|---|---:|---:|---:|---:|---:|",
    ]
    for library, mode, added, anonymous, seconds in rows:
        lines.append(
            f"| {library} | {mode} | {added / 2**20:.0f} | {added / data_bytes:.2f} | "
            f"{anonymous / 2**20:.0f} | {anonymous / data_bytes:.2f} | {seconds:.1f} |"
        )
    publish("\n".join(lines) + "\n", args.out, append=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
