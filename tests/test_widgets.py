"""Widgets with small fake objects (no model): state in traitlets, usable from code, errors visible."""
from __future__ import annotations

import doctest
import subprocess
import sys
import threading
import time
import zlib

import numpy as np
import pytest

from widgets import (
    Backend,
    ClipComparer,
    Collection,
    DirectionPicker,
    DirectionRequest,
    LayerSweepView,
    ProjectionExplorer,
    SteeringPanel,
    SteerRequest,
    Workbench,
    static,
)
from widgets._base import RefusedValueError
from workbench.errors import BadInputError, OutOfRangeError, WrongTypeError

RATE = 8000


def tone(freq=220.0, seconds=0.5):
    return (np.sin(2 * np.pi * freq * np.arange(int(RATE * seconds)) / RATE).astype(np.float32) * 0.3, RATE)


def sweep_rows(n_layers=4, sites=("resid",)):
    return [dict(site=s, layer=i, accuracy_mean=0.3 + 0.15 * i, accuracy_std=0.05, control_accuracy_mean=0.25)
            for s in sites for i in range(n_layers)]


def plotly_event(fig, event, point_indexes, trace_indexes):
    """What the browser sends when a point is clicked / lasso-selected."""
    fig._js2py_pointsCallback = {"event_type": event, "points": {
        "xs": [0.0] * len(point_indexes), "ys": [0.0] * len(point_indexes),
        "point_indexes": point_indexes, "trace_indexes": trace_indexes}, "selector": None}


@pytest.mark.parametrize("module", ["static", "sweep_view", "projection_view", "lasso", "direction_picker",
                                    "steering_panel", "clip_compare", "teaching", "requests"])
def test_docstring_examples(module):
    mod = __import__(f"widgets.{module}", fromlist=["_"])
    assert doctest.testmod(mod).failed == 0


def test_widgets_do_not_import_torch():
    code = "import sys, widgets; assert 'torch' not in sys.modules, 'widgets imported torch'"
    subprocess.run([sys.executable, "-c", code], check=True)
    # nor does building and checking requests, or a backend making a class-means direction from them
    code = ("import sys, numpy as np, widgets as W;"
            "r = W.SteerRequest('rock', layers=[1], strength=2.0, mode='norm_relative');"
            "col = W.Collection(acts={('resid', 1): np.eye(4)}, labels=['a', 'a', 'b', 'b'], texts=[''] * 4, clips=[]);"
            "h = type('H', (), {'model_id': 'fake'})();"
            "d = W.Backend(h, col).make_direction(W.DirectionRequest('class_pair', layer=1, class_a='a', class_b='b'));"
            "assert d.method == 'class_means' and 'torch' not in sys.modules, 'torch was imported'")
    subprocess.run([sys.executable, "-c", code], check=True)


def test_static_png_and_wav_are_well_formed():
    png = static.spectrogram_png(tone())
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    idat = png[png.index(b"IDAT") + 4: png.index(b"IEND") - 8]
    assert len(zlib.decompress(idat)) > 0
    wav = static.wav_bytes(np.ones(100) * 3, RATE)  # over 1: normalised, not wrapped
    assert wav[:4] == b"RIFF" and np.frombuffer(wav[44:], "<i2").max() == 32767
    assert "data:audio/wav;base64" in static.audio_html((np.zeros(64000), 32000))


def test_static_plots_take_their_size_as_one_pair():
    svg = static.svg_lines({"a": ([0, 1], [0.2, 0.4], None)}, size_px=(700, 250))
    assert svg.startswith("<svg xmlns='http://www.w3.org/2000/svg' width='700' height='250'")
    assert "width='560' height='380'" in static.svg_scatter(np.zeros((2, 2)), ["a", "b"])
    assert "width='300' height='200'" in static.svg_scatter(np.zeros((2, 2)), ["a", "b"], size_px=(300, 200))
    with pytest.raises(OutOfRangeError, match="at least 200 pixels"):
        static.svg_lines({}, size_px=(100, 300))
    with pytest.raises(WrongTypeError, match=r"\(width, height\)"):
        static.svg_lines({}, size_px=560)


def test_sweep_view_click_selects_layer_and_has_static_fallback():
    view = LayerSweepView(sweep_rows(sites=("resid", "mlp")))
    assert view.layer == 3 and view.site == "resid"
    mlp_trace = [t.name for t in view.figure.data].index("mlp probe")
    plotly_event(view.figure, "plotly_click", [1], [mlp_trace])
    assert (view.site, view.layer) == ("mlp", 1)
    assert "layer 1" in view.readout.value
    bundle = view._repr_mimebundle_()
    assert "application/vnd.jupyter.widget-view+json" in bundle and bundle["text/html"].startswith("<svg")
    with pytest.raises(ValueError, match="no rows"):
        LayerSweepView([])


def test_explorer_errors_are_shown_in_the_widget():
    ex = ProjectionExplorer(np.zeros((2, 2)), ["a", "b"])
    ex.make_direction()
    assert "group A and group B" in ex.last_error and ex.errors.outputs
    with pytest.raises(ValueError, match="one label per point"):
        ProjectionExplorer(np.zeros((3, 2)), ["a"])


def test_direction_picker_methods_and_errors():
    calls = []
    picker = DirectionPicker(["rock", "jazz"], make_fn=lambda request: calls.append(request) or request.method)
    picker.layer, picker.method, picker.component = 2, "PCA", 1
    assert picker.make() == "pca" and calls[-1].component == 1 and calls[-1].layer == 2
    assert not picker.pc_box.disabled and picker.b_dd.disabled
    picker.method, picker.class_a, picker.class_b = "class A → B", "jazz", "jazz"
    assert picker.make() is None and "both 'jazz'" in picker.last_error
    picker.method = "current selection"
    picker.make()
    assert "lasso" in picker.last_error
    picker.groups = ((0, 1), (2,))
    assert picker.make() == "selection" and picker.last_error == ""


def test_steering_panel_threaded_generate_disables_button_and_stop_works():
    started = threading.Event()

    def slow(request, on_progress, should_stop):
        started.set()
        for i in range(200):
            time.sleep(0.01)
            on_progress(i / 200)
            if should_stop():
                raise type("StoppedError", (Exception,), {})("stopped")
        return tone()
    panel = SteeringPanel(n_layers=6, generate_fn=slow)
    assert panel.layers == [3] and panel.layers_box.value == (3,)
    panel.generate(wait=False)
    started.wait(2)
    assert panel.running and panel.generate_button.disabled and not panel.stop_button.disabled
    time.sleep(0.2)
    assert 0 < panel.bar.value < 1
    panel.stop()
    panel.wait(5)
    assert not panel.running and not panel.generate_button.disabled
    assert panel.status.value == "stopped" and panel.clips == [] and panel.last_error == ""


def test_steering_panel_from_code_and_errors():
    seen = []

    def fake(request, on_progress, should_stop):
        seen.append(request)
        if request["strength"] > 10:
            raise ValueError("strength too large for this test")
        return tone()
    panel = SteeringPanel(n_layers=4, generate_fn=fake)
    panel.layers_box.value = (0, 2)  # as a user would pick them
    panel.strength_slider.value = -1.5
    panel.direction = "v"
    assert panel.generate() is not None
    assert seen[-1]["layers"] == (0, 2) and seen[-1]["strength"] == -1.5 and len(panel.players.children) == 1
    got = []
    panel.on_clip(lambda clip, request: got.append(request["seed"]))
    panel.seed = 7
    panel.generate(wait=False)
    panel.wait(5)
    assert got == [7] and len(panel.clips) == 2 and len(panel.players.children) == 2
    panel.strength_max = 12
    panel.strength = 11
    assert panel.generate() is None and "too large" in panel.last_error and not panel.running
    assert "<audio" in panel._repr_mimebundle_()["text/html"]


def test_clip_comparer_players_spectrograms_scores():
    cmp = ClipComparer(score_fn=lambda clip: {"judge: rock": float(len(clip[0]))})
    assert "nothing yet" in cmp._repr_mimebundle_()["text/html"]
    cmp.compare(tone(220, 0.5), tone(440, 0.25))
    assert [s["judge: rock"] for s in cmp.scores] == [4000.0, 2000.0]
    assert all(len(col.children) == 3 for col in cmp.columns)
    assert "judge: rock" in cmp.table.value and cmp._repr_mimebundle_()["text/html"].count("<audio") == 2
    bad = ClipComparer(score_fn=lambda clip: 1 / 0)
    bad.compare(tone(), tone())
    assert "ZeroDivisionError" in bad.last_error and len(bad.columns[0].children) == 3
    assert bad.scores[1]["score error"].startswith("ZeroDivisionError")


class FakeClip:
    def __init__(self, samples, prompt="", seed=0):
        self.waveform, self.sample_rate_hz, self.prompt, self.seed = samples[None], RATE, prompt, seed

    @property
    def duration_s(self):
        return self.waveform.shape[-1] / RATE


class FakeHandle:
    n_layers, max_duration_s, model_id = 4, 8.0, "fake/model"


class FakeSweep:
    rows = sweep_rows()
    probes = {}


class FakeBackend:
    """The Backend interface without a model (what Workbench calls)."""

    def __init__(self):
        rng = np.random.default_rng(0)
        labels = ["rock"] * 4 + ["jazz"] * 4
        self.handle, self.sweep, self.probe_key = FakeHandle(), FakeSweep(), None
        self.collection = Collection(acts={("resid", i): rng.normal(size=(8, 5)) for i in range(4)}, labels=labels,
                                     texts=[f"clip {i}" for i in range(8)],
                                     clips=[FakeClip(tone(100 + 20 * i)[0]) for i in range(8)])
        self.generated = []

    def project(self, site, layer):
        return self.collection.acts[(site, layer)][:, :2]

    def make_direction(self, request):
        assert isinstance(request, DirectionRequest)
        return f"{request.method}@{request.layer}"

    def generate(self, request, on_progress=None, should_stop=None):
        assert isinstance(request, SteerRequest)
        self.generated.append(request)
        return FakeClip(tone(300 + 100 * request.strength)[0], request.prompt, request.seed)

    def place(self, clip):
        return np.array([[0.0, 0.0]])

    def scores(self, clip):
        return {"judge: rock": 0.5}


class ComputeRefusingBackend(FakeBackend):
    """A backend whose computing methods fail: a constructor that only stores never calls them."""

    def project(self, site, layer):
        raise AssertionError("Workbench(...) projected: the constructor must only store (use from_backend)")

    def make_direction(self, request):
        raise AssertionError("Workbench(...) made a direction: the constructor must only store")

    def generate(self, request, on_progress=None, should_stop=None):
        raise AssertionError("Workbench(...) generated: the constructor must only store")


def test_the_workbench_constructor_stores_and_computes_nothing():
    be = ComputeRefusingBackend()
    xy = FakeBackend().project("resid", 3)
    ui = Workbench(be, xy, prompts_by_label={"rock": "rock music"})
    assert ui.backend is be and ui.explorer.n_points == 8 and be.generated == []


def test_the_workbench_constructor_refuses_a_map_of_another_collection():
    be = FakeBackend()
    with pytest.raises(BadInputError, match="xy holds 3 points for 8 collected clips"):
        Workbench(be, be.project("resid", 3)[:3])


def test_workbench_links_views():
    be = FakeBackend()
    ui = Workbench.from_backend(be, prompts_by_label={"rock": "rock music"})
    assert ui.layer == 3 and ui.panel.layers == [3] and ui.direction == "class_pair@3"
    ui.sweep_view.layer = 1
    assert ui.picker.layer == 1 and ui.panel.layers == [1] and "layer 1" in ui.explorer.title
    assert ui.direction == "class_pair@1"  # the direction follows the selected layer
    ui.explorer.select([0, 1])
    ui.explorer.use_selection_as("A")
    ui.explorer.select([5, 6])
    ui.explorer.use_selection_as("B")
    assert ui.explorer.make_direction() == "selection@1" and ui.direction == "selection@1"
    ui.explorer.add_points([[0, 0]], ["star"], [tone()])
    ui.explorer.select([6, 8])
    ui.explorer.use_selection_as("B")  # 8 is the star: not a stored clip
    assert ui.picker.groups == ((0, 1), (6,)) and ui.explorer.make_direction() == "selection@1"
    ui.explorer.set_xy(ui.explorer.xy)  # drop the star again
    ui.panel.strength = 2.0
    clip = ui.panel.generate()
    assert clip is not None and ui.clips == [clip] and ui.last_error == ""
    assert [r.strength for r in be.generated] == [2.0, 0.0]  # steered, then its unsteered twin
    assert ui.comparer.clips[1] is clip and ui.explorer.n_points == 9
    ui.panel.generate()
    assert len(be.generated) == 3  # the unsteered twin is cached
    ui.map_dd.value = "umap"  # the map toggle re-projects through the backend
    assert be.projection_method == "umap" and "(UMAP)" in ui.explorer.title and ui.explorer.n_points == 8
    html = ui._repr_mimebundle_()["text/html"]
    assert html.count("<svg") == 2 and html.count("<audio") == 2


@pytest.mark.slow
def test_workbench_on_a_random_tiny_model_end_to_end():
    import workbench as wb
    from benchmarks.bench_ui import ui_generate_seconds

    handle = wb.random_model("tiny")
    ui = Workbench.from_model(handle, n_per_label=4, duration_s=0.5)
    assert ui.explorer.n_points == 8 and ui.direction is not None and ui.direction.model_id == handle.model_id
    ui.picker.method = "PCA"
    assert ui.picker.make() is not None and ui.direction.method == "pca"
    ui.panel.strength, ui.panel.duration_s = 1.0, 1.0
    clip = ui.panel.generate()
    assert clip.steering is not None and abs(clip.duration_s - 1.0) < 0.1
    assert ui.explorer.n_points == 9 and ui.last_error == "" and ui.panel.last_error == ""
    assert ui.comparer.clips[0].steering is None and any(k.startswith("probe") for k in ui.comparer.scores[1])
    # Stop interrupts a real generation between steps (the core's stop= hook)
    ui.panel.duration_slider.max = 30.0  # the panel offers 10 s: widen its slider, then the 30 s is shown
    ui.panel.duration_s = 30.0
    n_clips = len(ui.clips)
    ui.panel.generate(wait=False)
    deadline = time.monotonic() + 30
    while ui.panel.progress < 0.04 and time.monotonic() < deadline:
        time.sleep(0.02)
    ui.panel.stop()
    ui.panel.wait(30)
    assert ui.panel.status.value == "stopped" and len(ui.clips) == n_clips and ui.panel.last_error == ""
    assert 0 < ui.panel.progress < 1 and not ui.panel.generate_button.disabled
    result = ui_generate_seconds(handle, duration_s=1.0, repeats=1)
    assert result["ui_generate_s"] > 0 and result["ui_generate_model"] == handle.model_id


# -- found by a hostile user (issue 9): what a control shows is what a generation uses ----------------

def test_a_strength_beyond_the_slider_is_refused_visibly():
    seen = []
    panel = SteeringPanel(n_layers=4, generate_fn=lambda request, *_: seen.append(request) or tone())
    panel.direction = "v"
    with pytest.raises(RefusedValueError, match=r"strength=100.0 is outside .* \(-2 to 2\).*strength_max = 100"):
        panel.strength = 100
    assert panel.strength == panel.strength_slider.value == 0.25 and "strength=100.0" in panel.last_error
    assert isinstance(RefusedValueError("x"), ValueError)
    panel.generate()
    assert seen[-1].strength == 0.25  # the value the slider shows
    panel.strength_max = 100  # widening is explicit; then the slider shows the value used
    panel.strength = 100
    assert panel.strength_slider.value == 100 and panel.strength_slider.min == -100
    panel.strength_max = 5  # narrowing clamps the slider, and the trait follows
    assert panel.strength == panel.strength_slider.value == 5
    for name, value in [("duration_s", 100.0), ("guidance_scale", 0.0), ("strength", float("nan"))]:
        with pytest.raises(RefusedValueError, match="outside the range"):
            setattr(panel, name, value)
    assert (panel.duration_s, panel.guidance_scale) == (panel.duration_slider.value, panel.guidance_slider.value)


def test_refused_layers_revert_to_the_last_good_value():
    panel = SteeringPanel(n_layers=4, generate_fn=lambda *_: tone())
    panel.layers = [1, 3]
    with pytest.raises(RefusedValueError, match="layer 99 is out of range: this model has 4 decoder layers"):
        panel.layers = [99]
    assert panel.layers == [1, 3] and panel.layers_box.value == (1, 3) and panel.request().layers == (1, 3)
    with pytest.raises(RefusedValueError, match="lists a layer twice"):
        panel.layers = [2, 2]
    with pytest.raises(RefusedValueError), panel.hold_trait_notifications():  # a batch is rolled back whole
        panel.seed = 5
        panel.layers = [7]
    assert (panel.seed, panel.layers) == (0, [1, 3])


def test_picker_refuses_what_its_controls_cannot_show():
    picker = DirectionPicker(["rock", "jazz"], make_fn=lambda request: request)
    with pytest.raises(RefusedValueError, match="'polka' is not one of the classes"):
        picker.class_a = "polka"
    with pytest.raises(RefusedValueError, match="component=20 is outside"):
        picker.component = 20
    with pytest.raises(RefusedValueError, match="direction method 'lasso'"):
        picker.method = "lasso"
    assert (picker.class_a, picker.a_dd.value, picker.component, picker.pc_box.value) == ("rock", "rock", 0, 0)
    assert (picker.method, picker.method_dd.value, picker.method_dd.label) == ("class_pair", "class_pair",
                                                                                "class A → B")


EVIL = "<script>alert(1)</script><b>x</b>"


def test_user_strings_are_escaped_in_html():
    panel = SteeringPanel(n_layers=4, generate_fn=lambda *_: FakeClip(tone()[0], EVIL), prompt=EVIL)
    panel.direction = "v"
    panel.generate()
    html_out = [panel.players.children[0].children[0].value, panel.static_html()]
    ex = ProjectionExplorer(np.zeros((2, 2)), [EVIL, "jazz"], texts=[EVIL, "ok"], clips=[tone(), tone()])
    ex.click(0)
    ex.select([0])
    ex.use_selection_as("A")
    ex.add_points([[1, 1]], [EVIL])
    html_out += [ex.now_playing.value, ex.groups_readout.value, ex.figure.data[2].name, ex.figure.data[0].hovertext[0],
                 ex.figure.data[1].hovertext[0], ex.rows_html.value, ex.static_html()]
    assert ex.hover_text(2) == EVIL  # the Python side keeps the text as given
    picker = DirectionPicker(["a", "b"], make_fn=lambda request: type("D", (), {"name": EVIL})())
    picker.site = "<i>"
    picker.make()
    html_out += [picker.summary.value, picker.static_html()]
    view = LayerSweepView([dict(site=EVIL, layer=0, accuracy_mean=0.5)], title=EVIL)
    html_out += [view.readout.value, view.figure.data[0].name, view.figure.layout.title.text, view.static_html()]
    cmp = ClipComparer(titles=(EVIL, "steered"))
    html_out.append(cmp.columns[0].children[0].value)
    cmp.compare(FakeClip(tone()[0], EVIL), tone())
    html_out += [cmp.columns[0].children[0].value, cmp.static_html()]
    for i, text in enumerate(html_out):
        assert "<script>" not in text and "<b>x" not in text and "<i>" not in text, (i, text)
    assert "&lt;script&gt;" in html_out[0] and "&lt;script&gt;" in ex.now_playing.value


def test_steer_request_is_typed_frozen_and_validated():
    panel = SteeringPanel(n_layers=4, generate_fn=lambda *_: tone())
    request = panel.request()
    assert isinstance(request, SteerRequest) and request.layers == (2,) and request.mode == "add"
    with pytest.raises(AttributeError):
        request.strength = 9.0  # frozen
    assert request["seed"] == 0  # callbacks written for the old dict still read it
    for bad, match in [(dict(mode="multiply"), "mode='multiply': use one of"),
                       (dict(schedule="linear"), "schedule='linear'"), (dict(rows="all"), "rows='all'"),
                       (dict(layers="12"), "list of whole numbers"), (dict(strength=float("inf")), "finite"),
                       (dict(duration_s=0), "> 0"), (dict(seed=1.5), "whole number")]:
        with pytest.raises(BadInputError, match=match):
            SteerRequest("rock", **dict(dict(layers=[1], strength=1.0), **bad))
    steered = SteerRequest("rock", layers=[1], strength=2.0, direction="v")
    assert steered.steered and not steered.unsteered().steered and steered.unsteered().seed == steered.seed
    with pytest.raises(BadInputError, match="both 'a'"):
        DirectionRequest("class_pair", class_a="a", class_b="a")
    with pytest.raises(BadInputError, match="site='decoder'"):
        DirectionRequest("pca", site="decoder")


def test_backend_generation_takes_settings_whole():
    """Collection.generate, Backend.patching and grid_band_fn took duration, seed, guidance and batch size one by
    one (temperature and top-k not at all): they take one GenerationSettings, checked before anything runs."""
    import workbench as wb
    from widgets.backend import grid_band_fn

    h = wb.random_model("tiny")
    greedy = wb.GenerationSettings(duration_s=0.25, temperature=0.0)
    col = Collection.generate(h, {"jazz": "jazz music"}, n_per_label=2, settings=greedy, seed=5)
    assert col.columns["seed"] == [5, 6] and [c.seed for c in col.clips] == [5, 6]
    assert np.array_equal(col.clips[0].codes, col.clips[1].codes)  # greedy: the seed does not matter
    sampled = Collection.generate(h, {"jazz": "jazz music"}, n_per_label=2, settings=greedy.replace(temperature=1.0))
    assert not np.array_equal(sampled.clips[0].codes, sampled.clips[1].codes)
    with pytest.raises(BadInputError, match="pass seed="):
        Collection.generate(h, {"jazz": "jazz music"}, n_per_label=1, settings=wb.GenerationSettings(seeds=3))
    with pytest.raises(BadInputError, match="share one seed"):
        Backend(h, col).patching("jazz music", "rock music", wb.GenerationSettings(seeds=(1, 2)))
    with pytest.raises(BadInputError, match="leave settings.seeds at 0"):
        grid_band_fn(h, {}, wb.GenerationSettings(seeds=(1, 2)))


def test_backend_consumes_typed_requests():
    import workbench as wb
    rng = np.random.default_rng(0)
    col = Collection(acts={("resid", 1): rng.normal(size=(8, 6))}, labels=["a"] * 4 + ["b"] * 4, texts=[""] * 8,
                     clips=[])
    handle = type("H", (), {"model_id": "fake/model"})()
    be = Backend(handle, col)
    d = be.make_direction(DirectionRequest("class A → B", layer=1, class_a="a", class_b="b"))
    assert d.method == "class_means" and d.provenance["positive"] == "b" and d.layer == 1
    assert be.make_direction(DirectionRequest("pca", layer=1, class_a="a")).method == "pca"
    with pytest.raises(TypeError, match="DirectionRequest"):
        be.make_direction("class A → B")  # a display string is not a request
    with pytest.raises(ValueError, match="no collected activations at resid layer 0"):
        be.make_direction(DirectionRequest("class_pair", layer=0, class_a="a", class_b="b"))
    spec = be.steering_spec(SteerRequest("rock", layers=(1,), strength=2.0, mode="norm_relative", schedule="decay",
                                         direction=d))
    assert isinstance(spec, wb.SteeringSpec)
    assert be.steering_spec(SteerRequest("rock", layers=(1,), strength=0.0, direction=d)) is None
    assert be.steering_spec(dict(prompt="rock", layers=(1,), strength=2.0, direction=d)) is not None  # old dicts
    with pytest.raises(BadInputError, match="mode="):
        be.steering_spec(dict(prompt="rock", layers=(1,), strength=2.0, mode="Add", direction=d))


# -- issue 26: one strength unit, shown where the strength is set ---------------------------------------

def test_panel_shows_the_strength_in_the_layers_unit():
    panel = SteeringPanel(n_layers=4, generate_fn=lambda *_: tone(), unit_fn=lambda layer: {2: 4.0}.get(layer))
    panel.strength, panel.layers = 1.5, [2]
    assert panel.unit_text() == "+1.5 x the mean residual norm at resid L2 (4) = 6 added"
    panel.layers = [1, 2]
    assert panel.unit_text().endswith("(the norm is measured at the first steered generation)")
    panel.mode = "norm_relative"
    assert "relative to each row's own norm" in panel.unit_text()
    assert "mean residual norm" in SteeringPanel(n_layers=4, generate_fn=lambda *_: tone()).unit_text()


def test_backend_adds_strength_times_the_unit_along_a_unit_vector():
    col = Collection(acts={("resid", 1): np.eye(4)}, labels=["a", "a", "b", "b"], texts=[""] * 4, clips=[])
    be = Backend(type("H", (), {"model_id": "fake/model"})(), col)
    direction = np.array([0.0, 3.0, 4.0, 0.0], np.float32)
    spec = be.steering_spec(SteerRequest("rock", layers=(1,), strength=2.0, direction=direction))
    assert spec.terms[0].strength == 2.0  # a stand-in handle cannot measure a unit: absolute
    be.units[("resid", 1)] = 2.5  # a unit set from code (a fake handle measures none)
    (term,) = be.steering_spec(SteerRequest("rock", layers=(1,), strength=2.0, direction=direction)).terms
    assert term.strength == 5.0 and term.vector.tolist() == pytest.approx([0.0, 0.6, 0.8, 0.0])
    made = be.make_direction(DirectionRequest("class_pair", layer=1, class_a="a", class_b="b"))
    assert made.provenance["normalize"] == "unit" and made.norm == pytest.approx(1.0)
    info = be.describe_steering(SteerRequest("rock", layers=(1,), strength=2.0, direction=made))
    assert info["unit_by_layer"] == {1: 2.5} and info["method"] == "class_means" and info["name"] == "b − a"
