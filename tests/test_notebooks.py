"""Every notebook is committed without outputs and executes headless (WORKBENCH_FAST=1) with nbclient."""
from __future__ import annotations

import os
import time
from pathlib import Path

import nbformat
import pytest

NOTEBOOKS = sorted((Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))
VIEW_NAMES = ("Workbench(", "LayerSweepView(", "ProjectionExplorer(", "DirectionPicker(", "SteeringPanel(",
              "ClipComparer(", "TraceView(", "PatchingView(", "FeatureDashboard(", "EvaluationView(",
              "ListeningTest(")
TIMEOUTS_S = {"01_quickstart": 240}  # per notebook, generous for a loaded 2-core CI machine


def test_there_are_notebooks():
    assert [p.stem for p in NOTEBOOKS][:1] == ["01_quickstart"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, f"{path.name}: clear outputs before committing"
    assert "widgets" not in nb.metadata, f"{path.name}: widget state saved (~5 MB of plotly.js): clear it"
    assert any("parameters" in c.metadata.get("tags", ()) for c in nb.cells), f"{path.name}: no parameters cell"


@pytest.mark.slow
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("WORKBENCH_FAST", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' activation stores land in pytest's tmp
    # one intra-op thread: on a shared 2-core machine two threads made tiny-model generation 15-36x slower
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    monkeypatch.setenv("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "1"))
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=TIMEOUTS_S.get(path.stem, 300), kernel_name="python3",
                            store_widget_state=False, resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    print(f"{path.name}: executed in {seconds:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    views = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
             and o["data"].get("text/plain", "").startswith(VIEW_NAMES)]
    # every displayed view also carries a static rendering for viewers without a kernel
    assert all("text/html" in o["data"] for o in views)
