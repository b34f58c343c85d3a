"""Run ``notebooks/backends.ipynb`` top to bottom and store it with its outputs.

Usage::

    python notebooks/execute.py [--size full|small] [--notebook PATH]

The kernel imports kgpu from this checkout (its root is put first on
``PYTHONPATH``), runs with ``KGPU_NOTEBOOK_SIZE`` set to ``--size``, and the
notebook is replaced only once every cell has run (a failed run leaves the
stored notebook as it was). ``make notebook`` runs this at full size.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", default="full", choices=["full", "small"])
    parser.add_argument("--notebook", default=str(ROOT / "notebooks" / "backends.ipynb"))
    parser.add_argument("--timeout", type=int, default=3600, help="seconds one cell may take")
    args = parser.parse_args()

    import nbclient
    import nbformat

    from kgpu._io import atomic_path

    os.environ["KGPU_NOTEBOOK_SIZE"] = args.size
    os.environ["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    path = Path(args.notebook)
    notebook = nbformat.read(path, as_version=4)
    started = time.perf_counter()
    nbclient.NotebookClient(
        notebook, timeout=args.timeout, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}},
    ).execute()
    seconds = time.perf_counter() - started
    with atomic_path(path) as temporary:
        nbformat.write(notebook, temporary)
    print(f"{path}: executed at size {args.size} in {seconds:.0f} s")


if __name__ == "__main__":
    main()
