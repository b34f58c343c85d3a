"""Code in README.md runs as written."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"


def _python_block_after(heading: str) -> str:
    """The first ```python block after ``heading`` in the README."""
    text = README.read_text()
    rest = text[text.index(heading):]
    start = rest.index("```python\n") + len("```python\n")
    return rest[start:rest.index("```", start)]


@pytest.mark.slow
def test_dask_example_runs_with_the_dask_extra(tmp_path):
    pytest.importorskip("dask.array")
    pytest.importorskip("distributed")
    script = tmp_path / "example.py"
    script.write_text(_python_block_after("### Dask arrays"))
    root = Path(__file__).resolve().parents[1]
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=tmp_path, timeout=600,
                          env={**__import__("os").environ, "PYTHONPATH": str(root)})
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.splitlines()[0] == "(8, 16)"
