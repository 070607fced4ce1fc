"""Seeded numpy synthesis of labelled four-genre music clips (the teaching model's training data).

Each genre has its own tempo range, rhythm (drums or none, swing or straight), harmony (triads,
power chords, seventh chords, minor loops), bass line and timbre; key, tempo, instruments, mix and
loudness are drawn from the seed, so no two clips are alike and the same seed gives the same clip.

Example:
    >>> from workbench.toy.synth import synth_clip, synth_dataset
    >>> audio = synth_clip("jazz", seed=3)            # float32, shape (128000,), 4 s at 32 kHz
    >>> clips, labels = synth_dataset(n_per_genre=2, seed=0)
    >>> labels
    ['classical', 'electronic', 'rock', 'jazz', 'classical', 'electronic', 'rock', 'jazz']
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

GENRES: tuple[str, ...] = ("classical", "electronic", "rock", "jazz")
SAMPLE_RATE_HZ = 32000

_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
# Chord progressions as scale degrees (0-based) per genre.
_PROGRESSIONS = {
    "classical": [[0, 3, 4, 0], [0, 5, 3, 4], [0, 4, 5, 3], [0, 1, 4, 0]],
    "electronic": [[0, 5, 2, 6], [0, 0, 5, 6], [0, 3, 5, 4], [0, 6, 5, 6]],
    "rock": [[0, 6, 3, 0], [0, 3, 4, 3], [0, 4, 5, 3], [0, 2, 3, 4]],
    "jazz": [[1, 4, 0, 0], [1, 4, 0, 5], [0, 5, 1, 4], [2, 5, 1, 4]],
}


def _midi_hz(note: np.ndarray | float) -> np.ndarray:
    return 440.0 * 2.0 ** ((np.asarray(note, dtype=np.float64) - 69.0) / 12.0)


def _env(n: int, sr: int, attack_s: float, decay_s: float) -> np.ndarray:
    """Attack ramp then exponential decay (decay_s = time constant)."""
    t = np.arange(n) / sr
    env = np.exp(-t / max(decay_s, 1e-3))
    n_attack = min(n, max(1, int(attack_s * sr)))
    env[:n_attack] *= np.linspace(0.0, 1.0, n_attack)
    n_release = min(n, 96)  # short fade out avoids clicks at note ends
    env[-n_release:] *= np.linspace(1.0, 0.0, n_release)
    return env


def _tone(freq_hz: float, n: int, sr: int, harmonics: np.ndarray, rng: np.random.Generator,
          vibrato_hz: float = 0.0) -> np.ndarray:
    """Additive tone: harmonics[k] is the amplitude of partial k+1 (partials above 14 kHz dropped)."""
    t = np.arange(n) / sr
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
    idx = (cycles * table_len).astype(np.int64) & (table_len - 1)
    return table[idx]


# Timbres: harmonic amplitude profiles, attack and decay.
def _instrument(name: str, rng: np.random.Generator) -> dict:
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
    }
    inst = dict(presets[name])
    inst["h"] = inst["h"] * rng.uniform(0.8, 1.2, size=12)
    inst["decay"] *= rng.uniform(0.8, 1.25)
    return inst


def _add_note(buf: np.ndarray, start_s: float, dur_s: float, midi: float, inst: dict, gain: float,
              rng: np.random.Generator, sr: int) -> None:
    i0 = int(start_s * sr)
    n = min(int(dur_s * sr), len(buf) - i0)
    if i0 >= len(buf) or n <= 8 or i0 + n <= 0:
        return
    note = gain * _tone(float(_midi_hz(midi)), n, sr, inst["h"], rng, inst["vibrato"])
    note *= _env(n, sr, inst["attack"], inst["decay"])
    skip = max(0, -i0)  # notes that began before the clip start are cut
    buf[i0 + skip:i0 + n] += note[skip:]


def _drum_kit(rng: np.random.Generator, sr: int, kind: str) -> dict[str, np.ndarray]:
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


def _hit(buf: np.ndarray, sample: np.ndarray, start_s: float, gain: float, sr: int) -> None:
    i0 = int(start_s * sr)
    skip = max(0, -i0)
    if i0 < len(buf) and skip < len(sample):
        n = min(len(sample), len(buf) - i0)
        buf[i0 + skip:i0 + n] += gain * sample[skip:n]


def _chord_notes(root: int, scale: np.ndarray, degree: int, kind: str) -> list[int]:
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


def synth_clip(genre: str, seed: int, duration_s: float = 4.0,
               sample_rate_hz: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """One mono clip (float32, peak <= 1) of `genre`, fully determined by `seed`.

    Example:
        >>> synth_clip("rock", seed=0).shape
        (128000,)
    """
    if genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r}: choose one of {', '.join(GENRES)}")
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    if sample_rate_hz < 8000:
        raise ValueError(f"sample_rate_hz must be at least 8000, got {sample_rate_hz}")
    sr = int(sample_rate_hz)
    rng = np.random.default_rng([GENRES.index(genre), int(seed) & 0xFFFFFFFF, 7919])
    n = int(round(duration_s * sr))
    music = np.zeros(n)
    drums = np.zeros(n)
    bass = np.zeros(n)
    tonic = int(rng.integers(0, 12))
    offset = rng.uniform(0, 0.5)  # clips start at a random point in the bar

    if genre == "classical":
        bpm = rng.uniform(60, 96)
        scale = _MAJOR if rng.random() < 0.65 else _MINOR
        lead = _instrument(rng.choice(["strings", "flute", "piano"]), rng)
        accomp = _instrument(rng.choice(["strings", "piano", "organ"]), rng)
        chord_kind, swing, bass_inst = "triad", 0.0, _instrument("strings", rng)
    elif genre == "electronic":
        bpm = rng.uniform(118, 136)
        scale = _MINOR
        lead = _instrument(rng.choice(["square", "saw"]), rng)
        accomp = _instrument(rng.choice(["saw", "square"]), rng)
        chord_kind, swing, bass_inst = "triad", 0.0, _instrument(rng.choice(["saw", "square"]), rng)
    elif genre == "rock":
        bpm = rng.uniform(100, 150)
        scale = _MINOR if rng.random() < 0.6 else _MAJOR
        lead = _instrument("guitar", rng)
        accomp = _instrument("guitar", rng)
        chord_kind, swing, bass_inst = "power", 0.0, _instrument("guitar", rng)
    else:  # jazz
        bpm = rng.uniform(90, 170)
        scale = _MAJOR
        lead = _instrument(rng.choice(["sax", "vibes", "piano"]), rng)
        accomp = _instrument(rng.choice(["piano", "vibes"]), rng)
        chord_kind, swing, bass_inst = "seventh", rng.uniform(0.28, 0.36), _instrument("piano", rng)
        bass_inst["h"] = np.array([1.0, 0.3, 0.1] + [0.0] * 9)  # upright bass: nearly a sine
        bass_inst["decay"] = 0.5

    beat_s = 60.0 / bpm
    bar_s = 4 * beat_s
    prog = _PROGRESSIONS[genre][int(rng.integers(len(_PROGRESSIONS[genre])))]
    root = 48 + tonic if tonic < 6 else 36 + tonic  # chord root octave C3..F#3 / G2..B2
    n_bars = int(np.ceil((duration_s + offset) / bar_s)) + 1
    chords_per_bar = 1 if genre != "jazz" or bpm > 130 else 2
    kit = _drum_kit(rng, sr, genre)

    def when(beat: float) -> float:
        """Time of a beat position (swing delays the off-beat eighths)."""
        whole = np.floor(beat)
        frac = beat - whole
        if swing and abs(frac - 0.5) < 1e-6:
            frac = 0.5 + swing * 0.5
        return whole * beat_s + frac * beat_s - offset + rng.normal(0, 0.004 if swing else 0.001)

    for bar in range(n_bars):
        for half in range(chords_per_bar):
            degree = prog[(bar * chords_per_bar + half) % len(prog)]
            notes = _chord_notes(root, scale, degree, chord_kind)
            beat0 = bar * 4 + half * 4 / chords_per_bar
            span = 4 / chords_per_bar
            if genre == "classical":
                # Sustained chord plus an arpeggio and a stepwise melody.
                for note in notes:
                    _add_note(music, when(beat0), span * beat_s * 1.05, note, accomp, 0.12, rng, sr)
                pattern = [0, 1, 2, 1, 0, 2, 1, 2]
                for i in range(int(span * 2)):
                    note = notes[pattern[i % 8]] + 12
                    _add_note(music, when(beat0 + i * 0.5), beat_s * 0.6, note, accomp, 0.1, rng, sr)
                mel = notes[-1] + 12
                for i in range(int(span)):
                    mel += int(rng.choice([-2, -1, 0, 1, 2]))
                    _add_note(music, when(beat0 + i), beat_s * 1.0, mel, lead, 0.22, rng, sr)
                _add_note(bass, when(beat0), span * beat_s, notes[0] - 12, bass_inst, 0.25, rng, sr)
            elif genre == "electronic":
                for b in range(int(span)):  # four on the floor, clap on 2 and 4, open hat off-beats
                    _hit(drums, kit["kick"], when(beat0 + b), 0.9, sr)
                    if (beat0 + b) % 2 == 1:
                        _hit(drums, kit["clap"], when(beat0 + b), 0.45, sr)
                    for s in (0.25, 0.5, 0.75):
                        _hit(drums, kit["hat"], when(beat0 + b + s), 0.5 if s == 0.5 else 0.25, sr)
                    _add_note(bass, when(beat0 + b + 0.5), beat_s * 0.45, notes[0] - 12, bass_inst,
                              0.35, rng, sr)
                arp = [0, 1, 2, 1] if rng.random() < 0.5 else [0, 2, 1, 2]
                for i in range(int(span * 4)):  # sixteenth-note arpeggio
                    note = notes[arp[i % 4]] + 12
                    _add_note(music, when(beat0 + i * 0.25), beat_s * 0.2, note, lead, 0.16, rng, sr)
                for note in notes:  # pad
                    _add_note(music, when(beat0), span * beat_s, note, accomp, 0.05, rng, sr)
            elif genre == "rock":
                for b in range(int(span)):  # kick on 1 and 3 (+ the and of 3), snare on 2 and 4
                    beat = beat0 + b
                    if b % 2 == 0:
                        _hit(drums, kit["kick"], when(beat), 0.9, sr)
                    else:
                        _hit(drums, kit["snare"], when(beat), 0.7, sr)
                    if b == 2:
                        _hit(drums, kit["kick"], when(beat + 0.5), 0.7, sr)
                    for s in (0.0, 0.5):
                        _hit(drums, kit["hat"], when(beat + s), 0.35, sr)
                for i in range(int(span * 2)):  # eighth-note power chords and bass
                    for note in notes:
                        _add_note(music, when(beat0 + i * 0.5), beat_s * 0.5, note, accomp, 0.2, rng, sr)
                    _add_note(bass, when(beat0 + i * 0.5), beat_s * 0.5, notes[0] - 12, bass_inst,
                              0.35, rng, sr)
            else:  # jazz: ride swing pattern, walking bass, comping, a lead line
                for b in range(int(span)):
                    beat = beat0 + b
                    _hit(drums, kit["ride"], when(beat), 0.5, sr)
                    if b % 2 == 1:
                        _hit(drums, kit["ride"], when(beat + 0.5), 0.35, sr)
                        _hit(drums, kit["brush"], when(beat), 0.5, sr)
                    walk = notes[0] - 12 + int(rng.choice([0, 2, 4, 5, 7, 9, 10])) if b else notes[0] - 12
                    _add_note(bass, when(beat), beat_s * 0.9, walk, bass_inst, 0.45, rng, sr)
                comp_beats = rng.choice([0.5, 1.5, 2.5, 3.0, 3.5], size=2, replace=False)
                for cb in comp_beats[comp_beats < span]:
                    for note in notes[1:]:
                        _add_note(music, when(beat0 + cb), beat_s * 0.4, note + 12, accomp, 0.09, rng, sr)
                for i in range(int(span * 2)):
                    if rng.random() < 0.7:
                        mel = notes[int(rng.integers(len(notes)))] + 12 + int(rng.choice([0, 12]))
                        _add_note(music, when(beat0 + i * 0.5), beat_s * 0.5, mel, lead, 0.15, rng, sr)

    if genre == "rock":  # overdriven guitars
        music = np.tanh(rng.uniform(3.0, 6.0) * music) * 0.5
        bass = np.tanh(2.0 * bass) * 0.6
    if genre == "electronic":  # sidechain pumping from the kick
        t_beat = ((np.arange(n) / sr + offset) % beat_s) / beat_s
        music *= 0.35 + 0.65 * np.clip(t_beat * 3.0, 0, 1)
    if genre == "classical":  # small hall: a few decaying echoes
        wet = np.zeros(n)
        for delay_s, g in ((0.031, 0.5), (0.047, 0.4), (0.073, 0.3), (0.11, 0.2)):
            d = int(delay_s * sr)
            wet[d:] += g * music[:-d]
        music = music + 0.5 * wet

    mix = (rng.uniform(0.7, 1.3) * music + rng.uniform(0.7, 1.3) * bass
           + rng.uniform(0.6, 1.2) * drums)
    # Random tone colour: gentle one-pole low-pass, strength drawn per clip.
    a = rng.uniform(0.0, 0.35)
    mix = lfilter([1 - a], [1, -a], mix)
    mix += rng.normal(0, rng.uniform(1e-4, 2e-3), size=n)  # a little hiss
    peak = np.max(np.abs(mix)) + 1e-9
    return (mix / peak * rng.uniform(0.5, 0.9)).astype(np.float32)


def synth_dataset(n_per_genre: int, seed: int = 0, duration_s: float = 4.0,
                  sample_rate_hz: int = SAMPLE_RATE_HZ, genres: tuple[str, ...] = GENRES,
                  ) -> tuple[np.ndarray, list[str]]:
    """`n_per_genre` clips of each genre, interleaved: (audio (N, samples) float32, labels).

    Clip i uses seed `seed * 1_000_003 + i // len(genres)`, so datasets with different seeds don't
    overlap in practice.

    Example:
        >>> audio, labels = synth_dataset(3, seed=1)
        >>> audio.shape, labels[:2]
        ((12, 128000), ['classical', 'electronic'])
    """
    if n_per_genre < 1:
        raise ValueError(f"n_per_genre must be at least 1, got {n_per_genre}")
    for g in genres:
        if g not in GENRES:
            raise ValueError(f"unknown genre {g!r}: choose from {', '.join(GENRES)}")
    n = int(round(duration_s * sample_rate_hz))
    audio = np.empty((n_per_genre * len(genres), n), dtype=np.float32)
    labels = []
    for i in range(n_per_genre):
        for j, g in enumerate(genres):
            audio[i * len(genres) + j] = synth_clip(g, seed * 1_000_003 + i, duration_s, sample_rate_hz)
            labels.append(g)
    return audio, labels
