"""Notebook 06 (causal inspection) in a real browser: JupyterLab + Debian's chromium, driven by Playwright.

Runs all cells, clicks a cell of the teacher-forced patching heatmap (the patched clip is generated
and plays next to source and target: three audio elements that decode), then clicks a time in the
steered trace heatmap (its player seeks there and plays). Screenshots: test-artifacts/browser/causal-*.png.
"""
from __future__ import annotations

import time
from pathlib import Path

import pytest
from lab_harness import JupyterLab, LabPage, lab_copy, open_browser
from test_quickstart_browser import AUDIO_DURATION_JS

pytestmark = [pytest.mark.browser, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "06_causal_inspection.ipynb"


def click_at(page, plot, fx: float, fy: float) -> None:
    """Click the plot area of a plotly div at fractions (fx from the left, fy from the top)."""
    area = plot.locator(".nsewdrag").first.bounding_box()
    page.mouse.click(area["x"] + fx * area["width"], area["y"] + fy * area["height"])


def test_causal_inspection_in_chromium(need_chromium, tmp_path, artifacts_dir):
    start = time.perf_counter()
    nb_dir, env = lab_copy(NOTEBOOK, tmp_path)
    with JupyterLab(nb_dir, env=env) as lab, open_browser(tmp_path / "profile", viewport=(1500, 1100)) as ctx:
        lab_page = LabPage(ctx.new_page(), lab, artifacts_dir, prefix="causal-")
        page = lab_page.page
        try:
            lab_page.open(NOTEBOOK.name)
            lab_page.run_all(timeout_s=400)
            lab_page.shot("01-ran-all")
            # the probe sweep, two patching heatmaps and two trace heatmaps: each with data and a title
            lab_page.assert_plots_filled(at_least=5)

            # the teacher-forced patching heatmap: click the last layer's first window
            view = page.locator(".wb-patching").first
            plot = view.locator(".js-plotly-plot").first
            plot.scroll_into_view_if_needed()
            plot.locator(".heatmaplayer").first.wait_for(timeout=30_000)
            patched = view.locator("audio.wb-patching-patched")
            # In the first browser test of a fresh clone the first click twice never reached the kernel (the
            # readout kept "click a cell"; the same test passed on every later run): click again, as a user would.
            for attempt in range(3):
                click_at(page, plot, 0.08, 0.06)
                try:
                    view.locator(".wb-patching-readout", has_text="layer").first.wait_for(timeout=30_000)
                    break
                except Exception:
                    lab_page.shot(f"02-click-{attempt}-unanswered")
            patched.wait_for(timeout=120_000)
            for role in ("source", "target", "patched"):
                player = view.locator(f"audio.wb-patching-{role}")
                assert player.evaluate(AUDIO_DURATION_JS) > 0, role
            readout = view.locator(".wb-patching-readout").first.text_content()
            assert "steps 0–" in readout and "layer 5" in readout, readout
            lab_page.shot("02-patching-cell-clicked")

            # the steered trace: click two thirds of the way along; its player seeks there and plays
            trace = page.locator(".wb-trace").first
            steered = trace.locator(".wb-trace-steered .js-plotly-plot").first
            if not steered.count():
                steered = trace.locator(".js-plotly-plot").nth(1)
            steered.scroll_into_view_if_needed()
            steered.locator(".heatmaplayer").first.wait_for(timeout=30_000)
            audio = trace.locator(".wb-seek-player audio").nth(1)
            for attempt in range(3):  # as above: a click the kernel never saw is clicked again
                click_at(page, steered, 0.66, 0.5)
                try:
                    page.wait_for_function("el => el.currentTime > 0.1 && !el.paused || el.ended",
                                           arg=audio.element_handle(), timeout=30_000)
                    break
                except Exception:
                    if attempt == 2:
                        raise
                    lab_page.shot(f"03-click-{attempt}-unanswered")
            assert audio.evaluate(AUDIO_DURATION_JS) > 0
            assert "▶ steered from" in trace.locator(".wb-trace-readout").first.text_content()
            lab_page.shot("03-trace-time-clicked")

        except Exception:
            lab_page.shot("failure")
            raise
    print(f"causal browser test took {time.perf_counter() - start:.1f} s; screenshots: "
          + ", ".join(p.name for p in lab_page.shots))
