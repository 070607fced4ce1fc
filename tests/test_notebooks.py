"""Every notebook is committed without outputs and executes headless (WORKBENCH_FAST=1) with nbclient; every
finding it shows is backed by the numbers it was computed from (`workbench.analysis.findings.check`)."""
from __future__ import annotations

import fnmatch
import json
import os
import time
from pathlib import Path

import nbformat
import pytest

from workbench.analysis.findings import check_notebook

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
# each notebook that passes is saved here with its outputs; the documentation site renders these copies (make docs)
EXECUTED_DIR = ROOT / "test-artifacts" / "notebooks"
VIEW_NAMES = ("Workbench(", "LayerSweepView(", "ProjectionExplorer(", "DirectionPicker(", "SteeringPanel(",
              "ClipComparer(", "TraceView(", "PatchingView(", "FeatureDashboard(", "EvaluationView(",
              "ListeningTest(")
# nbclient's limit per cell, generous for a loaded 2-core CI machine (four jobs sharing it made the notebooks'
# slowest cells 3-4x slower); pytest's own limit for a whole notebook is NOTEBOOK_TIMEOUT_S
CELL_TIMEOUT_S = 900
NOTEBOOK_TIMEOUT_S = 2400
# (kind, subject) of the findings a notebook must show, each computed in its run (it may show more)
EXPECTED_FINDINGS = {
    "01_quickstart": {("depth", "dynamics"), ("depth", "brightness"), ("depth", "genre")},
    "02_probe_inspection": {("depth", "genre (generated clips)"), ("depth", "genre"), ("depth", "dynamics"),
                            ("depth", "brightness")},
    "03_steering_and_fusion": {("verdict", "genre -> rock"), ("verdict", "dynamics (constant) -> crescendo"),
                               ("verdict", "dynamics (ramp) -> crescendo")},
    "06_causal_inspection": {("layers", "genre")},
    "08_evaluation": {("verdict", f"genre, class_means -> {g}") for g in ("classical", "electronic", "rock", "jazz")},
    # the feature's number depends on the SAE's training: a pattern (the notebook once silently steered no feature
    # when its label search stopped matching)
    "07_features": {("verdict", "genre, feature *")},
}


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
@pytest.mark.timeout(NOTEBOOK_TIMEOUT_S)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_executes(path, tmp_path, monkeypatch):
    from nbclient import NotebookClient

    monkeypatch.setenv("WORKBENCH_FAST", "1")
    monkeypatch.setenv("TMPDIR", str(tmp_path))  # the notebooks' activation stores land in pytest's tmp
    # one intra-op thread: on a shared 2-core machine two threads made tiny-model generation 15-36x slower
    monkeypatch.setenv("OMP_NUM_THREADS", os.environ.get("OMP_NUM_THREADS", "1"))
    monkeypatch.setenv("HF_HUB_OFFLINE", os.environ.get("HF_HUB_OFFLINE", "1"))
    # no progress bars: without widget state a saved bar is its first frame ("0/24"), which the docs site would show
    monkeypatch.setenv("TQDM_DISABLE", "1")
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3",
                            store_widget_state=False, resources={"metadata": {"path": str(path.parent)}})
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    print(f"{path.name}: executed in {seconds:.1f} s")
    errors = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if o.output_type == "error"]
    assert not errors
    assert_findings_backed(nb, path.stem)
    views = [o for c in nb.cells if c.cell_type == "code" for o in c.outputs
             if "application/vnd.jupyter.widget-view+json" in o.get("data", {})
             and o["data"].get("text/plain", "").startswith(VIEW_NAMES)]
    # every displayed view also carries a static rendering for viewers without a kernel
    assert all("text/html" in o["data"] for o in views)
    EXECUTED_DIR.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, EXECUTED_DIR / path.name)


def assert_findings_backed(nb, stem: str) -> None:
    """Every finding an executed notebook shows is the one its numbers give, and the expected ones are there."""
    found, problems = check_notebook(nb)
    assert not problems, f"{stem}: findings its numbers do not back:\n" + "\n".join(problems)
    missing = {(kind, subject) for kind, subject in EXPECTED_FINDINGS.get(stem, set())
               if not any(f.kind == kind and fnmatch.fnmatchcase(f.subject, subject) for f in found)}
    assert not missing, f"{stem}: no computed finding for {sorted(missing)} (shown: {[f.subject for f in found]})"
    for finding in found:
        print(f"{finding.claim:>22}  {finding.sentence}")


def test_a_claim_its_numbers_do_not_back_fails_the_notebook_check():
    """The check above on a notebook that printed "beyond random" over a random push's numbers."""
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    from workbench.analysis.findings import verdict_finding

    numbers = dict(effect=0.3, effect_ci=[0.0, 0.5], random_p95=0.38, p_value=0.2, order_rate=0.6, collapsed_share=0.5,
                   off_target={}, beyond_random=False, strength=0.25)
    honest = verdict_finding("genre", "rock", numbers, "P(target)")
    others = [new_output("display_data", data=verdict_finding(f"dynamics ({push})", "crescendo", numbers, "dB")
                         ._repr_mimebundle_()) for push in ("constant", "ramp")]  # the notebook's other findings
    nb = new_notebook(cells=[new_code_cell("", outputs=[new_output("display_data", data=honest._repr_mimebundle_())]),
                             new_code_cell("", outputs=others)])
    assert_findings_backed(nb, "03_steering_and_fusion")
    forged = dict(honest.record(), claim="beyond_random")
    nb.cells[0].outputs = [new_output("stream", name="stdout", text="FINDING: " + json.dumps(forged) + "\n")]
    with pytest.raises(AssertionError, match="claims 'beyond_random', its numbers say 'not_beyond_random'"):
        assert_findings_backed(nb, "03_steering_and_fusion")
    nb.cells[0].outputs = []   # a notebook that states no computed verdict at all
    with pytest.raises(AssertionError, match="no computed finding"):
        assert_findings_backed(nb, "03_steering_and_fusion")
