"""Start-up time of the ``kgpu`` command: ``--version``, ``--help`` and ``import kgpu``.

Each command runs in a fresh interpreter ``--repeats`` times, interleaved, and
the median wall time is reported, with the modules that take the longest to
import under ``python -X importtime -m kgpu --version``. The target is under
0.3 s for ``--version`` and ``--help``. Python's own start-up is measured too
(``python -c pass``), since no package can go below it.

Usage::

    python bench/startup.py [--repeats 15] [--baseline DIR] [--out bench/results/startup-DATE.md]

``--baseline DIR`` times a second kgpu source tree (e.g. an older commit
unpacked with ``git archive``) in the same loop, interleaved, for a ratio.

This is a benchmark, not a test: the machine it runs on may be busy.
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

COMMANDS = {
    "python -c pass": [sys.executable, "-c", "pass"],
    "python -c 'import kgpu'": [sys.executable, "-c", "import kgpu"],
    "kgpu --version": [sys.executable, "-m", "kgpu", "--version"],
    "kgpu --help": [sys.executable, "-m", "kgpu", "--help"],
    "kgpu fit --help": [sys.executable, "-m", "kgpu", "fit", "--help"],
}


def time_commands(repeats: int, trees: dict[str, str]) -> dict[tuple[str, str], list[float]]:
    """Seconds of every command for every source tree (name -> directory put first on PYTHONPATH)."""
    seconds: dict[tuple[str, str], list[float]] = {(tree, name): [] for tree in trees for name in COMMANDS}
    for _ in range(repeats):
        for tree, directory in trees.items():
            env = {**os.environ, "PYTHONPATH": directory}
            for name, argv in COMMANDS.items():
                started = time.perf_counter()
                subprocess.run(argv, check=True, capture_output=True, env=env)
                seconds[(tree, name)].append(time.perf_counter() - started)
    return seconds


def slowest_imports(directory: str, count: int = 8) -> list[tuple[int, str]]:
    """(cumulative microseconds, module) of the slowest top-level imports of ``kgpu --version``."""
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "kgpu", "--version"],
                          check=True, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": directory})
    rows = []
    for line in done.stderr.splitlines():
        if not line.startswith("import time:") or "cumulative" in line:
            continue
        _, cumulative_us, name = line.removeprefix("import time:").split("|")
        if not name.startswith("  "):  # one space of padding: a top-level import
            rows.append((int(cumulative_us), name.strip()))
    return sorted(rows, reverse=True)[:count]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--baseline", default=None, help="another kgpu source tree to time side by side")
    parser.add_argument("--out", default=None)
    args = parser.parse_args()
    root = str(Path(__file__).resolve().parents[1])
    trees = {"this tree": root, **({"baseline": str(Path(args.baseline).resolve())} if args.baseline else {})}
    seconds = time_commands(args.repeats, trees)
    lines = [
        f"# kgpu start-up, median of {args.repeats} fresh interpreters",
        "",
        f"{platform.machine()}, {len(os.sched_getaffinity(0))} CPU cores (shared, busy machine: expect noise), "
        f"Python {platform.python_version()}",
        f"{datetime.date.today().isoformat()}: `python bench/startup.py {' '.join(sys.argv[1:])}`",
        "",
    ]
    if args.baseline:
        lines += ["| command | median (s) | min (s) | baseline median (s) | baseline / this tree |",
                  "|---|---:|---:|---:|---:|"]
        for name in COMMANDS:
            mine, base = statistics.median(seconds[("this tree", name)]), statistics.median(seconds[("baseline", name)])
            lines.append(f"| `{name}` | {mine:.3f} | {min(seconds[('this tree', name)]):.3f} | {base:.3f} | {base / mine:.1f}x |")
    else:
        lines += ["| command | median (s) | min (s) | max (s) |", "|---|---:|---:|---:|"]
        for name in COMMANDS:
            times = seconds[("this tree", name)]
            lines.append(f"| `{name}` | {statistics.median(times):.3f} | {min(times):.3f} | {max(times):.3f} |")
    lines += ["", "Slowest imports of `python -X importtime -m kgpu --version` (cumulative):", "",
              "| module | ms |", "|---|---:|"]
    lines += [f"| {name} | {microseconds / 1000:.1f} |" for microseconds, name in slowest_imports(root)]
    report = "\n".join(lines)
    print(report)
    if args.out:
        with open(args.out, "w") as handle:
            handle.write(report + "\n")


if __name__ == "__main__":
    main()
