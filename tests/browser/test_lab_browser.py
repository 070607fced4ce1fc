"""Notebook 04 (the teaching lab) in a real browser: JupyterLab + Debian's chromium, driven by Playwright.

Runs all cells at CI size as a student would, types a name, answers questions in their widgets (a
dropdown and Check; a wrong pick shows a red verdict and a hint, the right one a green verdict), plays
a steered clip next to its twin, checks that every plot has data and a title, and presses "Export my
answers" (the CSV it writes next to the notebook holds every checked answer). Screenshots:
test-artifacts/browser/lab-*.png.
"""
from __future__ import annotations

import csv
import time
from pathlib import Path

import pytest
from lab_harness import JupyterLab, LabPage, lab_copy, open_browser
from test_quickstart_browser import AUDIO_DURATION_JS

pytestmark = [pytest.mark.browser, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "04_teaching_lab.ipynb"
STUDENT = "Ada Lovelace"

# a plotly div: its title (layout.title and the drawn SVG text) and how many values its traces draw
PLOT_JS = """el => {
  const t = el.layout && el.layout.title;
  const title = (t && (t.text !== undefined ? t.text : t)) || '';
  const n = (el.data || []).reduce((s, tr) => s + ((tr.y || tr.z || tr.x || []).length || 0), 0);
  return {title: String(title), n, svgTitle: (el.querySelector('.gtitle') || {}).textContent || ''};
}"""
PLOT_DRAWN_JS = f"el => {{ const p = ({PLOT_JS})(el); return p.n > 0 && p.title.trim() && p.svgTitle.trim(); }}"


def question(page, key: str):
    return page.locator(".wb-lab-question").filter(has_text=f"{key}.").first


def answer(lab_page, key: str, option: str) -> str:
    """Pick `option` in question `key`'s dropdown, press Check, return the feedback text once it shows."""
    card = question(lab_page.page, key)
    card.scroll_into_view_if_needed()
    feedback = card.locator(".wb-lab-feedback")
    before = feedback.text_content() if feedback.count() else ""
    card.locator("select").select_option(label=option)
    card.locator("button.wb-lab-check").click()
    lab_page.page.wait_for_function(
        "([el, before]) => { const f = el.querySelector('.wb-lab-feedback');"
        " return f && f.textContent.includes(':') && f.textContent !== before; }",
        arg=[card.element_handle(), before], timeout=30_000)
    return card.locator(".wb-lab-feedback").text_content()


def answer_until_right(lab_page, key: str, options: list[str]) -> list[str]:
    """Try the options in order, as a student would, until the verdict is right; the feedback of each try."""
    seen = []
    for option in options:
        seen.append(answer(lab_page, key, option))
        if seen[-1].startswith("✔"):
            return seen
    raise AssertionError(f"{key}: no option was accepted: {seen}")


def test_teaching_lab_in_chromium(need_chromium, tmp_path, artifacts_dir):
    start = time.perf_counter()
    nb_dir, env = lab_copy(NOTEBOOK, tmp_path)
    with JupyterLab(nb_dir, env=env) as lab, open_browser(tmp_path / "profile", viewport=(1500, 1100)) as ctx:
        lab_page = LabPage(ctx.new_page(), lab, artifacts_dir, prefix="lab-")
        page = lab_page.page
        try:
            lab_page.open(NOTEBOOK.name)
            run_start = time.perf_counter()
            lab_page.run_all(timeout_s=400)
            run_all_s = time.perf_counter() - run_start
            lab_page.shot("01-ran-all")

            name = page.locator(".wb-lab-scoreboard input").first
            name.scroll_into_view_if_needed()
            name.fill(STUDENT)
            name.press("Tab")

            # Q1: any layer gets a verdict (a wrong one a hint); Q4 and Q6 until right, as a student would
            first_layer = question(page, "q1").locator("select option").nth(1).text_content()
            q1 = answer(lab_page, "q1", first_layer)
            assert q1.startswith(("✔ q1: correct", "✘ q1: not quite. Hint:")), q1
            q4 = answer_until_right(lab_page, "q4", ["genre", "dynamics"])
            lab_page.shot("02-part1-answered")
            q6 = answer_until_right(lab_page, "q6", ["beyond random", "not beyond random"])
            assert "Pushing toward 'rock'" in q6[-1], q6  # the right answer explains itself with the verdict's sentence
            if len(q6) == 2:
                assert "Hint: all four rules" in q6[0], q6

            # the steered clip plays next to its unsteered twin, labelled with direction and strength unit
            player = page.locator(".wb-twin-player").first
            player.scroll_into_view_if_needed()
            audios = player.locator("audio")
            assert audios.count() == 2
            assert all(audios.nth(i).evaluate(AUDIO_DURATION_JS) > 0 for i in range(2))
            caption = player.text_content()
            assert "steered along “rock − rest” (class_means) at resid L" in caption, caption
            assert "x the layer's mean residual norm" in caption, caption
            assert player.locator("svg image").count() >= 2  # the two spectrograms
            lab_page.shot("03-steered-next-to-twin")

            # every plot, scrolled into view (JupyterLab draws off-screen outputs late: two runs read the second
            # sweep's title before it was drawn), has data and a title
            plots = page.locator(".js-plotly-plot")
            assert plots.count() >= 2  # the two layer sweeps
            for i in range(plots.count()):
                plots.nth(i).scroll_into_view_if_needed()
                try:
                    page.wait_for_function(PLOT_DRAWN_JS, arg=plots.nth(i).element_handle(), timeout=30_000)
                except Exception as exc:
                    lab_page.shot(f"plot-{i}-not-drawn")
                    raise AssertionError(f"plot {i} has no data or no title: {plots.nth(i).evaluate(PLOT_JS)}") from exc

            board = page.locator(".wb-lab-scoreboard").last
            board.scroll_into_view_if_needed()
            n_right = 1 + 1 + q1.startswith("✔")
            page.wait_for_function("([el, s]) => el.textContent.includes(s)",
                                   arg=[board.element_handle(), f"{n_right} of 7 correct"], timeout=30_000)
            board.locator("button.wb-lab-export").click()
            status = board.locator(".wb-lab-export-status")
            page.wait_for_function("el => el.textContent.includes('saved')", arg=status.element_handle(),
                                   timeout=30_000)
            lab_page.shot("04-exported")
            exported = nb_dir / "answers-Ada_Lovelace.csv"
            assert str(exported) in status.text_content()
            rows = list(csv.DictReader(exported.open()))
            assert [r["question"] for r in rows] == ["q1"] + ["q4"] * len(q4) + ["q6"] * len(q6)
            assert {r["student"] for r in rows} == {STUDENT}
            assert [r["correct"] for r in rows][-1] == "True" and all(r["time"] for r in rows)
        except Exception:
            lab_page.shot("failure")
            raise
    print(f"lab browser test took {time.perf_counter() - start:.1f} s (Run All {run_all_s:.1f} s); screenshots: "
          + ", ".join(p.name for p in lab_page.shots))
