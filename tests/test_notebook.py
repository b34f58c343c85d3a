"""The benchmark notebook runs top to bottom at its small size and shows what it promises."""

from __future__ import annotations

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


def test_notebook_is_stored_without_outputs():
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(notebook)
    code_cells = [cell for cell in notebook.cells if cell.cell_type == "code"]
    assert code_cells
    assert all(cell.outputs == [] and cell.execution_count is None for cell in code_cells)
    parameters = [cell for cell in code_cells if "parameters" in cell.metadata.get("tags", [])]
    assert len(parameters) == 1 and "KGPU_NOTEBOOK_SIZE" in parameters[0].source


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
