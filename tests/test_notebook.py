"""The benchmark notebook runs top to bottom at its small size and shows what it promises."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "backends.ipynb"


def _outputs(notebook, kind):
    """Every output of one MIME type (``"text/markdown"``, ``"image/png"``...), in order."""
    return [
        output["data"][kind]
        for cell in notebook.cells
        if cell.cell_type == "code"
        for output in cell.get("outputs", [])
        if kind in output.get("data", {})
    ]


def test_notebook_is_stored_with_the_outputs_of_a_full_run():
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    parameters = [cell for cell in code_cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1 and "KGPU_NOTEBOOK_SIZE" in parameters[0].source
    # Every cell ran, in order, in one kernel, and none failed.
    assert [cell.execution_count for cell in code_cells] == list(range(1, len(code_cells) + 1))
    assert not [output for cell in code_cells for output in cell.outputs if output.output_type == "error"]
    printed = "".join(output.get("text", "") for cell in code_cells for output in cell.outputs)
    assert "(SIZE='full')" in printed and re.search(r"run \d{4}-\d\d-\d\d \d\d:\d\d", printed)
    assert "CPU cores" in printed  # the machine
    assert len(_outputs(notebook, "image/png")) >= 3
    tables = _outputs(notebook, "text/markdown")
    timing = [table for table in tables if "| implementation | device | median (s) |" in table]
    assert timing and "1,000,000 x 32" in timing[0] and "median of 3" in timing[0]
    assert any("relative difference to kgpu[numpy]" in table for table in tables)
    gpu = [table for table in tables if "GPU" in table and "bench/results" in table]
    assert len(gpu) == 1
    text = "".join(cell.source for cell in notebook.cells)
    assert "SPEC" not in text and "SPEC" not in "".join(tables)


@pytest.mark.slow
def test_notebook_executes_at_small_size(tmp_path, monkeypatch):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    pytest.importorskip("ipykernel")
    pytest.importorskip("matplotlib")
    # The kernel inherits this environment.
    monkeypatch.setenv("KGPU_NOTEBOOK_SIZE", "small")
    monkeypatch.delenv("MPLBACKEND", raising=False)
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    client = nbclient.NotebookClient(
        notebook, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}},
    )
    client.execute()

    figures = _outputs(notebook, "image/png")
    assert len(figures) >= 3  # time vs n, time vs k, speed-up bars
    tables = _outputs(notebook, "text/markdown")
    timing = [table for table in tables if "| implementation | device | median (s) |" in table]
    assert timing and "| kgpu[numpy] |" in timing[0] and "| scikit-learn |" in timing[0]
    parity = [table for table in tables if "relative difference to kgpu[numpy]" in table]
    assert len(parity) == 1
    rows = [line.split("|")[1:-1] for line in parity[0].splitlines()[2:]]
    kgpu_rows = [[cell.strip() for cell in row] for row in rows if row[0].strip().startswith("kgpu[")]
    assert {row[1] for row in kgpu_rows} == {"float32", "float64"}
    # Every kgpu backend present matches NumPy within the parity tolerance.
    assert kgpu_rows and all(row[-1] == "yes" for row in kgpu_rows), parity[0]
