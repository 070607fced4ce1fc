"""Feature dashboard: pick an SAE feature, see where it fires, listen there, steer with it.

A feature list (filter by label text and minimum frequency), and for the chosen feature: its activation
histogram, its top clips (spectrogram with the activating span marked, a button that plays the clip from
that moment), its label associations (AUROC / correlation per label column), and "steer with this
feature", which sends its unit decoder row as a `workbench.analysis.directions.Direction` to a steering
panel (`link(workbench)` or `on_steer`). The data is a `workbench.analysis.features.FeatureLabels`
(`label_features(sae, stream)`); clips come from its store (or `clip_fn(row)`).

    >>> from widgets.feature_dashboard import FeatureDashboard     # doctest: +SKIP
    >>> dash = FeatureDashboard(labels, model_id=h.model_id)      # display `dash`   # doctest: +SKIP
    >>> dash.label_filter = "rock"; dash.feature = dash.features[0]; dash.play(0)     # doctest: +SKIP
    >>> direction = dash.steer()                                  # doctest: +SKIP
"""
from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as w
import numpy as np
import traitlets as t

from ._base import View, guarded
from .static import (
    PALETTE,
    audio_html,
    png_bytes,
    spectrogram_db,
    spectrogram_svgs,
    svg_img_html,
    table_html,
    wav_bytes,
    waveform_of,
)

PRE_ROLL_S = 0.25  # playback starts this much before the span, so its onset is heard


def span_spectrogram_png(clip, start_s: float, end_s: float, floor_db: float = -80.0, hop: int = 256) -> bytes:
    """A spectrogram (PNG) with the columns of start_s..end_s tinted, at least 3 px wide."""
    samples, rate = waveform_of(clip)
    db = np.clip(spectrogram_db(samples, rate, hop=hop), floor_db, 0)[::-1]
    level = ((db - floor_db) / -floor_db)[..., None]
    dark, light = np.array([20, 20, 60.0]), np.array([255, 220, 80.0])
    rgb = dark + level * (light - dark)
    lo = int(start_s * rate / hop)
    hi = max(lo + 3, int(np.ceil(end_s * rate / hop)))
    lo, hi = max(0, min(lo, rgb.shape[1] - 3)), min(rgb.shape[1], hi)
    rgb[:, lo:hi] = 0.45 * rgb[:, lo:hi] + 0.55 * np.array([80, 255, 160.0])
    return png_bytes(rgb.astype(np.uint8))


def svg_histogram(edges, counts, title: str = "", width: int = 320, height: int = 150) -> str:
    """Bars of a histogram as SVG (counts on a log-ish sqrt scale so rare large activations show)."""
    counts = np.asarray(counts, float)
    n = max(len(counts), 1)
    top = float(np.sqrt(counts.max())) if counts.size and counts.max() > 0 else 1.0
    left, bottom, plot_w, plot_h = 34, height - 22, width - 44, height - 44
    bars = []
    for i, c in enumerate(counts):
        bar_h = plot_h * np.sqrt(c) / top
        x = left + i * plot_w / n
        bars.append(f"<rect x='{x:.1f}' y='{bottom - bar_h:.1f}' width='{max(plot_w / n - 1, 1):.1f}' "
                    f"height='{bar_h:.1f}' fill='{PALETTE[0]}'>"
                    f"<title>{edges[i]:.3g}-{edges[i + 1]:.3g}: {int(c)}</title></rect>")
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' font-family='sans-serif' "
            f"font-size='11'><text x='{width / 2}' y='14' text-anchor='middle'>{html.escape(title)}</text>"
            f"{''.join(bars)}<line x1='{left}' y1='{bottom}' x2='{left + plot_w}' y2='{bottom}' stroke='#444'/>"
            f"<text x='{left}' y='{height - 6}'>0</text><text x='{left + plot_w}' y='{height - 6}' "
            f"text-anchor='end'>{float(edges[-1]):.3g}</text><text x='4' y='{bottom}'>√n</text></svg>")


class FeatureDashboard(View):
    """Feature list + the chosen feature's histogram, top clips (play from the span), associations, steer.

    labels: a `FeatureLabels`. model_id: for the Directions it makes (default: the store's model; kept as
    `for_model_id`, since ipywidgets owns `model_id`).
    clip_fn(row) -> Clip-like (default: the store's `clip`). on_steer(direction): called by "steer with
    this feature" (see `link` for a `widgets.Workbench`). n_top: clips shown per feature.
    """

    feature = t.Int(-1, help="the chosen feature (-1: none)")
    label_filter = t.Unicode("", help="show features whose label contains this text")
    min_frequency = t.Float(0.0, help="show features firing on at least this fraction of frames")
    features = t.List(help="the features the list shows (after the filters)")
    direction = t.Any(None, allow_none=True, help="the last direction sent with 'steer with this feature'")
    playing = t.Dict(help="what the player holds: row, feature, start_s")

    def __init__(self, labels, model_id: str | None = None, clip_fn: Callable | None = None,
                 on_steer: Callable | None = None, n_top: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.labels, self.n_top = labels, int(n_top)
        store = labels.stream.store
        self.for_model_id = model_id or store.model_id
        self.clip_fn = clip_fn or store.clip
        self.on_steer_callbacks: list[Callable] = [on_steer] if on_steer else []
        self.top: list[dict] = []
        self.filter_box = w.Text(description="label", placeholder="e.g. rock", continuous_update=False,
                                 layout=w.Layout(width="220px"))
        self.freq_slider = w.FloatLogSlider(value=1e-4, base=10, min=-4, max=0, step=0.25, description="min freq",
                                            continuous_update=False, readout_format=".0e")
        self.list_box = w.Select(options=[], rows=12, layout=w.Layout(width="360px"))
        self.histogram = w.HTML()
        self.clips_box = w.VBox()
        self.assoc = w.HTML()
        self.player = w.Audio(autoplay=True, loop=False, layout=w.Layout(width="320px"))
        self.now_playing = w.HTML("click ▶ on a clip to listen from where the feature fires")
        self.steer_button = w.Button(description="steer with this feature", icon="location-arrow",
                                     button_style="warning", disabled=True, layout=w.Layout(width="210px"))
        self.steer_status = w.HTML()
        w.link((self, "label_filter"), (self.filter_box, "value"))
        self.freq_slider.observe(lambda ch: setattr(self, "min_frequency", 0.0 if ch["new"] <= 1e-4 else ch["new"]),
                                 names="value")
        self.list_box.observe(self._list_clicked, names="value")
        self.steer_button.on_click(lambda _: self.steer())
        self.add_class("wb-features")
        self.list_box.add_class("wb-feature-list")
        self.player.add_class("wb-feature-player")
        self.steer_button.add_class("wb-feature-steer")
        self.assoc.add_class("wb-feature-assoc")
        left = w.VBox([w.HBox([self.filter_box]), self.freq_slider, self.list_box])
        right = w.VBox([self.histogram, self.assoc, w.HBox([self.steer_button, self.steer_status])])
        self.children = [w.HBox([left, right]), w.HBox([self.player, self.now_playing]), self.clips_box, self.errors]
        self._refilter()

    # -- the list -------------------------------------------------------------------------------
    @t.observe("label_filter", "min_frequency")
    def _filters_changed(self, change):
        self._refilter()

    def _refilter(self) -> None:
        table = self.labels.table.filter(min_frequency=self.min_frequency, label=self.label_filter or None)
        if not self.label_filter:
            table = table.sort("label_score")
        self.features = table.features
        self.list_box.options = [(self.caption(r), int(r["feature"])) for r in table]
        if self.feature not in self.features:
            self.list_box.value = None

    @staticmethod
    def caption(row: dict) -> str:
        label = row.get("label") or "(dead)"
        score = f" {row['label_score']:.2f}" if row.get("label_score") is not None else ""
        return f"#{row['feature']}: {label}{score} · fires {100 * row['frequency']:.2f}%"

    def _list_clicked(self, change):
        if change["new"] is not None and change["new"] != self.feature:
            self.feature = int(change["new"])

    # -- the chosen feature ---------------------------------------------------------------------
    @t.validate("feature")
    def _check_feature(self, proposal):
        value = int(proposal["value"])
        if not -1 <= value < len(self.labels.frequency):
            raise self.refuse(f"feature={value} is out of range: this SAE has {len(self.labels.frequency)} features "
                              f"(0-{len(self.labels.frequency) - 1})")
        return value

    @t.observe("feature")
    @guarded
    def _feature_changed(self, change):
        self.show(self.feature)

    def show(self, feature: int) -> None:
        """Draw one feature (also what setting `feature` does)."""
        self.clear_errors()
        if feature < 0:
            self.histogram.value, self.assoc.value, self.clips_box.children = "", "", ()
            self.steer_button.disabled = True
            return
        if self.list_box.value != feature and feature in self.features:
            self.list_box.value = feature
        row = self.labels.table.rows[feature]
        edges, counts = self.labels.histogram(feature)
        self.histogram.value = svg_histogram(edges, counts, title=f"feature {feature}: activations where it fires")
        self.assoc.value = self._assoc_html(feature, row)
        self.top = self.labels.top_clips(feature, n=self.n_top)
        images = self._spectrograms()
        self.clips_box.children = [self._clip_row(i, c, images[i]) for i, c in enumerate(self.top)] or [
            w.HTML("this feature never fires on these clips")]
        self.steer_button.disabled = False
        self.steer_status.value = ""

    def _assoc_html(self, feature: int, row: dict) -> str:
        assoc = self.labels.associations(feature)
        ranked = sorted(assoc.items(), key=lambda kv: -abs(kv[1] - (0.5 if kv[0].startswith("auroc:") else 0.0)))
        rows = [dict(association=k, value=float(v)) for k, v in ranked[:8]]
        head = (f"<b>#{feature}</b>: label <b>{html.escape(str(row.get('label')))}</b>"
                f" (score {row['label_score']:.3f})" if row.get("label") else f"<b>#{feature}</b>: no label")
        return f"<div>{head}; fires on {100 * row['frequency']:.2f}% of frames</div>{table_html(rows)}"

    def _spectrograms(self, width_px: int | None = None) -> list[str]:
        """The top clips' spectrograms (SVG) on one colour scale, each with its activating span shaded."""
        images, _ = spectrogram_svgs([self.clip_fn(c["row"]) for c in self.top],
                                     spans_s=[(c["start_s"], c["end_s"]) for c in self.top], width_px=width_px)
        return images

    def _clip_row(self, i: int, c: dict, spectrogram_svg: str) -> w.Widget:
        image = w.HTML(spectrogram_svg, layout=w.Layout(width="420px"))
        button = w.Button(description=f"▶ from {c['start_s']:.2f} s", layout=w.Layout(width="130px"))
        button.add_class("wb-feature-play")
        button.on_click(lambda _, i=i: self.play(i))
        text = (f"<b>{html.escape(str(c.get('id')))}</b> ({html.escape(str(c.get('label')))}) peak "
                f"{c['peak']:.2f} at {c['peak_s']:.2f} s, span {c['start_s']:.2f}-{c['end_s']:.2f} s")
        return w.HBox([image, w.VBox([w.HTML(text), button])])

    @guarded
    def play(self, i: int = 0) -> None:
        """Play top clip i of the chosen feature from just before its activating span."""
        if not 0 <= int(i) < len(self.top):
            raise IndexError(f"top clip {i} does not exist: the feature shows {len(self.top)} clips "
                             f"(0-{len(self.top) - 1})")
        c = self.top[int(i)]
        samples, rate = waveform_of(self.clip_fn(c["row"]))
        start_s = max(0.0, c["start_s"] - PRE_ROLL_S)
        self.player.value = wav_bytes(samples[int(start_s * rate):], rate)
        self.playing = dict(row=c["row"], feature=self.feature, start_s=start_s)
        self.now_playing.value = f"▶ {html.escape(str(c.get('id')))} from {start_s:.2f} s (feature {self.feature})"

    # -- steering -------------------------------------------------------------------------------
    def steer(self):
        """The chosen feature's decoder row as a Direction, sent to every on_steer callback; returns it."""
        if self.feature < 0:
            raise self.refuse("no feature chosen: click one in the list (or set dash.feature)")
        direction = self.labels.direction(self.feature, self.for_model_id)
        self.direction = direction
        for fn in self.on_steer_callbacks:
            try:
                fn(direction)
            except Exception as exc:
                self.report(exc)
        self.steer_status.value = f"sent {html.escape(direction.name)} (layer {direction.layer})"
        return direction

    def on_steer(self, fn: Callable) -> None:
        self.on_steer_callbacks.append(fn)

    def link(self, workbench) -> FeatureDashboard:
        """Send "steer with this feature" to a `widgets.Workbench`'s steering panel (direction and layer)."""
        panel = getattr(workbench, "panel", workbench)

        def to_panel(direction):
            panel.layers = [direction.layer]
            panel.direction = direction
        self.on_steer(to_panel)
        return self

    # -- static --------------------------------------------------------------------------------
    def static_html(self) -> str:
        table = self.labels.table.filter(min_frequency=self.min_frequency, label=self.label_filter or None)
        rows = [dict(feature=r["feature"], label=r.get("label"), score=r.get("label_score"),
                     frequency=r["frequency"]) for r in table.sort("label_score").head(12)]
        parts = [f"<div><b>SAE features</b> ({len(table)} shown)</div>{table_html(rows)}"]
        if self.feature >= 0:
            row = self.labels.table.rows[self.feature]
            parts.append(svg_histogram(*self.labels.histogram(self.feature), title=f"feature {self.feature}"))
            parts.append(self._assoc_html(self.feature, row))
            for c, image in zip(self.top, self._spectrograms(width_px=420)):
                clip = self.clip_fn(c["row"])
                caption = f"{c.get('id')}: span {c['start_s']:.2f}-{c['end_s']:.2f} s"
                parts.append(f"<div>{html.escape(caption)}</div>{svg_img_html(image, title=caption)}"
                             + audio_html(clip, f"{c.get('id')} (peak at {c['peak_s']:.2f} s)"))
        return "<div>" + "".join(parts) + "</div>"
