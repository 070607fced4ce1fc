"""Views filled before they are shown keep their data through a page reload (issue 29 item 1), in chromium.

A small notebook (written here) fills a PatchingView and a TraceView before displaying them, as notebook 06
does. The page is saved and reloaded: JupyterLab rebuilds the widget models from the kernel's state, which is
what the front end draws from. Plotly's FigureWidget keeps its data there only when the figure itself is
displayed, so before `widgets._base.StatefulFigureWidget` both views came back as empty axes under their first
titles. Screenshots: test-artifacts/browser/reload-*.png.
"""
from __future__ import annotations

import time

import nbformat
import pytest
from lab_harness import JupyterLab, LabPage, lab_copy, open_browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CELLS = ['''
import numpy as np, pandas as pd
from widgets import PatchingView, TraceView
from workbench.analysis.step_traces import StepTrace

tone = (np.sin(np.arange(16000) / 16000 * 2 * np.pi * 220).astype(np.float32), 16000)
rows = [dict(site="resid", layer=l, window=k, start=4 * k, stop=4 * k + 4, recovered=l / 3 - k / 4)
        for l in range(4) for k in range(3)]
patching = PatchingView(pd.DataFrame(rows), clip_fn=lambda row: {"source": tone, "target": tone, "patched": tone},
                        title="Patching filled before display")
''', "patching", '''
trace = TraceView()
original = StepTrace(np.arange(24.0).reshape(4, 6, 1), np.ones((4, 6, 1)), [tone], (0, 1, 2, 3), "resid", 6.0)
trace.show(original, StepTrace(original.projection + 2.0, original.norm, [tone], original.layers, "resid", 6.0))
trace
''']


def test_views_filled_before_display_survive_a_reload(need_chromium, tmp_path, artifacts_dir):
    source = tmp_path / "views.ipynb"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS], metadata={
        "kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}), source)
    nb_dir, env = lab_copy(source, tmp_path)
    with JupyterLab(nb_dir, env=env) as lab, open_browser(tmp_path / "profile", viewport=(1400, 1000)) as ctx:
        lab_page = LabPage(ctx.new_page(), lab, artifacts_dir, prefix="reload-")
        try:
            lab_page.open(source.name)
            lab_page.run_all(timeout_s=180)
            before = lab_page.assert_plots_filled(at_least=3)
            lab_page.shot("01-ran-all")
            lab_page.save_and_reload(min_plots=3)
            after = lab_page.assert_plots_filled(at_least=3)
            lab_page.shot("02-after-reload")
        except Exception:
            lab_page.shot("failure")
            raise
    assert [p["title"] for p in after] == [p["title"] for p in before]
    print(f"plots after the reload: {after}; at {time.strftime('%H:%M:%S')}")
