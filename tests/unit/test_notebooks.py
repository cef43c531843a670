"""The analyst notebooks are there and committed without outputs (that they run from top to bottom against a
loaded dataset: `tests/integration/test_notebooks.py`)."""

from __future__ import annotations

import nbformat

from tests.support import ROOT

NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_there_are_notebooks_and_they_are_committed_without_outputs():
    assert {p.stem for p in NOTEBOOKS} >= {"overview", "reconciliation"}
    for path in NOTEBOOKS:
        notebook = nbformat.read(path, as_version=4)
        for cell in notebook.cells:
            if cell.cell_type == "code":
                assert cell.outputs == [] and cell.execution_count is None, f"{path.name} has outputs"
