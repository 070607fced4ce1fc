"""The harness itself: JupyterLab + chromium run a two-cell widget notebook."""
from __future__ import annotations

import nbformat
import pytest
from lab_harness import JupyterLab, LabPage, open_browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_harness_runs_a_widget_notebook(need_chromium, tmp_path, artifacts_dir):
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("print('sum =', 20 + 22)"),
        nbformat.v4.new_code_cell("import ipywidgets as w\nw.IntSlider(value=7, description='harness')"),
    ])
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    (tmp_path / "nb").mkdir()
    nbformat.write(nb, tmp_path / "nb" / "trivial.ipynb")
    with JupyterLab(tmp_path / "nb") as lab, open_browser(tmp_path / "profile") as ctx:
        page = LabPage(ctx.new_page(), lab, artifacts_dir, prefix="harness-")
        page.open("trivial.ipynb")
        state = page.run_all(timeout_s=60)
        assert state["done"] == 2
        page.page.get_by_text("sum = 42").wait_for(timeout=10_000)
        page.page.locator(".widget-slider .widget-readout", has_text="7").wait_for(timeout=20_000)
        page.shot("trivial-ran")
