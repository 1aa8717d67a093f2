"""The tutorial notebooks run from top to bottom (at small sizes) and are stored without outputs.

Each notebook has one cell tagged ``parameters``; the test inserts a cell after it that sets
smaller sizes (papermill's convention), and runs the notebook in a temporary directory.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

ROOT = Path(__file__).resolve().parents[2]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
SMALL = {
    "01_quickstart_release": "N_ROWS = 1500",
    "02_audit_another_tool": "N_ROWS = 1200\nN_TARGETS = 300",
    "03_budget_and_compliance": "N_ROWS = 1000",
    "05_release_evidence": "N_ROWS = 1500\nROUNDS = 2",
    "04_private_text": ("N_RECORDS = 300\nEPOCHS = 1.0\nPRETRAINED = None\n"
                        "SCRATCH = dict(d_model=32, n_layers=1, n_heads=2)"),
}


def test_every_notebook_is_listed():
    assert {p.stem for p in NOTEBOOKS} <= set(SMALL)
    assert len(NOTEBOOKS) >= 3


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_outputs_are_stripped(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1, f"{path.name} needs one cell tagged 'parameters'"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs(path, tmp_path, monkeypatch):
    nb = nbformat.read(path, as_version=4)
    where = next(i for i, c in enumerate(nb.cells)
                 if "parameters" in c.metadata.get("tags", []))
    nb.cells.insert(where + 1, nbformat.v4.new_code_cell(SMALL[path.stem]))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(ROOT), os.environ.get(
        "PYTHONPATH", "")]))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    client = nbclient.NotebookClient(nb, timeout=120, kernel_name="python3",
                                     resources={"metadata": {"path": str(tmp_path)}})
    client.execute()
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
              if o.output_type == "error"]
    assert not errors
    assert (tmp_path / "notebook-output").is_dir()
