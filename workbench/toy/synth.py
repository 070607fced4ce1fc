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

import math

import numpy as np
from scipy.signal import lfilter

from workbench.toy.voices import MAJOR, MINOR, add_note, chord_notes, drum_kit, hit, instrument

GENRES: tuple[str, ...] = ("classical", "electronic", "rock", "jazz")
SAMPLE_RATE_HZ = 32000

# Chord progressions as scale degrees (0-based) per genre.
_PROGRESSIONS = {
    "classical": [[0, 3, 4, 0], [0, 5, 3, 4], [0, 4, 5, 3], [0, 1, 4, 0]],
    "electronic": [[0, 5, 2, 6], [0, 0, 5, 6], [0, 3, 5, 4], [0, 6, 5, 6]],
    "rock": [[0, 6, 3, 0], [0, 3, 4, 3], [0, 4, 5, 3], [0, 2, 3, 4]],
    "jazz": [[1, 4, 0, 0], [1, 4, 0, 5], [0, 5, 1, 4], [2, 5, 1, 4]],
}


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
        scale = MAJOR if rng.random() < 0.65 else MINOR
        lead = instrument(rng.choice(["strings", "flute", "piano"]), rng)
        accomp = instrument(rng.choice(["strings", "piano", "organ"]), rng)
        chord_kind, swing, bass_inst = "triad", 0.0, instrument("strings", rng)
    elif genre == "electronic":
        bpm = rng.uniform(118, 136)
        scale = MINOR
        lead = instrument(rng.choice(["square", "saw"]), rng)
        accomp = instrument(rng.choice(["saw", "square"]), rng)
        chord_kind, swing, bass_inst = "triad", 0.0, instrument(rng.choice(["saw", "square"]), rng)
    elif genre == "rock":
        bpm = rng.uniform(100, 150)
        scale = MINOR if rng.random() < 0.6 else MAJOR
        lead = instrument("guitar", rng)
        accomp = instrument("guitar", rng)
        chord_kind, swing, bass_inst = "power", 0.0, instrument("guitar", rng)
    else:  # jazz
        bpm = rng.uniform(90, 170)
        scale = MAJOR
        lead = instrument(rng.choice(["sax", "vibes", "piano"]), rng)
        accomp = instrument(rng.choice(["piano", "vibes"]), rng)
        chord_kind, swing, bass_inst = "seventh", rng.uniform(0.28, 0.36), instrument("piano", rng)
        bass_inst["h"] = np.array([1.0, 0.3, 0.1] + [0.0] * 9)  # upright bass: nearly a sine
        bass_inst["decay"] = 0.5

    beat_s = 60.0 / bpm
    bar_s = 4 * beat_s
    prog = _PROGRESSIONS[genre][int(rng.integers(len(_PROGRESSIONS[genre])))]
    root = 48 + tonic if tonic < 6 else 36 + tonic  # chord root octave C3..F#3 / G2..B2
    n_bars = int(np.ceil((duration_s + offset) / bar_s)) + 1
    chords_per_bar = 1 if genre != "jazz" or bpm > 130 else 2
    kit = drum_kit(rng, sr, genre)

    def when(beat: float) -> float:
        """Time of a beat position (swing delays the off-beat eighths)."""
        whole = math.floor(beat)  # an int: the same sums as with np.floor's float, without numpy scalars
        frac = beat - whole
        if swing and abs(frac - 0.5) < 1e-6:
            frac = 0.5 + swing * 0.5
        return whole * beat_s + frac * beat_s - offset + rng.normal(0, 0.004 if swing else 0.001)

    for bar in range(n_bars):
        for half in range(chords_per_bar):
            degree = prog[(bar * chords_per_bar + half) % len(prog)]
            notes = chord_notes(root, scale, degree, chord_kind)
            beat0 = bar * 4 + half * 4 / chords_per_bar
            span = 4 / chords_per_bar
            if genre == "classical":
                # Sustained chord plus an arpeggio and a stepwise melody.
                for note in notes:
                    add_note(music, when(beat0), span * beat_s * 1.05, note, accomp, 0.12, rng, sr)
                pattern = [0, 1, 2, 1, 0, 2, 1, 2]
                for i in range(int(span * 2)):
                    note = notes[pattern[i % 8]] + 12
                    add_note(music, when(beat0 + i * 0.5), beat_s * 0.6, note, accomp, 0.1, rng, sr)
                mel = notes[-1] + 12
                for i in range(int(span)):
                    mel += int(rng.choice([-2, -1, 0, 1, 2]))
                    add_note(music, when(beat0 + i), beat_s * 1.0, mel, lead, 0.22, rng, sr)
                add_note(bass, when(beat0), span * beat_s, notes[0] - 12, bass_inst, 0.25, rng, sr)
            elif genre == "electronic":
                for b in range(int(span)):  # four on the floor, clap on 2 and 4, open hat off-beats
                    hit(drums, kit["kick"], when(beat0 + b), 0.9, sr)
                    if (beat0 + b) % 2 == 1:
                        hit(drums, kit["clap"], when(beat0 + b), 0.45, sr)
                    for s in (0.25, 0.5, 0.75):
                        hit(drums, kit["hat"], when(beat0 + b + s), 0.5 if s == 0.5 else 0.25, sr)
                    add_note(bass, when(beat0 + b + 0.5), beat_s * 0.45, notes[0] - 12, bass_inst,
                              0.35, rng, sr)
                arp = [0, 1, 2, 1] if rng.random() < 0.5 else [0, 2, 1, 2]
                for i in range(int(span * 4)):  # sixteenth-note arpeggio
                    note = notes[arp[i % 4]] + 12
                    add_note(music, when(beat0 + i * 0.25), beat_s * 0.2, note, lead, 0.16, rng, sr)
                for note in notes:  # pad
                    add_note(music, when(beat0), span * beat_s, note, accomp, 0.05, rng, sr)
            elif genre == "rock":
                for b in range(int(span)):  # kick on 1 and 3 (+ the and of 3), snare on 2 and 4
                    beat = beat0 + b
                    if b % 2 == 0:
                        hit(drums, kit["kick"], when(beat), 0.9, sr)
                    else:
                        hit(drums, kit["snare"], when(beat), 0.7, sr)
                    if b == 2:
                        hit(drums, kit["kick"], when(beat + 0.5), 0.7, sr)
                    for s in (0.0, 0.5):
                        hit(drums, kit["hat"], when(beat + s), 0.35, sr)
                for i in range(int(span * 2)):  # eighth-note power chords and bass
                    for note in notes:
                        add_note(music, when(beat0 + i * 0.5), beat_s * 0.5, note, accomp, 0.2, rng, sr)
                    add_note(bass, when(beat0 + i * 0.5), beat_s * 0.5, notes[0] - 12, bass_inst,
                              0.35, rng, sr)
            else:  # jazz: ride swing pattern, walking bass, comping, a lead line
                for b in range(int(span)):
                    beat = beat0 + b
                    hit(drums, kit["ride"], when(beat), 0.5, sr)
                    if b % 2 == 1:
                        hit(drums, kit["ride"], when(beat + 0.5), 0.35, sr)
                        hit(drums, kit["brush"], when(beat), 0.5, sr)
                    walk = notes[0] - 12 + int(rng.choice([0, 2, 4, 5, 7, 9, 10])) if b else notes[0] - 12
                    add_note(bass, when(beat), beat_s * 0.9, walk, bass_inst, 0.45, rng, sr)
                comp_beats = rng.choice([0.5, 1.5, 2.5, 3.0, 3.5], size=2, replace=False)
                for cb in comp_beats[comp_beats < span]:
                    for note in notes[1:]:
                        add_note(music, when(beat0 + cb), beat_s * 0.4, note + 12, accomp, 0.09, rng, sr)
                for i in range(int(span * 2)):
                    if rng.random() < 0.7:
                        mel = notes[int(rng.integers(len(notes)))] + 12 + int(rng.choice([0, 12]))
                        add_note(music, when(beat0 + i * 0.5), beat_s * 0.5, mel, lead, 0.15, rng, sr)

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
