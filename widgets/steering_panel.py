"""Steering panel: prompt, layers, strength, mode, schedule, CFG rows, seed, duration, Generate / Stop.

Generation runs in a thread (the kernel stays responsive, so Stop works): the button is disabled and
the progress bar moves while it runs. The work is `generate_fn(request, on_progress, should_stop)`,
e.g. `widgets.backend.Backend.generate`, which returns a Clip-like object (`.waveform`,
`.sample_rate_hz`). Each new clip gets its own player (newest first) and lands in `clips`.

    >>> import numpy as np
    >>> fake = lambda req, on_progress, should_stop: (np.zeros(800, np.float32), 8000)
    >>> panel = SteeringPanel(n_layers=4, generate_fn=fake)
    >>> panel.strength = -3.0; panel.layers = [1, 2]
    >>> panel.generate()[1], panel.request()["layers"], len(panel.clips)
    (8000, (1, 2), 1)
"""
from __future__ import annotations

import threading
import time
from typing import Callable

import ipywidgets as w
import traitlets as t

from ._base import View
from .static import audio_html, waveform_of, wav_bytes

MODES = ("add", "norm_relative")
SCHEDULES = ("constant", "decay", "pulse", "ramp")
ROWS = ("cond", "both")


class SteeringPanel(View):
    """Controls + Generate/Stop; `generate()` from code blocks and returns the clip."""

    prompt = t.Unicode("")
    layers = t.List(t.Int())
    strength = t.Float(1.5, help="in units of the layer's mean activation norm for Backend directions")
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

    def __init__(self, n_layers: int, generate_fn: Callable, prompt: str = "", strength_max: float = 4.0,
                 max_duration_s: float = 10.0, keep_players: int = 4, **kwargs):
        super().__init__(**kwargs)
        self.generate_fn, self.keep_players = generate_fn, keep_players
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.on_clip_callbacks: list[Callable] = []
        self.prompt = prompt
        self.layers = [n_layers // 2] if n_layers else []
        style = {"description_width": "90px"}
        self.prompt_box = w.Text(description="prompt", placeholder="e.g. calm classical piano", style=style,
                                 layout=w.Layout(width="420px"))
        self.layers_box = w.SelectMultiple(options=list(range(n_layers)), description="layers", rows=4, style=style)
        self.strength_slider = w.FloatSlider(min=-strength_max, max=strength_max, step=0.1, description="strength",
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
        left = w.VBox([self.prompt_box, self.strength_slider, self.duration_slider, self.guidance_slider, self.seed_box])
        right = w.VBox([self.layers_box, self.mode_dd, self.schedule_dd, self.rows_dd])
        self.children = [w.HBox([left, right]),
                         w.HBox([self.generate_button, self.stop_button, self.bar, self.status]),
                         self.players, self.errors]
        self.add_class("wb-steering")
        self.strength_slider.add_class("wb-strength")
        self.generate_button.add_class("wb-generate")
        self.players.add_class("wb-players")

    def request(self) -> dict:
        """The settings a generation uses (what `generate_fn` receives)."""
        return dict(prompt=self.prompt, layers=tuple(self.layers), strength=float(self.strength), mode=self.mode,
                    schedule=self.schedule, rows=self.rows, seed=int(self.seed), duration_s=float(self.duration_s),
                    guidance_scale=float(self.guidance_scale), direction=self.direction)

    def on_clip(self, callback: Callable) -> None:
        """Call `callback(clip, request)` after each finished generation (in the generating thread)."""
        self.on_clip_callbacks.append(callback)

    def generate(self, wait: bool = True):
        """Generate with the current settings; wait=False runs in a thread (as the button does)."""
        if self.running:
            self.report(RuntimeError("a generation is already running: wait, or press Stop"))
            return None
        self.clear_errors()
        self._stop.clear()
        self.running, self.progress = True, 0.0
        request = self.request()
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

    def _run(self, request: dict):
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
        self.clips = self.clips + [clip]
        self.status.value = f"done in {self.last_seconds:.1f} s"
        for callback in self.on_clip_callbacks:
            try:
                callback(clip, request)
            except Exception as exc:
                self.report(exc)
        return clip

    def _add_player(self, clip, request: dict) -> None:
        samples, rate = waveform_of(clip)
        caption = w.HTML(f"<small>#{len(self.clips) + 1} · {self.caption(request)}</small>")
        player = w.Audio(value=wav_bytes(samples, rate), format="wav", autoplay=False)
        self.players.children = ((w.VBox([caption, player]),) + self.players.children)[: self.keep_players]

    @staticmethod
    def caption(request: dict) -> str:
        steer = (f"strength {request['strength']:+g} @ layers {list(request['layers'])}, {request['mode']}, "
                 f"{request['schedule']}" if request.get("direction") is not None and request["strength"] else "unsteered")
        return f"“{request['prompt']}” seed {request['seed']}, {request['duration_s']:g} s, {steer}"

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
        players = "".join(audio_html(c, self.caption(dict(self.request(), prompt=getattr(c, "prompt", "") or "")))
                          for c in self.clips[-2:])
        return f"<div><b>steering panel</b> · {self.caption(self.request())}{players}</div>"
