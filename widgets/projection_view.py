"""Projection explorer: a 2-D map (UMAP / PCA) of clips coloured by label.

Hover shows the prompt or file; clicking a point plays its clip; box/lasso selections become group
A and group B, and "direction A → B" asks `direction_fn(group_a, group_b)` for a direction (set on
`direction`). Steered clips are added with `add_points` and drawn as stars in the same map.

    >>> import numpy as np
    >>> xy = np.random.default_rng(0).normal(size=(6, 2))
    >>> ex = ProjectionExplorer(xy, ["rock"] * 3 + ["jazz"] * 3, texts=[f"clip {i}" for i in range(6)])
    >>> ex.select([0, 1]); ex.use_selection_as("A"); ex.select([4, 5]); ex.use_selection_as("B")
    >>> ex.group_a, ex.group_b, ex.n_points
    ([0, 1], [4, 5], 6)
"""
from __future__ import annotations

import html
from collections.abc import Callable, Sequence

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import traitlets as t

from ._base import View, configured, guarded
from .lasso import points_in_selections
from .static import PALETTE, svg_scatter, wav_bytes, waveform_of


class ProjectionExplorer(View):
    """Scatter of `xy` (N, 2) with one trace per label, a player, and A/B group buttons.

    clips: a sequence (Clip-like objects, or (samples, rate) pairs) or a callable index -> clip,
    used to play a clicked point. direction_fn(group_a, group_b) -> direction object.
    """

    selection = t.List(t.Int(), help="indices of the last box/lasso selection")
    group_a = t.List(t.Int())
    group_b = t.List(t.Int())
    clicked = t.Int(-1, help="index of the last clicked point (-1: none; steered points are N, N+1, ...)")
    direction = t.Any(None, allow_none=True, help="the last direction made from group A to group B")
    n_points = t.Int(0)

    def __init__(self, xy, labels: Sequence, texts: Sequence[str] | None = None, clips=None,
                 direction_fn: Callable | None = None, title: str = "Clips in activation space",
                 width_px: int = 600, **kwargs):
        super().__init__(**kwargs)
        xy = np.asarray(xy, dtype=float)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise ValueError(f"xy must have shape (N, 2), got {xy.shape}: project the activations to 2-D first")
        if len(labels) != len(xy):
            raise ValueError(f"{len(labels)} labels for {len(xy)} points: pass one label per point")
        self.xy, self.labels = xy, [str(x) for x in labels]
        self.texts = list(texts) if texts is not None else [f"#{i}" for i in range(len(xy))]
        self.clips, self.direction_fn, self.title = clips, direction_fn, title
        self.extra_xy = np.zeros((0, 2))
        self.extra_clips: list = []
        self.extra_texts: list[str] = []
        self.classes = list(dict.fromkeys(self.labels))
        self.figure = configured(go.FigureWidget(layout=go.Layout(
            title=html.escape(title), width=width_px, height=420, dragmode="lasso", hovermode="closest",
            clickmode="event",
            margin=dict(l=30, r=20, t=40, b=30), legend=dict(itemclick=False, itemdoubleclick=False))), "map")
        self._trace_index: list[np.ndarray] = []  # per trace: global point indices
        for i, label in enumerate(self.classes):
            idx = np.flatnonzero(np.array(self.labels) == label)
            self._trace_index.append(idx)
            # plotly reads trace names, titles and hover texts as HTML: every user string is escaped
            self.figure.add_scatter(
                x=xy[idx, 0], y=xy[idx, 1], mode="markers", name=html.escape(label), customdata=idx,
                hovertext=[html.escape(str(self.texts[j])) for j in idx],
                hovertemplate="%{hovertext}<extra>%{fullData.name}</extra>",
                marker=dict(size=8, color=PALETTE[i % len(PALETTE)], opacity=0.8))
        self._trace_index.append(np.zeros(0, dtype=int))
        self.figure.add_scatter(x=[], y=[], mode="markers+text", name="steered", hovertext=[],
                                marker=dict(size=16, symbol="star", color="black"), textposition="top center")
        for trace in self.figure.data:
            trace.on_click(self._on_click)
            trace.on_selection(self._on_selection)
        # the drawn outline, in its own message: the selected-points event can be lost (widgets/lasso.py)
        self._clearing_outline = False
        self.figure.layout.on_change(self._on_outline, "selections")
        self.n_points = len(xy)
        self.player = w.Audio(autoplay=True, loop=False, layout=w.Layout(width="320px"))
        self.now_playing = w.HTML("click a point to listen")
        self.a_button = w.Button(description="selection → A", tooltip="use the current selection as group A")
        self.b_button = w.Button(description="selection → B", tooltip="use the current selection as group B")
        self.dir_button = w.Button(description="direction A → B", button_style="info", disabled=True)
        self.groups_readout = w.HTML("lasso some points, then make them group A or B")
        self.a_button.on_click(lambda _: self.use_selection_as("A"))
        self.b_button.on_click(lambda _: self.use_selection_as("B"))
        self.dir_button.on_click(lambda _: self.make_direction())
        controls = w.HBox([self.a_button, self.b_button, self.dir_button])
        self.children = [self.figure, w.HBox([self.player, self.now_playing]), controls,
                         self.groups_readout, self.errors]
        self.add_class("wb-explorer")  # stable hooks for the browser test and custom CSS
        self.player.add_class("wb-explorer-player")

    # -- from code ---------------------------------------------------------------------------
    def select(self, indices: Sequence[int]) -> None:
        """Set the selection (as a lasso would)."""
        self.selection = [int(i) for i in indices]

    def use_selection_as(self, group: str) -> None:
        if group not in ("A", "B"):
            raise ValueError(f"group must be 'A' or 'B', got {group!r}")
        setattr(self, "group_a" if group == "A" else "group_b", list(self.selection))

    @guarded
    def click(self, index: int) -> None:
        """Play point `index` (steered points follow the N stored ones)."""
        self.clicked = int(index)
        clip = self.clip_at(index)
        if clip is None:
            self.now_playing.value = f"no audio for point {index}"
            return
        samples, rate = waveform_of(clip)
        self.player.value = wav_bytes(samples, rate)
        self.now_playing.value = f"▶ {html.escape(self.hover_text(index))}"

    def clip_at(self, index: int):
        n = len(self.xy)
        if index >= n:
            return self.extra_clips[index - n]
        if self.clips is None:
            return None
        return self.clips(index) if callable(self.clips) else self.clips[index]

    def hover_text(self, index: int) -> str:
        n = len(self.xy)
        if index < n:
            return f"{self.labels[index]}: {self.texts[index]}"
        return self.extra_texts[index - n]

    def stored_groups(self) -> tuple[list[int], list[int]]:
        """Groups A and B without steered points (stars have no stored activations to average)."""
        n = len(self.xy)
        return [i for i in self.group_a if i < n], [i for i in self.group_b if i < n]

    @guarded
    def make_direction(self):
        """direction_fn(group_a, group_b) -> `direction`."""
        if not self.group_a or not self.group_b:
            raise ValueError("select points for both group A and group B first")
        if self.direction_fn is None:
            raise ValueError("this explorer has no direction_fn: pass ProjectionExplorer(..., direction_fn=...)")
        a, b = self.stored_groups()
        if not a or not b:
            raise ValueError("each group needs at least one stored point (steered stars do not count)")
        self.direction = self.direction_fn(a, b)
        self.groups_readout.value += " → direction made"
        return self.direction

    def set_xy(self, xy, title: str | None = None) -> None:
        """Move the stored points (e.g. the map of another layer); steered points are cleared."""
        xy = np.asarray(xy, dtype=float)
        if xy.shape != self.xy.shape:
            raise ValueError(f"new coordinates have shape {xy.shape}, expected {self.xy.shape}")
        self.xy, self.extra_xy, self.extra_clips, self.extra_texts = xy, np.zeros((0, 2)), [], []
        self.title = title or self.title
        self.selection = []  # the lasso outline belonged to the old map; groups A/B (clip indices) stay
        # the lasso outline lives in the browser and python's copy may already be empty: set a value
        # first (assigning the same empty value sends nothing). Points stay dimmed until the next lasso.
        self._clearing_outline = True  # these outlines are ours: they select nothing
        try:
            with self.figure.batch_update():
                self.figure.layout.selections = [dict(type="rect", x0=0, x1=0, y0=0, y1=0)]
                for trace in self.figure.data:
                    trace.selectedpoints = []
            with self.figure.batch_update():
                self.figure.layout.selections = ()
                for trace, idx in zip(self.figure.data[:-1], self._trace_index):
                    trace.x, trace.y = xy[idx, 0], xy[idx, 1]
                self.figure.data[-1].x, self.figure.data[-1].y, self.figure.data[-1].hovertext = [], [], []
                self.figure.layout.title = html.escape(self.title)
        finally:
            self._clearing_outline = False
        self.n_points = len(xy)

    def add_points(self, xy, texts: Sequence[str], clips: Sequence | None = None) -> list[int]:
        """Add (steered) clips as stars; returns their point indices."""
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        first = len(self.xy) + len(self.extra_xy)
        self.extra_xy = np.vstack([self.extra_xy, xy])
        self.extra_clips += list(clips) if clips is not None else [None] * len(xy)
        self.extra_texts += [str(text) for text in texts]
        trace = self.figure.data[-1]
        with self.figure.batch_update():
            trace.x = self.extra_xy[:, 0]
            trace.y = self.extra_xy[:, 1]
            trace.hovertext = [html.escape(text) for text in self.extra_texts]
            trace.customdata = np.arange(len(self.xy), len(self.xy) + len(self.extra_xy))
        self.n_points = len(self.xy) + len(self.extra_xy)
        return list(range(first, first + len(xy)))

    def selected_frame(self):
        """The selection as rows (index, label, text): a list of dicts."""
        return [dict(index=i, label=self.labels[i] if i < len(self.xy) else "steered", text=self.hover_text(i))
                for i in self.selection]

    # -- plotly events --------------------------------------------------------------------------
    def _global(self, trace, point_inds) -> list[int]:
        k = list(self.figure.data).index(trace)
        if k == len(self.figure.data) - 1:
            return [len(self.xy) + int(p) for p in point_inds]
        return [int(self._trace_index[k][p]) for p in point_inds]

    @guarded
    def _on_click(self, trace, points, state):
        if points.point_inds:
            self.click(self._global(trace, points.point_inds)[0])

    @guarded
    def _on_selection(self, trace, points, selector):
        # plotly calls this once per trace; the first trace's call starts a new selection
        k = list(self.figure.data).index(trace)
        found = self._global(trace, points.point_inds)
        self.selection = found if k == 0 else sorted(set(self.selection) | set(found))

    @guarded
    def _on_outline(self, layout, selections):
        # a relayout of `layout.selections` (every outline drawn, shift adds one; none after a double click)
        if self._clearing_outline:
            return
        # the value passed in is plotly's cached tuple, stale after a relayout from the browser: read the dict
        outlines = layout.to_plotly_json().get("selections") or []
        points = np.vstack([self.xy, self.extra_xy]) if len(self.extra_xy) else self.xy
        self.selection = points_in_selections(points, outlines)  # traitlets notifies only on a change

    @t.observe("selection", "group_a", "group_b")
    def _show_groups(self, change):
        def describe(group):
            if not group:
                return "empty"
            labels = [self.labels[i] for i in group if i < len(self.xy)]
            steered = len(group) - len(labels)
            top = f"mostly {html.escape(max(set(labels), key=labels.count))}" if labels else "all steered"
            # Steered points (stars) have no stored activations: directions are made without them.
            note = f", {steered} steered left out" if steered and labels else ""
            return f"{len(group)} points ({top}{note})"
        shown = ", ".join(f"#{i}" for i in self.selection[:6]) + (" …" if len(self.selection) > 6 else "")
        self.groups_readout.value = (f"selected: {len(self.selection)} [{shown}] · A: {describe(self.group_a)} · "
                                     f"B: {describe(self.group_b)}")
        self.dir_button.disabled = not (self.group_a and self.group_b)

    def static_html(self) -> str:
        return svg_scatter(self.xy, self.labels, title=self.title, extra=self.extra_xy)
