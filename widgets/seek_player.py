"""An audio player that Python can start from any moment: `player.play_from(1.5)`.

ipywidgets' Audio cannot seek, so heatmaps over time (the trace view, feature dashboards) use this
small anywidget: the WAV bytes travel as a binary buffer, and each `play_from` sets the start and
bumps a counter that the browser answers with ``currentTime = start_s; play()``.

    >>> import numpy as np
    >>> p = SeekPlayer()
    >>> p.load((np.zeros(8000, np.float32), 8000)); p.play_from(0.25)
    >>> p.start_s, p.play_token, p.duration_s
    (0.25, 1, 1.0)
"""
from __future__ import annotations

import anywidget
import traitlets as t

from .static import audio_html, wav_bytes, waveform_of

_ESM = """
function render({ model, el }) {
  el.classList.add("wb-seek-player");
  const audio = document.createElement("audio");
  audio.controls = true;
  audio.style.width = "100%";
  let url = null;
  const load = () => {
    const buf = model.get("wav");
    if (url) URL.revokeObjectURL(url);
    url = null;
    if (!buf || buf.byteLength === 0) { audio.removeAttribute("src"); return; }
    url = URL.createObjectURL(new Blob([buf], { type: "audio/wav" }));
    audio.src = url;
  };
  const seek = () => {
    const go = () => {
      audio.currentTime = Math.max(0, model.get("start_s"));
      audio.play().catch(() => {});
    };
    if (audio.readyState >= 1) go(); else audio.addEventListener("loadedmetadata", go, { once: true });
  };
  model.on("change:wav", load);
  model.on("change:play_token", seek);
  load();
  el.appendChild(audio);
  return () => { if (url) URL.revokeObjectURL(url); };
}
export default { render };
"""


class SeekPlayer(anywidget.AnyWidget):
    """A WAV player; `play_from(seconds)` seeks there and plays (in the browser)."""

    _esm = _ESM
    wav = t.Bytes(b"").tag(sync=True)
    start_s = t.Float(0.0).tag(sync=True)
    play_token = t.Int(0).tag(sync=True)
    duration_s = t.Float(0.0, help="length of the loaded clip")

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self._clip = None

    def load(self, clip) -> None:
        """Load a Clip-like object or a (samples, rate) pair (does not start playing)."""
        samples, rate = waveform_of(clip)
        self._clip = clip
        self.duration_s = len(samples) / float(rate)
        self.wav = wav_bytes(samples, rate)

    def play_from(self, start_s: float) -> None:
        """Seek to ``start_s`` (clamped to the clip) and play."""
        self.start_s = float(min(max(0.0, start_s), self.duration_s))
        self.play_token += 1

    def static_html(self, label: str = "") -> str:
        return audio_html(self._clip, label) if self._clip is not None else ""
