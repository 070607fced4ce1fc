"""A generated (or loaded) piece of audio with everything needed to reproduce and score it.

Example:
    >>> import numpy as np
    >>> clip = Clip(np.zeros((1, 32000), np.float32), 32000, codes=np.zeros((4, 50), np.int64), prompt="jazz")
    >>> clip.duration_s
    1.0
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import numpy as np


@dataclasses.dataclass(eq=False)
class Clip:
    """waveform: float32 (channels, samples); codes: int64 (n_codebooks, frames) or None for real audio."""

    waveform: np.ndarray
    sample_rate_hz: int
    codes: np.ndarray | None = None
    prompt: str | None = None
    seed: int | None = None
    steering: Any = None  # SteeringSpec or None
    guidance_scale: float | None = None
    model_id: str | None = None
    label: str | None = None

    def __post_init__(self):
        wave = np.asarray(self.waveform, dtype=np.float32)
        if wave.ndim == 1:
            wave = wave[None, :]
        self.waveform = wave

    @property
    def duration_s(self) -> float:
        return self.waveform.shape[-1] / float(self.sample_rate_hz)

    @property
    def mono(self) -> np.ndarray:
        """1-D float32 mono mix (what judges and teacher forcing take)."""
        return self.waveform.mean(axis=0)

    def metadata(self) -> dict:
        steering = self.steering.describe() if hasattr(self.steering, "describe") else self.steering
        return {"prompt": self.prompt, "seed": self.seed, "guidance_scale": self.guidance_scale,
                "model_id": self.model_id, "label": self.label, "sample_rate_hz": self.sample_rate_hz,
                "duration_s": self.duration_s, "steering": steering}

    def to_wav(self, path) -> Path:
        """Write a 16-bit WAV (and a JSON sidecar with prompt, seed and steering); returns the path."""
        import soundfile as sf
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        peak = float(np.abs(self.waveform).max()) if self.waveform.size else 0.0
        data = self.waveform / peak if peak > 1.0 else self.waveform  # avoid wrap-around clipping
        sf.write(str(path), data.T, self.sample_rate_hz, subtype="PCM_16")
        path.with_suffix(".json").write_text(json.dumps(self.metadata(), indent=1, default=str))
        return path

    @classmethod
    def from_wav(cls, path, label: str | None = None) -> Clip:
        import soundfile as sf
        data, sr = sf.read(str(path), dtype="float32", always_2d=True)
        meta_path = Path(path).with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        return cls(data.T, int(sr), prompt=meta.get("prompt"), seed=meta.get("seed"),
                   guidance_scale=meta.get("guidance_scale"), model_id=meta.get("model_id"),
                   label=label or meta.get("label"), steering=meta.get("steering"))

    def audio(self):
        """An inline player (IPython.display.Audio)."""
        from IPython.display import Audio
        return Audio(self.waveform, rate=self.sample_rate_hz, normalize=True)

    def _repr_html_(self):
        return self.audio()._repr_html_()

    def __repr__(self) -> str:
        steer = " steered" if self.steering is not None else ""
        return f"Clip({self.prompt!r}, seed={self.seed}, {self.duration_s:.2f} s{steer})"


def clips_from(handle, waves, codes: np.ndarray, prompts, seeds, steering, guidance_scale) -> list[Clip]:
    """One `Clip` per generated row: waveform (B, channels, samples) as returned by `generate`, codes
    (B, n_codebooks, frames); shared by the hook and the nnsight generation paths."""
    waves = waves.float().cpu().numpy() if hasattr(waves, "cpu") else np.asarray(waves, np.float32)
    return [Clip(waves[i], handle.sample_rate_hz, codes=codes[i], prompt=p, seed=s, steering=steering,
                 guidance_scale=guidance_scale, model_id=handle.model_id)
            for i, (p, s) in enumerate(zip(prompts, seeds))]
