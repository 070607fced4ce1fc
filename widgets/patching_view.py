"""Patching view: where does the model use it? The sweep's heatmap; click a cell to hear that patch.

Rows are layers, columns the windows of steps (or positions), colour the share of the gap between
target and source that patching that cell recovered (`workbench.analysis.patching.patching_sweep`).
Clicking a cell generates the patched clip (`clip_fn(row)`) and plays it next to the source and
the target. With `run_fn` (what `Workbench` passes), the Run button sweeps the current source and
target prompts (from the explorer's groups A and B, or set from code) in a thread, and the readout
and a bar count the cells done while it runs.

    >>> import numpy as np, pandas as pd
    >>> tone = lambda f: (np.sin(np.arange(8000) * f / 8000 * 6.283).astype(np.float32), 8000)
    >>> df = pd.DataFrame([dict(site="resid", layer=l, window=k, start=4 * k, stop=4 * k + 4, recovered=l / 2)
    ...                    for l in range(3) for k in range(2)])
    >>> view = PatchingView(df, clip_fn=lambda row: {"source": tone(220), "target": tone(330), "patched": tone(440)})
    >>> row = view.select(layer=2, window=1); view.selected["recovered"], sorted(view.clips)
    (1.0, ['patched', 'source', 'target'])
    >>> view.grid().shape
    (3, 2)
"""
from __future__ import annotations

import html
import threading
import time
from collections.abc import Callable

import ipywidgets as w
import numpy as np
import plotly.graph_objects as go
import traitlets as t

from ._base import View, configured, guarded
from .static import audio_html, heatmap_png, img_html, wav_bytes, waveform_of

ROLES = ("source", "target", "patched")


class PatchingView(View):
    """Heatmap layers x windows of a patching sweep; a click plays source, target and the patched clip.

    sweep: a DataFrame from `patching_sweep` (or rows). clip_fn: ``fn(row) -> {"source", "target",
    "patched"}`` clips (default: the row's ``clip`` and the sweep's ``attrs`` source/target clips, as a
    generate-mode sweep holds). run_fn: ``fn(source_prompt, target_prompt, on_progress) -> (sweep,
    clip_fn)``, calling ``on_progress(done, total)`` as cells finish (`widgets.backend.Backend.patching`).
    value: the column shown (``recovered`` by default).
    """

    source_prompt = t.Unicode("", help="what is patched in")
    target_prompt = t.Unicode("", help="what is patched into")
    site = t.Unicode("resid")
    selected = t.Dict(help="the clicked cell's row")
    running = t.Bool(False)
    cells_done = t.Int(0, help="cells of the running sweep done so far")
    cells_total = t.Int(0, help="cells of the running sweep (0 until the source and target are measured)")

    def __init__(self, sweep=None, *, clip_fn: Callable | None = None, run_fn: Callable | None = None,
                 value: str = "recovered", title: str = "Patching: share of the gap recovered", **kwargs):
        super().__init__(**kwargs)
        self.clip_fn, self.run_fn, self.value, self.title = clip_fn, run_fn, value, title
        self.rows: list[dict] = []
        self.attrs: dict = {}
        self.clips: dict = {}
        self.figure = configured(go.FigureWidget(layout=go.Layout(
            title=html.escape(title), xaxis_title="window (steps)", yaxis_title="layer", width=560, height=340,
            margin=dict(l=50, r=10, t=40, b=50), clickmode="event")), "patching")
        self.site_dd = w.Dropdown(options=["resid"], description="site")
        self.site_dd.observe(lambda ch: setattr(self, "site", ch["new"]), names="value")
        self.source_box = w.Text(description="source", placeholder="a prompt to patch in")
        self.target_box = w.Text(description="target", placeholder="a prompt to patch into")
        t.link((self, "source_prompt"), (self.source_box, "value"))
        t.link((self, "target_prompt"), (self.target_box, "value"))
        self.run_button = w.Button(description="Run sweep", button_style="info", disabled=run_fn is None,
                                   tooltip="patch the source into the target at every layer x window")
        self.run_button.on_click(lambda _: self.run(wait=False))
        self.bar = w.IntProgress(value=0, min=0, max=1, description="cells", layout=w.Layout(display="none"))
        self.readout = w.HTML("click a cell to hear the patched clip")
        self.readout.add_class("wb-patching-readout")
        self._thread: threading.Thread | None = None
        self._sweeping = ("", "")
        self.players = {role: w.VBox(layout=w.Layout(width="33%")) for role in ROLES}
        controls = [w.HBox([self.source_box, self.target_box, self.run_button])] if run_fn is not None else []
        # the heatmap in a box hidden until there is a sweep: no empty axes before a run
        self.figure_box = w.Box([self.figure], layout=w.Layout(display="none"))
        self.children = [*controls, self.site_dd, self.figure_box, self.bar, self.readout,
                         w.HBox([self.players[r] for r in ROLES]), self.errors]
        self.add_class("wb-patching")
        if sweep is None:
            self.readout.value = ("no sweep yet: press Run sweep" if run_fn is not None
                                  else "no sweep yet: pass one to show(...)")
        else:
            self.show(sweep)

    # -- data ------------------------------------------------------------------------------------
    def show(self, sweep, clip_fn: Callable | None = None) -> None:
        """Draw a sweep (DataFrame or rows); ``clip_fn`` replaces the one given at construction."""
        self.rows = sweep.to_dict("records") if hasattr(sweep, "to_dict") else [dict(r) for r in sweep]
        if not self.rows:
            raise ValueError("the sweep has no cells: run workbench.analysis.patching.patching_sweep first")
        self.attrs = dict(getattr(sweep, "attrs", {}) or {})
        if clip_fn is not None:
            self.clip_fn = clip_fn
        sites = list(dict.fromkeys(r.get("site", "resid") for r in self.rows))
        self.site_dd.options = sites
        self.site_dd.layout.display = "none" if len(sites) == 1 else None
        if self.site not in sites:
            self.site = sites[0]
        self._draw()

    @property
    def layers(self) -> list[int]:
        return sorted({int(r["layer"]) for r in self.rows if r.get("site", "resid") == self.site})

    @property
    def windows(self) -> list[tuple[int, int, int]]:
        """(window index, start, stop) of the columns."""
        return sorted({(int(r["window"]), int(r["start"]), int(r["stop"])) for r in self.rows})

    def grid(self) -> np.ndarray:
        """(layers, windows) array of the value shown, NaN where a cell is missing."""
        layers, windows = self.layers, [k for k, _, _ in self.windows]
        z = np.full((len(layers), len(windows)), np.nan)
        for r in self.rows:
            if r.get("site", "resid") == self.site:
                z[layers.index(int(r["layer"])), windows.index(int(r["window"]))] = float(r[self.value])
        return z

    def row_at(self, layer: int, window: int) -> dict:
        for r in self.rows:
            if int(r["layer"]) == layer and int(r["window"]) == window and r.get("site", "resid") == self.site:
                return r
        raise ValueError(f"no cell at layer {layer}, window {window} ({self.site}) in this sweep")

    # -- drawing and clicks ----------------------------------------------------------------------
    @t.observe("site")
    def _site_changed(self, change):
        if self.rows:
            self._draw()

    def _draw(self) -> None:
        self.figure_box.layout.display = None
        z = self.grid()
        labels = [f"{a}–{b}" for _, a, b in self.windows]
        with self.figure.batch_update():
            self.figure.data = ()
            self.figure.add_heatmap(z=z, x=labels, y=self.layers, zmid=0, colorscale="RdBu", reversescale=True,
                                    colorbar=dict(title=html.escape(self.value), len=0.8),
                                    hovertemplate="layer %{y}, steps %{x}: %{z:.2f}<extra></extra>")
            self.figure.layout.title = html.escape(f"{self.title} ({self.site})")
        self.figure.data[0].on_click(self._on_click)

    def _on_click(self, trace, points, state):
        if not points.point_inds:
            return
        i, j = points.point_inds[0] if isinstance(points.point_inds[0], (list, tuple)) else (None, None)
        if i is None:  # plotly gives [row, col] for a heatmap; fall back on the coordinates
            i, j = self.layers.index(int(points.ys[0])), [f"{a}–{b}" for _, a, b in self.windows].index(points.xs[0])
        self.select(layer=self.layers[i], window=self.windows[j][0])

    @guarded
    def select(self, layer: int, window: int) -> dict:
        """Pick a cell (as a click does): make its clips and show the three players."""
        row = self.row_at(int(layer), int(window))
        self.selected = {k: v for k, v in row.items() if k != "clip"}
        self.readout.value = (f"layer {layer}, steps {row['start']}–{row['stop']}: {html.escape(self.value)} "
                              f"{float(row[self.value]):.2f} · making the patched clip …")
        clips = self._clips_for(row)
        self.clips = clips
        for role in ROLES:
            clip = clips.get(role)
            if clip is None:
                self.players[role].children = [w.HTML(f"<b>{role}</b>: none")]
                continue
            samples, rate = waveform_of(clip)
            player = w.Audio(value=wav_bytes(samples, rate), format="wav", autoplay=role == "patched")
            player.add_class(f"wb-patching-{role}")
            self.players[role].children = [w.HTML(f"<b>{role}</b> <small>{html.escape(_caption(clip))}</small>"),
                                           player]
        self.readout.value = (f"layer {layer}, steps {row['start']}–{row['stop']}: {html.escape(self.value)} "
                              f"{float(row[self.value]):.2f}")
        return row

    def _clips_for(self, row: dict) -> dict:
        if self.clip_fn is not None:
            return dict(self.clip_fn(row))
        if row.get("clip") is not None:
            return {"source": self.attrs.get("source_clip"), "target": self.attrs.get("target_clip"),
                    "patched": row["clip"]}
        raise ValueError("this sweep has no clips (a teacher-forced sweep): pass clip_fn=... to generate them")

    @guarded
    def run(self, wait: bool = True):
        """Sweep `source_prompt` into `target_prompt` with `run_fn` and draw it; wait=False runs it in a
        thread (as the Run button does) so the other views stay usable while the readout counts cells."""
        if self.run_fn is None:
            raise ValueError("this PatchingView has no run_fn: pass a sweep to show(...)")
        if self.running:
            raise RuntimeError("a sweep is running already: wait for it to finish")
        if not self.source_prompt.strip() or not self.target_prompt.strip():
            raise ValueError("set a source and a target prompt first (or lasso groups A and B in the map)")
        self.clear_errors()
        self.cells_done, self.cells_total = 0, 0
        self.running = True
        self._sweeping = prompts = (self.source_prompt, self.target_prompt)  # the boxes may change meanwhile
        self.readout.value = f"{self._what()}: making and measuring the two clips …"
        if not wait:
            self._thread = threading.Thread(target=self._run, args=prompts, daemon=True)
            self._thread.start()
            return None
        return self._run(*prompts)

    def wait(self, timeout_s: float | None = None) -> None:
        """Block until a sweep started with wait=False finishes (for tests and scripts)."""
        if self._thread is not None:
            self._thread.join(timeout_s)

    @guarded
    def _run(self, source_prompt: str, target_prompt: str):
        began = time.perf_counter()
        try:
            sweep, clip_fn = self.run_fn(source_prompt, target_prompt, on_progress=self._on_progress)
        except Exception:
            self.readout.value = f"{self._what()}: failed after {self.cells_done}/{self.cells_total} cells"
            raise
        finally:
            self.running = False
        self.show(sweep, clip_fn=clip_fn)
        self.readout.value = (f"{len(self.rows)} cells in {time.perf_counter() - began:.1f} s · click a cell to "
                              "hear the patched clip")
        return sweep

    def _on_progress(self, done: int, total: int) -> None:
        """run_fn's callback (called from the sweep's thread): count the cells in the bar and the readout."""
        self.cells_done, self.cells_total = int(done), int(total)
        self.bar.max = max(int(total), 1)
        self.bar.value = int(done)
        self.readout.value = f"{self._what()}: {done}/{total} cells"

    def _what(self) -> str:
        source, target = self._sweeping
        return f"patching “{html.escape(source)}” into “{html.escape(target)}”"

    @t.observe("running")
    def _show_running(self, change):
        self.run_button.disabled = self.running
        self.bar.layout.display = None if self.running else "none"
        if self.running:
            self.bar.value = 0

    def static_html(self) -> str:
        if not self.rows:
            return "<div>patching view: no sweep yet</div>"
        z = self.grid()
        cols = ", ".join(f"{a}–{b}" for _, a, b in self.windows)
        players = "".join(audio_html(c, role) for role, c in self.clips.items() if c is not None)
        return (f"<div><b>{html.escape(self.title)} ({html.escape(self.site)})</b>: layers {self.layers[0]}–"
                f"{self.layers[-1]} (bottom to top) × windows {html.escape(cols)}; "
                f"{html.escape(self.value)} from {np.nanmin(z):.2f} (blue) to {np.nanmax(z):.2f} (red)</div>"
                f"{img_html(heatmap_png(z, scale_px=24), width=320, title=self.title)}{players}")


def _caption(clip) -> str:
    if isinstance(clip, tuple):
        return f"{len(clip[0]) / clip[1]:.1f} s"
    prompt = getattr(clip, "prompt", None)
    return f"“{prompt}” seed {getattr(clip, 'seed', '?')}" if prompt else f"{getattr(clip, 'duration_s', 0):.1f} s"
