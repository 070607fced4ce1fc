"""The features notebook in a real browser: JupyterLab + Debian's chromium, driven by Playwright.

Runs all cells of 07_features (WORKBENCH_FAST=1), picks another feature in the dashboard's list (its top
clips must appear), clicks ▶ on a top clip (the dashboard's player must decode audio that starts at the
span), and saves a screenshot of each state to test-artifacts/browser/features-*.png.
"""
from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from lab_harness import JupyterLab, LabPage, lab_copy, open_browser
from test_quickstart_browser import AUDIO_DURATION_JS

pytestmark = [pytest.mark.browser, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "07_features.ipynb"


def test_features_dashboard_in_chromium(need_chromium, tmp_path, artifacts_dir):
    start = time.perf_counter()
    nb_dir, env = lab_copy(NOTEBOOK, tmp_path)
    with JupyterLab(nb_dir, env=env) as lab, open_browser(tmp_path / "profile", viewport=(1500, 1100)) as ctx:
        lab_page = LabPage(ctx.new_page(), lab, artifacts_dir, prefix="features-")
        page = lab_page.page
        try:
            lab_page.open(NOTEBOOK.name)
            lab_page.run_all(timeout_s=300)
            dash = page.locator(".wb-features").first
            dash.scroll_into_view_if_needed()
            lab_page.shot("01-ran-all")
            lab_page.assert_plots_filled(at_least=0)  # any plotly plot has data and a title (the dashboard: SVG)

            # click another feature in the list: its top clips replace the first one's
            select = dash.locator(".wb-feature-list select")
            values = select.locator("option").evaluate_all("els => els.map(e => e.value)")
            assert len(values) > 2, values
            first_caption = dash.locator(".wb-feature-play").first.text_content()
            heading = dash.locator(".wb-feature-assoc").first  # "#<feature>: label ..." of the chosen feature
            before = heading.text_content()
            # another feature than the one shown (the notebook may show any row of the list first)
            texts = select.locator("option").evaluate_all("els => els.map(e => e.textContent)")
            shown = before.split(":")[0] + ":"
            select.select_option(index=next(i for i, text in enumerate(texts) if not text.startswith(shown)))
            page.wait_for_function("([el, old]) => el.textContent !== old", arg=[heading.element_handle(), before],
                                   timeout=30_000)
            chosen = select.evaluate("el => el.options[el.selectedIndex].text")
            assert heading.text_content().startswith(chosen.split(":")[0]), (heading.text_content(), chosen)
            dash.locator(".wb-feature-play").first.wait_for(timeout=30_000)
            lab_page.shot("02-feature-clicked")

            # ▶ on the first top clip: the dashboard's player gets that clip, from its span on
            play = dash.locator(".wb-feature-play").first
            label = play.text_content()
            assert label.startswith("▶ from "), (label, first_caption)
            play.click()
            player = dash.locator(".wb-feature-player").first
            page.wait_for_function("el => el.src && el.src.startsWith('blob:')", arg=player.element_handle(),
                                   timeout=30_000)
            assert player.evaluate(AUDIO_DURATION_JS) > 0
            dash.get_by_text(re.compile(r"^▶ .* from \d")).first.wait_for(timeout=10_000)
            lab_page.shot("03-clip-playing")
        except Exception:
            lab_page.shot("failure")
            raise
    print(f"browser test took {time.perf_counter() - start:.1f} s; screenshots: "
          + ", ".join(p.name for p in lab_page.shots))
