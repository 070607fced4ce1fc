"""Trace view, patching view and their place in `Workbench` (fakes first, then the teaching model)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from test_widgets import FakeBackend, FakeClip, tone

from widgets import PatchingView, TraceView, Workbench
from workbench.analysis.step_traces import StepTrace


def click(fig, x, y, point_index):
    """What the browser sends when a heatmap cell is clicked (plotly gives [row, col] for heatmaps)."""
    fig._js2py_pointsCallback = {"event_type": "plotly_click", "points": {
        "xs": [x], "ys": [y], "point_indexes": [point_index], "trace_indexes": [0]}, "selector": None}


def step_trace(shift=0.0, layers=4, steps=10, prompt="calm jazz"):
    proj = np.add.outer(np.arange(layers, dtype=np.float32), np.linspace(0, 1, steps))[..., None] + shift
    return StepTrace(proj, np.abs(proj) + 1, [FakeClip(tone(seconds=1.0)[0], prompt)], tuple(range(layers)),
                     "resid", 10.0)


def patch_rows(layers=3, windows=4):
    return pd.DataFrame([dict(mode="forward", site="resid", layer=layer, window=k, start=5 * k, stop=5 * k + 5,
                              recovered=(layer + 1) * (windows - k) / (layers * windows))
                         for layer in range(layers) for k in range(windows)])


def test_trace_view_runs_shows_and_plays_from_a_click():
    calls = []
    view = TraceView(trace_fn=lambda request, direction: calls.append((request, direction))
                     or (step_trace(), step_trace(shift=2.0)))
    view.run()
    assert "nothing to trace" in view.last_error and not calls  # no direction / request yet: said in the widget
    view.direction, view.request = "dir", "req"
    original, steered = view.run()
    assert calls == [("req", "dir")]
    fig = view.figures["steered"]
    assert fig.data[0].type == "heatmap" and fig.data[0].z.shape == (4, 10)
    assert fig.data[0].zmax == pytest.approx(float(np.abs(steered.projection).max()))  # one scale for both
    assert "largest at layer" in view.readout.value
    click(fig, 0.6, 2, [2, 6])
    assert view.clicked_time_s == pytest.approx(0.6) and view.players["steered"].start_s == pytest.approx(0.6)
    assert view.players["steered"].play_token == 1 and view.players["original"].play_token == 0
    html = view.static_html()
    assert html.count("<img") == 2 and html.count("<audio") == 2


def test_trace_view_without_a_steered_trace_and_errors():
    view = TraceView()
    view.run()
    assert "no trace_fn" in view.last_error
    view.show(step_trace(), None)
    assert not view.figures["steered"].data and "none" in view.figures["steered"].layout.title.text
    view.click(0.3, which="steered")
    assert "no steered trace" in view.last_error
    view.click(0.3)
    assert view.players["original"].start_s == pytest.approx(0.3)


def test_patching_view_heatmap_click_plays_three_clips():
    made = []

    def clip_fn(row):
        made.append((row["layer"], row["window"]))
        return {"source": tone(220), "target": tone(330), "patched": tone(440)}
    view = PatchingView(patch_rows(), clip_fn=clip_fn)
    z = view.grid()
    assert z.shape == (3, 4) and z[2, 0] == pytest.approx(1.0)
    assert list(view.figure.data[0].x) == ["0–5", "5–10", "10–15", "15–20"]
    click(view.figure, "10–15", 1, [1, 2])
    assert made == [(1, 2)] and view.selected["layer"] == 1 and view.selected["window"] == 2
    assert [len(view.players[r].children) for r in ("source", "target", "patched")] == [2, 2, 2]
    assert view.static_html().count("<audio") == 3
    view.select(layer=7, window=0)
    assert "no cell at layer 7" in view.last_error


def test_patching_view_generate_sweep_rows_carry_their_clips_and_run_fn():
    df = patch_rows(layers=1, windows=2)
    df["clip"] = [tone(500), tone(600)]
    df.attrs.update(source_clip=tone(220), target_clip=tone(330))
    runs = []
    view = PatchingView(run_fn=lambda s, t, on_progress: runs.append((s, t)) or (df, None))
    view.run()
    assert "set a source and a target" in view.last_error
    view.source_prompt, view.target_prompt = "jazz", "rock"
    view.run()
    assert runs == [("jazz", "rock")] and view.grid().shape == (1, 2)
    view.select(layer=0, window=1)
    assert view.clips["patched"] is df["clip"][1] and view.clips["source"] is df.attrs["source_clip"]


def test_patching_view_counts_the_cells_while_a_sweep_runs():
    df = patch_rows(layers=2, windows=2)
    seen = []

    def run_fn(source, target, on_progress):
        for done in range(len(df) + 1):
            on_progress(done, len(df))
            seen.append((view.readout.value, view.bar.value, view.bar.layout.display, view.run_button.disabled))
        return df, None
    view = PatchingView(run_fn=run_fn)
    view.source_prompt, view.target_prompt = "jazz", "rock"
    view.run(wait=False)  # as the Run button does: in a thread
    view.wait(10)
    assert [r[0].endswith(f"{n}/4 cells") for n, r in enumerate(seen)] == [True] * 5
    assert "patching “jazz” into “rock”: 2/4 cells" in seen[2][0]
    assert [r[1:] for r in seen] == [(n, None, True) for n in range(5)]
    assert view.last_error == "" and not view.running and view.grid().shape == (2, 2)
    assert view.readout.value.startswith("4 cells in ") and view.bar.layout.display == "none"
    assert not view.run_button.disabled


def test_patching_view_reports_a_failed_sweep_after_the_cells_it_did():
    def run_fn(source, target, on_progress):
        on_progress(1, 6)
        raise RuntimeError("out of memory")
    view = PatchingView(run_fn=run_fn)
    view.source_prompt, view.target_prompt = "jazz", "rock"
    view.run()
    assert "out of memory" in view.last_error and view.readout.value.endswith("failed after 1/6 cells")
    assert not view.running and not view.run_button.disabled


class InspectingBackend(FakeBackend):
    def __init__(self):
        super().__init__()
        for i, clip in enumerate(self.collection.clips):
            clip.prompt = "rock music" if i < 4 else "jazz music"
        self.traced, self.patched = [], []

    def trace(self, request, direction):
        self.traced.append((request, direction))
        return step_trace(), step_trace(shift=1.0)

    def patching(self, source, target, on_progress=None):
        self.patched.append((source, target))
        return patch_rows(), lambda row: {"source": tone(), "target": tone(), "patched": tone()}


def test_workbench_feeds_the_inspection_views():
    be = InspectingBackend()
    ui = Workbench.from_backend(be, prompts_by_label={"rock": "rock music", "jazz": "jazz music"})
    assert ui.trace_view.direction == ui.direction == "class_pair@3"
    assert (ui.patching_view.source_prompt, ui.patching_view.target_prompt) == ("jazz music", "rock music")
    ui.panel.strength = 2.0
    ui.panel.generate()
    assert ui.trace_view.request.strength == 2.0
    ui.trace_view.run()
    assert be.traced == [(ui.trace_view.request, "class_pair@3")] and ui.trace_view.figures["steered"].data
    ui.explorer.select([5, 6])
    ui.explorer.use_selection_as("A")
    ui.explorer.select([0])
    ui.explorer.use_selection_as("B")  # direction jazz -> rock: rock is patched into jazz
    assert (ui.patching_view.source_prompt, ui.patching_view.target_prompt) == ("rock music", "jazz music")
    ui.patching_view.run()
    assert be.patched == [("rock music", "jazz music")] and ui.patching_view.grid().shape == (3, 4)
    html = ui._repr_mimebundle_()["text/html"]
    assert html.count("<img") >= 3  # the trace pair and the patching heatmap in the static fallback


@pytest.mark.slow
def test_backend_trace_and_patching_on_the_teaching_model():
    import workbench as wb
    from widgets import Backend, Collection
    from widgets.requests import SteerRequest
    h = wb.load_model()
    col = Collection.generate(h, {"jazz": ["jazz music"], "rock": ["rock music"]}, n_per_label=2,
                              settings=wb.GenerationSettings(duration_s=0.5))
    be = Backend(h, col)
    direction = np.random.default_rng(0).normal(size=h.hidden_size).astype(np.float32)
    request = SteerRequest("jazz music", layers=[2], strength=3.0, duration_s=0.5, seed=1, direction=direction)
    original, steered = be.trace(request, direction)
    assert original.projection.shape == steered.projection.shape == (h.n_layers, 28, 1)
    assert not np.allclose(original.projection[3:], steered.projection[3:])
    counts = []
    sweep, clip_fn = be.patching("jazz music", "rock music", wb.GenerationSettings(duration_s=0.5), windows=2,
                                 on_progress=lambda done, total: counts.append((done, total)))
    assert len(sweep) == 2 * h.n_layers and sweep.recovered.notna().all()
    assert counts == [(n, 2 * h.n_layers) for n in range(2 * h.n_layers + 1)]
    clips = clip_fn(sweep.iloc[-1].to_dict())
    assert clips["patched"].codes.shape == clips["source"].codes.shape
    view = PatchingView(sweep, clip_fn=clip_fn)
    view.select(layer=h.n_layers - 1, window=1)
    assert view.last_error == "" and view.clips["patched"] is not None
