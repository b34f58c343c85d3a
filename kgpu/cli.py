"""Command-line interface: ``kgpu demo`` (more subcommands build on the same parser)."""

from __future__ import annotations

import argparse
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kgpu", description="Centroid clustering on NumPy, CuPy and PyTorch.")
    commands = parser.add_subparsers(dest="command", required=True)
    demo = commands.add_parser("demo", help="cluster a built-in synthetic data set on the best backend present")
    demo.add_argument("--n", type=int, default=300_000, help="rows (default 300000)")
    demo.add_argument("--d", type=int, default=16, help="features (default 16)")
    demo.add_argument("--k", type=int, default=8, help="clusters (default 8)")
    demo.add_argument("--backend", default="auto", choices=["auto", "numpy", "cupy", "torch"])
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "demo":
        from ._demo import run_demo

        run_demo(args.n, args.d, args.k, backend=args.backend)
    return 0


if __name__ == "__main__":
    sys.exit(main())
