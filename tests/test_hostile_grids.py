"""Evaluation grids as a hostile user meets them (issue 28): bad arguments, damaged files, other plans and readers.

Every bad input is answered with a `WorkbenchError` naming the fix; a damaged cell is never kept as done (it is
moved to quarantine/ and made again); losing or replacing plan.json cannot let another plan in; a resume with
other readers is refused; a grid written by format 1 still opens and resumes.
"""
import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from workbench.analysis.evaluation import EvaluationResult, GridMismatchError, GridPlan, Method, items_for, run_grid
from workbench.analysis.evaluation.grid import Item
from workbench.analysis.evaluation.results import PLAN, RESULTS, ResultsLog, cell_file
from workbench.analysis.scores import Readers
from workbench.errors import BadInputError, CorruptFileError, WorkbenchError, WrongTypeError
from workbench.runtime.settings import GenerationSettings

pytestmark = pytest.mark.usefixtures("one_torch_thread")
V1_GRID = Path(__file__).parent / "data" / "evaluation_grid_v1"
SETTINGS = GenerationSettings(duration_s=0.3)  # every grid here: 0.3 s clips
NO_JUDGE, QUIET = Readers(judge=False), Readers(judge=False, clap=False)


def _method(tiny, name="m", strengths=(0.0, 8.0)):
    rng = np.random.default_rng(0)
    return Method(name, {(t, 1): rng.normal(size=tiny.hidden_size) for t in ("rock", "jazz")}, strengths=strengths)


def _plan(tiny, prompts=("jazz",), **kw):
    return GridPlan((_method(tiny),), layers=(1,), items=items_for(list(prompts), seeds=[0, 1], targets="rock"),
                    **kw)


class _Judge:
    classes = ["jazz", "rock"]

    def __init__(self, bias=0.0):
        self.bias = np.array([bias])

    def predict_proba(self, waves, sr):
        return np.tile([0.5, 0.5], (len(waves), 1))


# -- arguments -----------------------------------------------------------------------------------------

@pytest.mark.parametrize("make, match", [
    (lambda t: items_for(["jazz"], seeds="12", targets="rock"), "is a string"),
    (lambda t: items_for(["jazz"], seeds=[], targets="rock"), "seeds is empty"),
    (lambda t: items_for(["jazz"], seeds=[0.5], targets="rock"), "whole number"),
    (lambda t: items_for(["jazz"], seeds=[2 ** 70], targets="rock"), "64-bit"),
    (lambda t: items_for([], seeds=[0], targets="rock"), "empty"),
    (lambda t: items_for([3], seeds=[0], targets="rock"), "pass text"),
    (lambda t: items_for(["a", "b"], seeds=[0], targets=["rock"] * 3), "3 targets"),
    (lambda t: items_for(["a"], seeds=[0], targets=None), "targets=None"),
    (lambda t: Item("jazz", "12", "rock"), "is a string"),
    (lambda t: Item("jazz", 0, 5), "pass a label as text"),
    (lambda t: GenerationSettings(batch_size=0), "batch_size=0"),
    (lambda t: GenerationSettings(batch_size="8"), "batch_size"),
    (lambda t: GenerationSettings(duration_s=float("nan")), "not finite"),
    (lambda t: run_grid(t, _plan(t), "never-made", GenerationSettings(duration_s=0.1)), "at least 0.25 s"),
    (lambda t: run_grid(t, _plan(t), "never-made", SETTINGS.replace(seeds=3)), "a grid's seeds are its items'"),
    (lambda t: run_grid(t, _plan(t), "never-made", {"duration_s": 0.3}), "not a GenerationSettings"),
    (lambda t: run_grid(t, _plan(t), "never-made", SETTINGS, readers={"judge": False}), "not a Readers"),
    (lambda t: GenerationSettings(guidance_scale=0.5), "guidance_scale"),
    (lambda t: _plan(t, reference_seed_offset="7"), "reference_seed_offset"),
    (lambda t: _plan(t, strengths="0.5"), "list of numbers"),
    (lambda t: _plan(t, strengths=[0.1, 0.1000001]), "same grid cell"),
    (lambda t: _plan(t, strengths=[float("inf")]), "not finite"),
    (lambda t: GridPlan((_method(t),), layers="12", items=items_for(["a"], seeds=[0], targets="rock")), "string"),
    (lambda t: GridPlan((_method(t),), layers=[1, 1], items=items_for(["a"], seeds=[0], targets="rock")), "twice"),
    (lambda t: GridPlan("m", layers=[1], items=items_for(["a"], seeds=[0], targets="rock")), "Method objects"),
    (lambda t: GridPlan((_method(t),), layers=[1], items=["a"]), "Item objects"),
    (lambda t: GridPlan((_method(t),), layers=[1], items=5), "items_for"),
    (lambda t: Method("m", [1.0, 2.0]), "pass a dict"),
    (lambda t: Method("m", {"rock": [1.0, 2.0]}), r"\(target, layer\) pair"),
    (lambda t: Method("m", {("rock", "x"): [1.0, 2.0]}), "layer"),
    (lambda t: Method("m", {("rock", 1): ["a", "b"]}), "array of numbers"),
    (lambda t: Method("m", {("rock", 1): [np.nan, 1.0]}), "NaN"),
    (lambda t: Method("m", {("rock", 1): [1.0, 0.0], ("jazz", 1): [1.0, 0.0, 0.0]}), "hidden size"),
    (lambda t: Method("m", {("rock", 1): [1.0]}, strengths="1"), "list of numbers"),
    (lambda t: Method("m", {("rock", 1): [1.0]}, strength_unit={1: "x"}), "strength_unit"),
    (lambda t: Method("m", {("rock", 1): [1.0]}, schedule=None), "pass a dict"),
    (lambda t: Method("m", {("rock", 1): [1.0]}).direction("rock", "x"), "layer"),
    (lambda t: Method("m", {("rock", 1): [1.0]}).direction(None, 1), "pass a label"),
    (lambda t: Method("m", {("rock", 1): [1.0]}).absolute_strength(1, "big"), "strength"),
])
def test_bad_arguments_are_workbench_errors(tiny, make, match):
    with pytest.raises(WorkbenchError, match=match) as info:
        make(tiny)
    assert isinstance(info.value, BadInputError)


def test_string_seeds_are_not_split_into_digits():
    assert [i.seed for i in items_for(["jazz"], seeds=12, targets="rock")] == [12]
    assert [i.seed for i in items_for(["jazz"], seeds=np.array([3, 4]), targets="rock")] == [3, 4]


@pytest.mark.parametrize("kwargs, match", [
    (dict(judge="yes"), "judge="), (dict(judge=3), "judge="), (dict(probe="p", probe_layer=1), "probe="),
    (dict(clap="no"), "clap="), (dict(clap_labels=5), "clap_labels"), (dict(progress="yes"), "progress="),
    (dict(stop=5), "stop="), (dict(judge=type("J", (), {"classes": ["jazz"], "predict_proba": lambda s, w, sr: 0})()),
                              "not among the judge's classes"),
])
def test_run_grid_refuses_bad_settings_before_any_work(tiny, tmp_path, kwargs, match):
    reading = {name: kwargs.pop(name) for name in list(kwargs) if name in ("judge", "probe", "probe_layer", "clap",
                                                                           "clap_labels")}
    with pytest.raises(BadInputError, match=match):
        run_grid(tiny, _plan(tiny), tmp_path / "g", SETTINGS, readers=Readers(**{"judge": False, **reading}),
                 **kwargs)
    assert not (tmp_path / "g" / RESULTS).exists()


def test_run_grid_refuses_wrong_objects(tiny, tmp_path):
    with pytest.raises(WrongTypeError, match="not a loaded model"):
        run_grid("model", _plan(tiny), tmp_path / "g", SETTINGS, readers=NO_JUDGE)
    with pytest.raises(WrongTypeError, match="GridPlan"):
        run_grid(tiny, {"methods": []}, tmp_path / "g", SETTINGS, readers=NO_JUDGE)
    with pytest.raises(WrongTypeError, match="folder"):
        run_grid(tiny, _plan(tiny), None, SETTINGS, readers=NO_JUDGE)
    (tmp_path / "file").write_text("not a folder")
    for folder in (tmp_path / "file", tmp_path / "file" / "g", "a\0b"):
        with pytest.raises(BadInputError, match="folder"):
            run_grid(tiny, _plan(tiny), folder, SETTINGS, readers=NO_JUDGE)
    with pytest.raises(BadInputError, match="no evaluation grid in"):
        EvaluationResult(tmp_path / "typo")
    assert not (tmp_path / "typo").exists()
    with pytest.raises(WrongTypeError, match="cell id"):
        ResultsLog(tmp_path / "empty").arrays(5)
    with pytest.raises(WrongTypeError, match="check_plan"):
        ResultsLog(tmp_path / "empty").check_plan(None)
    with pytest.raises(WrongTypeError, match="layer"):
        _method(tiny).fingerprint("x")


# -- damaged files -------------------------------------------------------------------------------------

@pytest.fixture
def grid(tiny, tmp_path):
    folder = tmp_path / "g"
    run_grid(tiny, _plan(tiny), folder, SETTINGS, readers=QUIET)
    return folder


def _cells(folder):
    return EvaluationResult(folder).table["cell"].value_counts().to_dict()


def test_an_empty_selection_of_embeddings_is_refused(grid):
    with pytest.raises(BadInputError, match="no rows"):
        EvaluationResult(grid).embeddings([])
    with pytest.raises(BadInputError, match="index"):
        EvaluationResult(grid).twin_index("x")


@pytest.mark.parametrize("damage", ["garbage", "truncated", "empty", "deleted"])
def test_a_damaged_cell_is_never_kept_as_done(tiny, grid, damage):
    before = _cells(grid)
    path = grid / "cells" / cell_file("m|L1|s8")
    data = path.read_bytes()
    if damage == "garbage":
        path.write_bytes(b"\x00garbage" * 40)
    elif damage == "truncated":
        path.write_bytes(data[: len(data) // 2])
    elif damage == "empty":
        path.write_bytes(b"")
    else:
        path.unlink()
    report = ResultsLog(grid).verify()
    assert not report.sound and "m|L1|s8" in report.corrupt and "m|L1|s8" not in ResultsLog(grid).done()
    with pytest.warns(UserWarning, match="left out"):
        assert "m|L1|s8" not in _cells(grid)  # the grid still reads, without the damaged cell
    with pytest.warns(UserWarning, match="quarantine"):
        run_grid(tiny, _plan(tiny), grid, SETTINGS, readers=QUIET)  # made again
    assert _cells(grid) == before and ResultsLog(grid).verify(full=True).sound
    if damage != "deleted":  # nothing deleted: the damaged file is kept aside
        kept = [p.read_bytes() for p in (grid / "quarantine").rglob(path.name)]
        assert kept and kept[0] != data


def test_garbage_lines_and_a_torn_line_in_results(tiny, grid):
    before = _cells(grid)
    text = (grid / RESULTS).read_text()
    lines = text.splitlines()
    (grid / RESULTS).write_text("\n".join(lines[:2] + ["{not json", '["a list"]'] + lines[2:]) + "\n" + '{"cell": "to')
    report = ResultsLog(grid).verify()
    assert sorted(report.corrupt) == [f"{RESULTS} line 3", f"{RESULTS} line 4"]
    repaired = ResultsLog(grid).repair()
    assert ResultsLog(grid).verify().sound and any("rewrote" in a for a in repaired.actions)
    assert (next((grid / "quarantine").rglob(RESULTS))).read_text().startswith(text[:50])  # the old log kept
    assert _cells(grid) == before
    run_grid(tiny, _plan(tiny), grid, SETTINGS, readers=QUIET)
    assert _cells(grid) == before


def test_a_corrupt_plan_json_names_the_file_and_the_fix(tiny, grid):
    (grid / PLAN).write_text("{ this is not json")
    with pytest.raises(CorruptFileError, match=r"plan\.json.*repair\(\)"):
        run_grid(tiny, _plan(tiny), grid, SETTINGS, readers=QUIET)
    report = ResultsLog(grid).repair()
    assert any("restored plan.json" in a for a in report.actions)
    assert json.loads((grid / PLAN).read_text())["format"] == "workbench.evaluation/2"
    run_grid(tiny, _plan(tiny), grid, SETTINGS, readers=QUIET)
    (grid / PLAN).write_text("[1, 2]")
    with pytest.raises(CorruptFileError, match="not the grid's settings"):
        EvaluationResult(grid, handle=tiny) and ResultsLog(grid).read_plan()


def test_losing_plan_json_cannot_let_another_plan_in(tiny, grid):
    (grid / PLAN).unlink()
    with pytest.raises(GridMismatchError, match=r"items differ; item 0: prompt 'jazz'.* prompt 'rock'"):
        run_grid(tiny, _plan(tiny, prompts=("rock",)), grid, SETTINGS, readers=QUIET)
    with pytest.raises(GridMismatchError, match="duration_s"):
        run_grid(tiny, _plan(tiny), grid, SETTINGS.replace(duration_s=0.4), readers=QUIET)
    with pytest.warns(UserWarning, match="restored"):
        run_grid(tiny, _plan(tiny), grid, SETTINGS, readers=QUIET)  # the same plan resumes, plan.json restored
    assert (grid / PLAN).exists()
    # a plan.json copied in from another grid: the copy in results.jsonl disagrees
    other = grid.parent / "other"
    run_grid(tiny, _plan(tiny, prompts=("rock",)), other, SETTINGS, readers=QUIET)
    shutil.copy(other / PLAN, grid / PLAN)
    with pytest.raises(GridMismatchError, match="replaced or edited"):
        run_grid(tiny, _plan(tiny, prompts=("rock",)), grid, SETTINGS, readers=QUIET)


def test_other_readers_are_refused_naming_the_difference(tiny, tmp_path):
    folder = tmp_path / "g"
    run_grid(tiny, _plan(tiny), folder, SETTINGS, readers=Readers(judge=_Judge(), clap=False))
    with pytest.raises(GridMismatchError, match=r"judge: _Judge in the grid, none here"):
        run_grid(tiny, _plan(tiny), folder, SETTINGS, readers=QUIET)
    with pytest.raises(GridMismatchError, match="judge"):
        # another judge of the same class
        run_grid(tiny, _plan(tiny), folder, SETTINGS, readers=Readers(judge=_Judge(bias=1.0), clap=False))
    with pytest.raises(GridMismatchError, match="clap: none in the grid, clap here"):
        run_grid(tiny, _plan(tiny), folder, SETTINGS, readers=Readers(judge=_Judge(), clap=True))
    run_grid(tiny, _plan(tiny), folder, SETTINGS, readers=Readers(judge=_Judge(), clap=False))  # the same readers


# -- format versions -----------------------------------------------------------------------------------

def test_a_format_1_grid_still_opens_and_resumes(tiny, tmp_path):
    folder = tmp_path / "v1"
    shutil.copytree(V1_GRID, folder)
    assert json.loads((folder / PLAN).read_text())["format"] == "workbench.evaluation/1"
    table = EvaluationResult(folder).table
    assert len(table) == 8 and table["cell"].nunique() == 4 and ResultsLog(folder).verify(full=True).sound
    m = Method("m", {("rock", 1): np.random.default_rng(0).normal(size=tiny.hidden_size)}, strengths=(0.0, 8.0, 16.0))
    plan = GridPlan((m,), layers=(1,), items=items_for(["jazz"], seeds=[0, 1], targets="rock"))
    with pytest.raises(GridMismatchError, match="without a judge"):
        run_grid(tiny, plan, folder, SETTINGS, readers=Readers(judge=_Judge(), clap=False))
    with pytest.warns(UserWarning, match="upgraded"):
        res = run_grid(tiny, plan, folder, SETTINGS, readers=QUIET)  # one more strength: only it runs
    assert res.table["cell"].nunique() == 5 and json.loads((folder / PLAN).read_text())["format"].endswith("/2")
    (folder / PLAN).write_text(json.dumps(dict(json.loads((folder / PLAN).read_text()),
                                               format="workbench.evaluation/9")))
    with pytest.raises(GridMismatchError, match="newer workbench"):
        run_grid(tiny, plan, folder, SETTINGS, readers=QUIET)


def test_a_format_1_grid_that_lost_plan_json_checks_items_against_its_twins(tiny, tmp_path):
    folder = tmp_path / "v1"
    shutil.copytree(V1_GRID, folder)
    (folder / PLAN).unlink()
    m = Method("m", {("rock", 1): np.random.default_rng(0).normal(size=tiny.hidden_size)}, strengths=(0.0, 8.0))
    other = GridPlan((m,), layers=(1,), items=items_for(["rock"], seeds=[0, 1], targets="rock"))
    with pytest.raises(GridMismatchError, match="twin clips were made for other items"):
        run_grid(tiny, other, folder, SETTINGS, readers=QUIET)


def test_a_second_writer_is_refused_while_a_grid_runs(tiny, grid):
    import threading

    from workbench.data.store_io import StoreLockedError, store_lock
    held, release = threading.Event(), threading.Event()

    def hold():
        with store_lock(grid):
            held.set()
            release.wait(30)

    thread = threading.Thread(target=hold)
    thread.start()
    try:
        held.wait(30)
        with pytest.raises(StoreLockedError):
            run_grid(tiny, _plan(tiny), grid, SETTINGS, readers=QUIET)
        with pytest.raises(StoreLockedError):
            ResultsLog(grid).repair()
    finally:
        release.set()
        thread.join()


def test_an_uncommitted_arrays_file_is_made_again(tiny, grid):
    """A crash between writing a cell's arrays and appending its line leaves an arrays file nobody committed."""
    before = _cells(grid)
    lines = (grid / RESULTS).read_text().splitlines()
    (grid / RESULTS).write_text("\n".join(lines[:-1]) + "\n")  # the last cell's line never made it
    (grid / "cells" / cell_file("m|L1|s8")).write_bytes(b"half written")
    assert "m|L1|s8" not in ResultsLog(grid).done()
    assert ResultsLog(grid).verify().uncommitted == [cell_file("m|L1|s8")]
    run_grid(tiny, _plan(tiny), grid, SETTINGS, readers=QUIET)
    assert _cells(grid) == before and ResultsLog(grid).verify(full=True).sound


KILL_AGAIN = """
import sys, workbench as wb
sys.path.insert(0, {tests!r})
from test_evaluation import SETTINGS, _kill_plan
from workbench.analysis.evaluation import run_grid
from workbench.analysis.scores import Readers
run_grid(wb.random_model("tiny"), _kill_plan(wb.random_model("tiny")), sys.argv[1], SETTINGS,
         readers=Readers(judge=False, clap=False))
"""


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_grid_killed_again_and_again_loses_nothing(tiny, tmp_path):
    """SIGKILL the grid three times, each a little later (some kills land inside a commit); then resume."""
    import signal
    import subprocess
    import sys
    import time

    from test_evaluation import SETTINGS as KILL_SETTINGS
    from test_evaluation import _kill_plan
    folder, script = tmp_path / "g", tmp_path / "grid.py"
    script.write_text(KILL_AGAIN.format(tests=str(Path(__file__).parent)))
    rng = np.random.default_rng(0)
    for _ in range(3):
        proc = subprocess.Popen([sys.executable, str(script), str(folder)])
        before = len(ResultsLog(folder).done()) if folder.exists() else 0
        deadline = time.monotonic() + 600
        while proc.poll() is None and time.monotonic() < deadline and (
                not folder.exists() or len(ResultsLog(folder).done()) < before + 2):
            time.sleep(0.05)
        time.sleep(float(rng.uniform(0, 0.3)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    run_grid(tiny, _kill_plan(tiny), folder, KILL_SETTINGS, readers=QUIET)
    table = EvaluationResult(folder).table
    assert table["cell"].nunique() == 10 and len(table) == 40 and not table.duplicated(["cell", "item"]).any()
    assert ResultsLog(folder).verify(full=True).sound


def test_a_result_verifies_and_repairs_its_folder(tiny, grid):
    result = EvaluationResult(grid)
    assert result.verify(full=True).sound and str(result.verify()).startswith("4 cells ok")
    (grid / "cells" / cell_file("reference")).write_bytes(b"x")
    report = result.repair()
    assert "reference" in report.corrupt and "reference" not in set(result.table["cell"])
    assert result.verify().sound  # the bad cell is in quarantine/, and the next run_grid makes it again
    assert any(p.name == cell_file("reference") for p in (grid / "quarantine").rglob("*.npz"))


def test_a_flipped_digit_in_a_cells_line_is_caught(tiny, grid):
    """A bit flip that leaves valid JSON (a changed measurement) fails the line's checksum; the cell is made again."""
    before = EvaluationResult(grid).table.sort_values(["cell", "item"]).reset_index(drop=True)
    lines = (grid / RESULTS).read_text().splitlines()
    k = next(i for i, line in enumerate(lines) if '"cell": "m|L1|s8"' in line)
    record = json.loads(lines[k])
    record["rows"][0]["code_edit_rate"] += 0.25
    lines[k] = json.dumps(record)
    (grid / RESULTS).write_text("\n".join(lines) + "\n")
    assert f"{RESULTS} line {k + 1}" in ResultsLog(grid).verify().corrupt
    assert "m|L1|s8" not in ResultsLog(grid).done()
    with pytest.warns(UserWarning, match="quarantine"):
        run_grid(tiny, _plan(tiny), grid, SETTINGS, readers=QUIET)
    after = EvaluationResult(grid).table.sort_values(["cell", "item"]).reset_index(drop=True)
    assert after["code_edit_rate"].tolist() == before["code_edit_rate"].tolist()
