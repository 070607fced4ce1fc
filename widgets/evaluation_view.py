"""Evaluation view: the alignment-preservation trade-off of a grid; click a point to hear it next to its twin.

Top: the trade-off (x preservation against the twin, y alignment; one line per method and layer, one
point per strength) and alignment vs strength; the AUC table below them. Clicking a point (or
`select(method, layer, strength, item)` from code) shows the cell's clip for the chosen item next
to its unsteered twin (same prompt and seed), with their readings. Clips are decoded from the grid's
stored codes through the result's model (`EvaluationResult(folder, handle=...)`).

    >>> import numpy as np, pandas as pd
    >>> from workbench.analysis.evaluation.summaries import tradeoff
    >>> tone = lambda f: (np.sin(np.arange(8000) * f / 8000 * 6.283).astype(np.float32), 8000)
    >>> rows = [dict(kind=k, method=k, layer=-1, strength=0.0, item=0, target="rock", prompt="jazz", seed=0,
    ...              judge_p_target=0.2, mel_distance=d) for k, d in (("twin", 0.0), ("reference", 2.0))]
    >>> rows += [dict(kind="steered", method="m", layer=1, strength=s, item=0, target="rock", prompt="jazz", seed=0,
    ...               judge_p_target=a, mel_distance=d) for s, a, d in ((0.0, 0.2, 0.0), (1.0, 0.7, 1.0))]
    >>> class Result:  # anything with .table, .clip(i) and .twin(i)
    ...     table = pd.DataFrame(rows)
    ...     clip, twin = staticmethod(lambda i: tone(440)), staticmethod(lambda i: tone(220))
    >>> view = EvaluationView(Result())
    >>> view.select("m", 1, 1.0)["judge_p_target"], len(view.figure.data)
    (0.7, 1)
"""
from __future__ import annotations

import html

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import traitlets as t

from workbench.analysis.evaluation import summaries

from ._base import View, guarded
from .static import PALETTE, audio_html, svg_lines, table_html, wav_bytes, waveform_of

SHOWN = ("target", "judge_p_target", "judge_pred", "probe_p_target", "clap_p_target", "code_edit_rate",
         "mel_distance", "embedding_distance", "tempo_bpm", "centroid_hz", "loudness_db", "key")


def tradeoff_figure(curve, reader: str = "judge", preservation: str = "mel") -> go.Figure:
    """Plotly figure of a `summaries.tradeoff` table: one line per method and layer."""
    fig = go.Figure(layout=go.Layout(
        title="Alignment vs preservation", xaxis=dict(title=f"preservation ({preservation}, 1 = the twin)",
                                                      range=[-0.03, 1.03]),
        yaxis=dict(title=f"alignment ({reader} p(target))", range=[0, 1]), width=560, height=380,
        margin=dict(l=55, r=10, t=40, b=50), clickmode="event"))
    for i, ((method, layer), g) in enumerate(curve.groupby(["method", "layer"], sort=False)):
        g = g.sort_values("strength")
        fig.add_scatter(x=g["preservation"], y=g["alignment"], mode="lines+markers", name=f"{method} L{layer}",
                        customdata=np.c_[g["strength"]], line=dict(color=PALETTE[i % len(PALETTE)]),
                        hovertemplate="strength %{customdata[0]}: alignment %{y:.2f}, preservation %{x:.2f}"
                                      "<extra>%{fullData.name}</extra>")
    return fig


def strength_figure(by_strength) -> go.Figure:
    """Plotly figure of `summaries.alignment_by_strength`: alignment (± s.e.) per strength."""
    fig = go.Figure(layout=go.Layout(title="Alignment vs strength", xaxis_title="strength (the method's unit)",
                                     yaxis=dict(title="alignment", range=[0, 1]), width=480, height=380,
                                     margin=dict(l=55, r=10, t=40, b=50)))
    for i, ((method, layer), g) in enumerate(by_strength.groupby(["method", "layer"], sort=False)):
        fig.add_scatter(x=g["strength"], y=g["alignment"], error_y=dict(array=g["alignment_sem"].fillna(0)),
                        mode="lines+markers", name=f"{method} L{layer}", line=dict(color=PALETTE[i % len(PALETTE)]))
    return fig


class EvaluationView(View):
    """Trade-off plot, alignment vs strength, AUC table; a clicked point plays next to its twin."""

    reader = t.Unicode("judge", help="alignment reader: judge, probe or clap")
    preservation = t.Unicode("mel", help="mel, codes or embedding")
    selected = t.Dict(help="the table row of the clip on show")

    def __init__(self, result, *, reader: str = "judge", preservation: str = "mel", **kwargs):
        super().__init__(**kwargs)
        self.result = result
        self.figure = go.FigureWidget()
        self.strength_plot = go.FigureWidget()
        self.auc_html = w.HTML()
        self.item_dd = w.Dropdown(description="clip", options=[])
        self.item_dd.observe(self._item_changed, names="value")
        self.readout = w.HTML("click a point to hear that strength next to the unsteered twin")
        self.readout.add_class("wb-eval-readout")
        self.columns = {role: w.VBox(layout=w.Layout(width="50%")) for role in ("twin", "steered")}
        self.scores = w.HTML()
        self.children = [w.HBox([self.figure, self.strength_plot]), self.auc_html, self.item_dd, self.readout,
                         w.HBox(list(self.columns.values())), self.scores, self.errors]
        self.add_class("wb-evaluation")
        self._cell: tuple | None = None
        self.reader, self.preservation = reader, preservation
        self.refresh()

    @t.observe("reader", "preservation")
    def _settings_changed(self, change):
        if hasattr(self, "result"):
            self.refresh()

    @guarded
    def refresh(self) -> None:
        """Redraw from the result's table (after `result.reload()`, or a new reader/preservation)."""
        table = self.result.table
        self.curve = summaries.tradeoff(table, self.reader, self.preservation)
        self.by_strength = summaries.alignment_by_strength(table, self.reader)
        self.aucs = summaries.auc_table(table, self.reader, self.preservation)
        fig = tradeoff_figure(self.curve, self.reader, self.preservation)
        with self.figure.batch_update():
            self.figure.data = ()
            self.figure.layout = fig.layout
            for trace in fig.data:
                self.figure.add_trace(trace)
        for trace in self.figure.data:
            trace.on_click(self._on_click)
        fig = strength_figure(self.by_strength)
        with self.strength_plot.batch_update():
            self.strength_plot.data = ()
            self.strength_plot.layout = fig.layout
            for trace in fig.data:
                self.strength_plot.add_trace(trace)
        self.auc_html.value = "<b>AUC of the trade-off</b>" + table_html(self.aucs.to_dict("records"))

    def _on_click(self, trace, points, state):
        if not points.point_inds:
            return
        method, layer = trace.name.rsplit(" L", 1)
        self.select(method, int(layer), float(trace.customdata[points.point_inds[0]][0]))

    def _rows(self, method: str, layer: int, strength: float):
        table = self.result.table
        mask = ((table["kind"] == "steered") & (table["method"] == method) & (table["layer"] == int(layer))
                & np.isclose(table["strength"].astype(float), float(strength)))
        if not mask.any():
            raise ValueError(f"no clips for {method!r} at layer {layer}, strength {strength}: pick a point of the plot")
        return table[mask]

    @guarded
    def select(self, method: str, layer: int, strength: float, item: int | None = None) -> dict:
        """Show one clip of a cell (the first item unless given) next to its twin; returns its row."""
        rows = self._rows(method, layer, strength)
        self._cell = (method, int(layer), float(strength))
        options = [(f"{r.item}: “{r.prompt}” seed {r.seed} → {r.target}", int(r.item)) for r in rows.itertuples()]
        chosen = int(rows["item"].iloc[0]) if item is None else int(item)
        if chosen not in [v for _, v in options]:
            raise ValueError(f"item {item} is not in this cell: it has items {[v for _, v in options]}")
        with self.hold_trait_notifications():
            self.item_dd.unobserve(self._item_changed, names="value")
            self.item_dd.options, self.item_dd.value = options, chosen
            self.item_dd.observe(self._item_changed, names="value")
        return self._show(rows[rows["item"] == chosen].index[0])

    def _item_changed(self, change):
        if self._cell is not None and change["new"] is not None:
            self.select(*self._cell, item=change["new"])

    def _show(self, label) -> dict:
        index = int(self.result.table.index.get_loc(label))
        row = self.result.table.iloc[index]
        self.selected = {k: (v.item() if hasattr(v, "item") else v) for k, v in row.items()}
        twin_index = getattr(self.result, "twin_index", None)
        twin_row = self.result.table.iloc[twin_index(index)] if twin_index else row
        self.clips = {"twin": self.result.twin(index), "steered": self.result.clip(index)}
        for role, clip in self.clips.items():
            samples, rate = waveform_of(clip)
            player = w.Audio(value=wav_bytes(samples, rate), format="wav", autoplay=False)
            player.add_class(f"wb-eval-{role}")
            self.columns[role].children = [w.HTML(f"<b>{role}</b>"), player]
        self.readout.value = html.escape(f"{row['method']} layer {row['layer']} strength {row['strength']:g}: "
                                         f"“{row['prompt']}” seed {row['seed']} toward {row['target']}")
        shown = [k for k in SHOWN if k in row.index]
        self.scores.value = table_html([{"": "twin", **{k: _plain(twin_row[k]) for k in shown}},
                                        {"": "steered", **{k: _plain(row[k]) for k in shown}}])
        return self.selected

    def static_html(self) -> str:
        if not hasattr(self, "curve") or not len(self.curve):
            return "<div>evaluation view: no grid yet</div>"
        series = {f"{m} L{layer}": (list(range(len(g))), g.sort_values("strength")["alignment"].tolist(), None)
                  for (m, layer), g in self.by_strength.groupby(["method", "layer"], sort=False)}
        players = "".join(audio_html(c, role) for role, c in getattr(self, "clips", {}).items())
        return (svg_lines(series, title="alignment by strength step", x_label="strength step (0 = unsteered)",
                          y_label=f"{self.reader} p(target)")
                + "<b>AUC of the trade-off</b>" + table_html(self.aucs.to_dict("records")) + players)


def _plain(value):
    return value.item() if hasattr(value, "item") else value
