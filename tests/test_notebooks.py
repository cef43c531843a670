"""The analyst notebooks run from top to bottom against a freshly loaded dataset of both providers, and are
committed without outputs."""

from __future__ import annotations

from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).parents[1] / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks_and_they_are_committed_without_outputs():
    assert {p.stem for p in NOTEBOOKS} >= {"overview", "reconciliation"}
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs"


@pytest.fixture(scope="module")
def loaded_database(tmp_path_factory):
    """One freshly loaded warehouse, fed by both providers' sandboxes, for every notebook."""
    from sandbox.panora import PanoraSandbox, Settings, Store, seed_connections
    from sandbox.rootfi import RootfiSandbox
    from sandbox.rootfi import Settings as RootfiSettings
    from tests.support import Warehouse

    root = tmp_path_factory.mktemp("notebooks")
    with (
        PanoraSandbox(Store(seed_connections()), Settings(rate_limit=None)) as sandbox,
        RootfiSandbox(settings=RootfiSettings(rate_limit=None)) as rootfi,
    ):
        warehouse = Warehouse(root, sandbox, rootfi)
        assert warehouse.load(transform=False).status == "ok"
        summary = warehouse.load_rootfi()
    assert summary.status == "ok" and summary.models
    assert {r[0] for r in warehouse.query("SELECT DISTINCT provider FROM accounting_raw.invoices")} == {
        "panora",
        "rootfi",
    }
    return root / "warehouse.duckdb"


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
