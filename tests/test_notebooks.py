"""The example notebooks run top to bottom (small size) on CPU."""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
NOTEBOOKS = sorted(EXAMPLES.glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    monkeypatch.setenv("MOLOPS_EXAMPLE_SIZE", "small")  # the kernel inherits it
    notebook = nbformat.read(path, as_version=4)
    # The per-cell timeout only guards against a hung kernel: the screening cell (Dask workers,
    # docking, property prediction) takes minutes on a 2-core machine and more when it is loaded.
    NotebookClient(notebook, timeout=1200, kernel_name="python3",
                   resources={"metadata": {"path": str(EXAMPLES)}}).execute()
    errors = [o for cell in notebook.cells for o in cell.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    assert os.environ["MOLOPS_EXAMPLE_SIZE"] == "small"
