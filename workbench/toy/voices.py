"""The teaching model's instruments: additive tones, envelopes, timbre presets, drum one-shots and chords.

Shared by both synthesisers (`workbench.toy.synth`, the shipped model's data, and
`workbench.toy.synth_v2`); numpy only.

Example:
    >>> import numpy as np
    >>> buf = np.zeros(32000)
    >>> add_note(buf, 0.0, 0.5, 69, instrument("flute", np.random.default_rng(0)), 0.3, np.random.default_rng(1), 32000)
    >>> bool(np.abs(buf[:16000]).max() > 0), float(np.abs(buf[16500:]).max())
    (True, 0.0)
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
MINOR = np.array([0, 2, 3, 5, 7, 8, 10])

__all__ = ["MAJOR", "MINOR", "add_note", "chord_notes", "drum_kit", "env", "hit", "instrument", "midi_hz", "tone"]


def midi_hz(note: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(note, dtype=np.float64) - 69.0) / 12.0)


_TIMES: dict[int, np.ndarray] = {}


def _times(n: int, sr: int) -> np.ndarray:
    """np.arange(n) / sr, sliced from a cached longer array (the same values, computed once per rate)."""
    t = _TIMES.get(sr)
    if t is None or len(t) < n:
        t = _TIMES[sr] = np.arange(max(n, 8 * sr)) / sr
    return t[:n]


def env(n: int, sr: int, attack_s: float, decay_s: float) -> np.ndarray:
    """Attack ramp then exponential decay (decay_s = time constant)."""
    t = _times(n, sr)
    env = t / -max(decay_s, 1e-3)  # == -t / decay_s exactly; in place below saves passes
    np.exp(env, out=env)
    n_attack = min(n, max(1, int(attack_s * sr)))
    env[:n_attack] *= np.linspace(0.0, 1.0, n_attack)
    n_release = min(n, 96)  # short fade out avoids clicks at note ends
    env[-n_release:] *= np.linspace(1.0, 0.0, n_release)
    return env


def tone(freq_hz: float, n: int, sr: int, harmonics: np.ndarray, rng: np.random.Generator,
          vibrato_hz: float = 0.0) -> np.ndarray:
    """Additive tone: harmonics[k] is the amplitude of partial k+1 (partials above 14 kHz dropped)."""
    t = _times(n, sr)
    cycles = freq_hz * t
    if vibrato_hz:
        cycles = cycles + 0.004 * freq_hz / (2 * np.pi * vibrato_hz) * np.sin(2 * np.pi * vibrato_hz * t)
    # One wavetable cycle per note: much cheaper than a sine per partial per sample.
    table_len = 2048
    grid = np.arange(table_len) * (2 * np.pi / table_len)
    table = np.zeros(table_len)
    for k, amp in enumerate(harmonics, start=1):
        if amp == 0.0 or freq_hz * k > 14000:
            continue
        table += amp * np.sin(k * grid + rng.uniform(0, 2 * np.pi))
    cycles *= table_len
    idx = cycles.astype(np.int64)
    idx &= table_len - 1
    return table[idx]


# Timbres: harmonic amplitude profiles, attack and decay.
def instrument(name: str, rng: np.random.Generator) -> dict:
    k = np.arange(1, 13)
    presets = {
        "strings": dict(h=1.0 / k, attack=0.12, decay=2.5, vibrato=5.5),
        "piano": dict(h=np.exp(-0.55 * (k - 1)), attack=0.004, decay=0.6, vibrato=0.0),
        "flute": dict(h=np.array([1.0, 0.25, 0.08] + [0.0] * 9), attack=0.08, decay=3.0, vibrato=5.0),
        "organ": dict(h=np.array([1, 0.6, 0.3, 0.25, 0, 0.15, 0, 0.1, 0, 0, 0, 0.0]), attack=0.01,
                      decay=4.0, vibrato=0.0),
        "vibes": dict(h=np.array([1.0, 0, 0, 0.35, 0, 0, 0, 0, 0, 0.1, 0, 0]), attack=0.002,
                      decay=0.5, vibrato=0.0),
        "sax": dict(h=np.where(k % 2 == 1, 1.0 / k, 0.55 / k), attack=0.03, decay=1.5, vibrato=4.5),
        "saw": dict(h=1.0 / k, attack=0.005, decay=0.35, vibrato=0.0),
        "square": dict(h=np.where(k % 2 == 1, 1.0 / k, 0.0), attack=0.003, decay=0.25, vibrato=0.0),
        "guitar": dict(h=np.exp(-0.25 * (k - 1)), attack=0.003, decay=0.8, vibrato=0.0),
        "synth": dict(h=np.where(k % 2 == 1, 1.0 / k, 0.12 / k), attack=0.004, decay=1.2, vibrato=0.0),
    }
    inst = dict(presets[name])
    inst["h"] = inst["h"] * rng.uniform(0.8, 1.2, size=12)
    inst["decay"] *= rng.uniform(0.8, 1.25)
    return inst


def add_note(buf: np.ndarray, start_s: float, dur_s: float, midi: float, inst: dict, gain: float,
              rng: np.random.Generator, sr: int) -> None:
    i0 = int(start_s * sr)
    n = min(int(dur_s * sr), len(buf) - i0)
    if i0 >= len(buf) or n <= 8 or i0 + n <= 0:
        return
    note = gain * tone(float(midi_hz(midi)), n, sr, inst["h"], rng, inst["vibrato"])
    note *= env(n, sr, inst["attack"], inst["decay"])
    skip = max(0, -i0)  # notes that began before the clip start are cut
    buf[i0 + skip:i0 + n] += note[skip:]


def drum_kit(rng: np.random.Generator, sr: int, kind: str) -> dict[str, np.ndarray]:
    """One-shot drum samples for a clip (a little different every clip)."""
    def noise(n_s: float) -> np.ndarray:
        return rng.standard_normal(int(n_s * sr))

    t = np.arange(int(0.35 * sr)) / sr
    f0 = rng.uniform(45, 60)
    sweep = f0 + rng.uniform(60, 110) * np.exp(-t / 0.03)
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / sr) * np.exp(-t / rng.uniform(0.12, 0.2))
    kick[:64] += 0.3 * noise(64 / sr)
    ts = np.arange(int(0.2 * sr)) / sr
    snare_noise = lfilter([1, -0.9], [1], noise(0.2))  # high-passed noise
    snare = 0.5 * snare_noise * np.exp(-ts / 0.05) + np.sin(2 * np.pi * 190 * ts) * np.exp(-ts / 0.03)
    th = np.arange(int(0.08 * sr)) / sr
    hat = np.diff(noise(0.08), prepend=0.0) * np.exp(-th / rng.uniform(0.01, 0.025))
    tr = np.arange(int(0.6 * sr)) / sr
    ring = sum(np.sin(2 * np.pi * f * tr) for f in rng.uniform(3000, 7000, size=5))
    ride = (0.5 * np.diff(noise(0.6), prepend=0.0) + 0.4 * ring) * np.exp(-tr / 0.25)
    brush = lfilter([1, -0.5], [1], noise(0.15)) * np.exp(-np.arange(int(0.15 * sr)) / sr / 0.06)
    clap = sum(np.roll(snare_noise * np.exp(-ts / 0.02), int(d * sr)) for d in (0, 0.01, 0.022))
    kit = dict(kick=kick, snare=snare, hat=hat, ride=ride * 0.4, brush=brush * 0.3, clap=clap * 0.5)
    if kind == "rock":  # fatter, louder snare
        kit["snare"] = kit["snare"] * 1.4
    return kit


def hit(buf: np.ndarray, sample: np.ndarray, start_s: float, gain: float, sr: int) -> None:
    i0 = int(start_s * sr)
    skip = max(0, -i0)
    if i0 < len(buf) and skip < len(sample):
        n = min(len(sample), len(buf) - i0)
        buf[i0 + skip:i0 + n] += gain * sample[skip:n]


def chord_notes(root: int, scale: np.ndarray, degree: int, kind: str) -> list[int]:
    """Chord tones (MIDI) on a scale degree: triad, seventh or power chord."""
    def deg(d: int) -> int:
        return root + int(scale[d % 7]) + 12 * (d // 7)
    if kind == "power":
        return [deg(degree), deg(degree) + 7, deg(degree) + 12]
    notes = [deg(degree), deg(degree + 2), deg(degree + 4)]
    if kind == "seventh":
        notes.append(deg(degree + 6))
        notes.append(deg(degree + 8))  # ninth: the jazz colour
    return notes
