"""Research readouts (issue 29, item 9): tooltips that name their fields, tables with their reference,
de-duplicated associations, a trade-off plot fitted to its points, and a clicked trade-off point that plays."""
from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pandas as pd

from widgets import EvaluationView, LayerSweepView
from widgets.evaluation_view import fitted_range, tradeoff_figure
from workbench.analysis.evaluation.summaries import fad_table, tradeoff
from workbench.analysis.features.labelling import FeatureLabels, label_columns


def tone(freq):
    return np.sin(np.arange(4000) * freq / 8000 * 6.283).astype(np.float32), 8000


def test_sweep_tooltips_read_as_a_sentence_not_a_tuple():
    rows = [dict(site="resid", layer=i, accuracy_mean=a, accuracy_std=0.0315, control_accuracy_mean=0.25,
                 control_accuracy_std=0.01) for i, a in enumerate([0.9371795, 0.8])]
    view = LayerSweepView(rows)
    probe, control = view.figure.data[:2]
    # plotly's default for a point with an error bar is "(0, 0.9371795 ± 0.03150822)"
    assert probe.hovertemplate.startswith("layer %{x}: accuracy %{y:.2f} ± %{customdata:.2f}")
    assert list(probe.customdata) == [0.0315, 0.0315]
    assert control.hovertemplate.startswith("layer %{x}: shuffled-label accuracy")
    assert view.figure.layout.font.size >= 14


def grid_rows():
    rows = [dict(kind=k, method=k, layer=-1, strength=0.0, item=0, target="rock", prompt="jazz", seed=0,
                 judge_p_target=0.02, mel_distance=d) for k, d in (("twin", 0.0), ("reference", 2.0))]
    rows += [dict(kind="steered", method="m", layer=1, strength=s, item=0, target="rock", prompt="jazz", seed=0,
                  judge_p_target=a, mel_distance=d) for s, a, d in ((0.0, 0.02, 0.0), (1.0, 0.05, 0.3),
                                                                    (2.0, 0.08, 0.6))]
    return rows


class Result:  # anything with .table, .clip(i) and .twin(i)
    table = pd.DataFrame(grid_rows())
    clip, twin = staticmethod(lambda i: tone(440)), staticmethod(lambda i: tone(220))


def test_the_tradeoff_plot_fits_its_axes_to_points_below_a_tenth():
    curve = tradeoff(Result.table, "judge", "mel")
    fig = tradeoff_figure(curve)
    y_lo, y_hi = fig.layout.yaxis.range
    # alignments 0.02-0.08 fill the plot instead of its bottom tenth
    assert y_lo <= curve["alignment"].min() and y_hi < 0.2
    assert curve["alignment"].max() / y_hi > 0.8
    assert "strength %{customdata[0]:g}: alignment" in fig.data[0].hovertemplate
    assert fitted_range([]) == [0.0, 1.0] and fitted_range([0.5, 0.5]) == [0.49, 0.51]


def test_a_clicked_tradeoff_point_plays_the_steered_clip_next_to_its_twin():
    view = EvaluationView(Result())
    trace = view.figure.data[0]
    view._on_click(trace, SimpleNamespace(point_inds=[2]), None)  # what plotly passes for the third point
    steered, twin = view.columns["steered"].children[1], view.columns["twin"].children[1]
    assert view.selected["strength"] == 2.0 and steered.value[:4] == b"RIFF"
    assert steered.autoplay and not twin.autoplay  # plays at once, as a map point does


class EmbeddingResult:
    """`fad_table` reads `.table` and `.embeddings(mask or positions)`."""

    def __init__(self):
        self.table = Result.table
        rng = np.random.default_rng(0)
        self.emb = rng.normal(size=(len(self.table), 40, 4))
        self.emb[self.table["strength"] == 2.0] += 3.0  # the strongest cell moves far away

    def embeddings(self, which):
        index = np.flatnonzero(np.asarray(which)) if getattr(which, "dtype", None) is np.dtype(bool) else list(which)
        return self.emb[index].reshape(-1, 4)


def test_fad_rows_carry_the_unsteered_pairs_value_beside_them():
    fads = fad_table(EmbeddingResult())
    reference = float(fads.loc[fads["method"] == "reference", "fad"].iloc[0])
    assert (fads["reference_fad"] == reference).all()
    strongest = fads[fads["strength"] == 2.0].iloc[0]
    assert strongest["fad_over_reference"] == strongest["fad"] / reference and strongest["fad_over_reference"] > 1


def test_feature_associations_are_listed_once():
    table = [dict(id=f"c{i}", label=g, genre=g, mode=m) for i, (g, m) in
             enumerate([("rock", "major"), ("jazz", "minor"), ("rock", "minor"), ("jazz", "major")] * 2)]
    assert label_columns(table) == (["genre", "mode"], [])  # label repeats genre
    row = {"feature": 0, "auroc:genre=jazz": 0.7, "auroc:genre=rock": 0.3, "auroc:mode=major": 0.2,
           "auroc:mode=minor": 0.8, "corr:tempo": 0.1}
    labels = SimpleNamespace(table=SimpleNamespace(rows=[row]), categorical=["genre", "mode"],
                             check_feature=lambda f: f)
    assert FeatureLabels.associations(labels, 0) == {"auroc:genre=jazz": 0.7, "auroc:mode=minor": 0.8,
                                                     "corr:tempo": 0.1}
