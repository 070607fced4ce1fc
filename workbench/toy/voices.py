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

import threading
from collections import OrderedDict

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
    # One wavetable cycle per note: much cheaper than a sine per partial per sample.
    return _wavetable(freq_hz, harmonics, rng)[_table_indices(freq_hz, n, sr, vibrato_hz)]


# Speed without changing a bit of any clip (the teaching models learn from these exact samples):
# the caches below hold values computed by the same numpy operations, in the same order, as the
# per-note code they replace; a cached array is only ever sliced, and no element depends on the
# array's length or position (checked: sha256 of both synthesisers' datasets, tests/test_toy_synth*).
_TABLE_LEN = 2048
_GRID = np.arange(_TABLE_LEN) * (2 * np.pi / _TABLE_LEN)
_PARTIAL_GRIDS = np.arange(1, 17)[:, None] * _GRID  # row k-1: k * _GRID, as the per-partial loop had it
_CACHE_LOCK = threading.Lock()


class _LruArrays:
    """Arrays by exact key, least recently used dropped beyond `max_bytes` (bounded across many clips)."""

    def __init__(self, max_bytes: int):
        self.max_bytes, self.n_bytes, self.items = max_bytes, 0, OrderedDict()

    def get(self, key, min_len: int) -> np.ndarray | None:
        with _CACHE_LOCK:
            value = self.items.get(key)
            if value is None or len(value) < min_len:
                return None
            self.items.move_to_end(key)
            return value

    def put(self, key, value: np.ndarray) -> None:
        value.flags.writeable = False
        with _CACHE_LOCK:
            old = self.items.pop(key, None)
            self.n_bytes += value.nbytes - (0 if old is None else old.nbytes)
            self.items[key] = value
            while self.n_bytes > self.max_bytes and len(self.items) > 1:
                self.n_bytes -= self.items.popitem(last=False)[1].nbytes


_INDICES = _LruArrays(64 << 20)  # (freq, vibrato, rate) -> wavetable index per sample; pitches recur
_DECAYS = _LruArrays(16 << 20)  # (decay, attack, rate) -> envelope before its release; one per instrument


def _wavetable(freq_hz: float, harmonics: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """One cycle of the note's partials, each at a random phase (one draw per partial kept, in order)."""
    kept = [k for k, amp in enumerate(np.asarray(harmonics).tolist(), start=1)
            if not (amp == 0.0 or freq_hz * k > 14000)]
    phases = rng.uniform(0, 2 * np.pi, size=len(kept))
    if kept == list(range(1, len(kept) + 1)) and len(kept) <= len(_PARTIAL_GRIDS):
        partials = _PARTIAL_GRIDS[:len(kept)] + phases[:, None]  # the usual case: partials 1..m
    else:
        partials = np.empty((len(kept), _TABLE_LEN))
        for row, (k, phase) in enumerate(zip(kept, phases)):
            np.add(_PARTIAL_GRIDS[k - 1] if k <= len(_PARTIAL_GRIDS) else k * _GRID, phase, out=partials[row])
    np.sin(partials, out=partials)
    partials *= np.asarray(harmonics)[np.array(kept, dtype=np.intp) - 1, None]
    table = np.zeros(_TABLE_LEN)
    for partial in partials:  # partial by partial, as before: the sum's rounding stays the same
        table += partial
    return table


def _table_indices(freq_hz: float, n: int, sr: int, vibrato_hz: float) -> np.ndarray:
    """The wavetable position of each of the first `n` samples of a note (read-only, cached by pitch)."""
    key = (freq_hz, vibrato_hz, sr)
    idx = _INDICES.get(key, n)
    if idx is None:
        t = _times(n, sr)
        cycles = freq_hz * t
        if vibrato_hz:
            cycles = cycles + 0.004 * freq_hz / (2 * np.pi * vibrato_hz) * np.sin(2 * np.pi * vibrato_hz * t)
        cycles *= _TABLE_LEN
        idx = cycles.astype(np.int64)
        idx &= _TABLE_LEN - 1
        _INDICES.put(key, idx)
    return idx[:n]


def _decay_curve(n: int, sr: int, attack_s: float, decay_s: float) -> np.ndarray | None:
    """`env` before its release fade, read-only and cached; None when the note is shorter than its attack."""
    n_attack = max(1, int(attack_s * sr))
    if n < n_attack:
        return None
    key = (decay_s, attack_s, sr)
    curve = _DECAYS.get(key, n)
    if curve is None:
        curve = _times(n, sr) / -max(decay_s, 1e-3)
        np.exp(curve, out=curve)
        curve[:n_attack] *= np.linspace(0.0, 1.0, n_attack)
        _DECAYS.put(key, curve)
    return curve[:n]


_RELEASES: dict[int, np.ndarray] = {}
_HZ: dict[float, float] = {}


# Timbres: harmonic amplitude profiles, attack and decay (built once; `instrument` copies and varies them).
def _presets() -> dict[str, dict]:
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
    for preset in presets.values():
        preset["h"].flags.writeable = False
    return presets


_PRESETS = _presets()


def instrument(name: str, rng: np.random.Generator) -> dict:
    inst = dict(_PRESETS[name])
    inst["h"] = inst["h"] * rng.uniform(0.8, 1.2, size=12)
    inst["decay"] *= rng.uniform(0.8, 1.25)
    return inst


def add_note(buf: np.ndarray, start_s: float, dur_s: float, midi: float, inst: dict, gain: float,
              rng: np.random.Generator, sr: int) -> None:
    i0 = int(start_s * sr)
    n = min(int(dur_s * sr), len(buf) - i0)
    if i0 >= len(buf) or n <= 8 or i0 + n <= 0:
        return
    freq_hz = _HZ.get(midi)
    if freq_hz is None:
        freq_hz = _HZ[midi] = float(midi_hz(midi))
    # gain * tone(...) * env(...), element by element as before; the table is scaled (2048 values)
    # instead of the note, and the part of a note before the clip start is never made
    table = gain * _wavetable(freq_hz, inst["h"], rng)
    idx = _table_indices(freq_hz, n, sr, inst["vibrato"])
    curve = _decay_curve(n, sr, inst["attack"], inst["decay"])
    skip = max(0, -i0)  # notes that began before the clip start are cut
    if curve is None:  # shorter than its attack: the ramp is squeezed into the note
        note = table[idx]
        note *= env(n, sr, inst["attack"], inst["decay"])
        buf[i0 + skip:i0 + n] += note[skip:]
        return
    n_release = min(n, 96)  # short fade out avoids clicks at note ends
    release = _RELEASES.get(n_release)
    if release is None:
        release = _RELEASES[n_release] = np.linspace(1.0, 0.0, n_release)
    cut = n - n_release
    note = np.take(table, idx[skip:])
    if skip < cut:
        note[:cut - skip] *= curve[skip:cut]
        note[cut - skip:] *= curve[cut:] * release
    else:
        note *= (curve[cut:] * release)[skip - cut:]
    buf[i0 + skip:i0 + n] += note


def drum_kit(rng: np.random.Generator, sr: int, kind: str) -> dict[str, np.ndarray]:
    """One-shot drum samples for a clip (a little different every clip)."""
    def noise(n_s: float) -> np.ndarray:
        return rng.standard_normal(int(n_s * sr))

    fixed = _drum_curves(sr)
    t = fixed["t"]
    f0 = rng.uniform(45, 60)
    sweep = f0 + rng.uniform(60, 110) * fixed["kick_sweep"]
    kick = np.sin(2 * np.pi * np.cumsum(sweep) / sr) * np.exp(-t / rng.uniform(0.12, 0.2))
    kick[:64] += 0.3 * noise(64 / sr)
    snare_noise = lfilter([1, -0.9], [1], noise(0.2))  # high-passed noise
    snare = 0.5 * snare_noise * fixed["snare_decay"] + fixed["snare_tone"]
    th = fixed["th"]
    hat = np.diff(noise(0.08), prepend=0.0) * np.exp(-th / rng.uniform(0.01, 0.025))
    tr = fixed["tr"]
    ring = sum(np.sin(2 * np.pi * f * tr) for f in rng.uniform(3000, 7000, size=5))
    ride = (0.5 * np.diff(noise(0.6), prepend=0.0) + 0.4 * ring) * fixed["ride_decay"]
    brush = lfilter([1, -0.5], [1], noise(0.15)) * fixed["brush_decay"]
    clap_hit = snare_noise * fixed["clap_decay"]
    clap = sum(np.roll(clap_hit, int(d * sr)) for d in (0, 0.01, 0.022))
    kit = dict(kick=kick, snare=snare, hat=hat, ride=ride * 0.4, brush=brush * 0.3, clap=clap * 0.5)
    if kind == "rock":  # fatter, louder snare
        kit["snare"] = kit["snare"] * 1.4
    return kit


_DRUM_CURVES: dict[int, dict[str, np.ndarray]] = {}


def _drum_curves(sr: int) -> dict[str, np.ndarray]:
    """The parts of `drum_kit` that no draw changes (time bases, fixed decays, the snare's tone), per rate."""
    curves = _DRUM_CURVES.get(sr)
    if curves is None:
        t = np.arange(int(0.35 * sr)) / sr
        ts = np.arange(int(0.2 * sr)) / sr
        tr = np.arange(int(0.6 * sr)) / sr
        curves = dict(t=t, kick_sweep=np.exp(-t / 0.03), th=np.arange(int(0.08 * sr)) / sr, tr=tr,
                      snare_decay=np.exp(-ts / 0.05),
                      snare_tone=np.sin(2 * np.pi * 190 * ts) * np.exp(-ts / 0.03),
                      ride_decay=np.exp(-tr / 0.25),
                      brush_decay=np.exp(-np.arange(int(0.15 * sr)) / sr / 0.06),
                      clap_decay=np.exp(-ts / 0.02))
        for curve in curves.values():
            curve.flags.writeable = False
        _DRUM_CURVES[sr] = curves
    return curves


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
