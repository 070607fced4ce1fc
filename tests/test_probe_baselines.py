"""Honest probe baselines (issue 10): `sweep(..., baselines=...)` fits the input / prompt features with the
layers' probe, folds and seed; baselines are reported, never the best layer, and drawn in the sweep view."""
import numpy as np
import pytest

from widgets import LayerSweepView
from workbench.analysis.probes import LabelMismatchError, ProbeInputError, SweepConfig, SweepResult, sweep

pytestmark = pytest.mark.usefixtures("one_torch_thread")

GENRES, MODES = ("jazz", "rock", "pop"), ("major", "minor")


def labelled(n=90, seed=0):
    """Two label columns of n clips (every genre x mode cell filled) and one-hot-ish features holding each."""
    rng = np.random.default_rng(seed)
    genre = np.array(GENRES)[np.arange(n) % 3]
    mode = np.array(MODES)[(np.arange(n) // 3) % 2]

    def holding(labels, d=8, shift=2.0):
        codes = np.unique(labels, return_inverse=True)[1]
        X = rng.normal(size=(n, d)).astype(np.float32)
        X[np.arange(n), codes] += shift
        return X

    return genre, mode, holding, lambda d=8: rng.normal(size=(n, d)).astype(np.float32)


def test_a_baseline_that_holds_the_label_reads_it_one_that_does_not_reads_chance():
    genre, _, holding, noise = labelled()
    layers = {("resid", 0): noise(), ("resid", 1): holding(genre, shift=3.0)}
    result = sweep(layers, genre, SweepConfig(folds=3),
                   baselines={"input": holding(genre, shift=3.0), "prompt": noise(16)})
    assert isinstance(result, SweepResult)
    assert result.baseline("input")["accuracy_mean"] > 0.85
    prompt = result.baseline("prompt")
    assert prompt["chance"] == pytest.approx(1 / 3)
    assert abs(prompt["accuracy_mean"] - prompt["chance"]) < 0.15  # chance, give or take a fold's noise
    assert abs(prompt["control_accuracy_mean"] - prompt["chance"]) < 0.15
    rows = result.rows
    assert [(r["site"], r["layer"], r["baseline"]) for r in rows] == [
        ("resid", 0, False), ("resid", 1, False), ("input", None, True), ("prompt", None, True)]
    assert list(result.baselines) == ["input", "prompt"] and len(result.layer_rows) == 2
    assert result.confusion[("input", None)].sum() == len(genre)
    assert result.probes[("input", None)].score(holding(genre), genre) > 0.5
    assert result.column("accuracy_mean", site="prompt") == [prompt["accuracy_mean"]]
    assert len(result.column("accuracy_mean")) == 2  # layers only
    table = repr(result)
    assert "input  base" in table and "prompt  base" in table and "chance (majority class) 0.333" in table
    with pytest.raises(ProbeInputError, match="no baseline 'codes'.*'input', 'prompt'"):
        result.baseline("codes")


def test_a_baseline_is_fitted_like_a_layer_same_folds_seed_and_control():
    genre, _, holding, noise = labelled()
    X_input = holding(genre, shift=0.8)
    with_baseline = sweep({("resid", 0): noise()}, genre, SweepConfig(folds=3, seed=4), baselines={"input": X_input})
    as_a_layer = sweep({("input", 7): X_input}, genre, config=SweepConfig(folds=3, seed=4))
    base, layer = with_baseline.baseline("input"), as_a_layer.rows[0]
    for key in ("accuracy_mean", "accuracy_std", "macro_f1", "control_accuracy_mean", "chance"):
        assert base[key] == pytest.approx(layer[key]), key
    np.testing.assert_array_equal(with_baseline.confusion[("input", None)], as_a_layer.confusion[("input", 7)])
    no_control = sweep({("resid", 0): noise()}, genre, SweepConfig(folds=3, control=False),
                       baselines={"input": X_input})
    assert "control_accuracy_mean" not in no_control.baseline("input")


def test_baselines_are_never_the_best_layer():
    genre, _, holding, noise = labelled()
    result = sweep({("resid", 0): noise(), ("resid", 1): noise()}, genre, config=SweepConfig(folds=3),
                   baselines={"input": holding(genre, shift=5.0)})
    assert result.baseline("input")["accuracy_mean"] > max(r["accuracy_mean"] for r in result.layer_rows)
    assert not result.best()["baseline"] and result.best()["site"] == "resid"
    view = LayerSweepView(result)
    assert view.best_row == result.best() and (view.site, view.layer) == ("resid", result.best()["layer"])


def test_bad_baselines_are_refused_before_any_fit():
    genre, _, holding, noise = labelled()
    layers = {("resid", 0): noise()}
    with pytest.raises(LabelMismatchError, match="baseline 'input' features"):
        sweep(layers, genre, baselines={"input": noise()[:10]})
    with pytest.raises(ProbeInputError, match="also sites of the source"):
        sweep(layers, genre, baselines={"resid": noise()})
    with pytest.raises(ProbeInputError, match="dict of name"):
        sweep(layers, genre, baselines=[noise()])


def plotly_event(fig, event, point_indexes, trace_indexes):
    """What the browser sends when a point is clicked (as in test_widgets)."""
    fig._js2py_pointsCallback = {"event_type": event, "points": {
        "xs": [0.0] * len(point_indexes), "ys": [0.0] * len(point_indexes),
        "point_indexes": point_indexes, "trace_indexes": trace_indexes}, "selector": None}


def make_store(tmp_path):
    """Layer 0 holds the genre, layer 1 the mode; the table has both columns (and label = genre)."""
    from workbench.data.store import ActivationStore, StoreIdentity
    genre, mode, holding, _ = labelled()
    store = ActivationStore.create(tmp_path / "s", StoreIdentity("m", "k", keys=[("resid", 0), ("resid", 1)]))
    rows = [dict(id=str(i), label=str(g), genre=str(g), mode=str(m)) for i, (g, m) in enumerate(zip(genre, mode))]
    store.append({("resid", 0): holding(genre, shift=3.0), ("resid", 1): holding(mode, shift=3.0)}, rows, None, None)
    return store, genre, mode


def test_label_names_a_column_of_a_store(tmp_path):
    store, genre, mode = make_store(tmp_path)
    by_mode = sweep(store, label="mode", config=SweepConfig(folds=3))
    assert by_mode.best()["layer"] == 1 and list(by_mode.classes) == list(MODES) and by_mode.label_column == "mode"
    by_genre = sweep(store, label="genre", config=SweepConfig(folds=3))
    assert by_genre.best()["layer"] == 0 and list(by_genre.classes) == sorted(GENRES)
    # the default column, "label", is the genre here
    assert sweep(store, config=SweepConfig(folds=3)).rows == by_genre.rows
    with pytest.raises(LabelMismatchError, match="no row has a 'moode' label.*'genre', 'label', 'mode'"):
        sweep(store, label="moode", config=SweepConfig(folds=3))
    with pytest.raises(LabelMismatchError, match="not both"):
        sweep(store, labels=mode, label="mode", config=SweepConfig(folds=3))
    with pytest.raises(ProbeInputError, match=r"unknown argument\(s\) \['label_column'\].*kind.*SweepConfig"):
        sweep(store, label_column="mode")
    with pytest.raises(LabelMismatchError, match="dict of arrays"):
        sweep({("resid", 0): store.array("resid", 0)}, label="mode")


def test_the_view_draws_baselines_and_chance_beside_the_control():
    genre, _, holding, noise = labelled()
    result = sweep({("resid", 0): noise(), ("resid", 1): holding(genre)}, genre, config=SweepConfig(folds=3),
                   baselines={"input": holding(genre, shift=1.0), "prompt": noise(16)})
    view = LayerSweepView(result)
    names = [t.name for t in view.figure.data]
    assert names == ["resid probe", "resid shuffled labels", "input baseline (bag of codes)",
                     "prompt baseline (text only)", "chance (majority class)"]
    line = view.figure.data[2]
    assert line.line.dash == "dash" and list(line.y) == [result.baseline("input")["accuracy_mean"]] * 2
    assert list(line.x) == [-0.5, 1.5]  # across the layers
    assert view.figure.data[4].y[0] == pytest.approx(1 / 3)
    html = view._repr_mimebundle_()["text/html"]
    for label in ("input baseline (bag of codes)", "prompt baseline (text only)", "chance (majority class)",
                  "resid shuffled"):
        assert f">{label}</text>" in html, label
    assert html.count("stroke-dasharray='6 4'") == 3  # two baselines and chance
    assert "input baseline (bag of codes) 0." in view.readout.value
    # a click on a baseline line selects no layer
    before = (view.site, view.layer)
    plotly_event(view.figure, "plotly_click", [0], [2])
    assert (view.site, view.layer) == before and view.last_error == ""
    plotly_event(view.figure, "plotly_click", [0], [0])
    assert (view.site, view.layer) == ("resid", 0)


def test_the_concept_picker_sweeps_each_label_column_of_a_store(tmp_path):
    store, genre, mode = make_store(tmp_path)
    rng = np.random.default_rng(5)
    baselines = {"prompt": rng.normal(size=(len(genre), 4)).astype(np.float32)}
    view = LayerSweepView(store=store, label_columns=["genre", "mode", "id"],
                          sweep_kwargs=dict(config=SweepConfig(folds=3), baselines=baselines))
    assert view.children[0] is view.concept_dd and view.concept_dd.options == ("genre", "mode", "id")
    assert view.concept == "genre" and view.best_layer == 0 and view.layer == 0
    assert "genre: resid layer 0" in view.readout.value and "prompt baseline (text only)" in view.readout.value
    view.concept_dd.value = "mode"  # as the browser would
    assert view.concept == "mode" and view.best_layer == 1 and view.result.label_column == "mode"
    assert view.layer == 0  # the selection is kept: the readout now says how well layer 0 reads the mode
    assert "mode: resid layer 0" in view.readout.value and view.baselines["prompt"]["baseline"]
    assert "Probe accuracy by layer: mode" in view.static_html()
    swept = view.result
    view.concept = "genre"
    view.concept = "mode"
    assert view.result is swept  # swept once, then reselected
    view.concept_dd.value = "id"  # one clip per id: cannot be cross-validated
    assert view.concept == "mode" and view.concept_dd.value == "mode"  # refused, and the picker says so
    assert "could not sweep concept 'id'" in view.last_error and "sweeping" not in view.readout.value
    with pytest.raises(Exception, match="not one of the label columns"):
        view.concept = "tempo"


def test_a_dict_of_sweeps_and_single_sweeps_keep_working():
    genre, mode, holding, noise = labelled()
    X = holding(genre)
    by_column = {"genre": sweep({("resid", 0): X}, genre, SweepConfig(folds=3)),
                 "mode": sweep({("resid", 0): X}, mode, SweepConfig(folds=3))}
    view = LayerSweepView(by_column, title="t")
    assert view.concept == "genre" and len(view.children) == 4
    view.concept = "mode"
    assert view.rows == by_column["mode"].rows
    single = LayerSweepView(by_column["genre"])
    assert single.concept == "label" and len(single.children) == 3  # one concept: no picker
    with pytest.raises(ValueError, match="no rows"):
        LayerSweepView([])


def test_input_and_prompt_baselines_of_a_tiny_model(tiny):
    from workbench.analysis.baselines import input_embeddings, prompt_embeddings
    rng = np.random.default_rng(0)
    vocab = tiny.model.decoder.config.vocab_size
    labels = np.repeat(["low", "high"], 12)
    codes = [rng.integers(0, vocab // 2, size=(tiny.n_codebooks, 16)) + (vocab // 2 if lab == "high" else 0)
             for lab in labels]
    X_input = input_embeddings(tiny, codes)
    X_prompt = prompt_embeddings(tiny, ["music"] * len(labels))  # the same prompt for every clip
    with pytest.warns(UserWarning, match="baseline 'prompt' features are the same for every row"):
        result = sweep({("resid", 0): rng.normal(size=(len(labels), 8))}, labels, config=SweepConfig(folds=3),
                       baselines={"input": X_input, "prompt": X_prompt})
    assert result.baseline("input")["accuracy_mean"] > 0.9
    assert result.baseline("prompt")["accuracy_mean"] == pytest.approx(0.5)
