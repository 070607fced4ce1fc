"""The data of teaching model v3.1: `workbench.toy.synth_v2`'s clips with an eighth factor, ``bass``.

``bass`` (present / absent): whether the genre's bass line plays (classical cellos, the electronic square
bass, the rock bass guitar, jazz's walking upright bass). Drawn from its own stream, independently of genre and
of the other factors, so a clip of seed s with the bass present is v2's clip of seed s, note for note, and the
same clip without it differs by its bass line alone (the mix is normalised to the same peak afterwards). It is a
state of the whole clip that the codec keeps in part (its bass band: `clean_readers`' ``bass`` reading) and that
no other factor touches: the drums stay, and the accompaniment's chords keep their roots.

Why a bass line: the v3 teaching model holds genre, dynamics and brightness, but tempo (which its decoder does not
hold), mode, lead and contour (whose pitch the codec loses) cannot be steered. The bass is what the codec keeps
best (`scripts/codec_pitch_check.py`) and a thing a musician adds or takes away.

Example:
    >>> from workbench.toy.synth_v3 import FACTORS, clip_factors, synth_clip
    >>> FACTORS["bass"]
    ('present', 'absent')
    >>> f = clip_factors("jazz", 3)
    >>> sorted(f)
    ['bass', 'brightness', 'contour', 'dynamics', 'genre', 'lead', 'mode', 'tempo', 'tempo_bpm', 'tonic']
    >>> synth_clip("jazz", 3, bass="absent").shape
    (128000,)
"""
from __future__ import annotations

import numpy as np

from workbench.toy import synth_v2
from workbench.toy.synth_v2 import GENRES, SAMPLE_RATE_HZ

BASS: tuple[str, ...] = ("present", "absent")
FACTORS: dict[str, tuple[str, ...]] = {**synth_v2.FACTORS, "bass": BASS}


def clip_factors(genre: str, seed: int, **overrides) -> dict:
    """`synth_v2.clip_factors` plus ``bass``, drawn from its own stream (overrides as there, and ``bass=``)."""
    bass = overrides.pop("bass", None)
    factors = synth_v2.clip_factors(genre, seed, **overrides)
    if bass is None:
        stream = np.random.default_rng([GENRES.index(genre), int(seed) & 0xFFFFFFFF, 104729, sum(map(ord, "bass"))])
        bass = BASS[int(stream.integers(len(BASS)))]
    if bass not in BASS:
        raise ValueError(f"unknown bass {bass!r}: choose one of {', '.join(BASS)}")
    factors["bass"] = bass
    return factors


def synth_clip(genre: str, seed: int, duration_s: float = 4.0, sample_rate_hz: int = SAMPLE_RATE_HZ,
               **overrides) -> np.ndarray:
    """One mono clip (float32, peak <= 1): `synth_v2.synth_clip` with this module's factors."""
    synth_v2._check_clip_args(duration_s, sample_rate_hz)
    return synth_v2._render(clip_factors(genre, seed, **overrides), seed, duration_s, sample_rate_hz)


def synth_dataset(n_per_genre: int, seed: int = 0, duration_s: float = 4.0, sample_rate_hz: int = SAMPLE_RATE_HZ,
                  genres: tuple[str, ...] = GENRES, with_factors: bool = False):
    """`synth_v2.synth_dataset` (the same seeds, interleaved genres) with this module's factors.

    Example:
        >>> audio, labels, factors = synth_dataset(2, seed=1, with_factors=True)
        >>> audio.shape, [f["bass"] for f in factors[:4]]
        ((8, 128000), ['absent', 'present', 'present', 'present'])
    """
    return synth_v2._dataset(n_per_genre, seed, duration_s, sample_rate_hz, genres, with_factors, clip_factors)
