"""Seeded numpy synthesis of labelled music clips with several independent factors: the data of
teaching model v2 (issue 10, in progress; the shipped model is trained on `workbench.toy.synth`).

Every clip carries five labelled factors, drawn independently from its seed (`clip_factors`):

- ``genre`` (classical, electronic, rock, jazz): the drums and rhythm (none, four on the floor,
  rock beat, swung ride), the accompaniment (sustained strings, synth pad, distorted power chords,
  jazz comping with sevenths), and the production (hall echoes, sidechain pumping, overdrive);
- ``tempo`` (slow / medium / fast bins of ``tempo_bpm``, 70-160 BPM, any genre);
- ``mode`` (major / minor: the scale of every chord and of the melody);
- ``lead`` (piano, flute, sax, synth): the instrument of the melody, over the genre's accompaniment;
- ``contour`` (rising / falling): the melody plays runs of four scale notes, upwards or downwards.
  Rising and falling clips of one seed play the *same notes*, only their order differs, so a bag of
  frames cannot tell them apart: it is a property of the order of events.

Mode is hard for a bag of frames too: with the tonic drawn from all 12 keys, major and minor scales
share their pitch classes (C major = A minor) and only the tonal centre tells them apart.
The same seed gives the same clip; overriding one factor (``synth_clip("jazz", 3, mode="minor")``)
leaves every other draw unchanged.

Example:
    >>> from workbench.toy.synth_v2 import clip_factors, synth_clip, synth_dataset
    >>> audio = synth_clip("jazz", seed=3)            # float32, shape (128000,), 4 s at 32 kHz
    >>> sorted(clip_factors("jazz", 3))
    ['contour', 'genre', 'lead', 'mode', 'tempo', 'tempo_bpm', 'tonic']
    >>> clips, labels = synth_dataset(n_per_genre=2, seed=0)
    >>> labels
    ['classical', 'electronic', 'rock', 'jazz', 'classical', 'electronic', 'rock', 'jazz']
"""

from __future__ import annotations

import numpy as np
from scipy.signal import lfilter

GENRES: tuple[str, ...] = ("classical", "electronic", "rock", "jazz")
TEMPO_BINS_BPM: dict[str, tuple[float, float]] = {"slow": (70.0, 95.0), "medium": (95.0, 125.0),
                                                 "fast": (125.0, 160.0)}
TEMPOS: tuple[str, ...] = tuple(TEMPO_BINS_BPM)
MODES: tuple[str, ...] = ("major", "minor")
LEADS: tuple[str, ...] = ("piano", "flute", "sax", "synth")
CONTOURS: tuple[str, ...] = ("rising", "falling")
# label columns of every clip (SynthSet exposes each); tempo_bpm and tonic are numbers beside them
FACTORS: dict[str, tuple[str, ...]] = {"genre": GENRES, "tempo": TEMPOS, "mode": MODES, "lead": LEADS,
                                       "contour": CONTOURS}
SAMPLE_RATE_HZ = 32000

_MAJOR = np.array([0, 2, 4, 5, 7, 9, 11])
_MINOR = np.array([0, 2, 3, 5, 7, 8, 10])
# Chord progressions as scale degrees (0-based); each dwells on the tonic so the mode is audible.
_PROGRESSIONS = [[0, 3, 4, 0], [0, 5, 3, 4], [0, 4, 0, 3], [0, 0, 3, 4], [0, 3, 0, 4], [0, 5, 4, 0]]
_SCALES = {"major": _MAJOR, "minor": _MINOR}


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
        "synth": dict(h=np.where(k % 2 == 1, 1.0 / k, 0.12 / k), attack=0.004, decay=1.2, vibrato=0.0),
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


def _bin_of(tempo_bpm: float) -> str:
    for name, (_, hi) in TEMPO_BINS_BPM.items():
        if tempo_bpm < hi:
            return name
    return TEMPOS[-1]


def tempo_bin(tempo_bpm: float) -> str:
    """The tempo label of a BPM value: ``slow`` below 95, ``medium`` below 125, else ``fast``.

    Example:
        >>> tempo_bin(80), tempo_bin(110), tempo_bin(140)
        ('slow', 'medium', 'fast')
    """
    return _bin_of(float(tempo_bpm))


def clip_factors(genre: str, seed: int, **overrides) -> dict:
    """The factors of clip (`genre`, `seed`): genre, tempo_bpm, tempo, mode, lead, contour, tonic.

    Each factor is drawn from its own stream, so overriding one (``mode="minor"``, ``tempo_bpm=150``,
    ``tempo="fast"``) leaves the others as they were.
    """
    if genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r}: choose one of {', '.join(GENRES)}")
    unknown = set(overrides) - {"tempo_bpm", "tempo", "mode", "lead", "contour", "tonic"}
    if unknown:
        raise ValueError(f"unknown factor(s) {sorted(unknown)}: use tempo_bpm, tempo, mode, lead, contour or tonic")

    def stream(name: str) -> np.random.Generator:
        return np.random.default_rng([GENRES.index(genre), int(seed) & 0xFFFFFFFF, 104729, sum(map(ord, name))])

    tempo = overrides.get("tempo") or TEMPOS[int(stream("tempo").integers(len(TEMPOS)))]
    if tempo not in TEMPO_BINS_BPM:
        raise ValueError(f"unknown tempo {tempo!r}: choose one of {', '.join(TEMPOS)} (or pass tempo_bpm)")
    lo, hi = TEMPO_BINS_BPM[tempo]
    bpm = overrides.get("tempo_bpm")
    bpm = float(stream("bpm").uniform(lo, hi)) if bpm is None else float(bpm)
    if not 40.0 <= bpm <= 240.0:
        raise ValueError(f"tempo_bpm={bpm} is outside 40-240 BPM")
    factors = dict(genre=genre, tempo_bpm=round(bpm, 2), tempo=_bin_of(bpm),
                   mode=overrides.get("mode") or MODES[int(stream("mode").integers(len(MODES)))],
                   lead=overrides.get("lead") or LEADS[int(stream("lead").integers(len(LEADS)))],
                   contour=overrides.get("contour") or CONTOURS[int(stream("contour").integers(len(CONTOURS)))],
                   tonic=int(overrides.get("tonic", stream("tonic").integers(12))))
    for name in ("mode", "lead", "contour"):
        if factors[name] not in FACTORS[name]:
            raise ValueError(f"unknown {name} {factors[name]!r}: choose one of {', '.join(FACTORS[name])}")
    return factors


def synth_clip(genre: str, seed: int, duration_s: float = 4.0,
               sample_rate_hz: int = SAMPLE_RATE_HZ, **overrides) -> np.ndarray:
    """One mono clip (float32, peak <= 1) of `genre`, fully determined by `seed` (and any factor
    overrides, see `clip_factors`).

    Example:
        >>> synth_clip("rock", seed=0).shape
        (128000,)
    """
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    if sample_rate_hz < 8000:
        raise ValueError(f"sample_rate_hz must be at least 8000, got {sample_rate_hz}")
    f = clip_factors(genre, seed, **overrides)
    sr = int(sample_rate_hz)
    rng = np.random.default_rng([GENRES.index(genre), int(seed) & 0xFFFFFFFF, 7919])
    n = int(round(duration_s * sr))
    music = np.zeros(n)
    lead_buf = np.zeros(n)
    drums = np.zeros(n)
    bass = np.zeros(n)
    tonic = f["tonic"]
    scale = _SCALES[f["mode"]]
    bpm = f["tempo_bpm"]
    offset = rng.uniform(0, 0.5)  # clips start at a random point in the bar
    lead = _instrument(f["lead"], rng)
    if genre == "classical":
        accomp, chord_kind, swing, bass_inst = _instrument("strings", rng), "triad", 0.0, _instrument("strings", rng)
    elif genre == "electronic":
        accomp, chord_kind, swing = _instrument("saw", rng), "triad", 0.0
        bass_inst = _instrument("square", rng)
    elif genre == "rock":
        accomp, chord_kind, swing, bass_inst = _instrument("guitar", rng), "power", 0.0, _instrument("guitar", rng)
    else:  # jazz
        accomp, chord_kind, swing = _instrument("vibes", rng), "seventh", rng.uniform(0.28, 0.36)
        bass_inst = _instrument("piano", rng)
        bass_inst["h"] = np.array([1.0, 0.3, 0.1] + [0.0] * 9)  # upright bass: nearly a sine
        bass_inst["decay"] = 0.5

    beat_s = 60.0 / bpm
    bar_s = 4 * beat_s
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    root = 48 + tonic if tonic < 6 else 36 + tonic  # chord root octave C3..F#3 / G2..B2
    lead_root = 72 + tonic if tonic < 6 else 60 + tonic  # melody from G4..F5 upwards
    n_bars = int(np.ceil((duration_s + offset) / bar_s)) + 1
    kit = _drum_kit(rng, sr, genre)
    step = 1 if f["contour"] == "rising" else -1
    lead_gain = rng.uniform(0.26, 0.32)

    def when(beat: float) -> float:
        """Time of a beat position (swing delays the off-beat eighths)."""
        whole = np.floor(beat)
        frac = beat - whole
        if swing and abs(frac - 0.5) < 1e-6:
            frac = 0.5 + swing * 0.5
        return whole * beat_s + frac * beat_s - offset + rng.normal(0, 0.004 if swing else 0.001)

    def lead_note(degree: int) -> int:
        return lead_root + int(scale[degree % 7]) + 12 * (degree // 7)

    for bar in range(n_bars):
        for half in range(2):  # two chords a bar; the melody plays one run of four notes per chord
            degree = prog[(bar * 2 + half) % len(prog)]
            notes = _chord_notes(root, scale, degree, chord_kind)
            beat0 = bar * 4 + half * 2
            span = 2
            run = [degree + i for i in range(4)]
            if step < 0:
                run = run[::-1]
            for i, d in enumerate(run):  # eighth notes: the same four notes up or down
                _add_note(lead_buf, when(beat0 + i * 0.5), beat_s * 0.48, lead_note(d), lead, lead_gain, rng, sr)
            if genre == "classical":
                for note in notes:  # sustained chord and bass, no drums
                    _add_note(music, when(beat0), span * beat_s * 1.05, note, accomp, 0.1, rng, sr)
                _add_note(bass, when(beat0), span * beat_s, notes[0] - 12, bass_inst, 0.25, rng, sr)
            elif genre == "electronic":
                for b in range(span):  # four on the floor, clap on 2 and 4, hats off-beat
                    beat = beat0 + b
                    _hit(drums, kit["kick"], when(beat), 0.9, sr)
                    if beat % 2 == 1:
                        _hit(drums, kit["clap"], when(beat), 0.45, sr)
                    for s in (0.25, 0.5, 0.75):
                        _hit(drums, kit["hat"], when(beat + s), 0.5 if s == 0.5 else 0.25, sr)
                    _add_note(bass, when(beat + 0.5), beat_s * 0.45, notes[0] - 12, bass_inst, 0.35, rng, sr)
                for note in notes:  # pad
                    _add_note(music, when(beat0), span * beat_s, note, accomp, 0.06, rng, sr)
            elif genre == "rock":
                for b in range(span):  # kick on 1 and 3 (+ the and of 3), snare on 2 and 4
                    beat = beat0 + b
                    if beat % 2 == 0:
                        _hit(drums, kit["kick"], when(beat), 0.9, sr)
                    else:
                        _hit(drums, kit["snare"], when(beat), 0.7, sr)
                    if beat % 4 == 2:
                        _hit(drums, kit["kick"], when(beat + 0.5), 0.7, sr)
                    for s in (0.0, 0.5):
                        _hit(drums, kit["hat"], when(beat + s), 0.35, sr)
                for i in range(span * 2):  # eighth-note power chords and bass
                    for note in notes:
                        _add_note(music, when(beat0 + i * 0.5), beat_s * 0.5, note, accomp, 0.16, rng, sr)
                    _add_note(bass, when(beat0 + i * 0.5), beat_s * 0.5, notes[0] - 12, bass_inst, 0.35, rng, sr)
            else:  # jazz: ride swing pattern, walking bass, comping
                for b in range(span):
                    beat = beat0 + b
                    _hit(drums, kit["ride"], when(beat), 0.5, sr)
                    if beat % 2 == 1:
                        _hit(drums, kit["ride"], when(beat + 0.5), 0.35, sr)
                        _hit(drums, kit["brush"], when(beat), 0.5, sr)
                    walk = notes[0] - 12 + (int(scale[int(rng.integers(1, 5))]) if b else 0)
                    _add_note(bass, when(beat), beat_s * 0.9, walk, bass_inst, 0.45, rng, sr)
                for note in notes[:4]:  # comping on the off-beat
                    _add_note(music, when(beat0 + 0.5), beat_s * 0.6, note, accomp, 0.07, rng, sr)

    if genre == "rock":  # overdriven guitars
        music = np.tanh(rng.uniform(3.0, 6.0) * music) * 0.45
        bass = np.tanh(2.0 * bass) * 0.6
    if genre == "electronic":  # sidechain pumping from the kick
        t_beat = ((np.arange(n) / sr + offset) % beat_s) / beat_s
        music *= 0.35 + 0.65 * np.clip(t_beat * 3.0, 0, 1)
    if genre == "classical":  # small hall: a few decaying echoes
        wet = np.zeros(n)
        dry = music + lead_buf
        for delay_s, g in ((0.031, 0.5), (0.047, 0.4), (0.073, 0.3), (0.11, 0.2)):
            d = int(delay_s * sr)
            wet[d:] += g * dry[:-d]
        music = music + 0.4 * wet

    mix = (rng.uniform(0.8, 1.2) * music + lead_buf + rng.uniform(0.7, 1.2) * bass
           + rng.uniform(0.6, 1.1) * drums)
    # Random tone colour: gentle one-pole low-pass, strength drawn per clip.
    a = rng.uniform(0.0, 0.3)
    mix = lfilter([1 - a], [1, -a], mix)
    mix += rng.normal(0, rng.uniform(1e-4, 2e-3), size=n)  # a little hiss
    peak = np.max(np.abs(mix)) + 1e-9
    return (mix / peak * rng.uniform(0.5, 0.9)).astype(np.float32)


def synth_dataset(n_per_genre: int, seed: int = 0, duration_s: float = 4.0,
                  sample_rate_hz: int = SAMPLE_RATE_HZ, genres: tuple[str, ...] = GENRES,
                  with_factors: bool = False):
    """`n_per_genre` clips of each genre, interleaved: (audio (N, samples) float32, labels), and with
    ``with_factors=True`` a third item, one `clip_factors` dict per clip.

    Clip i uses seed `seed * 1_000_003 + i // len(genres)`, so datasets with different seeds don't
    overlap in practice.

    Example:
        >>> audio, labels, factors = synth_dataset(3, seed=1, with_factors=True)
        >>> audio.shape, labels[:2], factors[0]["genre"]
        ((12, 128000), ['classical', 'electronic'], 'classical')
    """
    if n_per_genre < 1:
        raise ValueError(f"n_per_genre must be at least 1, got {n_per_genre}")
    for g in genres:
        if g not in GENRES:
            raise ValueError(f"unknown genre {g!r}: choose from {', '.join(GENRES)}")
    n = int(round(duration_s * sample_rate_hz))
    audio = np.empty((n_per_genre * len(genres), n), dtype=np.float32)
    labels, factors = [], []
    for i in range(n_per_genre):
        for j, g in enumerate(genres):
            clip_seed = seed * 1_000_003 + i
            audio[i * len(genres) + j] = synth_clip(g, clip_seed, duration_s, sample_rate_hz)
            labels.append(g)
            factors.append(clip_factors(g, clip_seed))
    return (audio, labels, factors) if with_factors else (audio, labels)
