"""The quickstart in a real browser: JupyterLab + Debian's chromium, driven by Playwright.

Runs all cells, checks the map's point count, moves the strength slider, clicks Generate (a new
audio element must decode to a positive duration), clicks a point (its clip must load), lassoes two
groups into a direction A -> B, clicks a layer in the sweep (the map follows), and saves a screenshot of each state to
test-artifacts/browser/quickstart-*.png.
"""
from __future__ import annotations

import os
import re
import time
from pathlib import Path

import pytest
from lab_harness import JupyterLab, LabPage, lab_copy, open_browser

pytestmark = [pytest.mark.browser, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
# WORKBENCH_BROWSER_NOTEBOOK: open another copy of the quickstart (e.g. one pointed at a random model)
NOTEBOOK = Path(os.environ.get("WORKBENCH_BROWSER_NOTEBOOK", REPO / "notebooks" / "01_quickstart.ipynb"))

AUDIO_DURATION_JS = """el => new Promise(resolve => {
  const done = () => resolve(isFinite(el.duration) ? el.duration : -1);
  if (el.readyState >= 1) return done();
  el.addEventListener('loadedmetadata', done, {once: true});
  el.addEventListener('error', () => resolve(-2), {once: true});
  setTimeout(done, 10000);
})"""


def number(readout: str) -> float:
    return float(readout.replace("\u2212", "-"))  # the slider readout uses U+2212 MINUS SIGN


def lasso(page, area: dict, x0: float, x1: float) -> None:
    """Drag a rectangular lasso over the plot area between fractions x0..x1 of its width."""
    left, right = area["x"] + x0 * area["width"], area["x"] + x1 * area["width"]
    top, bottom = area["y"] + 0.02 * area["height"], area["y"] + 0.98 * area["height"]
    page.mouse.move(left, top)
    page.mouse.down()
    for x, y in ((right, top), (right, bottom), (left, bottom), (left, top + 1)):
        page.mouse.move(x, y, steps=6)
    page.mouse.up()


def explorer_plot(page):
    """The projection explorer's plotly div (inside the .wb-explorer widget)."""
    return page.locator(".wb-explorer .js-plotly-plot").first


def test_quickstart_in_chromium(need_chromium, tmp_path, artifacts_dir):
    start = time.perf_counter()
    nb_dir, env = lab_copy(NOTEBOOK, tmp_path)  # a copy: autosave must not touch the committed file
    with JupyterLab(nb_dir, env=env) as lab, open_browser(tmp_path / "profile", viewport=(1500, 1100)) as ctx:
        lab_page = LabPage(ctx.new_page(), lab, artifacts_dir, prefix="quickstart-")
        page = lab_page.page
        try:
            lab_page.open(NOTEBOOK.name)
            lab_page.shot("01-opened")
            lab_page.run_all(timeout_s=300)

            # the map has one point per collected clip, plus the clip steered from code in the last cells
            summary = page.get_by_text(re.compile(r"map: \d+ points")).first
            summary.wait_for(timeout=30_000)
            n_collected = int(re.search(r"map: (\d+) points", summary.text_content()).group(1))
            plot = explorer_plot(page)
            plot.scroll_into_view_if_needed()
            points = plot.locator(".scatterlayer .trace path.point")
            page.wait_for_function("([el, n]) => el.querySelectorAll('.scatterlayer .trace path.point').length === n",
                                   arg=[plot.element_handle(), n_collected + 1], timeout=30_000)
            assert points.count() == n_collected + 1
            title = plot.locator(".gtitle").text_content()  # SVG text: text_content, not inner_text
            assert title.startswith("Clips at")
            lab_page.shot("02-ran-all")
            lab_page.assert_plots_filled(at_least=2)  # the layer sweep and the map, each with data and a title

            # move the strength slider with the mouse (noUiSlider handle)
            panel = page.locator(".wb-steering").first
            panel.scroll_into_view_if_needed()
            readout = panel.locator(".wb-strength .widget-readout")
            before = readout.text_content().strip()
            handle = panel.locator(".wb-strength .noUi-handle")
            box = handle.bounding_box()
            page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.mouse.down()
            page.mouse.move(box["x"] - 80, box["y"] + box["height"] / 2, steps=8)
            page.mouse.up()
            page.wait_for_function("([el, old]) => el.textContent.trim() !== old",
                                   arg=[readout.element_handle(), before])
            after = readout.text_content().strip()
            assert number(after) < number(before)
            lab_page.shot("03-strength-moved")

            # Generate: a new audio element appears and decodes
            players = panel.locator(".wb-players audio")
            n_audio = players.count()
            panel.locator(".wb-generate").click()
            # while it runs: Generate disabled, Stop enabled, the progress bar moving
            page.wait_for_function("el => el.disabled", arg=panel.locator(".wb-generate").element_handle(),
                                   timeout=10_000)
            lab_page.shot("04-generating")
            page.wait_for_function("([el, n]) => el.querySelectorAll('.wb-players audio').length > n",
                                   arg=[panel.element_handle(), n_audio], timeout=120_000)
            newest = players.first  # newest player is first
            assert newest.evaluate(AUDIO_DURATION_JS) > 0
            caption = panel.locator(".wb-players").first.text_content()
            # the caption names the direction and the strength in its unit (x the layer's mean residual norm)
            assert f"{number(after):+g} × mean residual norm" in caption and "steered along" in caption, caption
            page.wait_for_function("el => !el.disabled", arg=panel.locator(".wb-generate").element_handle())
            lab_page.shot("05-generated")

            # click a collected point: the explorer's player loads that clip
            plot.scroll_into_view_if_needed()
            target = plot.locator(".scatterlayer .trace").first.locator("path.point").nth(1)
            box = target.bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            player = page.locator(".wb-explorer-player").first
            page.wait_for_function("el => el.src && el.src.startsWith('blob:')", arg=player.element_handle(),
                                   timeout=30_000)
            assert player.evaluate(AUDIO_DURATION_JS) > 0
            page.locator(".wb-explorer").get_by_text("▶").first.wait_for(timeout=10_000)
            lab_page.shot("06-point-clicked")

            # lasso the left and the right part of the map as groups A and B, then make a direction A -> B
            area = plot.locator(".nsewdrag").first.bounding_box()
            explorer = page.locator(".wb-explorer").first
            readout = explorer.get_by_text(re.compile(r"^selected: "))
            before = ""
            for group, (x0, x1) in (("A", (0.02, 0.45)), ("B", (0.55, 0.98))):
                lasso(page, area, x0, x1)
                page.wait_for_function("([el, old]) => el.textContent.startsWith('selected: ') && !/selected: 0 /"
                                       ".test(el.textContent) && el.textContent.split(' · ')[0] !== old",
                                       arg=[explorer.get_by_text(re.compile("lasso some points|^selected: "))
                                            .element_handle(), before], timeout=15_000)
                before = readout.text_content().split(" · ")[0]
                explorer.get_by_role("button", name=f"selection → {group}").click()
                page.wait_for_function(f"el => /{group}: \\d+ points/.test(el.textContent)",
                                       arg=readout.element_handle(), timeout=15_000)
            explorer.get_by_role("button", name="direction A → B").click()
            summary = page.locator(".wb-picker").first
            summary.get_by_text(re.compile(r"direction: selection \(\d+\) → \(\d+\)")).wait_for(timeout=20_000)
            lab_page.shot("07-lasso-direction")

            # click layer 0 in the sweep: the map, the picker and the steering layers follow
            sweep_plot = page.locator(".wb-app .wb-sweep .js-plotly-plot").first  # not the standalone view
            sweep_plot.scroll_into_view_if_needed()
            first_point = sweep_plot.locator(".scatterlayer .trace").first.locator("path.point").first
            box = first_point.bounding_box()
            page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
            page.wait_for_function("el => el.querySelector('.gtitle').textContent.includes('layer 0 ')",
                                   arg=plot.element_handle(), timeout=30_000)
            page.locator(".wb-picker").first.get_by_text("resid layer 0").wait_for(timeout=10_000)
            lab_page.shot("08-layer-clicked")
        except Exception:
            lab_page.shot("failure")  # what the page looked like when it failed
            raise
    print(f"browser test took {time.perf_counter() - start:.1f} s; screenshots: "
          + ", ".join(p.name for p in lab_page.shots))
