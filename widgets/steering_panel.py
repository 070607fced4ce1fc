"""Steering panel: prompt, layers, strength, mode, schedule, CFG rows, seed, duration, Generate / Stop.

Generation runs in a thread (the kernel stays responsive, so Stop works): the button is disabled and
the progress bar moves while it runs. The work is `generate_fn(request, on_progress, should_stop)`,
e.g. `widgets.backend.Backend.generate`, which receives a `widgets.requests.SteerRequest` and returns
a Clip-like object (`.waveform`, `.sample_rate_hz`). Each new clip gets its own player (newest first)
and lands in `clips`.

Every setting is a trait linked to its control, and a value the control cannot show is refused (the
error shows in the panel, the trait keeps its last good value): what the panel shows is what a
generation uses. Widen the strength slider with `strength_max`.

Strength is a multiple of the layer's mean residual norm (`workbench.analysis.strength`) in mode
``add``, whatever made the direction; `unit_fn(layer) -> norm or None` (e.g.
`widgets.backend.Backend.known_strength_unit`) lets the panel show what that is in absolute terms.

    >>> import numpy as np
    >>> fake = lambda req, on_progress, should_stop: (np.zeros(800, np.float32), 8000)
    >>> panel = SteeringPanel(n_layers=4, generate_fn=fake)
    >>> panel.strength = -1.5; panel.layers = [1, 2]
    >>> panel.generate()[1], panel.request().layers, len(panel.clips)
    (8000, (1, 2), 1)
    >>> panel.strength = 100  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    widgets._base.RefusedValueError: strength=100.0 is outside the range the strength control shows (-2 to 2): ...
    >>> panel.strength_max = 100; panel.strength = 100; panel.strength_slider.value
    100.0
"""
from __future__ import annotations

import dataclasses
import html
import math
import threading
import time
from collections.abc import Callable

import ipywidgets as w
import traitlets as t

from workbench.enums import SCHEDULE_KINDS, STEERING_MODES, STEERING_ROWS

from ._base import View
from .requests import SteerRequest
from .static import audio_html, wav_bytes, waveform_of

MODES, SCHEDULES, ROWS = STEERING_MODES, SCHEDULE_KINDS, STEERING_ROWS  # the names of wave one


class SteeringPanel(View):
    """Controls + Generate/Stop; `generate()` from code blocks and returns the clip."""

    prompt = t.Unicode("")
    layers = t.List(t.Int(), help="decoder layers to steer (each one of the layers box's options)")
    # 0.25 x the per-step mean residual norm: on the teaching model (v3's verdicts, its model card) random pushes
    # collapse 31-46% of clips at 0.25 x and 69-100% at 0.5 x; the genre direction toward rock raises the clean
    # reader's P(rock) by 0.99 at 0.25 x with none collapsed. The slider stops at 2 x
    strength = t.Float(0.25, help="x the layer's mean residual norm (mode add; workbench.analysis.strength)")
    strength_max = t.Float(2.0, help="the strength slider spans -strength_max..strength_max")
    mode = t.Enum(MODES, default_value="add")
    schedule = t.Enum(SCHEDULES, default_value="constant")
    rows = t.Enum(ROWS, default_value="cond")
    seed = t.Int(0)
    duration_s = t.Float(4.0)
    guidance_scale = t.Float(3.0)
    direction = t.Any(None, allow_none=True, help="what to steer along (object with .vector, or an array)")
    running = t.Bool(False)
    progress = t.Float(0.0, help="0..1 while generating")
    clips = t.List(help="generated clips, oldest first")
    last_seconds = t.Float(0.0, help="wall time of the last generation (click to playable)")

    def __init__(self, n_layers: int, generate_fn: Callable, prompt: str = "", strength_max: float = 2.0,
                 max_duration_s: float = 10.0, keep_players: int = 4, unit_fn: Callable | None = None, **kwargs):
        super().__init__(**kwargs)
        self.generate_fn, self.keep_players, self.n_layers = generate_fn, keep_players, int(n_layers)
        self.unit_fn = unit_fn
        self.unit_label = w.HTML("")
        self.unit_label.add_class("wb-strength-unit")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_clip_callbacks: list[Callable] = []
        style = {"description_width": "90px"}
        self.prompt_box = w.Text(description="prompt", placeholder="e.g. calm classical piano", style=style,
                                 layout=w.Layout(width="420px"))
        self.layers_box = w.SelectMultiple(options=list(range(n_layers)), description="layers", rows=4, style=style)
        self.strength_slider = w.FloatSlider(min=-strength_max, max=strength_max, step=0.05, description="strength",
                                             continuous_update=False, style=style, layout=w.Layout(width="420px"))
        self.mode_dd = w.Dropdown(options=MODES, description="mode", style=style)
        self.schedule_dd = w.Dropdown(options=SCHEDULES, description="schedule", style=style)
        self.rows_dd = w.Dropdown(options=[("conditional only", "cond"), ("cond + uncond", "both")],
                                  description="CFG rows", style=style)
        self.seed_box = w.IntText(description="seed", style=style, layout=w.Layout(width="200px"))
        self.duration_slider = w.FloatSlider(min=0.5, max=max_duration_s, step=0.5, description="duration (s)",
                                             continuous_update=False, style=style)
        self.guidance_slider = w.FloatSlider(min=1.0, max=6.0, step=0.5, description="guidance", style=style,
                                             continuous_update=False)
        # Defaults a control cannot show are brought into its range before the two are linked.
        self.strength_max = strength_max
        self.strength = min(max(self.strength, -strength_max), strength_max)
        self.duration_s = min(max(self.duration_s, self.duration_slider.min), self.duration_slider.max)
        self.prompt = prompt
        self.layers = [n_layers // 2] if n_layers else []
        for name, box in [("prompt", self.prompt_box), ("strength", self.strength_slider), ("mode", self.mode_dd),
                          ("schedule", self.schedule_dd), ("rows", self.rows_dd), ("seed", self.seed_box),
                          ("duration_s", self.duration_slider), ("guidance_scale", self.guidance_slider)]:
            w.link((self, name), (box, "value"))
        w.link((self, "layers"), (self.layers_box, "value"), transform=(tuple, list))
        self.generate_button = w.Button(description="Generate", button_style="success", icon="play")
        self.stop_button = w.Button(description="Stop", button_style="danger", icon="stop", disabled=True)
        self.generate_button.on_click(lambda _: self.generate(wait=False))
        self.stop_button.on_click(lambda _: self.stop())
        self.bar = w.FloatProgress(min=0, max=1, description="", layout=w.Layout(width="240px"))
        self.status = w.HTML("")
        self.players = w.VBox()
        left = w.VBox([self.prompt_box, self.strength_slider, self.unit_label, self.duration_slider,
                       self.guidance_slider, self.seed_box])
        right = w.VBox([self.layers_box, self.mode_dd, self.schedule_dd, self.rows_dd])
        self.children = [w.HBox([left, right]),
                         w.HBox([self.generate_button, self.stop_button, self.bar, self.status]),
                         self.players, self.errors]
        self.add_class("wb-steering")
        self.strength_slider.add_class("wb-strength")
        self.generate_button.add_class("wb-generate")
        self.players.add_class("wb-players")
        self.show_unit()

    # -- refusing what the controls cannot show -------------------------------------------------
    @t.validate("strength")
    def _check_strength(self, proposal):
        value = proposal["value"]
        hint = f"widen the slider first: panel.strength_max = {abs(value):g}" if math.isfinite(value) else ""
        return self.in_range("strength", value, getattr(self, "strength_slider", None), hint=hint)

    @t.validate("duration_s")
    def _check_duration(self, proposal):
        return self.in_range("duration_s", proposal["value"], getattr(self, "duration_slider", None),
                             hint="pass SteeringPanel(max_duration_s=...) for longer clips (the model's limit holds)")

    @t.validate("guidance_scale")
    def _check_guidance(self, proposal):
        return self.in_range("guidance_scale", proposal["value"], getattr(self, "guidance_slider", None))

    @t.validate("strength_max")
    def _check_strength_max(self, proposal):
        value = proposal["value"]
        if not (math.isfinite(value) and value > 0):
            raise self.refuse(f"strength_max={value!r}: pass a finite number > 0")
        return value

    @t.observe("strength_max")
    def _widen_strength_slider(self, change):
        if hasattr(self, "strength_slider"):  # a narrower range clamps the slider, and the link the trait
            with self.strength_slider.hold_sync():
                self.strength_slider.max = max(self.strength_slider.max, change["new"])
                self.strength_slider.min = -change["new"]
                self.strength_slider.max = change["new"]

    @t.validate("layers")
    def _check_layers(self, proposal):
        layers = list(proposal["value"])
        bad = [layer for layer in layers if not 0 <= layer < self.n_layers]
        if bad:
            raise self.refuse(f"layer {bad[0]} is out of range: this model has {self.n_layers} decoder layers "
                              f"(0-{self.n_layers - 1})")
        if len(set(layers)) != len(layers):
            raise self.refuse(f"layers={layers} lists a layer twice: list each once")
        return layers

    @t.observe("strength", "layers", "mode", "direction")
    def _unit_changed(self, change):
        self.show_unit()

    def unit_text(self) -> str:
        """What the strength means now, e.g. "x the mean residual norm at resid L3 (5.63) = 8.45 added"."""
        site = getattr(self.direction, "site", "resid")
        if self.mode != "add":
            return f"strength {self.strength:+g}: relative to each row's own norm (mode {self.mode})"
        parts = []
        for layer in self.layers:
            norm = self.unit_fn(layer) if self.unit_fn is not None else None
            parts.append(f"{self.strength:+g} x the mean residual norm at {site} L{layer}"
                         + (f" ({norm:.3g}) = {abs(self.strength) * norm:.3g} added" if norm is not None else ""))
        if not parts:
            return "pick a layer to steer"
        text = "; ".join(parts)
        if self.unit_fn is not None and any(self.unit_fn(layer) is None for layer in self.layers):
            text += " (the norm is measured at the first steered generation)"
        return text

    def show_unit(self) -> None:
        if not hasattr(self, "unit_label"):
            return
        try:
            self.unit_label.value = f"<small>{html.escape(self.unit_text())}</small>"
        except Exception as exc:  # a label must never break the panel
            self.report(exc)

    def request(self) -> SteerRequest:
        """The settings a generation uses (what `generate_fn` receives)."""
        return SteerRequest(prompt=self.prompt, layers=tuple(self.layers), strength=float(self.strength),
                            mode=self.mode, schedule=self.schedule, rows=self.rows, seed=int(self.seed),
                            duration_s=float(self.duration_s), guidance_scale=float(self.guidance_scale),
                            direction=self.direction)

    def on_clip(self, callback: Callable) -> None:
        """Call `callback(clip, request)` after each finished generation (in the generating thread)."""
        self.on_clip_callbacks.append(callback)

    def generate(self, wait: bool = True):
        """Generate with the current settings; wait=False runs in a thread (as the button does)."""
        if self.running:
            self.report(RuntimeError("a generation is already running: wait, or press Stop"))
            return None
        self.clear_errors()
        try:
            request = self.request()
        except Exception as exc:
            self.report(exc)
            return None
        self._stop.clear()
        self.running, self.progress = True, 0.0
        if not wait:
            self._thread = threading.Thread(target=self._run, args=(request,), daemon=True)
            self._thread.start()
            return None
        return self._run(request)

    def stop(self) -> None:
        """Ask the running generation to stop at its next step."""
        self._stop.set()
        self.status.value = "stopping…"

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until a threaded generation finishes (for tests and scripts)."""
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _on_progress(self, fraction: float) -> None:
        fraction = min(max(float(fraction), 0.0), 1.0)
        if fraction - self.progress >= 0.04 or fraction >= 1.0:  # fewer comm messages
            self.progress = fraction

    def _run(self, request: SteerRequest):
        start = time.perf_counter()
        try:
            clip = self.generate_fn(request, self._on_progress, self._stop.is_set)
        except Exception as exc:
            if type(exc).__name__ == "StoppedError" or self._stop.is_set():
                self.status.value = "stopped"
            else:
                self.report(exc)
                self.status.value = "failed"
            return None
        finally:
            self.running = False
        self.last_seconds = time.perf_counter() - start
        self.progress = 1.0
        self._add_player(clip, request)
        self.show_unit()  # the first steered generation measured the unit
        self.clips = self.clips + [clip]
        self.status.value = f"done in {self.last_seconds:.1f} s"
        for callback in self.on_clip_callbacks:
            try:
                callback(clip, request)
            except Exception as exc:
                self.report(exc)
        return clip

    def _add_player(self, clip, request: SteerRequest) -> None:
        samples, rate = waveform_of(clip)
        caption = w.HTML(f"<small>#{len(self.clips) + 1} · {html.escape(self.caption(request))}</small>")
        player = w.Audio(value=wav_bytes(samples, rate), format="wav", autoplay=False)
        self.players.children = ((w.VBox([caption, player]),) + self.players.children)[: self.keep_players]

    @staticmethod
    def caption(request) -> str:
        """Plain text describing a request (a `SteerRequest`, or a dict of its fields)."""
        return SteerRequest.of(request).caption()

    @t.observe("running")
    def _show_running(self, change):
        self.generate_button.disabled = self.running
        self.stop_button.disabled = not self.running
        if self.running:
            self.status.value = "generating…"

    @t.observe("progress")
    def _show_progress(self, change):
        self.bar.value = self.progress

    def static_html(self) -> str:
        request = self.request()
        captions = [dataclasses.replace(request, prompt=str(getattr(c, "prompt", "") or "")).caption()
                    for c in self.clips[-2:]]
        players = "".join(audio_html(c, text) for c, text in zip(self.clips[-2:], captions))  # it escapes them
        unit = f"<div><small>{html.escape(self.unit_text())}</small></div>" if request.steered else ""
        return f"<div><b>steering panel</b> · {html.escape(request.caption())}{unit}{players}</div>"
