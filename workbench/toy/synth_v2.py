"""Seeded numpy synthesis of labelled music clips with several independent factors: the data of
teaching model v2 (`workbench.toy.synth` made teaching model v1's, genre only).

Every clip carries seven labelled factors, drawn independently from its seed (`clip_factors`):

- ``genre`` (classical, electronic, rock, jazz): the drums and rhythm (none, four on the floor,
  rock beat, swung ride), the accompaniment (sustained strings, synth pad, distorted power chords,
  jazz comping with sevenths), and the production (hall echoes, sidechain pumping, overdrive);
- ``tempo`` (slow / medium / fast bins of ``tempo_bpm``, 70-160 BPM, any genre);
- ``mode`` (major / minor: the scale of every chord and of the melody);
- ``lead`` (piano, flute, sax, synth): the instrument of the melody, over the genre's accompaniment;
- ``contour`` (rising / falling): the melody plays runs of four scale notes, upwards or downwards.
  Rising and falling clips of one seed play the *same notes*, only their order differs, so a bag of
  frames cannot tell them apart: it is a property of the order of events.
- ``dynamics`` (crescendo / diminuendo): the level of the whole mix follows one period of a sine
  over the clip, 10-16 dB from trough to peak: a crescendo plays its soft half first and its loud
  half last, a diminuendo the other way round. Both start and end at the same level, so the same
  levels, and the same rises and falls, come in the opposite order: another property of order alone.
- ``brightness`` (brightening / darkening): a low-pass filter's cutoff follows the same sine
  (about 1.5 kHz to 12 kHz): brightening clips hold their dark half first, darkening ones their
  bright half: the same spectra in the opposite order.

Why a sine period and not a ramp (``dynamics_style="ramp"``, ``brightness_style="ramp"``, the data of
the second v2 trial): a codec frame sees 160 ms, and a ramp tilts every frame the same way, so
the frames' sum (a bag of codes) still reads a ramp's direction (0.78-0.83 for dynamics on three
seeds, chance about 0.52). A sine period's tilts cancel: the same check reads it at 0.49-0.59
(`scripts/codec_concept_check.py`; teaching model v2's card has the table:
`git show c85904c:workbench/toy/MODEL_CARD.md`).

Contour and mode need pitch; dynamics and brightness need only the loudness and spectral envelope
that even a small codec keeps (`scripts/codec_pitch_check.py` measures what a codec keeps).

Mode is hard for a bag of frames too: with the tonic drawn from all 12 keys, major and minor scales
share their pitch classes (C major = A minor) and only the tonal centre tells them apart.
The same seed gives the same clip; overriding one factor (``synth_clip("jazz", 3, mode="minor")``)
leaves every other draw unchanged.

Example:
    >>> from workbench.toy.synth_v2 import clip_factors, synth_clip, synth_dataset
    >>> audio = synth_clip("jazz", seed=3)            # float32, shape (128000,), 4 s at 32 kHz
    >>> sorted(clip_factors("jazz", 3))
    ['brightness', 'contour', 'dynamics', 'genre', 'lead', 'mode', 'tempo', 'tempo_bpm', 'tonic']
    >>> clips, labels = synth_dataset(n_per_genre=2, seed=0)
    >>> labels
    ['classical', 'electronic', 'rock', 'jazz', 'classical', 'electronic', 'rock', 'jazz']
"""

from __future__ import annotations

import math

import numpy as np
from scipy.signal import lfilter

from workbench.toy.voices import MAJOR, MINOR, add_note, chord_notes, drum_kit, hit, instrument

GENRES: tuple[str, ...] = ("classical", "electronic", "rock", "jazz")
TEMPO_BINS_BPM: dict[str, tuple[float, float]] = {"slow": (70.0, 95.0), "medium": (95.0, 125.0),
                                                 "fast": (125.0, 160.0)}
TEMPOS: tuple[str, ...] = tuple(TEMPO_BINS_BPM)
MODES: tuple[str, ...] = ("major", "minor")
LEADS: tuple[str, ...] = ("piano", "flute", "sax", "synth")
CONTOURS: tuple[str, ...] = ("rising", "falling")
DYNAMICS: tuple[str, ...] = ("crescendo", "diminuendo")
BRIGHTNESS: tuple[str, ...] = ("brightening", "darkening")
# label columns of every clip (SynthSet exposes each); tempo_bpm and tonic are numbers beside them
FACTORS: dict[str, tuple[str, ...]] = {"genre": GENRES, "tempo": TEMPOS, "mode": MODES, "lead": LEADS,
                                       "contour": CONTOURS, "dynamics": DYNAMICS, "brightness": BRIGHTNESS}
# the factors that are an order of events (the same notes, levels or spectra in the opposite order), not a state
ORDER_FACTORS: tuple[str, ...] = ("contour", "dynamics", "brightness")
_DRAWN = ("mode", "lead", "contour", "dynamics", "brightness")  # drawn uniformly, one stream each
SAMPLE_RATE_HZ = 32000

# Rock's beat (the seventh v2 trial): power chords and bass sound for 0.3 of a beat then stop (a chug,
# 0.5 before), the hats play at 0.5 (0.35) and the drums sit 1.5x louder in the mix. Without a gap the
# guitar wash hid the beat grid, and generated rock came out without one (trials 3 and 6).
ROCK_CHUG = 0.3
ROCK_HAT_GAIN = 0.5
ROCK_DRUMS_GAIN = 1.5
# Chord progressions as scale degrees (0-based); each dwells on the tonic so the mode is audible.
_PROGRESSIONS = [[0, 3, 4, 0], [0, 5, 3, 4], [0, 4, 0, 3], [0, 0, 3, 4], [0, 3, 0, 4], [0, 5, 4, 0]]
_SCALES = {"major": MAJOR, "minor": MINOR}


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
    """The factors of clip (`genre`, `seed`): genre, tempo_bpm, tempo, mode, lead, contour, dynamics,
    brightness, tonic.

    Each factor is drawn from its own stream, so overriding one (``mode="minor"``, ``tempo_bpm=150``,
    ``tempo="fast"``) leaves the others as they were.
    """
    if genre not in GENRES:
        raise ValueError(f"unknown genre {genre!r}: choose one of {', '.join(GENRES)}")
    unknown = set(overrides) - {"tempo_bpm", "tempo", "tonic", *_DRAWN}
    if unknown:
        raise ValueError(f"unknown factor(s) {sorted(unknown)}: use tempo_bpm, tempo, tonic or "
                         f"{', '.join(_DRAWN)}")

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
    factors = dict(genre=genre, tempo_bpm=round(bpm, 2), tempo=_bin_of(bpm))
    for name in _DRAWN:
        values = FACTORS[name]
        factors[name] = overrides.get(name) or values[int(stream(name).integers(len(values)))]
        if factors[name] not in values:
            raise ValueError(f"unknown {name} {factors[name]!r}: choose one of {', '.join(values)}")
    factors["tonic"] = int(overrides.get("tonic", stream("tonic").integers(12)))
    return factors


def synth_clip(genre: str, seed: int, duration_s: float = 4.0,
               sample_rate_hz: int = SAMPLE_RATE_HZ, dynamics_style: str = "wave",
               brightness_style: str = "wave", **overrides) -> np.ndarray:
    """One mono clip (float32, peak <= 1) of `genre`, fully determined by `seed` (and any factor
    overrides, see `clip_factors`).

    dynamics_style: how a crescendo is made. "wave" (the default, the third v2 trial's data): the
    finished mix is multiplied by one period of a sine gain (in dB), the soft half first for a
    crescendo, the loud half first for a diminuendo. "ramp" (the second v2 trial's data): a smooth
    gain ramp, so every sustained note swells or fades inside itself and a 160 ms window already
    shows the direction. "velocity": each note and drum
    hit is played at the level of the curve at its onset and then decays as usual, the way a
    player makes a crescendo, with a random spread of `VELOCITY_JITTER_DB` per note. "hairpin" (an
    experiment towards an order concept that a bag of codes cannot read; the factor keeps its value
    names): played as "velocity", but "crescendo" clips swell and fade back (<>) and "diminuendo"
    clips dip and come back (><), so both hold the same levels and the same rising and falling
    stretches, only in the other order. `scripts/codec_concept_check.py` measures each style.
    brightness_style: "wave" (the default) or "ramp", the same two shapes for the filter's cutoff.

    Example:
        >>> synth_clip("rock", seed=0).shape
        (128000,)
    """
    _check_clip_args(duration_s, sample_rate_hz)
    _check_styles(dynamics_style, brightness_style)
    return _render(clip_factors(genre, seed, **overrides), seed, duration_s, sample_rate_hz, dynamics_style,
                   brightness_style)


DYNAMICS_STYLES: tuple[str, ...] = ("ramp", "velocity", "hairpin", "wave")
# "velocity" and "hairpin": each note's level varies this much (std, dB) around the curve
VELOCITY_JITTER_DB = 6.0
DYNAMICS_SPAN_DB: tuple[float, float] = (10.0, 16.0)  # how far a crescendo or diminuendo moves, drawn per clip


BRIGHTNESS_STYLES: tuple[str, ...] = ("ramp", "wave")


def _check_styles(dynamics_style: str, brightness_style: str) -> None:
    if dynamics_style not in DYNAMICS_STYLES:
        raise ValueError(f"unknown dynamics_style {dynamics_style!r}: choose one of {', '.join(DYNAMICS_STYLES)}")
    if brightness_style not in BRIGHTNESS_STYLES:
        raise ValueError(f"unknown brightness_style {brightness_style!r}: choose one of "
                         f"{', '.join(BRIGHTNESS_STYLES)}")


def _check_clip_args(duration_s: float, sample_rate_hz: int) -> None:
    if duration_s <= 0:
        raise ValueError(f"duration_s must be positive, got {duration_s}")
    if sample_rate_hz < 8000:
        raise ValueError(f"sample_rate_hz must be at least 8000, got {sample_rate_hz}")


def _render(f: dict, seed: int, duration_s: float, sample_rate_hz: int,
            dynamics_style: str = "wave", brightness_style: str = "wave") -> np.ndarray:
    """The clip of factors `f` (from `clip_factors`) and `seed` (`dynamics_style`: see `synth_clip`)."""
    genre = f["genre"]
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
    lead = instrument(f["lead"], rng)
    if genre == "classical":
        accomp, chord_kind, swing, bass_inst = instrument("strings", rng), "triad", 0.0, instrument("strings", rng)
    elif genre == "electronic":
        accomp, chord_kind, swing = instrument("saw", rng), "triad", 0.0
        bass_inst = instrument("square", rng)
    elif genre == "rock":
        accomp, chord_kind, swing, bass_inst = instrument("guitar", rng), "power", 0.0, instrument("guitar", rng)
    else:  # jazz
        accomp, chord_kind, swing = instrument("vibes", rng), "seventh", rng.uniform(0.28, 0.36)
        bass_inst = instrument("piano", rng)
        bass_inst["h"] = np.array([1.0, 0.3, 0.1] + [0.0] * 9)  # upright bass: nearly a sine
        bass_inst["decay"] = 0.5

    beat_s = 60.0 / bpm
    bar_s = 4 * beat_s
    prog = _PROGRESSIONS[int(rng.integers(len(_PROGRESSIONS)))]
    root = 48 + tonic if tonic < 6 else 36 + tonic  # chord root octave C3..F#3 / G2..B2
    lead_root = 72 + tonic if tonic < 6 else 60 + tonic  # melody from G4..F5 upwards
    n_bars = int(np.ceil((duration_s + offset) / bar_s)) + 1
    kit = drum_kit(rng, sr, genre)
    step = 1 if f["contour"] == "rising" else -1
    lead_gain = rng.uniform(0.26, 0.32)
    clip_key = [GENRES.index(genre), int(seed) & 0xFFFFFFFF]
    span_db = np.random.default_rng([*clip_key, 37]).uniform(*DYNAMICS_SPAN_DB)

    def level_db(t_s):
        """The dynamics curve in dB at time t_s: -span_db up to 0 over the clip for a crescendo
        (down for a diminuendo); with "hairpin", a swell 0 at mid-clip (a dip -span_db) instead."""
        frac = np.clip(np.asarray(t_s, dtype=np.float64) / duration_s, 0.0, 1.0)
        if dynamics_style == "wave":  # one period of a sine: crescendo soft half first, diminuendo loud half first
            wave = np.sin(2.0 * np.pi * frac)
            return -0.5 * span_db * (1.0 + wave if f["dynamics"] == "crescendo" else 1.0 - wave)
        if dynamics_style == "hairpin":  # crescendo -> a swell <>, diminuendo -> a dip ><
            arch = np.abs(2.0 * frac - 1.0)
            return -span_db * arch if f["dynamics"] == "crescendo" else -span_db * (1.0 - arch)
        return -span_db * (1.0 - frac) if f["dynamics"] == "crescendo" else -span_db * frac

    humanise = np.random.default_rng([*clip_key, 41])  # its own stream: the other draws stay as they were

    def velocity(start_s: float) -> float:
        if dynamics_style in ("ramp", "wave"):  # a gain curve on the finished mix
            return 1.0
        return float(10.0 ** ((level_db(start_s) + humanise.normal(0.0, VELOCITY_JITTER_DB)) / 20.0))

    def play(buf, start_s, dur_s, midi, inst, gain):
        add_note(buf, start_s, dur_s, midi, inst, gain * velocity(start_s), rng, sr)

    def strike(buf, sample, start_s, gain):
        hit(buf, sample, start_s, gain * velocity(start_s), sr)

    def when(beat: float) -> float:
        """Time of a beat position (swing delays the off-beat eighths)."""
        whole = math.floor(beat)  # an int: the same sums as with np.floor's float, without numpy scalars
        frac = beat - whole
        if swing and abs(frac - 0.5) < 1e-6:
            frac = 0.5 + swing * 0.5
        return whole * beat_s + frac * beat_s - offset + rng.normal(0, 0.004 if swing else 0.001)

    def lead_note(degree: int) -> int:
        return lead_root + int(scale[degree % 7]) + 12 * (degree // 7)

    for bar in range(n_bars):
        for half in range(2):  # two chords a bar; the melody plays one run of four notes per chord
            degree = prog[(bar * 2 + half) % len(prog)]
            notes = chord_notes(root, scale, degree, chord_kind)
            beat0 = bar * 4 + half * 2
            span = 2
            run = [degree + i for i in range(4)]
            if step < 0:
                run = run[::-1]
            for i, d in enumerate(run):  # eighth notes: the same four notes up or down
                play(lead_buf, when(beat0 + i * 0.5), beat_s * 0.48, lead_note(d), lead, lead_gain)
            if genre == "classical":
                for note in notes:  # sustained chord and bass, no drums
                    play(music, when(beat0), span * beat_s * 1.05, note, accomp, 0.1)
                play(bass, when(beat0), span * beat_s, notes[0] - 12, bass_inst, 0.25)
            elif genre == "electronic":
                for b in range(span):  # four on the floor, clap on 2 and 4, hats off-beat
                    beat = beat0 + b
                    strike(drums, kit["kick"], when(beat), 0.9)
                    if beat % 2 == 1:
                        strike(drums, kit["clap"], when(beat), 0.45)
                    for s in (0.25, 0.5, 0.75):
                        strike(drums, kit["hat"], when(beat + s), 0.5 if s == 0.5 else 0.25)
                    play(bass, when(beat + 0.5), beat_s * 0.45, notes[0] - 12, bass_inst, 0.35)
                for note in notes:  # pad
                    play(music, when(beat0), span * beat_s, note, accomp, 0.06)
            elif genre == "rock":
                for b in range(span):  # kick on 1 and 3 (+ the and of 3), snare on 2 and 4
                    beat = beat0 + b
                    if beat % 2 == 0:
                        strike(drums, kit["kick"], when(beat), 0.9)
                    else:
                        strike(drums, kit["snare"], when(beat), 0.7)
                    if beat % 4 == 2:
                        strike(drums, kit["kick"], when(beat + 0.5), 0.7)
                    for s in (0.0, 0.5):
                        strike(drums, kit["hat"], when(beat + s), ROCK_HAT_GAIN)
                for i in range(span * 2):  # eighth-note power chords and bass, chugged: a gap before the next
                    for note in notes:
                        play(music, when(beat0 + i * 0.5), beat_s * ROCK_CHUG, note, accomp, 0.16)
                    play(bass, when(beat0 + i * 0.5), beat_s * ROCK_CHUG, notes[0] - 12, bass_inst, 0.35)
            else:  # jazz: ride swing pattern, walking bass, comping
                for b in range(span):
                    beat = beat0 + b
                    strike(drums, kit["ride"], when(beat), 0.5)
                    if beat % 2 == 1:
                        strike(drums, kit["ride"], when(beat + 0.5), 0.35)
                        strike(drums, kit["brush"], when(beat), 0.5)
                    walk = notes[0] - 12 + (int(scale[int(rng.integers(1, 5))]) if b else 0)
                    play(bass, when(beat), beat_s * 0.9, walk, bass_inst, 0.45)
                for note in notes[:4]:  # comping on the off-beat
                    play(music, when(beat0 + 0.5), beat_s * 0.6, note, accomp, 0.07)

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

    if genre == "rock":  # the beat sits on top of the guitar wash
        drums = ROCK_DRUMS_GAIN * drums
    music_gain, bass_gain, drums_gain = rng.uniform(0.8, 1.2), rng.uniform(0.7, 1.2), rng.uniform(0.6, 1.1)
    if f.get("bass") == "absent":  # synth_v3's eighth factor (v2's factors have no "bass": always played)
        bass_gain = 0.0
    mix = music_gain * music + lead_buf + bass_gain * bass + drums_gain * drums
    # Random tone colour: gentle one-pole low-pass, strength drawn per clip.
    a = rng.uniform(0.0, 0.3)
    mix = lfilter([1 - a], [1, -a], mix)
    mix = _sweep_lowpass(mix, f["brightness"] == "brightening", sr, np.random.default_rng([*clip_key, 31]),
                         wave=brightness_style == "wave")
    if dynamics_style == "ramp":
        ramp = np.linspace(-span_db, 0.0, n) if f["dynamics"] == "crescendo" else np.linspace(0.0, -span_db, n)
        mix = mix * 10.0 ** (ramp / 20.0)
    elif dynamics_style == "wave":
        mix = mix * 10.0 ** (level_db(np.arange(n) / sr) / 20.0)
    mix += rng.normal(0, rng.uniform(1e-4, 2e-3), size=n)  # a little hiss
    peak = np.max(np.abs(mix)) + 1e-9
    return (mix / peak * rng.uniform(0.5, 0.9)).astype(np.float32)


def _sweep_lowpass(x: np.ndarray, opening: bool, sr: int, rng: np.random.Generator,
                   blocks: int = 64, wave: bool = False) -> np.ndarray:
    """Two cascaded one-pole low-passes whose cutoff sweeps log-linearly between ~1.5 and ~12 kHz
    (up if `opening`), block by block with the filter state carried over."""
    lo, hi = rng.uniform(1200.0, 1800.0), rng.uniform(10000.0, 14000.0)
    edges = np.linspace(0, len(x), blocks + 1).astype(int)
    pos = (np.arange(blocks) + 0.5) / blocks
    if wave:  # one period of a sine in log frequency: opening = the dark half first, then the bright
        curve = 0.5 * (1.0 - np.sin(2.0 * np.pi * pos))
        cutoffs = lo * (hi / lo) ** (curve if opening else 1.0 - curve)
    else:
        cutoffs = lo * (hi / lo) ** (pos if opening else 1.0 - pos)
    out = np.empty_like(x)
    z1 = z2 = np.zeros(1)
    for b in range(blocks):
        a = np.exp(-2 * np.pi * min(cutoffs[b], 0.45 * sr) / sr)
        seg, z1 = lfilter([1 - a], [1, -a], x[edges[b]:edges[b + 1]], zi=z1 * 1.0)
        out[edges[b]:edges[b + 1]], z2 = lfilter([1 - a], [1, -a], seg, zi=z2 * 1.0)
    return out


def synth_dataset(n_per_genre: int, seed: int = 0, duration_s: float = 4.0,
                  sample_rate_hz: int = SAMPLE_RATE_HZ, genres: tuple[str, ...] = GENRES,
                  with_factors: bool = False, dynamics_style: str = "wave", brightness_style: str = "wave"):
    """`n_per_genre` clips of each genre, interleaved: (audio (N, samples) float32, labels), and with
    ``with_factors=True`` a third item, one `clip_factors` dict per clip.

    Clip i uses seed `seed * 1_000_003 + i // len(genres)`, so datasets with different seeds don't
    overlap in practice.

    Example:
        >>> audio, labels, factors = synth_dataset(3, seed=1, with_factors=True)
        >>> audio.shape, labels[:2], factors[0]["genre"]
        ((12, 128000), ['classical', 'electronic'], 'classical')
    """
    return _dataset(n_per_genre, seed, duration_s, sample_rate_hz, genres, with_factors, clip_factors,
                    dynamics_style, brightness_style)


def _dataset(n_per_genre, seed, duration_s, sample_rate_hz, genres, with_factors, draw,
             dynamics_style="wave", brightness_style="wave"):
    """`synth_dataset`'s loop with the factors of each clip from ``draw(genre, clip_seed)`` (synth_v3: + bass)."""
    if n_per_genre < 1:
        raise ValueError(f"n_per_genre must be at least 1, got {n_per_genre}")
    for g in genres:
        if g not in GENRES:
            raise ValueError(f"unknown genre {g!r}: choose from {', '.join(GENRES)}")
    _check_clip_args(duration_s, sample_rate_hz)
    _check_styles(dynamics_style, brightness_style)
    n = int(round(duration_s * sample_rate_hz))
    audio = np.empty((n_per_genre * len(genres), n), dtype=np.float32)
    labels, factors = [], []
    for i in range(n_per_genre):
        for j, g in enumerate(genres):
            clip_seed = seed * 1_000_003 + i
            factors.append(draw(g, clip_seed))
            audio[i * len(genres) + j] = _render(factors[-1], clip_seed, duration_s, sample_rate_hz, dynamics_style,
                                                 brightness_style)
            labels.append(g)
    return (audio, labels, factors) if with_factors else (audio, labels)
