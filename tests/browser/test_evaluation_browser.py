"""Notebook 08 (evaluation) in a real browser: JupyterLab + Debian's chromium, driven by Playwright.

Runs all cells of 08_evaluation (WORKBENCH_FAST=1): every plot (the trade-off, alignment by strength, the random
band once measured) must have data and a title (the reload check is in the causal test).
Screenshots: test-artifacts/browser/evaluation-*.png.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from lab_harness import JupyterLab, LabPage, lab_copy, open_browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "08_evaluation.ipynb"


def test_evaluation_notebook_in_chromium(need_chromium, tmp_path, artifacts_dir):
    start = time.perf_counter()
    nb_dir, env = lab_copy(NOTEBOOK, tmp_path)
    with JupyterLab(nb_dir, env=env) as lab, open_browser(tmp_path / "profile", viewport=(1500, 1100)) as ctx:
        lab_page = LabPage(ctx.new_page(), lab, artifacts_dir, prefix="evaluation-")
        page = lab_page.page
        try:
            lab_page.open(NOTEBOOK.name)
            lab_page.run_all(timeout_s=600)
            plots = lab_page.assert_plots_filled(at_least=2)  # trade-off, alignment by strength (band: on request)
            view = page.locator(".js-plotly-plot").first
            view.scroll_into_view_if_needed()
            lab_page.shot("01-ran-all")
        except Exception:
            lab_page.shot("failure")
            raise
    print(f"evaluation browser test took {time.perf_counter() - start:.1f} s; plots: "
          + ", ".join(p["title"] for p in plots) + "; screenshots: " + ", ".join(p.name for p in lab_page.shots))
