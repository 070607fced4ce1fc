"""Trace view: when during generation does a direction take hold? Layers x time heatmaps, playable.

Each heatmap shows, for one clip, the projection of every layer's residual onto the current
direction at every decoder step (`workbench.analysis.step_traces`, recorded through an nnsight
trace): the original clip on the left, the steered one (same prompt and seed) on the right, on one
colour scale. Under each is its audio; clicking a time position in a heatmap plays that clip from
there. `Workbench` feeds it the steering panel's direction and last request.

    >>> import numpy as np
    >>> from workbench.analysis.step_traces import StepTrace
    >>> tone = (np.sin(np.arange(16000) / 16000 * 2 * np.pi * 220).astype(np.float32), 16000)
    >>> tr = StepTrace(np.arange(12.0).reshape(3, 4, 1), np.ones((3, 4, 1)), [tone], (0, 1, 2), "resid", 2.0)
    >>> view = TraceView()
    >>> view.show(tr, tr)
    >>> view.click(0.5, which="steered"); view.clicked_time_s, view.players["steered"].start_s
    (0.5, 0.5)
    >>> "projection" in view.static_html()
    True
"""
from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import traitlets as t

from ._base import View, configured, guarded
from .seek_player import SeekPlayer
from .static import audio_html, heatmap_png, img_html

SIDES = ("original", "steered")


class TraceView(View):
    """Projection heatmaps (layers x time) of an original and a steered clip, each with a seekable player.

    trace_fn: ``fn(request, direction) -> (original StepTrace, steered StepTrace or None)`` run by the
    Trace button (`widgets.backend.Backend.trace` in `Workbench`); or call `show` with traces from code.
    """

    direction = t.Any(None, allow_none=True, help="what the residual is projected on (object with .vector)")
    request = t.Any(None, allow_none=True, help="the SteerRequest to trace (prompt, seed, steering)")
    clicked_time_s = t.Float(0.0, help="the last time clicked (s)")
    running = t.Bool(False)

    def __init__(self, trace_fn: Callable | None = None, title: str = "Projection on the direction", **kwargs):
        super().__init__(**kwargs)
        self.trace_fn, self.title = trace_fn, title
        self.traces: dict = {side: None for side in SIDES}
        self.figures = {side: configured(go.FigureWidget(layout=go.Layout(
            title=side, xaxis_title="time (s)", yaxis_title="layer", width=420, height=300,
            margin=dict(l=50, r=10, t=40, b=40), clickmode="event")), f"trace-{side}") for side in SIDES}
        self.players = {side: SeekPlayer() for side in SIDES}
        self.button = w.Button(description="Trace", button_style="info",
                               tooltip="generate the last request (original and steered) and trace every layer")
        self.button.on_click(lambda _: self.run())
        self.readout = w.HTML("press Trace (or set a direction and a request from code)")
        self.readout.add_class("wb-trace-readout")
        # each figure in a box hidden until it has a trace: no empty axes before a run (the readout says what to do)
        self.figure_boxes = {s: w.Box([self.figures[s]], layout=w.Layout(display="none")) for s in SIDES}
        columns = [w.VBox([self.figure_boxes[s], self.players[s]], layout=w.Layout(width="50%")) for s in SIDES]
        self.children = [w.HBox([self.button, self.readout]), w.HBox(columns), self.errors]
        self.add_class("wb-trace")
        for side in SIDES:
            self.figures[side].add_class(f"wb-trace-{side}")

    @guarded
    def run(self):
        """Trace `request` along `direction` with `trace_fn`, then show the result."""
        if self.trace_fn is None:
            raise ValueError("this TraceView has no trace_fn: pass traces to show(...), or build it with "
                             "TraceView(trace_fn=backend.trace)")
        if self.direction is None or self.request is None:
            raise ValueError("nothing to trace yet: pick a direction and generate a clip first (or set "
                             "view.direction and view.request)")
        self.clear_errors()
        self.running, self.button.disabled = True, True
        self.readout.value = "tracing …"
        try:
            original, steered = self.trace_fn(self.request, self.direction)
        finally:
            self.running, self.button.disabled = False, False
        self.show(original, steered)
        return original, steered

    def show(self, original, steered=None) -> None:
        """Draw two `StepTrace`s (the first clip of each) on one colour scale and load their audio."""
        self.traces = {"original": original, "steered": steered}
        shown = [tr for tr in (original, steered) if tr is not None]
        limit = max(float(np.max(np.abs(tr.projection[..., 0]))) for tr in shown) or 1.0
        for side in SIDES:
            fig, tr = self.figures[side], self.traces[side]
            with fig.batch_update():
                fig.data = ()
                if tr is None:
                    fig.layout.title = f"{side}: none (strength 0)"
                    continue
                fig.add_heatmap(x=tr.time_s, y=list(tr.layers), z=tr.projection[..., 0], zmid=0, zmin=-limit,
                                zmax=limit, colorscale="RdBu", reversescale=True,
                                colorbar=dict(title="proj", len=0.8),
                                hovertemplate="layer %{y} at %{x:.2f} s: %{z:.2f}<extra></extra>")
                fig.layout.title = html.escape(f"{side}: {self._caption(tr)}")
                fig.data[0].on_click(self._on_click)
            self.figure_boxes[side].layout.display = None if tr is not None else "none"
            if tr is not None and tr.clips:
                self.players[side].load(tr.clips[0])
        self.readout.value = (f"{html.escape(self.title)} ({shown[0].site}); click a time to play from there. "
                              f"{self._summary()}")

    @staticmethod
    def _caption(tr) -> str:
        clip = tr.clips[0] if tr.clips else None
        prompt = getattr(clip, "prompt", None)
        return f"“{prompt}”" if prompt else "clip"

    def _summary(self) -> str:
        original, steered = self.traces["original"], self.traces["steered"]
        if original is None or steered is None:
            return ""
        shift = (steered.projection[..., 0] - original.projection[..., 0]).mean(axis=1)
        top = int(np.argmax(np.abs(shift)))
        return (f"Mean shift steered − original is largest at layer {steered.layers[top]} "
                f"({shift[top]:+.2f}).")

    def _on_click(self, trace, points, state):
        if not points.xs:
            return
        side = next(s for s in SIDES if self.figures[s].data and self.figures[s].data[0] is trace)
        self.click(float(points.xs[0]), which=side, layer=points.ys[0] if points.ys else None)

    @guarded
    def click(self, time_s: float, which: str = "original", layer=None) -> None:
        """Play the ``which`` clip from ``time_s`` (what clicking a heatmap does)."""
        if which not in SIDES:
            raise ValueError(f"which={which!r}: use 'original' or 'steered'")
        if self.traces.get(which) is None:
            raise ValueError(f"no {which} trace to play: press Trace first")
        self.clicked_time_s = float(time_s)
        self.players[which].play_from(time_s)
        where = f" (layer {layer})" if layer is not None else ""
        self.readout.value = f"▶ {which} from {time_s:.2f} s{where}"

    def static_html(self) -> str:
        parts = []
        for side in SIDES:
            tr = self.traces.get(side)
            if tr is None:
                continue
            png = heatmap_png(tr.projection[..., 0])
            parts.append(f"<td style='vertical-align:top'><div>{html.escape(side)}: projection, layers "
                         f"{tr.layers[0]}–{tr.layers[-1]} (bottom to top) × {tr.time_s[-1]:.1f} s</div>"
                         f"{img_html(png, title=side)}"
                         f"{audio_html(tr.clips[0], side) if tr.clips else ''}</td>")
        if not parts:
            return "<div>trace view (projection on the direction): nothing traced yet</div>"
        return f"<table><tr>{''.join(parts)}</tr></table>"
