"""Layer sweep view: probe accuracy and the shuffled-label control by layer and site, with error bars.

Clicking a point sets `layer` (and `site`); `Workbench` links that trait to the other views.

    >>> rows = [dict(site="resid", layer=i, accuracy_mean=a, accuracy_std=0.02, control_accuracy_mean=0.25)
    ...         for i, a in enumerate([0.4, 0.8, 0.9])]
    >>> view = LayerSweepView(rows)
    >>> view.layer, view.best_layer
    (2, 2)
    >>> view.layer = 1; view.selected_row["accuracy_mean"]
    0.8
"""
from __future__ import annotations

import html

import ipywidgets as w
import plotly.graph_objects as go
import traitlets as t

from ._base import View, guarded
from .static import PALETTE, svg_lines


def rows_of(sweep) -> list[dict]:
    """Row dicts from a `workbench.analysis.probes.SweepResult`, a list of dicts, or a DataFrame."""
    if hasattr(sweep, "rows"):
        return list(sweep.rows)
    if hasattr(sweep, "to_dict"):
        return sweep.to_dict("records")
    return [dict(r) for r in sweep]


class LayerSweepView(View):
    """Accuracy (solid) and shuffled-label control (dashed) per layer, one line per site."""

    layer = t.Int(allow_none=True, help="selected layer (click a point)")
    site = t.Unicode("resid", help="site of the selected point")

    def __init__(self, sweep, title: str = "Probe accuracy by layer", width_px: int = 560, **kwargs):
        super().__init__(**kwargs)
        self.rows = rows_of(sweep)
        if not self.rows:
            raise ValueError("the sweep has no rows: run workbench.analysis.probes.sweep(...) on some activations "
                             "first")
        self.title = title
        self.sites = list(dict.fromkeys(r["site"] for r in self.rows))
        self.figure = go.FigureWidget(layout=go.Layout(
            title=html.escape(title), xaxis_title="decoder layer", yaxis_title="accuracy", yaxis_range=[0, 1.05],
            width=width_px, height=360, margin=dict(l=50, r=20, t=40, b=40), clickmode="event", hovermode="closest"))
        self._trace_sites: list[str] = []  # the site of each trace (its name is escaped for plotly)
        for i, site in enumerate(self.sites):
            rows = self._site_rows(site)
            color = PALETTE[i % len(PALETTE)]
            self._trace_sites.append(site)
            self.figure.add_scatter(
                x=[r["layer"] for r in rows], y=[r["accuracy_mean"] for r in rows], name=html.escape(f"{site} probe"),
                mode="lines+markers", line=dict(color=color), marker=dict(size=9),
                error_y=dict(type="data", array=[r.get("accuracy_std", 0.0) for r in rows], visible=True))
            if any("control_accuracy_mean" in r for r in rows):
                self._trace_sites.append(site)
                self.figure.add_scatter(
                    x=[r["layer"] for r in rows], y=[r.get("control_accuracy_mean") for r in rows],
                    name=html.escape(f"{site} shuffled labels"), mode="lines+markers", marker=dict(size=6),
                    line=dict(color=color, dash="dash"),
                    error_y=dict(type="data", array=[r.get("control_accuracy_std", 0.0) for r in rows],
                                 visible=True))
        for trace in self.figure.data:
            trace.on_click(self._on_click)
        self.readout = w.HTML()
        self.children = [self.figure, self.readout, self.errors]
        self.add_class("wb-sweep")
        best = self.best_row
        self.site, self.layer = best["site"], int(best["layer"])

    def _site_rows(self, site: str) -> list[dict]:
        return sorted((r for r in self.rows if r["site"] == site), key=lambda r: r["layer"])

    @property
    def best_row(self) -> dict:
        return max(self.rows, key=lambda r: r["accuracy_mean"])

    @property
    def best_layer(self) -> int:
        return int(self.best_row["layer"])

    @property
    def selected_row(self) -> dict | None:
        for r in self.rows:
            if r["layer"] == self.layer and r["site"] == self.site:
                return r
        return None

    @guarded
    def _on_click(self, trace, points, state):
        if not points.point_inds:
            return
        self.site = self._trace_sites[list(self.figure.data).index(trace)]
        self.layer = int(trace.x[points.point_inds[0]])

    @t.observe("layer", "site")
    def _show_selection(self, change):
        row = self.selected_row
        with self.figure.batch_update():
            self.figure.layout.shapes = () if self.layer is None else (
                dict(type="line", x0=self.layer, x1=self.layer, y0=0, y1=1.05, line=dict(color="#888", dash="dot")),)
        if row is None:
            self.readout.value = f"layer {self.layer} ({html.escape(self.site)}): not in the sweep"
            return
        ctrl = row.get("control_accuracy_mean")
        ctrl_text = f", shuffled-label control {ctrl:.2f}" if ctrl is not None else ""
        self.readout.value = (f"<b>selected:</b> {html.escape(self.site)} layer {self.layer}: accuracy "
                              f"{row['accuracy_mean']:.2f} ± {row.get('accuracy_std', 0):.2f}{ctrl_text}")

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
        return svg_lines(series, title=self.title, y_range=(0.0, 1.05), dashed=tuple(dashed))
