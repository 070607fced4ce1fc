"""Verdicts in the UI (issue 26, item 6): the clip comparer names the direction and its strength in the
workbench's unit, flags a collapsed clip against its twin, and shows the direction's effect next to the
random band (a button: it costs generations; cached per direction); the evaluation view draws the band."""
from __future__ import annotations

import html

import numpy as np
import pandas as pd
import pytest
from test_widgets import FakeBackend, FakeClip, tone

from widgets import Backend, ClipComparer, Collection, EvaluationView, SteerRequest, Workbench
from widgets.backend import collapse_note
from widgets.clip_compare import band_text, steering_text
from workbench.analysis.directions import from_class_means

RNG = np.random.default_rng(0)
TWIN_CODES = RNG.integers(0, 256, size=(4, 200))
DRONE_CODES = np.repeat(RNG.integers(0, 256, size=(4, 1)), 200, axis=1)
DRONE_CODES[:, ::7] += 1  # a few changes: still a drone

STEERING = dict(name="rock − jazz", method="class_means", site="resid", layers=[3], strength=1.5, mode="add",
                steered=True, unit_by_layer={3: 5.63})
BAND = dict(target="rock", effect=0.41, random_p95=0.38, p_value=0.2, order_rate=0.62, collapsed_share=0.375,
            beyond_random=False, strength=1.5, unit="P(target)", reader="clean_genre", n_pairs=8)


def clip(codes, prompt="jazz music"):
    c = FakeClip(tone()[0], prompt, 0)
    c.codes = codes
    return c


class Bands:
    """A band_fn that counts what it computes and caches per request, as Backend.random_band does."""

    def __init__(self, band=BAND):
        self.band, self.computed, self.cache = band, [], {}

    def __call__(self, request, compute):
        key = (request.strength, request.layers)
        if compute and key not in self.cache:
            self.computed.append(request)
            self.cache[key] = dict(self.band)
        return self.cache.get(key)


def test_collapse_note_and_its_words():
    note = collapse_note(clip(DRONE_CODES), clip(TWIN_CODES))
    assert note["collapsed"] and note["repeat_ratio"] > 2 and note["twin_distinct_codes"] > 100
    text = collapse_text_of(note)
    assert text.startswith("collapsed: repeats codes ") and "x as often as its twin" in text
    assert not collapse_note(clip(TWIN_CODES), clip(TWIN_CODES.copy()))["collapsed"]  # a twin against itself
    assert collapse_note(tone(), tone()) == {}  # no codes (plain audio): no flag


def test_a_clip_that_buzzes_is_flagged_though_its_codes_are_varied():
    # a push can make a drone that keeps its codes varied: the frame-rate comb names it (session 25's buzz rule)
    frame = np.random.default_rng(3).normal(size=20).astype(np.float32)  # 200 frames over 4000 samples: 20 a frame
    buzz = FakeClip(0.3 * np.tile(frame, 200), "jazz music", 0)
    buzz.codes = TWIN_CODES.copy()
    note = collapse_note(buzz, clip(TWIN_CODES))
    assert not note["collapsed"] and note["buzzing"]
    assert note["comb_share"] > 0.99 and note["twin_comb_share"] < 0.1
    assert collapse_text_of(note).startswith("buzzing at the codec's frame rate: 100% of its power")
    calm = collapse_note(clip(TWIN_CODES.copy()), clip(TWIN_CODES))  # the same tone as its twin: no buzz
    assert calm["buzzing"] is False and "at the codec's frame rate" in collapse_text_of(calm)
    assert "buzzing" not in collapse_note(buzz, clip(TWIN_CODES), frame_period=5000)  # too short for the comb
    comparer = ClipComparer()
    comparer.collapse = note
    assert "color:#b45309" in comparer.verdict_html()  # shown as a warning, as a collapse is


def collapse_text_of(note):
    from widgets.clip_compare import collapse_text
    return collapse_text(note)


def test_words_for_the_direction_and_the_band():
    assert steering_text(STEERING) == ("steered along “rock − jazz” (class_means) at resid L3, strength +1.5 x the "
                                       "layer's mean residual norm (5.63 at L3, 8.45 added)")
    assert band_text(BAND).startswith("toward rock +0.41; random directions, 95%: +0.38: not beyond random (p = 0.2")
    assert "beyond random (" in band_text(dict(BAND, beyond_random=True, p_value=0.001))
    assert "buzz" not in band_text(BAND)  # a band measured before the buzz rule says nothing of it ...
    assert "25% buzz at the codec's frame rate" in band_text(dict(BAND, buzzing_share=0.25))  # ... a newer one does
    relative = steering_text(dict(STEERING, mode="norm_relative", strength=0.5))
    assert "relative to each row's own norm" in relative and "mean residual norm" not in relative


def test_comparer_names_the_direction_flags_collapse_and_computes_the_band_on_request():
    bands = Bands()
    cmp = ClipComparer(score_fn=lambda c: {"judge: rock": 0.5}, band_fn=bands, describe_fn=lambda r: STEERING)
    request = SteerRequest("jazz music", layers=[3], strength=1.5, direction="v")
    cmp.compare(clip(TWIN_CODES), clip(DRONE_CODES), request=request)
    lines = cmp.verdict_lines()
    assert lines[0].startswith("steered along “rock − jazz” (class_means) at resid L3, strength +1.5")
    assert lines[1].startswith("collapsed: repeats codes") and cmp.collapse["collapsed"]
    assert "not yet measured against random directions" in lines[2] and cmp.band == {}
    assert bands.computed == [] and not cmp.band_button.disabled  # nothing generated until asked
    band = cmp.compute_band()
    assert band["random_p95"] == 0.38 and cmp.band == band and len(bands.computed) == 1
    assert "toward rock +0.41; random directions, 95%: +0.38: not beyond random" in html.unescape(cmp.verdict.value)
    assert cmp.band_button.disabled  # computed: nothing more to press
    assert "not beyond random" in cmp._repr_mimebundle_()["text/html"]
    # the same direction and strength again: the band comes from the cache, shown at once
    cmp.compare(clip(TWIN_CODES), clip(TWIN_CODES.copy()), request=request)
    assert cmp.band == band and len(bands.computed) == 1 and not cmp.collapse["collapsed"]
    assert cmp.verdict_lines()[1].startswith("codes: repeats codes")
    # another strength: not measured; the button (threaded) measures it
    other = SteerRequest("jazz music", layers=[3], strength=2.0, direction="v")
    cmp.compare(clip(TWIN_CODES), clip(TWIN_CODES), request=other)
    assert cmp.band == {}
    cmp.band_button.click()
    cmp.wait(10)
    assert cmp.band["target"] == "rock" and len(bands.computed) == 2 and cmp.last_error == ""


def test_comparer_band_errors_are_shown_and_an_unsteered_clip_has_no_band():
    def failing(request, compute):
        if compute:
            raise ValueError("which class does 'a custom vector' point toward? pass target=")
        return None
    cmp = ClipComparer(band_fn=failing, describe_fn=lambda r: dict(STEERING, steered=r.steered))
    cmp.compute_band()
    assert "no steered clip" in cmp.last_error
    cmp.compare(tone(), tone(), request=SteerRequest("jazz music", layers=[3], strength=1.0, direction="v"))
    assert cmp.compute_band() is None and "point toward" in cmp.last_error and not cmp.band_running
    cmp.compare(tone(), tone(), request=SteerRequest("jazz music", layers=[3], strength=0.0))
    assert cmp.band_button.disabled and "not steered" in cmp.verdict_lines()[0]


class BandBackend(FakeBackend):
    """FakeBackend with the verdict methods of `Backend`."""

    def __init__(self):
        super().__init__()
        self.bands = Bands()

    def known_strength_unit(self, layer, site="resid"):
        return 5.63

    def describe_steering(self, request):
        return dict(STEERING, layers=list(request.layers), strength=request.strength, steered=request.steered,
                    unit_by_layer={layer: 5.63 for layer in request.layers})

    def random_band(self, request):
        return self.bands(request, True)

    def cached_band(self, request):
        return self.bands(request, False)


def test_workbench_shows_the_unit_and_the_band():
    be = BandBackend()
    ui = Workbench.from_backend(be, prompts_by_label={"rock": "rock music"})
    ui.panel.strength = 1.5
    assert "+1.5 x the mean residual norm at resid L3 (5.63) = 8.45 added" in ui.panel.unit_label.value
    ui.panel.mode = "norm_relative"
    assert "relative to each row's own norm" in html.unescape(ui.panel.unit_label.value)
    ui.panel.mode = "add"
    ui.panel.generate()
    assert ui.comparer.steering["strength"] == 1.5 and "strength +1.5 x the layer's mean residual norm" in \
        html.unescape(ui.comparer.verdict.value)
    ui.comparer.compute_band()
    assert "random directions, 95%: +0.38" in ui.comparer.verdict.value and len(be.bands.computed) == 1
    ui.panel.generate()  # the same request again: the cached band is shown without generating
    assert ui.comparer.band["effect"] == 0.41 and len(be.bands.computed) == 1
    # a backend without the verdict methods: no button, the comparer works as before
    plain = Workbench.from_backend(FakeBackend(), prompts_by_label={"rock": "rock music"})
    assert plain.comparer.band_button not in plain.comparer.children and plain.panel.unit_fn is None


def test_backend_random_band_on_a_tiny_model_is_cached_per_direction():
    import workbench as wb
    from workbench.analysis import strength
    h = wb.random_model("tiny")
    rng = np.random.default_rng(1)
    X, labels = rng.normal(size=(8, h.hidden_size)), ["jazz"] * 4 + ["rock"] * 4
    be = Backend(h, Collection(acts={("resid", 1): X}, labels=labels, texts=[""] * 8, clips=[]))
    direction = from_class_means(X, np.array(labels), "rock", model_id=h.model_id, layer=1)
    request = SteerRequest("jazz music", layers=[1], strength=1.0, duration_s=0.5, seed=3, direction=direction)
    with pytest.raises(ValueError, match="point toward"):
        be.random_band(request)  # "rock" is not what the plain-DSP reader reads
    assert be.cached_band(request, target="brighter") is None
    band = be.random_band(request, target="brighter")
    for key in ("effect", "effect_ci", "random_p95", "p_value", "order_rate", "collapsed_share", "beyond_random"):
        assert key in band
    assert band["reader"] == "mean_centroid_oct" and band["n_pairs"] == 8 and band["n_clips"] == 32
    assert band["mean_residual_norm"] == be.strength_unit(1) == strength.mean_residual_norm(h, 1)
    (bench,) = be._benches.values()
    n = bench.n_generated
    longer = from_class_means(X, np.array(labels), "rock", model_id=h.model_id, layer=1, normalize="mean_norm")
    again = be.random_band(SteerRequest("jazz music", layers=[1], strength=1.0, duration_s=0.5, seed=3,
                                        direction=longer), target="brighter")
    assert again is band and bench.n_generated == n  # the same direction at another length: cached
    assert be.cached_band(request, target="brighter") is band
    flipped = be.random_band(SteerRequest("jazz music", layers=[1], strength=-1.0, duration_s=0.5, seed=3,
                                          direction=direction), target="brighter")
    assert flipped is not band and bench.n_generated == n  # the flip's +v and -v are the clips made already
    with pytest.raises(ValueError, match="one layer, mode 'add'"):
        be.random_band(SteerRequest("jazz music", layers=[0, 1], strength=1.0, direction=direction))


def fake_result():
    rows = [dict(kind=k, method=k, layer=-1, strength=0.0, item=0, target="rock", prompt="jazz", seed=0,
                 judge_p_target=0.2, mel_distance=d) for k, d in (("twin", 0.0), ("reference", 2.0))]
    rows += [dict(kind="steered", method="m", layer=1, strength=s, item=0, target="rock", prompt="jazz", seed=0,
                  judge_p_target=a, mel_distance=d) for s, a, d in ((0.0, 0.2, 0.0), (1.0, 0.7, 1.0))]

    class Result:
        table = pd.DataFrame(rows)
        clip, twin = staticmethod(lambda i: tone(440)), staticmethod(lambda i: tone(220))
    return Result()


def band_summary(target="rock"):
    return pd.DataFrame([dict(target=target, strength=s, effect=e, effect_ci=[e - 0.1, e + 0.1], random_mean=0.0,
                              random_p95=0.3, p_value=p, order_rate=o, collapsed_share=0.0, beyond_random=b)
                         for s, e, p, o, b in ((0.5, 0.1, 0.5, 0.5, False), (1.0, 0.6, 0.001, 0.9, True))])


def test_evaluation_view_draws_the_random_band():
    calls = []

    def band_fn(method, layer):
        calls.append((method, layer))
        return band_summary()
    view = EvaluationView(fake_result(), band_fn=band_fn)
    assert len(view.band_plot.data) == 0 and view.bands == []
    assert view.band_plot_box.layout.display == "none" and view.band_row.layout.display is None  # button, no axes
    assert EvaluationView(fake_result()).band_row.layout.display == "none"  # no band_fn, no band: nothing to show
    rows = view.compute_band()
    assert view.band_plot_box.layout.display is None
    assert calls == [("m", 1)] and len(rows) == 2 and rows[0]["method"] == "m" and rows[0]["layer"] == 1
    names = [trace.name for trace in view.band_plot.data]
    assert names == ["m L1 → rock: random, 95%", "m L1 → rock"] and view.band_plot.data[0].fill == "tozeroy"
    assert list(view.band_plot.data[0].y) == [0.3, 0.3]
    assert view.band_lines() == ["m L1 at 1x: " + band_text(rows[1])]  # the lowest strength beyond random
    assert "Against random directions" in view._repr_mimebundle_()["text/html"]
    view.compute_band()  # the same method and layer: replaced, not doubled
    assert len(view.bands) == 2
    view.set_band(band_summary("jazz"), method="other")
    assert len(view.band_plot.data) == 4 and len(view.bands) == 4
    no_fn = EvaluationView(fake_result())
    assert no_fn.band_button.disabled and no_fn.compute_band() is None and "band_fn" in no_fn.last_error


def test_grid_band_fn_measures_a_grid_method_at_the_workbench_unit():
    import workbench as wb
    from widgets.backend import grid_band_fn
    from workbench.analysis import strength
    from workbench.analysis.evaluation.methods import Method
    h = wb.random_model("tiny")
    v = np.random.default_rng(2).normal(size=h.hidden_size)
    add = Method("m", {("brighter", 1): v, ("darker", 1): -v}, strengths=(0.0, 1.0))
    paper = Method("p", {("brighter", 1): v}, mode="norm_relative", strengths=(0.0, 1.0))
    band_fn = grid_band_fn(h, {"m": add, "p": paper}, wb.GenerationSettings(duration_s=0.5, batch_size=16),
                           prompts=("jazz music",), seeds=(0, 1))
    view = EvaluationView(fake_result(), band_fn=band_fn)
    rows = view.compute_band("m", 1)
    assert sorted(r["target"] for r in rows) == ["brighter", "darker"] and all(r["strength"] == 1.0 for r in rows)
    effect = band_fn("m", 1)
    assert effect is band_fn("m", 1)  # cached per method direction and layer
    assert effect.mean_residual_norm == strength.mean_residual_norm(h, 1)
    assert view.compute_band("p", 1) is None and "mode 'norm_relative'" in view.last_error


def test_comparer_headers_name_what_steered_the_clip():
    """The two columns were both headed by the clip's prompt and seed: the steered one names its direction, site,
    layer and strength in the one unit, the original says it is the unsteered twin."""
    ui = Workbench.from_backend(BandBackend(), prompts_by_label={"rock": "rock music"})
    ui.panel.strength = 0.5
    ui.panel.generate()
    original, steered = (html.unescape(col.children[0].value) for col in ui.comparer.columns)
    assert original != steered
    assert "unsteered twin" in original
    assert "steered along" in steered and "× mean residual norm" in steered and "+0.5" in steered
    assert "L3" in steered


def test_follow_compares_a_panel_clip_with_its_twin():
    from widgets import ClipComparer, SteeringPanel
    be = BandBackend()
    panel = SteeringPanel(4, be.generate, prompt="jazz music")
    panel.layers, panel.direction, panel.strength = [2], "dir", 1.0
    comparer = ClipComparer.follow(panel, be)
    panel.generate()
    panel.generate()  # the same request again: the twin is generated once
    assert len(comparer.clips) == 2 and comparer.request.strength == 1.0
    assert sum(1 for r in be.generated if not r.steered) == 1
    assert "steered along" in html.unescape(comparer.columns[1].children[0].value)


def test_backend_runs_one_model_user_at_a_time():
    """The panel's Generate, the patching view's Run thread and the comparer's band thread share one model: a
    call that puts hooks on it waits while another holds it (two hook sets at once would mix)."""
    import threading

    import workbench as wb
    h = wb.random_model("tiny")
    rng = np.random.default_rng(0)
    be = Backend(h, Collection(acts={("resid", 1): rng.normal(size=(4, h.hidden_size))}, labels=["a", "a", "b", "b"],
                               texts=[""] * 4, clips=[]))
    done = []
    with be.model_lock:
        worker = threading.Thread(target=lambda: done.append(be.generate(SteerRequest("jazz", duration_s=0.1))))
        worker.start()
        worker.join(0.5)
        assert worker.is_alive() and not done  # waiting for the model
    worker.join(60)
    assert len(done) == 1 and done[0].duration_s > 0
    for name in ("generate", "read", "random_band", "trace", "patching"):
        assert getattr(Backend, name).__wrapped__, name  # each model user takes the lock
