"""Evaluation view: the alignment-preservation trade-off of a grid; click a point to hear it next to its twin.

Top: the trade-off (x preservation against the twin, y alignment; one line per method and layer, one
point per strength) and alignment vs strength; the AUC table below them. Clicking a point (or
`select(method, layer, strength, item)` from code) shows the cell's clip for the chosen item next
to its unsteered twin (same prompt and seed), with their readings. Clips are decoded from the grid's
stored codes through the result's model (`EvaluationResult(folder, handle=...)`).

The random band: a third plot shows each method's shift toward its target against the shift random
directions of equal norm give at the same strengths (`workbench.analysis.evaluation.verdicts`): a
grey area up to the random clips' 95th percentile, the method's effect with its 95% interval on top.
It costs generations, so it waits for the button (or `compute_band()` from code), which calls
`band_fn(method, layer)` (e.g. `widgets.backend.grid_band_fn(handle, methods)`; cached per direction);
`set_band(effect)` shows a `SteeringEffect` measured elsewhere. `bands` holds the rows drawn.

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

from ._base import View, configured, guarded
from .clip_compare import band_text
from .static import PALETTE, audio_html, svg_lines, table_html, wav_bytes, waveform_of

BAND_COLUMNS = ("method", "layer", "target", "strength", "effect", "effect_ci", "random_mean", "random_p95",
                "p_value", "order_rate", "collapsed_share", "beyond_random")

SHOWN = ("target", "judge_p_target", "judge_pred", "probe_p_target", "clap_p_target", "code_edit_rate",
         "mel_distance", "embedding_distance", "tempo_bpm", "centroid_hz", "loudness_db", "key")


def fitted_range(values, low: float = 0.0, high: float = 1.0) -> list[float]:
    """An axis range around `values` inside [low, high], padded by 8% of their span (at least 0.02 wide),
    so points that all sit below 0.1 are spread over the plot instead of crammed at its foot.

        >>> fitted_range([0.01, 0.05, 0.08])
        [0.0, 0.09]
        >>> fitted_range([0.2, 0.95])
        [0.14, 1.0]
    """
    values = np.asarray([v for v in values if v is not None and np.isfinite(v)], dtype=float)
    if not values.size:
        return [low, high]
    lo, hi = float(values.min()), float(values.max())
    pad = max(0.08 * (hi - lo), 0.01)
    return [round(max(low, lo - pad), 4), round(min(high, hi + pad), 4)]


# the lines' names carry their strength unit: a legend beside the plot took most of its width
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.18, x=0, xanchor="left")


def strength_units(table) -> dict:
    """{(method, layer): what a strength of 1 means} from a grid table's steered rows (mode and strength_abs):
    mode add with a measured unit -> "x mean residual norm (= 5.63)"; with none -> absolute; norm_relative ->
    relative to each row's own norm.

        >>> import pandas as pd
        >>> strength_units(pd.DataFrame([dict(kind="steered", method="m", layer=3, strength=0.5, mode="add",
        ...                                    strength_abs=2.815)]))
        {('m', 3): '× mean residual norm (5.63)'}
    """
    if table is None or not len(table) or "mode" not in getattr(table, "columns", ()):
        return {}
    out = {}
    steered = table[(table["kind"] == "steered") & (table["strength"] != 0)]
    for (method, layer), g in steered.groupby(["method", "layer"], sort=False):
        mode = g["mode"].iloc[0]
        if mode != "add":
            out[(method, layer)] = f"× each row's own norm ({mode})"
            continue
        ratio = float((g["strength_abs"].abs() / g["strength"].abs()).median()) if "strength_abs" in g else 1.0
        out[(method, layer)] = "absolute" if abs(ratio - 1.0) < 1e-6 else f"× mean residual norm ({ratio:.3g})"
    return out


def _series_name(method, layer, units: dict | None) -> str:
    unit = (units or {}).get((method, layer))
    return f"{method} L{layer}" + (f" · {unit}" if unit else "")


def tradeoff_figure(curve, reader: str = "judge", preservation: str = "mel", units: dict | None = None) -> go.Figure:
    """Plotly figure of a `summaries.tradeoff` table: one line per method and layer (named with its strength unit,
    `strength_units`), axes fitted to the points."""
    fig = go.Figure(layout=go.Layout(
        title="Alignment vs preservation (click a point to hear it)",
        xaxis=dict(title=f"preservation ({preservation}, 1 = the twin)", range=fitted_range(curve["preservation"])),
        yaxis=dict(title=f"alignment ({reader} p(target))", range=fitted_range(curve["alignment"])),
        width=560, height=560, margin=dict(l=65, r=10, t=50, b=55), clickmode="event", font=dict(size=14),
        legend=LEGEND_BELOW,
        hoverlabel=dict(font=dict(size=14))))
    for i, ((method, layer), g) in enumerate(curve.groupby(["method", "layer"], sort=False)):
        g = g.sort_values("strength")
        fig.add_scatter(x=g["preservation"], y=g["alignment"], mode="lines+markers",
                        name=_series_name(method, layer, units), meta=[method, int(layer)],
                        customdata=np.c_[g["strength"]], line=dict(color=PALETTE[i % len(PALETTE)]),
                        marker=dict(size=10),
                        hovertemplate="strength %{customdata[0]:g}: alignment %{y:.3f}, preservation %{x:.3f}"
                                      "<extra>%{fullData.name}</extra>")
    return fig


def strength_figure(by_strength, units: dict | None = None) -> go.Figure:
    """Plotly figure of `summaries.alignment_by_strength`: alignment (± s.e.) per strength, each line named with
    its strength unit (`strength_units`)."""
    fig = go.Figure(layout=go.Layout(title="Alignment vs strength",
                                     xaxis_title="strength (its unit is in each line's name)",
                                     yaxis=dict(title="alignment", range=[0, 1]), width=480, height=540,
                                     margin=dict(l=55, r=10, t=40, b=50), legend=LEGEND_BELOW))
    for i, ((method, layer), g) in enumerate(by_strength.groupby(["method", "layer"], sort=False)):
        fig.add_scatter(x=g["strength"], y=g["alignment"], error_y=dict(array=g["alignment_sem"].fillna(0)),
                        mode="lines+markers", name=_series_name(method, layer, units),
                        line=dict(color=PALETTE[i % len(PALETTE)]))
    return fig


def band_rows(effect, method: str | None = None, layer: int | None = None) -> list[dict]:
    """Rows for the band plot from a `SteeringEffect` (its summary), a DataFrame or a list of dicts."""
    summary = getattr(effect, "summary", effect)
    rows = summary.to_dict("records") if hasattr(summary, "to_dict") else [dict(r) for r in summary]
    out = []
    for r in rows:
        row = {k: _plain(r[k]) for k in BAND_COLUMNS if k in r}
        if method is not None or "method" not in row:
            row["method"] = method or "direction"
        if row.get("layer") is None:
            row["layer"] = layer if layer is not None else getattr(effect, "layer", None)
        if "effect_ci" in row:
            row["effect_ci"] = [float(x) for x in row["effect_ci"]]
        out.append(row)
    return out


def band_figure(rows: list[dict], unit: str = "") -> go.Figure:
    """Plotly figure: per method and target, the effect (95% interval) by strength over the random band."""
    fig = go.Figure(layout=go.Layout(
        title="Shift toward the target vs random directions", width=560, height=380,
        xaxis_title="strength (x the layer's mean residual norm)",
        yaxis_title=f"shift toward the target{f' ({unit})' if unit else ''}", margin=dict(l=55, r=10, t=40, b=50)))
    groups: dict = {}
    for r in rows:
        groups.setdefault((r["method"], r.get("layer"), r["target"]), []).append(r)
    for i, ((method, layer, target), g) in enumerate(groups.items()):
        g = sorted(g, key=lambda r: r["strength"])
        xs = [r["strength"] for r in g]
        name = f"{method} L{layer} → {target}"
        fig.add_scatter(x=xs, y=[r["random_p95"] for r in g], mode="lines", fill="tozeroy", name=f"{name}: random, 95%",
                        line=dict(color="rgba(120,120,120,0.8)", dash="dot"), fillcolor="rgba(160,160,160,0.25)",
                        hovertemplate="random directions, 95%%: %{y:+.3g}<extra>%{fullData.name}</extra>")
        lo = [r["effect"] - r["effect_ci"][0] if "effect_ci" in r else 0.0 for r in g]
        hi = [r["effect_ci"][1] - r["effect"] if "effect_ci" in r else 0.0 for r in g]
        fig.add_scatter(x=xs, y=[r["effect"] for r in g], mode="lines+markers", name=name,
                        error_y=dict(type="data", array=hi, arrayminus=lo),
                        marker=dict(symbol=["star" if r.get("beyond_random") else "circle" for r in g], size=10),
                        line=dict(color=PALETTE[i % len(PALETTE)]),
                        hovertemplate="strength %{x}: effect %{y:+.3g}<extra>%{fullData.name}</extra>")
    return fig


class EvaluationView(View):
    """Trade-off plot, alignment vs strength, AUC table; a clicked point plays next to its twin."""

    reader = t.Unicode("judge", help="alignment reader: judge, probe or clap")
    preservation = t.Unicode("mel", help="mel, codes or embedding")
    selected = t.Dict(help="the table row of the clip on show")
    bands = t.List(help="the random band's rows (method, layer, target, strength, effect, random_p95, ...)")
    band_running = t.Bool(False)

    def __init__(self, result, *, reader: str = "judge", preservation: str = "mel", band_fn=None, **kwargs):
        super().__init__(**kwargs)
        self.result, self.band_fn = result, band_fn
        self.band_plot = configured(go.FigureWidget(), "random-band")
        self.band_summary = w.HTML("")
        self.band_button = w.Button(description="Measure against random directions", icon="random",
                                    layout=w.Layout(width="auto"), disabled=band_fn is None,
                                    tooltip="generates clips: twins, +v, -v and random directions of equal norm")
        self.band_button.on_click(lambda _: self.compute_band())
        self.figure = configured(go.FigureWidget(), "tradeoff")
        self.strength_plot = configured(go.FigureWidget(), "alignment-by-strength")
        self.auc_html = w.HTML()
        self.item_dd = w.Dropdown(description="clip", options=[])
        self.item_dd.observe(self._item_changed, names="value")
        self.readout = w.HTML("click a point to hear that strength next to the unsteered twin")
        self.readout.add_class("wb-eval-readout")
        self.columns = {role: w.VBox(layout=w.Layout(width="50%")) for role in ("twin", "steered")}
        self.scores = w.HTML()
        # the band plot is hidden until there is a band to draw (no empty axes); the row too without a band_fn
        self.band_plot_box = w.Box([self.band_plot], layout=w.Layout(display="none"))
        self.band_row = w.HBox([self.band_plot_box, w.VBox([self.band_button, self.band_summary])])
        self.children = [w.HBox([self.figure, self.strength_plot]), self.auc_html, self.band_row,
                         self.item_dd, self.readout, w.HBox(list(self.columns.values())), self.scores, self.errors]
        self.add_class("wb-evaluation")
        self._cell: tuple | None = None
        self.reader, self.preservation = reader, preservation
        self.refresh()
        self._draw_band()

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
        units = strength_units(table)
        fig = tradeoff_figure(self.curve, self.reader, self.preservation, units)
        with self.figure.batch_update():
            self.figure.data = ()
            self.figure.layout = fig.layout
            for trace in fig.data:
                self.figure.add_trace(trace)
        for trace in self.figure.data:
            trace.on_click(self._on_click)
        fig = strength_figure(self.by_strength, units)
        with self.strength_plot.batch_update():
            self.strength_plot.data = ()
            self.strength_plot.layout = fig.layout
            for trace in fig.data:
                self.strength_plot.add_trace(trace)
        self.auc_html.value = "<b>AUC of the trade-off</b>" + table_html(self.aucs.to_dict("records"))

    # -- the random band -------------------------------------------------------------------------
    def set_band(self, effect, method: str | None = None, layer: int | None = None) -> None:
        """Draw a measured band: a `SteeringEffect` (e.g. from `SteeringBench.measure`), its summary, or
        rows; `method` and `layer` name it (rows of the same method and layer are replaced)."""
        rows = band_rows(effect, method, layer)
        replaced = {(r["method"], r.get("layer")) for r in rows}
        self.bands = [r for r in self.bands if (r["method"], r.get("layer")) not in replaced] + rows

    @guarded
    def compute_band(self, method: str | None = None, layer: int | None = None) -> list:
        """Measure `method` at `layer` (default: the cell on show, else the first method and layer of the
        grid) against random directions with `band_fn`; returns the rows drawn."""
        if self.band_fn is None:
            raise ValueError("no band_fn: pass EvaluationView(result, band_fn=widgets.backend.grid_band_fn(handle, "
                             "methods)), or set_band(effect) with a SteeringEffect measured elsewhere")
        if method is None or layer is None:
            cell_method, cell_layer = self._default_cell()
            method = cell_method if method is None else method
            layer = cell_layer if layer is None else layer
        self.band_running = True
        try:
            effect = self.band_fn(method, int(layer))
        finally:
            self.band_running = False
        self.set_band(effect, method, int(layer))
        return [r for r in self.bands if r["method"] == method and r.get("layer") == int(layer)]

    def _default_cell(self) -> tuple:
        if self._cell is not None:
            return self._cell[0], self._cell[1]
        steered = self.result.table[self.result.table["kind"] == "steered"]
        if not len(steered):
            raise ValueError("the grid has no steered clips yet: run it first")
        return str(steered["method"].iloc[0]), int(steered["layer"].iloc[0])

    @t.observe("bands", "band_running")
    def _draw_band(self, change=None):
        fig = band_figure(self.bands)
        with self.band_plot.batch_update():
            self.band_plot.data = ()
            self.band_plot.layout = fig.layout
            for trace in fig.data:
                self.band_plot.add_trace(trace)
        self.band_plot_box.layout.display = None if self.bands else "none"
        self.band_row.layout.display = None if self.bands or self.band_fn is not None else "none"
        self.band_button.disabled = self.band_fn is None or self.band_running
        self.band_button.description = ("measuring…" if self.band_running else "Measure against random directions")
        self.band_summary.value = "".join(f"<div>{html.escape(line)}</div>" for line in self.band_lines())

    def band_lines(self) -> list[str]:
        """One line per method, layer and target at its reported strength (lowest beyond random, else best p)."""
        out = []
        groups: dict = {}
        for r in self.bands:
            groups.setdefault((r["method"], r.get("layer"), r["target"]), []).append(r)
        for (method, layer, _), g in groups.items():
            beyond = sorted((r for r in g if r.get("beyond_random")), key=lambda r: r["strength"])
            row = beyond[0] if beyond else min(g, key=lambda r: r.get("p_value", 1.0))
            out.append(f"{method} L{layer} at {row['strength']:g}x: " + band_text(row))
        return out

    def _on_click(self, trace, points, state):
        if not points.point_inds:
            return
        method, layer = trace.meta  # (method, layer): the name also carries the strength unit
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
            # the steered clip plays on a click, as a map point does; its twin waits for the listener
            player = w.Audio(value=wav_bytes(samples, rate), format="wav", autoplay=role == "steered")
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
        band = ""
        if self.bands:
            lines = "".join(f"<div>{html.escape(x)}</div>" for x in self.band_lines())
            band = ("<b>Against random directions</b>" + lines
                    + table_html([{k: v for k, v in r.items() if k != "effect_ci"} for r in self.bands]))
        return (svg_lines(series, title="alignment by strength step", x_label="strength step (0 = unsteered)",
                          y_label=f"{self.reader} p(target)")
                + "<b>AUC of the trade-off</b>" + table_html(self.aucs.to_dict("records")) + band + players)


def _plain(value):
    return value.item() if hasattr(value, "item") else value
