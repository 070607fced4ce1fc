"""workbench.analysis.evaluation: metrics, the paper's method, per-row steering, the resumable grid, summaries."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

import workbench as wb
from workbench.analysis.evaluation import (
    GridMismatchError,
    GridPlan,
    Method,
    PaperProbe,
    auc_table,
    code_edit_rate,
    descriptor_shifts,
    descriptors,
    fad_table,
    frechet_distance,
    frontier_auc,
    items_for,
    mel_distance,
    paper_2506_10225,
    random_like,
    run_grid,
    tradeoff,
)
from workbench.analysis.scores import Readers
from workbench.errors import BadInputError, StoppedError, UnknownOptionError
from workbench.runtime.edits import Edit
from workbench.runtime.settings import GenerationSettings

SR = 32000
SETTINGS = GenerationSettings(duration_s=0.4)  # every grid here: 0.4 s clips
NO_JUDGE = Readers(judge=False)


@pytest.fixture(scope="module")
def tiny():
    return wb.random_model("tiny")


def _tone(freq, seconds=1.0, sr=SR, amp=0.1):
    return (amp * np.sin(2 * np.pi * freq * np.arange(int(seconds * sr)) / sr)).astype(np.float32)


# -- metrics -------------------------------------------------------------------------------------------

def test_code_edit_rate_and_mel_distance():
    a = np.arange(40).reshape(4, 10)
    assert code_edit_rate(a, a) == 0.0 and code_edit_rate(a, a + 1) == 1.0
    assert code_edit_rate(a, a[:, :5]) == 0.0  # over the shorter clip
    with pytest.raises(BadInputError, match="same codebooks"):
        code_edit_rate(a, a[:3])
    low, high = _tone(220), _tone(3000)
    assert mel_distance(low, low, SR) == 0.0
    assert mel_distance(low, high, SR) > mel_distance(low, low * 0.9, SR) > 0


def test_frechet_distance_matches_closed_form():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 4))
    assert frechet_distance(x, x) == pytest.approx(0.0, abs=1e-9)
    # same covariance, shifted mean: |shift|^2
    assert frechet_distance(x, x + np.array([1.0, 2.0, 0.0, 0.0])) == pytest.approx(5.0, rel=1e-6)
    # 1-D: (mu1 - mu2)^2 + (s1 - s2)^2
    a, b = rng.normal(0, 1, size=(5000, 1)), rng.normal(0, 3, size=(5000, 1))
    expected = (a.mean() - b.mean()) ** 2 + (a.std(ddof=1) - b.std(ddof=1)) ** 2
    assert frechet_distance(a, b) == pytest.approx(expected, rel=1e-6)
    few = rng.normal(size=(5, 16))  # fewer clips than dimensions: rank-deficient, still real and >= 0
    assert np.isfinite(frechet_distance(few, few + 0.1)) and frechet_distance(few, few + 0.1) >= 0
    with pytest.raises(BadInputError, match="at least 2"):
        frechet_distance(x[:1], x)


def test_descriptors_read_tempo_centroid_loudness_key():
    t = np.arange(4 * SR) / SR
    beat = np.zeros_like(t)
    for onset in np.arange(0, 4, 0.5):  # 120 BPM clicks
        i = int(onset * SR)
        beat[i:i + 800] = np.hanning(800)
    d = descriptors(beat.astype(np.float32), SR)
    assert d["tempo_bpm"] == pytest.approx(120, rel=0.05)
    chord = sum(_tone(f, 4.0) for f in (261.63, 329.63, 392.0, 523.25))  # C major
    d = descriptors(chord, SR)
    assert d["key"] == "C major"
    assert descriptors(_tone(1000), SR)["centroid_hz"] == pytest.approx(1000, rel=0.05)
    assert descriptors(_tone(440, amp=0.1), SR)["loudness_db"] == pytest.approx(-23.0, abs=0.1)
    with pytest.raises(BadInputError, match="at least 0.25 s"):
        descriptors(_tone(440, 0.1), SR)


# -- methods and presets -------------------------------------------------------------------------------

def test_method_validates_and_normalises():
    m = Method("m", {("rock", 1): [3.0, 4.0]}, strength_unit={1: 2.0})
    assert np.allclose(m.direction("rock", 1), [0.6, 0.8]) and m.absolute_strength(1, 0.5) == 1.0
    with pytest.raises(UnknownOptionError, match="no direction toward 'jazz'"):
        m.direction("jazz", 1)
    with pytest.raises(BadInputError, match="zero length"):
        Method("z", {("rock", 1): [0.0, 0.0]})
    with pytest.raises(BadInputError, match="steering mode"):
        Method("m", {("rock", 1): [1.0]}, mode="multiply")
    r = random_like(m, seed=3)
    assert r.mode == m.mode and r.strength_unit == m.strength_unit and abs(r.direction("rock", 1) @ [0.6, 0.8]) < 1


def test_paper_probe_has_no_bias_and_reads_l2_normalised_rows():
    rng = np.random.default_rng(1)
    y = np.repeat(["a", "b", "c"], 20)
    X = rng.normal(size=(60, 6)) + 4 * np.eye(6)[np.searchsorted(["a", "b", "c"], y)]
    probe = PaperProbe("mse").fit(X, y)
    Xn = X / np.linalg.norm(X, axis=1, keepdims=True)
    assert np.allclose(probe.coef_.T, np.linalg.lstsq(Xn, np.eye(3)[np.searchsorted(["a", "b", "c"], y)],
                                                      rcond=None)[0])
    scaled = X * rng.uniform(0.1, 10, size=(60, 1))  # row scale is invisible to it
    assert np.array_equal(probe.predict(scaled), probe.predict(X))
    assert np.allclose(probe.decision_function(np.zeros((1, 6))), 0)  # no bias
    assert PaperProbe("logistic").fit(X, y).score(X, y) > 0.9
    with pytest.raises(UnknownOptionError):
        PaperProbe("hinge")


def test_paper_preset_is_the_published_method(tiny):
    rng = np.random.default_rng(2)
    y = np.repeat(["jazz", "rock"], 20)
    last = {layer: rng.normal(size=(40, tiny.hidden_size)) + (y == "rock")[:, None] * layer for layer in (0, 1, 2)}
    m = paper_2506_10225(last, y)  # layer from its own sweep: the most separable one
    assert m.layers == (2,)
    coef = PaperProbe("mse").fit(last[2], y).coef_[1]
    assert np.allclose(m.direction("rock", 2), coef / np.linalg.norm(coef), atol=1e-6)
    spec = m.spec("rock", 2, 0.7)
    assert (spec.mode, spec.rows, spec.terms[0].strength) == ("norm_relative", "cond", 0.7)
    sched = spec.terms[0].schedule
    assert (sched.kind, sched.every, sched.width) == ("pulse", 25, 1)
    assert [spec.terms[0].strength_at(s) for s in (0, 1, 24, 25, 50)] == [0.7, 0, 0, 0.7, 0.7]


@pytest.mark.parametrize("mode,strength", [("add", 6.0), ("norm_relative", 0.8)])
def test_per_row_steering_equals_steering_spec_bit_for_bit(tiny, mode, strength):
    """Per-row steering (an Edit with one vector per prompt) toward one target is that target's SteeringSpec."""
    prompts, seeds = ["jazz", "rock", "calm piano"], [3, 4, 5]
    v = np.random.default_rng(0).normal(size=tiny.hidden_size).astype(np.float32)
    sched = wb.Schedule("pulse", every=3, width=1)
    spec = wb.SteeringSpec.single(v, layers=(1,), strength=strength, mode=mode, schedule=sched)
    ours_spec = wb.generate(tiny, prompts, duration_s=0.4, seeds=seeds, steering=spec).clips
    per_row = Edit(mode, layer=1, vector=np.stack([v] * 3), strength=strength, schedule=sched, rows="cond")
    ours_rows = wb.generate(tiny, prompts, duration_s=0.4, seeds=seeds, edits=[per_row]).clips
    for a, b in zip(ours_spec, ours_rows):
        assert np.array_equal(a.codes, b.codes)
    plain = wb.generate(tiny, prompts, duration_s=0.4, seeds=seeds).clips
    assert any(not np.array_equal(a.codes, b.codes) for a, b in zip(plain, ours_rows))
    with pytest.raises(BadInputError, match="one row per prompt"):
        wb.generate(tiny, prompts, duration_s=0.4, seeds=seeds,
                    edits=[Edit(mode, layer=1, vector=np.stack([v] * 2), strength=1.0)])


# -- the grid ----------------------------------------------------------------------------------------

def _plan(tiny, **kw):
    rng = np.random.default_rng(5)
    m = Method("m", {(t, 1): rng.normal(size=tiny.hidden_size) for t in ("rock", "jazz")},
               strengths=(0.0, 12.0), strength_unit={1: 1.0})
    items = items_for(["jazz", "rock"], seeds=[0, 1], targets=["rock", "jazz"], sources=["jazz", "rock"])
    return GridPlan((m, random_like(m, seed=1)), layers=(1,), items=items, **kw)


class _Judge:
    """A stand-in judge (the real one needs clips the teaching model makes): loudness decides."""
    classes = ["jazz", "rock"]

    def predict_proba(self, waves, sr):
        p = np.array([1 / (1 + np.exp(-200 * float(np.std(w)) + 1)) for w in waves])
        return np.c_[1 - p, p]


def test_grid_rows_twins_and_strength_zero(tiny, tmp_path):
    plan = _plan(tiny)
    res = run_grid(tiny, plan, tmp_path / "g", SETTINGS, readers=Readers(judge=_Judge(), clap=True))
    table = res.table
    assert sorted(table["kind"].value_counts().items()) == [("reference", 4), ("steered", 16), ("twin", 4)]
    twins = table[table["kind"] == "twin"]
    plain = wb.generate(tiny, ["jazz", "jazz", "rock", "rock"], duration_s=0.4, seeds=[0, 1, 0, 1]).clips
    codes = res.arrays("twin")["codes"]
    assert all(np.array_equal(c.codes, codes[i]) for i, c in enumerate(plain))
    zero = table[(table["kind"] == "steered") & (table["strength"] == 0)]
    assert (zero["mel_distance"] == 0).all()
    for _, rows in zero.groupby("method"):
        assert rows["judge_p_target"].tolist() == twins["judge_p_target"].tolist()
    strong = table[(table["kind"] == "steered") & (table["strength"] == 12)]
    # (the random model's codec is near silent, so its audio distances are ~0; tones test mel_distance)
    assert (strong["code_edit_rate"] > 0).all()
    from workbench.analysis.scores import clap_reading
    have_clap = clap_reading([(np.zeros(SR, np.float32), SR)], ["rock"]) is not None
    assert ("clap_p_target" in table) == have_clap  # without local CLAP weights: skipped, nothing raised
    assert np.allclose(res.clip(0).mono, plain[0].mono, atol=1e-5)  # decoded from the stored codes
    assert res.twin_index(int(strong.index[0])) == int(twins.index[twins["item"] == strong["item"].iloc[0]][0])
    for col in ("tempo_bpm", "centroid_hz", "loudness_db", "key", "embedding_distance"):
        assert table[col].notna().all(), col


def test_grid_resumes_and_refuses_another_grid(tiny, tmp_path, monkeypatch):
    folder = tmp_path / "g"
    calls = {"n": 0}
    stop_after = 3  # twins, reference, first steered cell

    def stop():
        return calls["n"] >= stop_after

    import workbench.analysis.evaluation.grid as grid
    real = grid._generate

    def counting(*args, **kwargs):
        out = real(*args, **kwargs)
        calls["n"] += 1  # after the cell's clips are made: the stop lands between cells
        return out

    monkeypatch.setattr(grid, "_generate", counting)
    with pytest.raises(StoppedError, match="run the same call again"):
        run_grid(tiny, _plan(tiny), folder, SETTINGS, readers=NO_JUDGE, stop=stop)
    assert calls["n"] == 3
    assert len(wb_result(folder)) == 4 + 4 + 8  # twins, reference, m at 0 (the twins' rows) and at 12
    with open(folder / "results.jsonl", "a") as f:
        f.write('{"cell": "torn')  # a crash mid-line: ignored
    calls["n"] = 0
    res = run_grid(tiny, _plan(tiny), folder, SETTINGS, readers=NO_JUDGE)
    assert calls["n"] == 1  # only the missing cell (random at 12); strength 0 cells are never generated
    assert len(res.table) == 24 and res.table["cell"].nunique() == 6
    calls["n"] = 0
    run_grid(tiny, _plan(tiny), folder, SETTINGS, readers=NO_JUDGE)
    assert calls["n"] == 0
    plan = _plan(tiny)
    changed = GridPlan((dataclasses.replace(plan.methods[0], strength_unit={1: 2.0}),), layers=(1,),
                       items=plan.items)
    with pytest.raises(GridMismatchError, match="other directions or settings"):
        run_grid(tiny, changed, folder, SETTINGS, readers=NO_JUDGE)
    with pytest.raises(GridMismatchError, match="duration_s"):
        run_grid(tiny, GridPlan(plan.methods, layers=(1,), items=plan.items), folder, SETTINGS.replace(duration_s=0.6),
                 readers=NO_JUDGE)


KILL_SCRIPT = """
import sys, workbench as wb
sys.path.insert(0, {tests!r})
from test_evaluation import NO_JUDGE, SETTINGS, _kill_plan
from workbench.analysis.evaluation import run_grid
h = wb.random_model("tiny")
run_grid(h, _kill_plan(h), sys.argv[1], SETTINGS, readers=NO_JUDGE)
"""


def _kill_plan(h):
    rng = np.random.default_rng(5)
    m = Method("m", {("rock", 1): rng.normal(size=h.hidden_size)}, strengths=tuple(float(s) for s in range(8)))
    return GridPlan((m,), layers=(1,), items=items_for(["jazz", "rock"], seeds=[0, 1], targets="rock"))


@pytest.mark.slow
def test_a_killed_grid_resumes(tiny, tmp_path):
    import signal
    import subprocess
    import sys
    import time
    folder = tmp_path / "g"
    script = tmp_path / "grid.py"
    script.write_text(KILL_SCRIPT.format(tests=str(Path(__file__).parent)))
    proc = subprocess.Popen([sys.executable, str(script), str(folder)])
    log = folder / "results.jsonl"
    deadline = time.monotonic() + 600  # generous: the child imports torch and transformers (slow on a loaded machine)
    while proc.poll() is None and time.monotonic() < deadline and (not log.exists()
                                                                   or len(log.read_text().splitlines()) < 5):
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)  # mid-grid: some cells committed, one maybe half written
    proc.wait()
    # the plan's copy, then 4 cells
    assert log.exists() and len(log.read_text().splitlines()) >= 5, "the grid did not commit 4 cells before the kill"
    done_before = set(wb_result(folder)["cell"])
    assert 4 <= len(done_before) < 10, done_before
    run_grid(tiny, _kill_plan(tiny), folder, SETTINGS, readers=NO_JUDGE)  # the same call, here: resumes
    table = wb_result(folder)
    assert table["cell"].nunique() == 10 and len(table) == 40  # twin, reference, 8 strengths, 4 clips each
    assert not table.duplicated(["cell", "item"]).any()


def wb_result(folder):
    from workbench.analysis.evaluation import EvaluationResult
    return EvaluationResult(folder).table


def test_stop_inside_a_cell_keeps_committed_cells(tiny, tmp_path):
    log = tmp_path / "g" / "results.jsonl"
    calls = {"after": 0}

    def stop():  # polled between cells and every decoder step: true inside the generation of cell m|12
        if log.exists() and len(log.read_text().splitlines()) >= 4:  # the plan's copy and 3 cells
            calls["after"] += 1
        return calls["after"] > 1

    with pytest.raises(StoppedError, match="run the same call again") as info:
        run_grid(tiny, _plan(tiny), tmp_path / "g", SETTINGS, readers=NO_JUDGE, stop=stop)
    assert isinstance(info.value.__cause__, StoppedError)
    assert sorted(set(wb_result(tmp_path / "g")["kind"])) == ["reference", "steered", "twin"]


def test_bad_cells_are_refused_before_any_work(tiny, tmp_path):
    items = items_for(["jazz"], seeds=[0], targets="rock")
    v = {("rock", 1): np.ones(tiny.hidden_size)}
    bad = [(Method("nr", v, mode="norm_relative", strengths=(0.0, -2.0)), 1, "divides by"),
           (Method("far", {("rock", 7): np.ones(tiny.hidden_size)}), 7, "out of range|layer"),
           (Method("small", {("rock", 1): np.ones(8)}), 1, "hidden size")]
    for method, layer, message in bad:
        with pytest.raises(BadInputError, match=message):
            run_grid(tiny, GridPlan((method,), layers=(layer,), items=items), tmp_path / method.name,
                     SETTINGS.replace(duration_s=0.3), readers=NO_JUDGE)
        assert not (tmp_path / method.name / "results.jsonl").exists()


def test_plan_checks_targets():
    m = Method("m", {("rock", 1): [1.0, 0.0]})
    with pytest.raises(UnknownOptionError, match="no direction toward 'jazz'"):
        GridPlan((m,), layers=(1,), items=items_for(["x"], seeds=[0], targets="jazz"))
    with pytest.raises(BadInputError, match="unique"):
        GridPlan((m, m), layers=(1,), items=items_for(["x"], seeds=[0], targets="rock"))


# -- summaries -----------------------------------------------------------------------------------------

def test_frontier_auc():
    assert frontier_auc([1.0], [0.3]) == pytest.approx(0.3)
    assert frontier_auc([1.0, 0.5, 0.0], [0.2, 0.8, 1.0]) == pytest.approx(0.5 * 0.5 + 0.5 * 0.9)
    assert frontier_auc([1.0, 0.5], [0.2, 0.1]) == pytest.approx(0.2)  # worse points never lower it
    assert frontier_auc([0.5], [0.4]) == pytest.approx(0.4)  # flat on both sides
    assert frontier_auc([1.0, 0.0], [0.0, 1.0]) == pytest.approx(0.5)
    with pytest.raises(BadInputError):
        frontier_auc([], [])


def test_summaries_on_a_grid(tiny, tmp_path):
    res = run_grid(tiny, _plan(tiny), tmp_path / "g", SETTINGS, readers=Readers(judge=_Judge()))
    curve = tradeoff(res.table)
    assert set(curve["method"]) == {"m", "random"} and curve["preservation"].between(0, 1).all()
    aucs = auc_table(res.table)
    assert len(aucs) == 2 and aucs["auc"].between(0, 1).all()
    from workbench.analysis.evaluation.summaries import bootstrap_aucs
    draws = bootstrap_aucs(res.table, n=20, seed=1)
    assert len(draws) == 40 and draws.equals(bootstrap_aucs(res.table, n=20, seed=1))
    ci = auc_table(res.table, bootstrap=20, seed=1)
    assert (ci["auc_lo"] <= ci["auc_hi"]).all() and ci["auc_lo"].between(0, 1).all()
    shifts = descriptor_shifts(res.table)
    assert (shifts.loc[shifts["strength"] == 0, ["tempo_change_pct", "key_changed"]] == 0).all().all()
    fads = fad_table(res)
    assert fads.iloc[0]["method"] == "reference" and (fads.loc[fads["strength"] == 0, "fad"].abs() < 1e-6).all()
    with pytest.raises(BadInputError, match="readers present"):
        tradeoff(res.table, reader="clap")

    from types import SimpleNamespace

    from widgets import EvaluationView
    view = EvaluationView(res)
    assert [tr.name for tr in view.figure.data] == ["m L1 · absolute", "random L1 · absolute"]  # no unit given
    assert len(view.strength_plot.data) == 2
    row = view.select("random", 1, 12.0, item=2)
    assert (row["method"], row["item"], row["strength"]) == ("random", 2, 12.0)
    twin = res.twin(res.twin_index(int(res.table.index[(res.table["cell"] == row["cell"])
                                                       & (res.table["item"] == 2)][0])))
    assert np.array_equal(view.clips["twin"].codes, twin.codes)
    assert not np.array_equal(view.clips["steered"].codes, twin.codes)
    trace = view.figure.data[0]
    view._on_click(trace, SimpleNamespace(point_inds=[1]), None)  # what a click on m's second point sends
    assert (view.selected["method"], view.selected["strength"]) == ("m", 12.0)
    view.item_dd.value = 3  # choosing another clip of the cell shows it
    assert view.selected["item"] == 3
    assert view.select("m", 1, 5.0) is None and "no clips for 'm'" in view.last_error
    assert "<svg" in view.static_html() and "auc" in view.static_html()


def test_direction_data_takes_settings_whole(tiny):
    from workbench.analysis.evaluation.report import direction_data
    greedy = GenerationSettings(duration_s=0.25, temperature=0.0, batch_size=24)
    data = direction_data(tiny, (0, 1), greedy)
    assert len(data["labels"]) == 24 and data["mean"][0].shape == (24, tiny.hidden_size)
    first, second = data["clips"][0], data["clips"][1]  # the first prompt with seeds 0 and 1
    assert (first.prompt, first.seed, second.seed) == (second.prompt, 0, 1)
    assert np.array_equal(first.codes, second.codes)  # greedy: the seed does not matter
    with pytest.raises(BadInputError, match="leave settings.seeds at 0"):
        direction_data(tiny, (0,), GenerationSettings(seeds=2))


def test_report_cli_writes_json(tmp_path, monkeypatch):
    import workbench.analysis.evaluation.report as report
    seen = {}

    def fake(settings=None, **kwargs):
        seen.update(kwargs, settings=settings)
        return dict(grid_s=1.0, grid_clips=3, controls_s=0.5, total_s=2.0, best_layer=1,
                    auc={"class_means": 0.5}, auc_random=0.3, fad_unsteered_pair=1.0, fad_steered_strongest=2.0,
                    regression_vs_classification=dict(mse=0.4, logistic=0.3, mse_better=True), bars={})

    monkeypatch.setattr(report, "run_report", fake)
    assert report.main(["report", "--json", str(tmp_path / "r.json"), "--fast", "--quiet"]) == 0
    assert json.loads((tmp_path / "r.json").read_text())["auc_random"] == 0.3
    assert seen["fast"] and not seen["progress"] and not seen["all_layers"] and seen["settings"] is None
    assert report.main(["report", "--json", str(tmp_path / "r.json"), "--duration", "3", "--quiet"]) == 0
    assert seen["settings"].duration_s == 3.0 and seen["settings"].batch_size == 16  # the grid's, whole


# -- listening test --------------------------------------------------------------------------------------

def test_listening_trials_answers_and_binomial_test(tmp_path):
    from widgets import ListeningTest
    from workbench.analysis.evaluation.listening import AnswerLog, build_trials, summarize
    pairs = [((_tone(440 + k), SR), (_tone(220 + k), SR), dict(target="rock", method="m", strength=1.0, item=k))
             for k in range(10)]
    trials = build_trials(pairs, kind="abx", seed=3)
    assert sorted(t.info["item"] for t in trials) == list(range(10))  # shuffled, each pair once
    assert {t.key["steered"] for t in trials} == {"A", "B"} and {t.key["x"] for t in trials} == {"A", "B"}
    for t in trials:
        steered_clip = pairs[t.info["item"]][0]
        assert t.clips[t.key["steered"]] is steered_clip and t.clips["X"] is t.clips[t.key["x"]]
    path = tmp_path / "answers.jsonl"
    test = ListeningTest(trials, path=path, participant="p")
    players = [b.children[1] for b in test.players.children]
    assert [b.children[0].value for b in test.players.children] == ["<b>A</b>", "<b>B</b>", "<b>X</b>"]
    assert players[2].value not in (players[0].value, players[1].value)  # X's bytes are its own
    shown = test.header.value + test.status.value + "".join(str(p._dom_classes) for p in players)
    assert "steered" not in shown and "twin" not in shown and "rock" not in shown  # abx asks no genre
    for t in trials:
        test.answer(t.correct)
        assert len(AnswerLog(path).read()) == t.index + 1  # on disk as it is given
    assert test.finished and test.summary()["hits"] == 10
    assert summarize(AnswerLog(path).read())["p_value"] == pytest.approx(1 / 1024)
    with pytest.raises(ValueError, match="every trial is answered"):
        test.answer("A")
    with pytest.raises(BadInputError, match="answer 'A' or 'B'"):
        AnswerLog(tmp_path / "a.csv").append(trials[0], "C", response_s=1.0)
    with pytest.raises(BadInputError, match="answers go to an SQLite file"):
        AnswerLog(tmp_path / "a.txt")
    half = [dict(hit=k % 2 == 0, response_s=1.0) for k in range(20)]
    assert 0.4 < summarize(half)["p_value"] < 0.7
