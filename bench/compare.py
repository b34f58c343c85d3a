"""kgpu K-Means against scikit-learn (lloyd), FAISS and cuML where installed.

Same data, same initial centers, same number of iterations (tol=0), repeats
interleaved in one process; prints medians and ratios as a Markdown table.

    python bench/compare.py                       # 1,000,000 x 32 float32, k=64, 20 iterations
    python bench/compare.py --n 200000 --repeats 3 --out bench/results/cpu.md
"""

from __future__ import annotations

import argparse
import datetime
import sys

from kgpu._bench import compare, format_table, machine_description, publish


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=1_000_000)
    parser.add_argument("--d", type=int, default=32)
    parser.add_argument("--k", type=int, default=64)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backends", nargs="*", default=None, help="kgpu backends (default: all present)")
    parser.add_argument("--out", default=None, help="also write the table (with machine and command) here")
    args = parser.parse_args(argv)
    rows = compare(args.n, args.d, args.k, args.iterations, args.repeats, args.backends)
    header = (
        f"K-Means, {args.n:,} x {args.d} float32, k={args.k}, {args.iterations} iterations, "
        f"median of {args.repeats}\n\n{machine_description()}\n"
        f"{datetime.date.today().isoformat()}: `python bench/compare.py {' '.join(argv if argv is not None else sys.argv[1:])}`\n"
    )
    table = format_table(rows, header)
    publish(table, args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
