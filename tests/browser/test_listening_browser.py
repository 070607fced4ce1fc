"""The blind listening test in a real browser: JupyterLab + Debian's chromium, driven by Playwright.

A small notebook (written here) runs a two-cell evaluation grid on the teaching model and shows a
`ListeningTest` of three A/B/X trials. The test checks that the page names no method, strength or
"steered"/"twin", that every player decodes, answers the three trials by clicking, and reads the
answers file: three rows with the clicked choices, hits against the hidden key and response times.
Screenshots: test-artifacts/browser/listening-*.png.
"""
from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import nbformat
import pytest
from lab_harness import JupyterLab, LabPage, open_browser
from test_quickstart_browser import AUDIO_DURATION_JS

pytestmark = [pytest.mark.browser, pytest.mark.slow]
REPO = Path(__file__).resolve().parents[2]

SETUP = """
import os
import numpy as np
import workbench as wb
from workbench.analysis.evaluation import GridPlan, Method, items_for, run_grid
from workbench.analysis.evaluation.listening import trials_from_result
from workbench.analysis.scores import Readers
from workbench.runtime.settings import GenerationSettings
from widgets import ListeningTest

handle = wb.load_model()
rng = np.random.default_rng(0)
method = Method("secret_method_name", {("rock", 3): rng.normal(size=handle.hidden_size)},
                strengths=(0.0, 0.5), strength_unit={3: 4.5})
plan = GridPlan((method,), layers=(3,), items=items_for(["jazz music"], seeds=[1, 2, 3], targets="rock"),
                reference_seed_offset=None)
result = run_grid(handle, plan, os.environ["WB_GRID"], GenerationSettings(duration_s=1.0),
                  readers=Readers(judge=False, clap=False))
trials = trials_from_result(result, method="secret_method_name", strength=0.5, kind="abx", seed=4)
test = ListeningTest(trials, path=os.environ["WB_ANSWERS"], participant="browser")
test
"""


def test_listening_test_in_chromium(need_chromium, tmp_path, artifacts_dir):
    start = time.perf_counter()
    nb_dir = tmp_path / "nb"
    nb_dir.mkdir()
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(SETUP.strip())],
                                  metadata={"kernelspec": {"name": "python3", "display_name": "Python 3",
                                                           "language": "python"}})
    nbformat.write(nb, nb_dir / "listening.ipynb")
    answers = tmp_path / "answers.csv"
    env = {"HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO), "TMPDIR": str(tmp_path),
           "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"),
           "WB_GRID": str(tmp_path / "grid"), "WB_ANSWERS": str(answers)}
    clicked = []
    with JupyterLab(nb_dir, env=env) as lab, open_browser(tmp_path / "profile", viewport=(1300, 900)) as ctx:
        lab_page = LabPage(ctx.new_page(), lab, artifacts_dir, prefix="listening-")
        page = lab_page.page
        try:
            lab_page.open("listening.ipynb")
            lab_page.run_all(timeout_s=240)
            view = page.locator(".wb-listen").first
            header = view.locator(".wb-listen-header").first
            header.wait_for(timeout=60_000)
            lab_page.shot("01-first-trial")
            for k in range(3):
                page.wait_for_function("([el, k]) => el.textContent.includes(`Trial ${k} of 3`)",
                                       arg=[header.element_handle(), k + 1], timeout=30_000)
                text = view.inner_text().lower()
                for secret in ("secret_method_name", "steered", "twin", "strength", "0.5"):
                    assert secret not in text, (secret, text)
                players = [view.locator(f"audio.wb-listen-player-{n}").first for n in "abx"]
                for player in players:
                    assert player.evaluate(AUDIO_DURATION_JS) > 0
                choice = "A" if k % 2 == 0 else "B"
                view.locator(f"button.wb-listen-choice-{choice.lower()}").click()
                clicked.append(choice)
                # saved as it is given: the file has this answer before the next trial is answered
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and (not answers.exists()
                                                      or len(list(csv.DictReader(answers.open()))) < k + 1):
                    time.sleep(0.2)
                assert len(list(csv.DictReader(answers.open()))) == k + 1
            page.wait_for_function("el => el.textContent.includes('Done')", arg=header.element_handle(),
                                   timeout=30_000)
            lab_page.shot("02-done")
            assert "3 answers saved" in view.locator(".wb-listen-status").first.text_content()
        except Exception:
            lab_page.shot("failure")
            raise
    rows = list(csv.DictReader(answers.open()))
    assert [r["choice"] for r in rows] == clicked
    assert [r["trial"] for r in rows] == ["0", "1", "2"]
    assert all(r["kind"] == "abx" and r["participant"] == "browser" for r in rows)
    assert all(float(r["response_s"]) > 0 for r in rows)
    # the hidden key decides each hit: X is whichever clip the trial built it from
    assert all((r["hit"] == "True") == (r["choice"] == r["x"]) for r in rows)
    print(f"listening browser test took {time.perf_counter() - start:.1f} s; screenshots: "
          + ", ".join(p.name for p in lab_page.shots))
