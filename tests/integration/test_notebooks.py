"""The analyst notebooks run from top to bottom against a freshly loaded dataset of both providers (that they
are committed without outputs: `tests/unit/test_notebooks.py`)."""

from __future__ import annotations

import duckdb
import nbformat
import pytest
from nbclient import NotebookClient

from tests.support import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.fixture
def loaded_database(loaded_warehouses):
    """The session's warehouse loaded from both providers' sandboxes (the notebooks only read it)."""
    path = loaded_warehouses.database("both")
    with duckdb.connect(str(path), read_only=True) as con:
        providers = {r[0] for r in con.execute("SELECT DISTINCT provider FROM accounting_raw.invoices").fetchall()}
    assert providers == {"panora", "rootfi"}
    return path


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs_top_to_bottom(path, loaded_database, monkeypatch):
    monkeypatch.setenv("ACCOUNTING_DUCKDB", str(loaded_database))
    notebook = nbformat.read(path, as_version=4)
    client = NotebookClient(
        notebook, timeout=120, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    )
    client.execute()  # raises CellExecutionError, naming the cell, on any error
    outputs = [o for cell in notebook.cells if cell.cell_type == "code" for o in cell.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert any(o.output_type == "display_data" and "image/png" in o.get("data", {}) for o in outputs), "no chart drawn"
