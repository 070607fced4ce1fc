"""Layer sweep view: probe accuracy and the shuffled-label control by layer and site, with error bars,
against the sweep's baselines and chance; a concept picker when there are several label columns.

Clicking a point sets `layer` (and `site`); `Workbench` links that trait to the other views. Each
baseline of the sweep (`sweep(..., baselines={"input": ..., "prompt": ...})`) is a dashed horizontal
line ("input baseline (bag of codes)", "prompt baseline (text only)"), as is chance (the majority
class); a note under the plot says what the two chance lines (majority class, shuffled labels)
mean and why a probe can sit below the majority line. With several label columns
(`LayerSweepView(store=store, label_columns=["genre", "mode"])`, or a dict of sweeps by column) a
`concept` Dropdown switches between them, sweeping a column the first time it is picked.

    >>> rows = [dict(site="resid", layer=i, accuracy_mean=a, accuracy_std=0.02, control_accuracy_mean=0.25)
    ...         for i, a in enumerate([0.4, 0.8, 0.9])]
    >>> view = LayerSweepView(rows)
    >>> view.layer, view.best_layer
    (2, 2)
    >>> view.layer = 1; view.selected_row["accuracy_mean"]
    0.8
    >>> mode = rows + [dict(site="input", layer=None, baseline=True, accuracy_mean=0.7, accuracy_std=0.0)]
    >>> view = LayerSweepView({"genre": rows, "mode": mode}, concept="mode")
    >>> view.concept_dd.options, view.baselines["input"]["accuracy_mean"]
    (('genre', 'mode'), 0.7)
    >>> view.concept = "genre"; view.baselines
    {}
"""
from __future__ import annotations

import functools
import html

import ipywidgets as w
import plotly.graph_objects as go
import traitlets as t

from ._base import View, configured, guarded
from .static import PALETTE, svg_lines

BASELINE_LABELS = {"input": "input baseline (bag of codes)", "prompt": "prompt baseline (text only)"}
CHANCE_LABEL = "chance (majority class)"
CHANCE_COLOR = "#999999"


def chance_note(chance: float | None, control: bool) -> str:
    """What the two chance lines mean and why a probe can sit below the majority line (HTML; "" without them).

        >>> "0.40" in chance_note(0.4, True) and "shuffled" in chance_note(0.4, True), chance_note(None, False)
        (True, '')
    """
    parts = []
    if chance is not None:
        parts.append(f"<i>{CHANCE_LABEL}</i> (grey): the score of always answering the most common label "
                     f"({chance:.2f} here).")
    if control:
        parts.append("<i>shuffled labels</i> (dashed, in its site's colour): the same probe on the same folds, "
                     "trained on labels shuffled across the clips: what a probe scores with nothing to read.")
    if chance is not None:
        parts.append("A probe is fitted to tell the classes apart, not to bet on the common one: reading little, it "
                     "answers each class about as often as it occurs, which scores about the sum of the squared "
                     "class shares (classes at 50/30/20%: 0.25 + 0.09 + 0.04 = 0.38, under the majority's 0.50), "
                     "and grouped folds can give a test fold another class mix than its training folds. So the "
                     "shuffled line often sits below the majority line, and a probe between the two reads a little. "
                     "A layer reads the label when it beats both lines (the findings' margin).")
    if not parts:
        return ""
    return ("<div class='wb-sweep-note' style='font-size:12px;max-width:640px;color:#444'><b>Two chance lines.</b> "
            + " ".join(parts) + "</div>")


def rows_of(sweep) -> list[dict]:
    """Row dicts from a `workbench.analysis.probes.SweepResult`, a list of dicts, or a DataFrame."""
    if hasattr(sweep, "rows"):
        return list(sweep.rows)
    if hasattr(sweep, "to_dict"):
        return sweep.to_dict("records")
    return [dict(r) for r in sweep]


def baseline_label(name: str) -> str:
    """The legend label of a baseline: "input" -> "input baseline (bag of codes)"."""
    return BASELINE_LABELS.get(name, f"{name} baseline")


def _is_baseline(row: dict) -> bool:
    return row.get("baseline") in (True, 1)  # True, numpy's True or 1.0 from a DataFrame; not NaN or missing


def _sweep_store(store, sweep_kwargs: dict, column: str):
    from workbench.analysis.probes import sweep  # imports torch: only when a concept is swept here

    return sweep(store, label=column, **sweep_kwargs)


class LayerSweepView(View):
    """Accuracy (solid) and shuffled-label control (dashed) per layer, one line per site; baselines and
    chance as dashed horizontal lines.

    sweep: a SweepResult, rows or a DataFrame (one concept), or {label column: one of those}.
    store + label_columns: sweep each column of the store's table when it is first picked (with
    `sweep_kwargs`, e.g. dict(config=SweepConfig(folds=3), baselines={...})); sweep_fn(column) does the same for
    any source.
    concept: the column shown first (default: the first with a sweep).
    """

    layer = t.Int(allow_none=True, help="selected layer (click a point)")
    site = t.Unicode("resid", help="site of the selected point")
    concept = t.Unicode(None, allow_none=True, help="the label column shown (picking another sweeps it)")

    def __init__(self, sweep=None, title: str = "Probe accuracy by layer", width_px: int = 560, *, store=None,
                 label_columns=None, concept: str | None = None, sweep_fn=None, sweep_kwargs: dict | None = None,
                 **kwargs):
        super().__init__(**kwargs)
        if store is not None and sweep_fn is not None:
            raise ValueError("pass store=... (swept with workbench.analysis.probes.sweep) or sweep_fn=..., not both")
        if sweep_kwargs is not None and store is None:
            raise ValueError("sweep_kwargs=... are the arguments of sweeping store=...: pass the store too")
        if store is not None:
            sweep_fn = functools.partial(_sweep_store, store, dict(sweep_kwargs or {}))
        self._sweep_fn = sweep_fn
        self._results: dict = {}  # label column -> what was given or swept (a SweepResult, rows, ...)
        if isinstance(sweep, dict):
            self._results.update((str(k), v) for k, v in sweep.items())
        elif sweep is not None:
            given = concept or getattr(sweep, "label_column", None) or (list(label_columns or []) or ["label"])[0]
            self._results[given] = sweep
        self.columns = list(dict.fromkeys([*map(str, label_columns or []), *self._results])) or ["label"]
        if not self._results and sweep_fn is None:
            raise ValueError("the sweep has no rows: run workbench.analysis.probes.sweep(...) on some activations "
                             "first, or pass store=... with label_columns=[...]")
        self.title = title
        self.figure = configured(go.FigureWidget(layout=go.Layout(
            title=html.escape(title), xaxis_title="decoder layer", yaxis_title="accuracy", yaxis_range=[0, 1.05],
            width=width_px, height=380, margin=dict(l=60, r=20, t=50, b=50), clickmode="event", hovermode="closest",
            font=dict(size=14), hoverlabel=dict(font=dict(size=14)))),
            "layer-sweep")
        self._trace_sites: list[str | None] = []  # the site of each trace (None: a baseline or chance line)
        self.readout = w.HTML()  # the selected point, then what the chance lines mean (under the plot)
        self.concept_dd = w.Dropdown(options=self.columns, description="concept",
                                     tooltip="the label column the probes read (picking another sweeps it)")
        first = concept or next((c for c in self.columns if c in self._results), self.columns[0])
        self.concept = first  # validated: swept here if it has no sweep yet (errors raise)
        best = self.best_row
        self.site, self.layer = best["site"], int(best["layer"])
        self.concept_dd.observe(self._picked, names="value")
        self.children = ([self.concept_dd] if len(self.columns) > 1 else []) + [self.figure, self.readout,
                                                                                 self.errors]
        self.add_class("wb-sweep")

    # -- the concept shown ------------------------------------------------------------------------
    @t.validate("concept")
    def _check_concept(self, proposal):
        column = proposal["value"]
        if column not in self.columns:
            raise self.refuse(f"concept={column!r} is not one of the label columns {self.columns}: pick one of them")
        if column not in self._results:
            if self._sweep_fn is None:
                raise self.refuse(f"no sweep for concept {column!r}: pass it in sweep={{{column!r}: ...}}, or "
                                  "store=... to sweep it here")
            self.readout.value = f"sweeping {html.escape(column)} …"
            try:
                self._results[column] = self._sweep_fn(column)
            except Exception as exc:
                self._show_selection(None)  # the readout goes back to the sweep still shown
                raise self.refuse(f"could not sweep concept {column!r}: {type(exc).__name__}: {exc}") from exc
        if not any(not _is_baseline(r) for r in rows_of(self._results[column])):
            raise self.refuse(f"the sweep of {column!r} has no rows: run workbench.analysis.probes.sweep(...) on "
                              "some activations first")
        return column

    @t.observe("concept")
    def _concept_changed(self, change):
        self.rows = rows_of(self._results[self.concept])
        self.sites = list(dict.fromkeys(r["site"] for r in self.rows if not _is_baseline(r)))
        self._draw()
        if self.concept_dd.value != self.concept:
            self.concept_dd.value = self.concept
        if self.layer is None or self.selected_row is None:  # keep a selection the new sweep has
            best = self.best_row
            with self.hold_trait_notifications():
                self.site, self.layer = best["site"], int(best["layer"])
        self._show_selection(None)

    def _picked(self, change):
        try:
            self.concept = change["new"]
        except t.TraitError:  # refused (the reason is shown in `errors`): the picker shows what is drawn
            self.concept_dd.value = self.concept

    @property
    def result(self):
        """The sweep shown (a SweepResult where one was given or swept)."""
        return self._results[self.concept]

    # -- rows -------------------------------------------------------------------------------------
    @property
    def layer_rows(self) -> list[dict]:
        return [r for r in self.rows if not _is_baseline(r)]

    @property
    def baselines(self) -> dict[str, dict]:
        """{baseline name: its row} of the sweep shown."""
        return {r["site"]: r for r in self.rows if _is_baseline(r)}

    @property
    def chance(self) -> float | None:
        return next((float(r["chance"]) for r in self.rows if r.get("chance") is not None), None)

    def _site_rows(self, site: str) -> list[dict]:
        return sorted((r for r in self.layer_rows if r["site"] == site), key=lambda r: r["layer"])

    @property
    def best_row(self) -> dict:
        return max(self.layer_rows, key=lambda r: r["accuracy_mean"])

    @property
    def best_layer(self) -> int:
        return int(self.best_row["layer"])

    @property
    def selected_row(self) -> dict | None:
        for r in self.layer_rows:
            if r["layer"] == self.layer and r["site"] == self.site:
                return r
        return None

    def _reference_lines(self) -> list[tuple[str, float, str]]:
        """(label, accuracy, colour) of each baseline, then chance."""
        lines = [(baseline_label(name), float(r["accuracy_mean"]), PALETTE[(len(self.sites) + j) % len(PALETTE)])
                 for j, (name, r) in enumerate(self.baselines.items())]
        return lines + ([(CHANCE_LABEL, self.chance, CHANCE_COLOR)] if self.chance is not None else [])

    # -- drawing ----------------------------------------------------------------------------------
    def _draw(self) -> None:
        self.figure.data = ()
        self._trace_sites = []
        for i, site in enumerate(self.sites):
            rows = self._site_rows(site)
            color = PALETTE[i % len(PALETTE)]
            self._trace_sites.append(site)
            self.figure.add_scatter(
                x=[r["layer"] for r in rows], y=[r["accuracy_mean"] for r in rows], name=html.escape(f"{site} probe"),
                mode="lines+markers", line=dict(color=color), marker=dict(size=9),
                error_y=dict(type="data", array=[r.get("accuracy_std", 0.0) for r in rows], visible=True),
                customdata=[r.get("accuracy_std", 0.0) for r in rows],
                hovertemplate="layer %{x}: accuracy %{y:.2f} ± %{customdata:.2f}<extra>%{fullData.name}</extra>")
            if any("control_accuracy_mean" in r for r in rows):
                self._trace_sites.append(site)
                self.figure.add_scatter(
                    x=[r["layer"] for r in rows], y=[r.get("control_accuracy_mean") for r in rows],
                    name=html.escape(f"{site} shuffled labels"), mode="lines+markers", marker=dict(size=6),
                    line=dict(color=color, dash="dash"),
                    error_y=dict(type="data", array=[r.get("control_accuracy_std", 0.0) for r in rows],
                                 visible=True),
                    customdata=[r.get("control_accuracy_std", 0.0) for r in rows],
                    hovertemplate="layer %{x}: shuffled-label accuracy %{y:.2f} ± %{customdata:.2f}"
                                  "<extra>%{fullData.name}</extra>")
        layers = [r["layer"] for r in self.layer_rows]
        span = [min(layers) - 0.5, max(layers) + 0.5]
        for label, accuracy, color in self._reference_lines():
            self._trace_sites.append(None)
            self.figure.add_scatter(x=span, y=[accuracy, accuracy], name=html.escape(label), mode="lines",
                                    line=dict(color=color, dash="dot" if label == CHANCE_LABEL else "dash"),
                                    hovertemplate=f"{html.escape(label)}: {accuracy:.2f}<extra></extra>")
        shown = f"{self.title}: {self.concept}" if len(self.columns) > 1 else self.title
        self.figure.layout.title = html.escape(shown)
        for trace in self.figure.data:
            trace.on_click(self._on_click)

    @guarded
    def _on_click(self, trace, points, state):
        site = self._trace_sites[list(self.figure.data).index(trace)]
        if not points.point_inds or site is None:  # a baseline or chance: not a layer
            return
        self.site = site
        self.layer = int(trace.x[points.point_inds[0]])

    @t.observe("layer", "site")
    def _show_selection(self, change):
        if not hasattr(self, "rows"):
            return
        row = self.selected_row
        with self.figure.batch_update():
            self.figure.layout.shapes = () if self.layer is None else (
                dict(type="line", x0=self.layer, x1=self.layer, y0=0, y1=1.05, line=dict(color="#888", dash="dot")),)
        concept = f"{html.escape(self.concept)}: " if len(self.columns) > 1 else ""
        if row is None:
            self.readout.value = (f"{concept}layer {self.layer} ({html.escape(self.site)}): not in the sweep"
                                  + self._chance_note())
            return
        ctrl = row.get("control_accuracy_mean")
        ctrl_text = f", shuffled-label control {ctrl:.2f}" if ctrl is not None else ""
        refs = "".join(f"; {html.escape(label)} {accuracy:.2f}" for label, accuracy, _ in self._reference_lines())
        self.readout.value = (f"<b>selected:</b> {concept}{html.escape(self.site)} layer {self.layer}: accuracy "
                              f"{row['accuracy_mean']:.2f} ± {row.get('accuracy_std', 0):.2f}{ctrl_text}{refs}"
                              + self._chance_note())

    def _chance_note(self) -> str:
        return chance_note(self.chance, any("control_accuracy_mean" in r for r in self.layer_rows))

    def static_html(self) -> str:
        series, dashed = {}, []
        for site in self.sites:
            rows = self._site_rows(site)
            xs = [r["layer"] for r in rows]
            series[f"{site} probe"] = (xs, [r["accuracy_mean"] for r in rows], [r.get("accuracy_std", 0) for r in rows])
            if any("control_accuracy_mean" in r for r in rows):
                name = f"{site} shuffled"
                series[name] = (xs, [r.get("control_accuracy_mean", 0) for r in rows], None)
                dashed.append(name)
        title = f"{self.title}: {self.concept}" if len(self.columns) > 1 else self.title
        hlines = {label: (accuracy, color) for label, accuracy, color in self._reference_lines()}
        return svg_lines(series, title=title, y_range=(0.0, 1.05), dashed=tuple(dashed), hlines=hlines) + \
            self._chance_note()
