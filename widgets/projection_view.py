"""Projection explorer: a 2-D map (UMAP / PCA) of clips, coloured by any label column.

Hover names each field (label, prompt, seed, ...); clicking a point plays its clip and rings it;
box/lasso selections (or the search box) select points, which become group A (diamonds) or group B
(squares); "direction A → B" asks `direction_fn(group_a, group_b)` for a direction (set on
`direction`). Steered clips are added with `add_points` and drawn as stars in the same map.

All stored points are one plotly trace, so a colour-by change, a click or a group is a restyle of
that trace (its colour, size, symbol or outline arrays), not a redraw; the legend is a row of
marker-only keys. `python -m benchmarks map` times that restyle for 500 and 5 000 points.

    >>> import numpy as np
    >>> xy = np.random.default_rng(0).normal(size=(6, 2))
    >>> ex = ProjectionExplorer(xy, ["rock"] * 3 + ["jazz"] * 3, columns={"seed": [0, 1, 2, 3, 4, 5]})
    >>> ex.select([0, 1]); ex.use_selection_as("A"); ex.select([4, 5]); ex.use_selection_as("B")
    >>> ex.group_a, ex.group_b, ex.n_points
    ([0, 1], [4, 5], 6)
    >>> ex.search("seed=4"), ex.selected_rows()["label"].tolist()
    ([4], ['jazz'])
    >>> ex.color_by = "seed"; ex.figure.data[2].name, ex.point_colours()[:2]
    ('seed: 0', ['#0072B2', '#E69F00'])
"""
from __future__ import annotations

import html
import os
from collections import Counter
from collections.abc import Callable, Mapping, Sequence

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import traitlets as t

from ._base import View, configured, guarded
from .lasso import points_in_selections
from .static import PALETTE, svg_scatter, wav_bytes, waveform_of

FONT_PX = 14  # readable on a classroom projector
N_KEYS = len(PALETTE)  # legend keys for a categorical colour; more categories share the last ("other")
OTHER_COLOR = "#999999"
CONTINUOUS_SCALE = "Viridis"  # colour-blind safe and monotone in lightness
HIDDEN_FIELDS = ("id", "row", "template")  # store bookkeeping, not something a listener reads
MAX_CATEGORIES = 12  # a string column with more distinct values (prompts, paths) is not offered as a colour
POINT_SIZE, PLAYING_SIZE = 9, 16
MAP_SIZE_PX = (640, 480)  # the map's (width, height); resize a shown map with ``explorer.figure.layout.width = ...``
GROUP_SYMBOLS = {"A": "diamond", "B": "square"}
SYMBOL_CODES = {"circle": 0, "square": 1, "diamond": 2}  # plotly's symbol numbers
UNSELECTED_OPACITY = 0.3


def axis_titles(method: str, explained: Sequence[float] | None = None) -> tuple[str, str]:
    """The map's axis titles: "PC1 (41% var)" with PCA's explained variance, "UMAP 1" for UMAP.

        >>> axis_titles("pca", (0.412, 0.18)), axis_titles("umap")
        (('PC1 (41% var)', 'PC2 (18% var)'), ('UMAP 1', 'UMAP 2'))
    """
    if method == "pca":
        if explained is None:
            return "PC1", "PC2"
        return tuple(f"PC{i + 1} ({100 * float(v):.0f}% var)" for i, v in enumerate(explained[:2]))
    return f"{method.upper()} 1", f"{method.upper()} 2"


def _is_number(value) -> bool:
    return isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))


def _shown(value) -> str:
    if isinstance(value, (float, np.floating)):
        return f"{float(value):.4g}"
    return str(value)


def colour_columns(columns: Mapping[str, Sequence]) -> list[str]:
    """The columns a map can be coloured by: numbers, or strings with at most `MAX_CATEGORIES` values;
    a column that groups the points exactly as an earlier one does (genre and label) is left out.

        >>> colour_columns({"label": ["a", "b"], "genre": ["a", "b"], "seed": [0, 1], "id": ["x", "y"]})
        ['label', 'seed']
    """
    out, seen = [], set()
    for name, values in columns.items():
        if name in HIDDEN_FIELDS:
            continue
        numeric = all(_is_number(v) for v in values)
        first: dict = {}
        key = ("numbers", *map(float, values)) if numeric else (  # numbers as they are; labels: the grouping
            "groups", *(first.setdefault(str(v), len(first)) for v in values))
        if key in seen:
            continue
        if numeric or len(first) <= MAX_CATEGORIES:
            out.append(name)
            seen.add(key)
    return out


class ProjectionExplorer(View):
    """Scatter of `xy` (N, 2) coloured by a label column, a player, a search box and A/B group buttons.

    labels: one label per point (the "label" column). columns: more per-point columns (a dict of
    sequences or a DataFrame: seed, tempo, prompt, ...), offered in the colour-by menu, named in the
    tooltips and searched. clips: a sequence (Clip-like objects, or (samples, rate) pairs) or a callable
    index -> clip, used to play a clicked point. direction_fn(group_a, group_b) -> direction object.
    axes: the two axis titles (`axis_titles`). The map is `MAP_SIZE_PX`; ``figure.layout.width`` resizes it.
    """

    selection = t.List(t.Int(), help="indices of the last box/lasso selection (or search)")
    group_a = t.List(t.Int())
    group_b = t.List(t.Int())
    clicked = t.Int(-1, help="index of the last clicked point (-1: none; steered points are N, N+1, ...)")
    direction = t.Any(None, allow_none=True, help="the last direction made from group A to group B")
    n_points = t.Int(0)
    color_by = t.Unicode("label", help="the column the points are coloured by")

    def __init__(self, xy, labels: Sequence, texts: Sequence[str] | None = None, clips=None,
                 direction_fn: Callable | None = None, title: str = "Clips in activation space", *,
                 columns=None, axes: Sequence[str] = ("PC1", "PC2"), **kwargs):
        super().__init__(**kwargs)
        xy = np.asarray(xy, dtype=float)
        if xy.ndim != 2 or xy.shape[1] != 2:
            raise ValueError(f"xy must have shape (N, 2), got {xy.shape}: project the activations to 2-D first")
        if len(labels) != len(xy):
            raise ValueError(f"{len(labels)} labels for {len(xy)} points: pass one label per point")
        self.xy, self.labels = xy, [str(x) for x in labels]
        self.columns = {"label": self.labels}
        for name, values in dict(columns.items() if columns is not None else {}).items():
            values = list(values)
            if len(values) != len(xy):
                raise ValueError(f"column {name!r} has {len(values)} values for {len(xy)} points: pass one per point")
            if str(name) != "label":
                self.columns[str(name)] = values
        self.texts = list(texts) if texts is not None else None
        self.clips, self.direction_fn, self.title = clips, direction_fn, title
        self.extra_xy = np.zeros((0, 2))
        self.extra_clips: list = []
        self.extra_texts: list[str] = []
        self.classes = list(dict.fromkeys(self.labels))
        font = dict(size=FONT_PX)
        self.figure = configured(go.FigureWidget(layout=go.Layout(
            title=dict(text=html.escape(title), font=dict(size=FONT_PX + 3)), width=MAP_SIZE_PX[0],
            height=MAP_SIZE_PX[1], dragmode="lasso", hovermode="closest", clickmode="event", font=font,
            hoverlabel=dict(font=font),
            xaxis=dict(title=axes[0], zeroline=False), yaxis=dict(title=axes[1], zeroline=False),
            margin=dict(l=60, r=20, t=50, b=55), legend=dict(itemclick=False, itemdoubleclick=False, font=font),
            plot_bgcolor="white")), "map")
        self.figure.update_xaxes(showgrid=True, gridcolor="#e5e5e5", linecolor="#888", mirror=True)
        self.figure.update_yaxes(showgrid=True, gridcolor="#e5e5e5", linecolor="#888", mirror=True)
        # every stored point in one trace: colour-by, clicks and groups restyle it (fast for thousands)
        self.figure.add_scatter(
            x=xy[:, 0], y=xy[:, 1], mode="markers", name="clips", showlegend=False, customdata=np.arange(len(xy)),
            hovertext=[self._fields_text(i) for i in range(len(xy))], hovertemplate="%{hovertext}<extra></extra>",
            marker=dict(size=POINT_SIZE, line=dict(width=0.5, color=np.zeros(len(xy)), cmin=0, cmax=1,
                                                   colorscale=[[0, "white"], [1, "black"]])),
            selected=dict(marker=dict(opacity=1.0)), unselected=dict(marker=dict(opacity=UNSELECTED_OPACITY)))
        self.figure.add_scatter(x=[], y=[], mode="markers+text", name="steered", hovertext=[],
                                hovertemplate="%{hovertext}<extra>steered</extra>",
                                marker=dict(size=18, symbol="star", color="black"), textposition="top center")
        # legend keys (no points: a None coordinate draws nothing): colour categories, then groups A and B
        for _ in range(N_KEYS):
            self.figure.add_scatter(x=[None], y=[None], mode="markers", showlegend=False, hoverinfo="skip",
                                    marker=dict(size=POINT_SIZE + 2))
        for group, symbol in GROUP_SYMBOLS.items():
            self.figure.add_scatter(x=[None], y=[None], mode="markers", name=f"group {group}", showlegend=False,
                                    hoverinfo="skip", marker=dict(size=POINT_SIZE + 3, symbol=symbol, color="white",
                                                                  line=dict(width=2, color="black")))
        for trace in self.figure.data[:2]:
            trace.on_click(self._on_click)
            trace.on_selection(self._on_selection)
        # the drawn outline, in its own message: the selected-points event can be lost (widgets/lasso.py)
        self._clearing_outline = False
        self.figure.layout.on_change(self._on_outline, "selections")
        self.n_points = len(xy)
        self.player = w.Audio(autoplay=True, loop=False, layout=w.Layout(width="320px"))
        self.now_playing = w.HTML("click a point to listen")
        options = colour_columns(self.columns)
        self.color_dd = w.Dropdown(options=options, value="label", description="colour by",
                                   layout=w.Layout(width="240px"))
        self.search_box = w.Text(placeholder="search: prompt, seed=3, genre=rock", continuous_update=False,
                                 layout=w.Layout(width="300px"), description="search")
        self.search_box.add_class("wb-explorer-search")
        t.link((self, "color_by"), (self.color_dd, "value"))
        self.search_box.observe(lambda ch: self.search(ch["new"]), names="value")
        self.a_button = w.Button(description="selection → A", tooltip="use the current selection as group A (◆)")
        self.b_button = w.Button(description="selection → B", tooltip="use the current selection as group B (■)")
        self.dir_button = w.Button(description="direction A → B", button_style="info", disabled=True)
        # plain text in the widget (no wrapper element): a page script can hold the readout across updates
        self.groups_readout = w.HTML("lasso some points, then make them group A or B",
                                     style=dict(font_size=f"{FONT_PX}px"))
        self.rows_html = w.HTML()
        self.a_button.on_click(lambda _: self.use_selection_as("A"))
        self.b_button.on_click(lambda _: self.use_selection_as("B"))
        self.dir_button.on_click(lambda _: self.make_direction())
        controls = w.HBox([self.a_button, self.b_button, self.dir_button])
        self.children = [w.HBox([self.color_dd, self.search_box]), self.figure,
                         w.HBox([self.player, self.now_playing]), controls, self.groups_readout, self.rows_html,
                         self.errors]
        self.add_class("wb-explorer")  # stable hooks for the browser test and custom CSS
        self.player.add_class("wb-explorer-player")
        self._recolour()
        self._mark_points()

    # -- fields -------------------------------------------------------------------------------
    def _fields(self, index: int) -> list[tuple[str, str]]:
        """(field, value) pairs of a stored point, as a listener reads them (no ids)."""
        out = []
        for name, values in self.columns.items():
            value = values[index]
            if name in HIDDEN_FIELDS or value is None or (isinstance(value, float) and np.isnan(value)):
                continue
            if name == "path":
                name, value = "file", os.path.basename(str(value))
            out.append((name, _shown(value)))
        return out

    def _fields_text(self, index: int, sep: str = "<br>") -> str:
        """The tooltip of a stored point: "label: rock<br>prompt: rock music<br>seed: 3" (escaped for <br>)."""
        escape = html.escape if sep == "<br>" else str
        return sep.join(f"{escape(name)}: {escape(value)}" for name, value in self._fields(index))

    # -- from code ---------------------------------------------------------------------------
    def select(self, indices: Sequence[int]) -> None:
        """Set the selection (as a lasso would)."""
        self.selection = [int(i) for i in indices]

    def search(self, query: str) -> list[int]:
        """Select the stored points that match `query` and return them: "column=value" (or "column:value")
        matches that column exactly, a number matches any numeric field equal to it, other text any field
        that contains it (case-insensitive). An empty query clears the selection."""
        query = str(query).strip()
        if not query:
            self.select([])
            return []
        column, sep, wanted = next(((c, s, query[len(c) + 1:].strip()) for c in self.columns for s in "=:"
                                    if query.lower().startswith(c.lower() + s)), (None, "", query))
        wanted_l = wanted.lower()
        number = float(wanted) if _looks_numeric(wanted) else None
        found = []
        for i in range(len(self.xy)):
            if column is not None:
                if _shown(self.columns[column][i]).lower() == wanted_l or (
                        number is not None and _is_number(self.columns[column][i])
                        and float(self.columns[column][i]) == number):
                    found.append(i)
                continue
            for name, values in self.columns.items():
                value = values[i]
                if name in HIDDEN_FIELDS:
                    continue
                if (number is not None and _is_number(value) and float(value) == number) or (
                        not _is_number(value) and wanted_l in str(value).lower()):
                    found.append(i)
                    break
        self.select(found)
        if not found:
            self.groups_readout.value = f"search “{html.escape(query)}”: no clip matches · " + self._groups_text()
        return found

    def use_selection_as(self, group: str) -> None:
        """Make the selection group A or B; the selection is then cleared, so both groups show."""
        if group not in ("A", "B"):
            raise ValueError(f"group must be 'A' or 'B', got {group!r}")
        setattr(self, "group_a" if group == "A" else "group_b", list(self.selection))
        self.clear_selection()

    def clear_selection(self) -> None:
        """No selection: every point drawn solid again (also the outline and dimming in the browser)."""
        self._clear_browser_selection()
        self.selection = []

    @guarded
    def click(self, index: int) -> None:
        """Play point `index` (steered points follow the N stored ones) and ring it in the map."""
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
        if index >= n:
            return self.extra_texts[index - n]
        if self.texts is None:
            return self._fields_text(index, sep=", ")
        return f"{self.labels[index]}: {self.texts[index]}"

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

    def set_xy(self, xy, title: str | None = None, axes: Sequence[str] | None = None) -> None:
        """Move the stored points (e.g. the map of another layer); steered points are cleared."""
        xy = np.asarray(xy, dtype=float)
        if xy.shape != self.xy.shape:
            raise ValueError(f"new coordinates have shape {xy.shape}, expected {self.xy.shape}")
        self.xy, self.extra_xy, self.extra_clips, self.extra_texts = xy, np.zeros((0, 2)), [], []
        self.title = title or self.title
        self._clear_browser_selection()  # the lasso outline belonged to the old map; groups A/B (clip indices) stay
        self.selection = []
        with self.figure.batch_update():  # one trace per batch (see `_recolour`)
            self.figure.data[1].x, self.figure.data[1].y, self.figure.data[1].hovertext = [], [], []
        with self.figure.batch_update():
            self.figure.data[0].x, self.figure.data[0].y = xy[:, 0], xy[:, 1]
            self.figure.layout.title.text = html.escape(self.title)
            if axes is not None:
                self.figure.layout.xaxis.title.text, self.figure.layout.yaxis.title.text = axes[0], axes[1]
        self.n_points = len(xy)
        if self.clicked >= len(xy):
            self.clicked = -1  # that star is gone

    def _clear_browser_selection(self) -> None:
        # The outline and `selectedpoints` live in the browser and python's copies may already be empty:
        # set a value first (assigning the same empty value sends nothing), then None. An empty list is
        # not "no selection": plotly draws every point in the unselected style while `selectedpoints` is
        # set at all, which is what left the whole map ghosted (opacity 0.16) after a layer change.
        self._clearing_outline = True  # these outlines are ours: they select nothing
        try:
            with self.figure.batch_update():
                self.figure.layout.selections = [dict(type="rect", x0=0, x1=0, y0=0, y1=0)]
                for trace in self.figure.data[:2]:
                    trace.selectedpoints = []
            with self.figure.batch_update():
                self.figure.layout.selections = ()
                for trace in self.figure.data[:2]:
                    trace.selectedpoints = None
        finally:
            self._clearing_outline = False

    def add_points(self, xy, texts: Sequence[str], clips: Sequence | None = None) -> list[int]:
        """Add (steered) clips as stars; returns their point indices."""
        xy = np.asarray(xy, dtype=float).reshape(-1, 2)
        first = len(self.xy) + len(self.extra_xy)
        self.extra_xy = np.vstack([self.extra_xy, xy])
        self.extra_clips += list(clips) if clips is not None else [None] * len(xy)
        self.extra_texts += [str(text) for text in texts]
        trace = self.figure.data[1]
        with self.figure.batch_update():
            trace.x = self.extra_xy[:, 0]
            trace.y = self.extra_xy[:, 1]
            trace.hovertext = [html.escape(text) for text in self.extra_texts]
            trace.customdata = np.arange(len(self.xy), len(self.xy) + len(self.extra_xy))
        self.n_points = len(self.xy) + len(self.extra_xy)
        self._mark_points()
        return list(range(first, first + len(xy)))

    def rows(self, indices: Sequence[int]):
        """A DataFrame of points: x, y, group ("A", "B" or ""), playing, then every column (steered stars:
        label "steered" and their caption); indexed by point (the store row for stored points)."""
        import pandas as pd
        n, records = len(self.xy), []
        for i in indices:
            i = int(i)
            stored = i < n
            x, y = (self.xy[i] if stored else self.extra_xy[i - n])
            record = dict(point=i, x=float(x), y=float(y),
                          group="A" if i in self.group_a else "B" if i in self.group_b else "",
                          playing=i == self.clicked)
            for name, values in self.columns.items():
                record[name] = values[i] if stored else ("steered" if name == "label" else None)
            record["text"] = self.hover_text(i)
            records.append(record)
        columns = ["point", "x", "y", "group", "playing", *self.columns, "text"]
        return pd.DataFrame(records, columns=columns).set_index("point")

    def selected_rows(self):
        """The selection as a DataFrame (see `rows`)."""
        return self.rows(self.selection)

    # -- drawing -------------------------------------------------------------------------------
    @t.validate("color_by")
    def _check_colour(self, proposal):
        name = proposal["value"]
        options = colour_columns(self.columns)
        if name not in options:
            raise self.refuse(f"color_by={name!r} is not a column the map can be coloured by: pick one of {options}")
        return name

    @t.observe("color_by")
    def _colour_changed(self, change):
        self._recolour()

    def _recolour(self) -> None:
        """Restyle the points' colours (and the legend keys) for `color_by`."""
        values = self.columns[self.color_by]
        points = self.figure.data[0]
        with self.figure.batch_update():
            if all(_is_number(v) for v in values) and len(set(values)) > N_KEYS:
                points.marker.color = np.asarray(values, dtype=float)
                points.marker.cmin, points.marker.cmax = None, None
                points.marker.colorscale, points.marker.showscale = CONTINUOUS_SCALE, True
                points.marker.colorbar = dict(title=dict(text=html.escape(self.color_by)), thickness=14,
                                              tickfont=dict(size=FONT_PX))
                shown = []
            else:
                names = [_shown(v) for v in values]
                counts = Counter(names)
                by_count = sorted(counts, key=lambda v: (-counts[v], v))
                kept = set(by_count if len(by_count) <= N_KEYS else by_count[:N_KEYS - 1])  # the rest: "other"
                if all(_looks_numeric(v) for v in kept):
                    order = sorted(kept, key=float)
                else:
                    order = [v for v in dict.fromkeys(names) if v in kept]  # first seen first (the label order)
                shown = [(name, PALETTE[k]) for k, name in enumerate(order)]
                if len(kept) < len(by_count):
                    shown.append(("other", OTHER_COLOR))
                # colours as numbers on a stepped scale: a numeric array restyles far faster than colour strings
                code = {name: k for k, name in enumerate(order)}
                points.marker.color = np.fromiter((code.get(name, len(order)) for name in names), float, len(names))
                points.marker.colorscale = [[edge, colour] for k, (_, colour) in enumerate(shown)
                                            for edge in (k / len(shown), (k + 1) / len(shown))]
                points.marker.cmin, points.marker.cmax = -0.5, len(shown) - 0.5
                points.marker.showscale = False
        # the legend keys in one restyle that sets every key's every property: a batch that sets a property
        # on some traces only sends "undefined" for the others, which plotly.js took as "reset" (the points'
        # trace lost its name and showed up in the legend as "trace 0")
        shown = shown + [("", OTHER_COLOR)] * (N_KEYS - len(shown))
        self.figure.plotly_restyle({
            "name": [html.escape(f"{self.color_by}: {name}" if k == 0 else name) for k, (name, _) in enumerate(shown)],
            "marker.color": [colour for _, colour in shown], "showlegend": [bool(name) for name, _ in shown]},
            trace_indexes=list(range(2, 2 + N_KEYS)))

    def point_colours(self) -> list[str]:
        """The colour each stored point is drawn in (categorical colours; a continuous column: its numbers)."""
        marker = self.figure.data[0].marker
        if marker.showscale:
            return list(marker.color)
        steps = marker.colorscale[::2]  # two edges per colour
        return [steps[int(code)][1] for code in marker.color]

    @t.observe("group_a", "group_b", "clicked")
    def _marks_changed(self, change):
        self._mark_points()

    def _mark_points(self) -> None:
        """Groups as symbols with a dark outline (◆ A, ■ B), the playing point large with a thick ring."""
        if not hasattr(self, "figure"):
            return
        n = len(self.xy)
        a, b = set(self.group_a), set(self.group_b)
        # numbers, not strings: plotly.py validates a string array element by element (0.3 s for 5 000 points)
        symbols = np.zeros(n, dtype=np.int32)
        symbols[[i for i in b if i < n]] = SYMBOL_CODES[GROUP_SYMBOLS["B"]]
        symbols[[i for i in a if i < n]] = SYMBOL_CODES[GROUP_SYMBOLS["A"]]
        in_group = np.zeros(n, dtype=bool)
        in_group[[i for i in a | b if i < n]] = True
        sizes = np.where(in_group, POINT_SIZE + 3, POINT_SIZE).astype(float)
        widths = np.where(in_group, 2.0, 0.5)
        dark = in_group.astype(float)  # outline colour on a white-to-black scale
        if 0 <= self.clicked < n:
            sizes[self.clicked], widths[self.clicked], dark[self.clicked] = PLAYING_SIZE, 3.5, 1.0
        stars = len(self.extra_xy)
        star_sizes = [26 if len(self.xy) + j == self.clicked else 18 for j in range(stars)]
        with self.figure.batch_update():  # one trace per batch (see `_recolour`)
            points = self.figure.data[0]
            points.marker.symbol, points.marker.size = symbols, sizes
            points.marker.line.width, points.marker.line.color = widths, dark
        self.figure.data[1].marker.size = star_sizes if stars else 18
        self.figure.plotly_restyle({"showlegend": [bool(self.group_a), bool(self.group_b)]},
                                   trace_indexes=[2 + N_KEYS, 3 + N_KEYS])
        self._show_rows()

    # -- plotly events --------------------------------------------------------------------------
    def _global(self, trace, point_inds) -> list[int]:
        if trace is self.figure.data[1]:
            return [len(self.xy) + int(p) for p in point_inds]
        return [int(p) for p in point_inds]

    @guarded
    def _on_click(self, trace, points, state):
        if points.point_inds:
            self.click(self._global(trace, points.point_inds)[0])

    @guarded
    def _on_selection(self, trace, points, selector):
        # plotly calls this once per trace; the points' trace comes first and starts a new selection
        found = self._global(trace, points.point_inds)
        self.selection = found if trace is self.figure.data[0] else sorted(set(self.selection) | set(found))

    @guarded
    def _on_outline(self, layout, selections):
        # a relayout of `layout.selections` (every outline drawn, shift adds one; none after a double click)
        if self._clearing_outline:
            return
        # the value passed in is plotly's cached tuple, stale after a relayout from the browser: read the dict
        outlines = layout.to_plotly_json().get("selections") or []
        points = np.vstack([self.xy, self.extra_xy]) if len(self.extra_xy) else self.xy
        self.selection = points_in_selections(points, outlines)  # traitlets notifies only on a change

    @t.observe("selection")
    def _selection_changed(self, change):
        n = len(self.xy)
        stored = [i for i in self.selection if i < n]
        stars = [i - n for i in self.selection if i >= n]
        if self.selection:  # matching points solid, the rest dimmed (a lasso does this in the browser already)
            with self.figure.batch_update():
                self.figure.data[0].selectedpoints = stored
                self.figure.data[1].selectedpoints = stars
        elif self.figure.data[0].selectedpoints is not None:
            with self.figure.batch_update():
                for trace in self.figure.data[:2]:
                    trace.selectedpoints = None

    @t.observe("selection", "group_a", "group_b")
    def _show_groups(self, change):
        self.groups_readout.value = self._groups_text()
        self.dir_button.disabled = not (self.group_a and self.group_b)
        self._show_rows()

    def _groups_text(self) -> str:
        def describe(group):
            if not group:
                return "empty"
            labels = [self.labels[i] for i in group if i < len(self.xy)]
            steered = len(group) - len(labels)
            top = f"mostly {html.escape(max(set(labels), key=labels.count))}" if labels else "all steered"
            # Steered points (stars) have no stored activations: directions are made without them.
            note = f", {steered} steered left out" if steered and labels else ""
            return f"{len(group)} points ({top}{note})"
        labels = [self.labels[i] if i < len(self.xy) else "steered" for i in self.selection]
        counts = ", ".join(f"{html.escape(name)} {labels.count(name)}"
                           for name in sorted(set(labels), key=lambda v: (-labels.count(v), v)))
        return (f"selected: {len(self.selection)} clips{f' ({counts})' if counts else ''} · "
                f"A: {describe(self.group_a)} ◆ · B: {describe(self.group_b)} ■")

    def _show_rows(self, limit: int = 8) -> None:
        """The playing point and the selection as a table under the map, the playing row highlighted."""
        shown = list(self.selection[:limit])
        if self.clicked >= 0 and self.clicked not in shown:
            shown.insert(0, self.clicked)
        if not shown:
            self.rows_html.value = ""
            return
        frame = self.rows(shown)
        hidden = ("x", "y", "playing", *HIDDEN_FIELDS, *(("text",) if self.texts is None else ()))
        fields = [c for c in frame.columns if c not in hidden]
        head = "".join(f"<th style='padding:2px 8px;text-align:left'>{html.escape(c)}</th>" for c in fields)
        body = []
        for _, row in frame.iterrows():
            style = " style='background:#fde9c4;font-weight:bold'" if row["playing"] else ""
            cells = "".join(f"<td style='padding:2px 8px'>{'▶ ' if row['playing'] and j == 0 else ''}"
                            f"{html.escape(_shown(row[c]) if row[c] is not None else '')}</td>"
                            for j, c in enumerate(fields))
            body.append(f"<tr{style}>{cells}</tr>")
        more = f"<div>… and {len(self.selection) - limit} more: explorer.selected_rows()</div>" \
            if len(self.selection) > limit else ""
        self.rows_html.value = (f"<div style='font-size:{FONT_PX}px'><table class='wb-explorer-rows'>"
                                f"<tr>{head}</tr>{''.join(body)}</table>{more}</div>")

    def static_html(self) -> str:
        return svg_scatter(self.xy, self.labels, title=self.title, extra=self.extra_xy)


def _looks_numeric(text: str) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True
