"""Clip comparer: original and steered clip side by side (players, spectrograms, scores).

Scores come from `score_fn(clip) -> dict` (e.g. judge genre probabilities and the probe reading,
see `widgets.backend.Backend.scores`); numbers are shown as a table, one column per clip.

    >>> import numpy as np
    >>> tone = lambda f: (np.sin(np.arange(8000) * f / 8000 * 6.283).astype(np.float32), 8000)
    >>> cmp = ClipComparer(score_fn=lambda clip: {"judge: rock": 0.5})
    >>> cmp.compare(tone(220), tone(440)); len(cmp.clips), cmp.scores[1]["judge: rock"]
    (2, 0.5)
"""
from __future__ import annotations

import html
from collections.abc import Callable

import ipywidgets as w
import traitlets as t

from ._base import View, guarded
from .static import audio_html, img_html, spectrogram_png, wav_bytes, waveform_of


class ClipComparer(View):
    """Two columns (original | steered): caption, player, spectrogram; a score table below."""

    clips = t.List(help="[original, steered]")
    scores = t.List(help="one dict of scores per clip (empty when there is no score_fn)")

    def __init__(self, score_fn: Callable | None = None, titles=("original", "steered"), **kwargs):
        super().__init__(**kwargs)
        self.score_fn, self.titles = score_fn, titles
        self.columns = [w.VBox(layout=w.Layout(width="50%")), w.VBox(layout=w.Layout(width="50%"))]
        self.table = w.HTML()
        self.children = [w.HBox(self.columns), self.table, self.errors]
        self.add_class("wb-compare")
        self._show_empty()

    def _show_empty(self):
        for col, title in zip(self.columns, self.titles):
            col.children = [w.HTML(f"<b>{html.escape(str(title))}</b>: nothing yet (press Generate)")]

    @guarded
    def compare(self, original, steered) -> None:
        """Show two clips (Clip-like objects or (samples, rate) pairs) and score them."""
        self.clear_errors()
        pair = [original, steered]
        for col, title, clip in zip(self.columns, self.titles, pair):
            samples, rate = waveform_of(clip)
            caption = html.escape(self.describe(clip))
            col.children = [w.HTML(f"<b>{html.escape(str(title))}</b> <small>{caption}</small>"),
                            w.Audio(value=wav_bytes(samples, rate), format="wav", autoplay=False),
                            w.Image(value=spectrogram_png(clip), format="png", layout=w.Layout(width="95%"))]
        self.clips = pair
        self.scores = [self._score(c) for c in pair] if self.score_fn else []
        self.table.value = self._table_html()

    def _score(self, clip) -> dict:
        """score_fn(clip), or {"score error": ...} (also shown in `errors`): players stay usable."""
        try:
            return dict(self.score_fn(clip))
        except Exception as exc:
            self.report(exc)
            return {"score error": f"{type(exc).__name__}: {exc}"}

    @staticmethod
    def describe(clip) -> str:
        if isinstance(clip, tuple):
            return f"{len(clip[0]) / clip[1]:.1f} s"
        prompt = getattr(clip, "prompt", None)
        return f"“{prompt}” seed {getattr(clip, 'seed', '?')}, {getattr(clip, 'duration_s', 0):.1f} s"

    def _table_html(self) -> str:
        if not self.scores:
            return ""
        keys = list(dict.fromkeys(k for s in self.scores for k in s))

        def cell(v):
            return f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))
        head = "".join(f"<th style='padding:2px 10px'>{html.escape(str(t_))}</th>" for t_ in self.titles)
        body = "".join(f"<tr><td>{html.escape(k)}</td>" + "".join(
            f"<td style='padding:2px 10px;text-align:right'>{cell(s.get(k, ''))}</td>" for s in self.scores) + "</tr>"
            for k in keys)
        return f"<table><tr><th>score</th>{head}</tr>{body}</table>"

    def static_html(self) -> str:
        if not self.clips:
            return "<div>clip comparer: nothing yet</div>"
        cols = "".join(f"<td style='vertical-align:top'>{audio_html(c, f'{title}: {self.describe(c)}')}"
                       f"{img_html(spectrogram_png(c), title=title)}</td>"
                       for title, c in zip(self.titles, self.clips))
        return f"<table><tr>{cols}</tr></table>{self._table_html()}"
