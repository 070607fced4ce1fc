"""Clip comparer: original and steered clip side by side (players, spectrograms, scores, verdict).

Scores come from `score_fn(clip) -> dict` (e.g. judge genre probabilities and the probe reading,
see `widgets.backend.Backend.scores`); numbers are shown as a table, one column per clip.

Given the request that made the steered clip (`compare(original, steered, request=...)`), the
comparer also says what steered it (`describe_fn(request)`: the direction's name and method, site,
layer, strength in units of the layer's mean residual norm), flags a clip whose codes collapsed
against its twin's ("repeats codes 2.8x as often as its twin") or that buzzes at the codec's frame rate
("buzzing at the codec's frame rate: 31% of its power"), and shows the direction's effect next
to the random band ("toward rock +0.41; random directions, 95%: +0.38: not beyond random"). The band
costs generations, so it waits for the button (or `compute_band()` from code); `band_fn(request,
compute)` computes it, or with compute=False returns it only when it is cached
(`widgets.backend.Backend.random_band`).

    >>> import numpy as np
    >>> tone = lambda f: (np.sin(np.arange(8000) * f / 8000 * 6.283).astype(np.float32), 8000)
    >>> cmp = ClipComparer(score_fn=lambda clip: {"judge: rock": 0.5})
    >>> cmp.compare(tone(220), tone(440)); len(cmp.clips), cmp.scores[1]["judge: rock"]
    (2, 0.5)
"""
from __future__ import annotations

import html
import threading
from collections.abc import Callable

import ipywidgets as w
import traitlets as t

from ._base import View, guarded
from .backend import collapse_note
from .requests import SteerRequest
from .static import audio_html, spectrogram_svgs, svg_img_html, wav_bytes, waveform_of


class ClipComparer(View):
    """Two columns (original | steered): caption, player, spectrogram; a score table and the verdict below."""

    clips = t.List(help="[original, steered]")
    scores = t.List(help="one dict of scores per clip (empty when there is no score_fn)")
    steering = t.Dict(help="what steered the clip: name, method, site, layers, strength, mode, unit_by_layer")
    collapse = t.Dict(help="code statistics of the steered clip next to its twin's, and `collapsed`")
    band = t.Dict(help="the direction against random directions (verdict keys), once computed")
    band_running = t.Bool(False)
    db_range = t.Tuple(help="(vmin, vmax) in dB: the one colour scale both spectrograms are drawn on")

    def __init__(self, score_fn: Callable | None = None, titles=("original", "steered"), *,
                 band_fn: Callable | None = None, describe_fn: Callable | None = None, **kwargs):
        super().__init__(**kwargs)
        self.score_fn, self.titles, self.band_fn, self.describe_fn = score_fn, titles, band_fn, describe_fn
        self.request = None
        self._thread: threading.Thread | None = None
        self.columns = [w.VBox(layout=w.Layout(width="50%")), w.VBox(layout=w.Layout(width="50%"))]
        self.table = w.HTML()
        self.verdict = w.HTML()
        self.verdict.add_class("wb-verdict")
        self.band_button = w.Button(description="Compare with random directions", icon="random", disabled=True,
                                    layout=w.Layout(width="auto"),
                                    tooltip="generates the prompt x 8 seeds: twin, +v, -v and a random direction")
        self.band_button.on_click(lambda _: self.compute_band(wait=False))
        self.band_button.add_class("wb-band")
        self.children = [w.HBox(self.columns), self.verdict,
                         *([self.band_button] if band_fn is not None else []), self.table, self.errors]
        self.add_class("wb-compare")
        self._show_empty()

    def _show_empty(self):
        for col, title in zip(self.columns, self.titles):
            col.children = [w.HTML(f"<b>{html.escape(str(title))}</b>: nothing yet (press Generate)")]

    @guarded
    def compare(self, original, steered, request=None) -> None:
        """Show two clips (Clip-like objects or (samples, rate) pairs) and score them; with the `request`
        that made `steered`, name its direction and look up its random band."""
        self.clear_errors()
        pair = [original, steered]
        images, self.db_range = spectrogram_svgs(pair)  # one colour scale: a quieter clip looks darker
        self.request = request
        self.steering = self._describe(request)
        for col, (title, caption), clip, image in zip(self.columns, self.headers(pair, request), pair, images):
            samples, rate = waveform_of(clip)
            header = w.HTML(f"<b>{html.escape(title)}</b><br><small>{html.escape(caption)}</small>")
            header.add_class("wb-compare-header")
            col.children = [header, w.Audio(value=wav_bytes(samples, rate), format="wav", autoplay=False),
                            w.HTML(image, layout=w.Layout(width="95%"))]
        self.clips = pair
        self.collapse = collapse_note(steered, original)
        self.band = self._cached_band(request)
        self.scores = [self._score(c) for c in pair] if self.score_fn else []
        self.table.value = self._table_html()
        self._show_verdict()

    def headers(self, pair, request=None) -> list[tuple[str, str]]:
        """(title, caption) per column: the original is named as the steered clip's unsteered twin, the steered
        clip by what steered it (direction name and origin, site, layer, strength x the layer's mean residual norm).

            >>> import numpy as np
            >>> from widgets.requests import SteerRequest
            >>> class D: name, method, site = "rock − jazz", "class_means", "resid"
            >>> req = SteerRequest("jazz", layers=[3], strength=0.5, direction=D(), duration_s=1.0)
            >>> tone = (np.zeros(800, np.float32), 8000)
            >>> for title, _ in ClipComparer().headers([tone, tone], req): print(title)
            original: the unsteered twin
            steered along “rock − jazz” (class_means) at resid L3, +0.5 × mean residual norm
        """
        titles = [str(t_) for t_ in self.titles]
        captions = [self.describe(c) for c in pair]
        if request is not None and hasattr(request, "steering_caption"):
            steered = bool(getattr(request, "steered", True))
            titles = [f"{titles[0]}: the unsteered twin" if steered else f"{titles[0]} (not steered)",
                      request.steering_caption() if steered else f"{titles[1]}: not steered (the same clip)"]
        elif self.steering.get("steered"):
            titles[1] = steering_text(self.steering)
        return list(zip(titles, captions))

    @classmethod
    def follow(cls, panel, backend, **kwargs) -> ClipComparer:
        """A comparer that shows every clip `panel` (a `SteeringPanel`) makes next to its unsteered twin (same
        prompt, seed, duration and guidance, generated once by `backend.generate`), named, scored and with its
        random band, as the `Workbench` does. Use it wherever a panel steers outside a Workbench (the feature
        dashboard in notebook 07)."""
        comparer = cls(score_fn=getattr(backend, "scores", None), band_fn=band_fn_of(backend),
                       describe_fn=getattr(backend, "describe_steering", None), **kwargs)
        twins = TwinClips(backend.generate)
        panel.on_clip(lambda clip, request: comparer.compare(twins(request) if SteerRequest.of(request).steered
                                                             else clip, clip, request=request))
        return comparer

    def _describe(self, request) -> dict:
        if request is None or self.describe_fn is None:
            return {}
        try:
            return dict(self.describe_fn(request))
        except Exception as exc:
            self.report(exc)
            return {}

    def _cached_band(self, request) -> dict:
        if request is None or self.band_fn is None or not self.steering.get("steered", True):
            return {}
        try:
            return dict(self.band_fn(request, False) or {})
        except Exception as exc:
            self.report(exc)
            return {}

    def compute_band(self, wait: bool = True) -> dict | None:
        """Measure the steered clip's direction against random directions (generations: the button);
        wait=False runs in a thread. Returns the band (also in `band`), or None when it failed."""
        if self.band_fn is None or self.request is None:
            self.report(ValueError("no steered clip to measure: generate one with a direction first"))
            return None
        if self.band_running:
            self.report(RuntimeError("the random band is being computed already: wait for it"))
            return None
        self.clear_errors()
        self.band_running = True
        request = self.request
        if not wait:
            self._thread = threading.Thread(target=self._run_band, args=(request,), daemon=True)
            self._thread.start()
            return None
        return self._run_band(request)

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until a threaded band computation finishes (for tests and scripts)."""
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _run_band(self, request):
        try:
            band = dict(self.band_fn(request, True))
        except Exception as exc:
            self.report(exc)
            return None
        finally:
            self.band_running = False
        if request is self.request:  # a newer clip may be on show by now
            self.band = band
        return band

    @t.observe("band", "band_running", "steering", "collapse")
    def _show_verdict(self, change=None):
        if not hasattr(self, "verdict"):
            return
        self.verdict.value = self.verdict_html()
        steered = bool(self.steering.get("steered", self.request is not None))
        self.band_button.disabled = self.band_running or self.request is None or not steered or bool(self.band)
        self.band_button.description = ("computing the random band…" if self.band_running
                                        else "Compare with random directions")

    def verdict_lines(self) -> list[str]:
        """Plain-text lines: what steered the clip, its codes against its twin's, its effect against random."""
        lines = []
        if self.steering:
            lines.append(steering_text(self.steering))
        if self.collapse:
            lines.append(collapse_text(self.collapse))
        if self.band:
            lines.append(band_text(self.band))
        elif self.band_running:
            lines.append("measuring this direction against random directions…")
        elif self.steering.get("steered") and self.band_fn is not None:
            lines.append("not yet measured against random directions (press the button: it generates clips)")
        return lines

    def verdict_html(self) -> str:
        lines = self.verdict_lines()
        if not lines:
            return ""
        styled = []
        for line in lines:
            warn = line.startswith(("collapsed", "buzzing")) or ": not beyond random" in line
            style = "color:#b45309;font-weight:600" if warn else ""
            styled.append(f"<div style='{style}'>{html.escape(line)}</div>")
        return "<div class='wb-verdict'>" + "".join(styled) + "</div>"

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
        images, _ = spectrogram_svgs(self.clips, width_px=360)
        cols = "".join(f"<td style='vertical-align:top'>{audio_html(c, f'{title}: {self.describe(c)}')}"
                       f"{svg_img_html(image, title=f'{title}: spectrogram')}</td>"
                       for title, c, image in zip(self.titles, self.clips, images))
        return f"<table><tr>{cols}</tr></table>{self.verdict_html()}{self._table_html()}"


class TwinClips:
    """``twins(request)``: the unsteered clip with the request's prompt, seed, duration and guidance, made by
    ``generate_fn(request)`` once and cached (a steered clip is compared with it)."""

    def __init__(self, generate_fn: Callable):
        self.generate_fn = generate_fn
        self.cache: dict = {}

    def __call__(self, request):
        twin = SteerRequest.of(request).unsteered()
        key = (twin.prompt, twin.seed, twin.duration_s, twin.guidance_scale)
        if key not in self.cache:
            self.cache[key] = self.generate_fn(twin)
        return self.cache[key]


def band_fn_of(backend):
    """(request, compute) -> the random band (`Backend.random_band`; compute=False: only a cached one), or None
    for a backend without bands."""
    if not hasattr(backend, "random_band"):
        return None
    return lambda request, compute: backend.random_band(request) if compute else backend.cached_band(request)


def steering_text(info: dict) -> str:
    """ "steered along 'rock − jazz' (class_means) at resid L3, strength +1.5 x the mean residual norm at
    resid L3 (5.63)" from `Backend.describe_steering`."""
    if not info.get("steered", True):
        return "not steered (no direction, or strength 0): the two clips are the same"
    layers = info.get("layers") or []
    where = f"{info.get('site', 'resid')} L{', L'.join(str(x) for x in layers)}" if layers else info.get("site", "")
    head = f"steered along “{info.get('name', '?')}” ({info.get('method', '?')}) at {where}, "
    strength = float(info.get("strength", 0.0))
    if info.get("mode", "add") != "add":
        return head + f"strength {strength:+g} relative to each row's own norm (mode {info.get('mode')})"
    units = info.get("unit_by_layer") or {}
    parts = []
    for layer in layers:
        norm = units.get(layer, units.get(str(layer)))
        parts.append(f"{norm:.3g} at L{layer}, {abs(strength) * norm:.3g} added" if norm is not None
                     else f"L{layer}: measured at the first steered generation")
    return head + f"strength {strength:+g} x the layer's mean residual norm ({'; '.join(parts)})"


def collapse_text(note: dict) -> str:
    """ "collapsed: repeats codes 2.8x as often as its twin ..." from `widgets.backend.collapse_note`; a clip
    that buzzes at the codec's frame rate (its codes need not collapse) is named so too.

        >>> note = dict(collapsed=False, repeat_ratio=1.1, repeat_rate=0.11, twin_repeat_rate=0.1,
        ...             distinct_codes=85, twin_distinct_codes=87, buzzing=True, comb_share=0.31, twin_comb_share=0.03)
        >>> collapse_text(note).split(";")[0]
        "buzzing at the codec's frame rate: 31% of its power (its twin's 3%)"
    """
    body = (f"repeats codes {note['repeat_ratio']:.1f}x as often as its twin ({note['repeat_rate']:.0%} of frames "
            f"against {note['twin_repeat_rate']:.0%}); {note['distinct_codes']:.0f} distinct codes per codebook "
            f"against its twin's {note['twin_distinct_codes']:.0f}")
    comb = (f"{note['comb_share']:.0%} of its power (its twin's {note['twin_comb_share']:.0%})"
            if note.get("comb_share") is not None else "")
    if note.get("buzzing"):
        return f"buzzing at the codec's frame rate: {comb}; " + ("collapsed: " if note["collapsed"] else "") + body
    tail = f"; at the codec's frame rate: {comb}" if comb else ""
    return ("collapsed: " if note["collapsed"] else "codes: ") + body + tail


def band_text(band: dict) -> str:
    """ "toward rock +0.41; random directions, 95%: +0.38: not beyond random" and why, from a band."""
    unit = f" {band['unit']}" if band.get("unit") and not str(band.get("unit")).startswith("P(") else ""
    head = (f"toward {band['target']} {band['effect']:+.2g}{unit}; random directions, 95%: "
            f"{band['random_p95']:+.2g}{unit}: " + ("beyond random" if band["beyond_random"] else "not beyond random"))
    detail = [f"p = {band['p_value']:.2g}", f"+v beats -v in {band['order_rate']:.0%} of pairs",
              f"{band['collapsed_share']:.0%} of steered clips collapsed"]
    if band.get("buzzing_share") is not None:
        detail.append(f"{band['buzzing_share']:.0%} buzz at the codec's frame rate")
    if band.get("n_pairs"):
        detail.append(f"{band['n_pairs']} seeds, reader {band.get('reader', '?')}")
    return head + " (" + "; ".join(detail) + ")"
