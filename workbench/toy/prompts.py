"""Prompt wording for the teaching model: varied training prompts and fixed evaluation prompts.

Example:
    >>> import numpy as np
    >>> from workbench.toy.prompts import random_prompt, EVAL_PROMPTS
    >>> random_prompt("jazz", np.random.default_rng(0))  # doctest: +SKIP
    'relaxed bebop with upright bass and brushes'
    >>> EVAL_PROMPTS["rock"][0]
    'rock music'
"""

from __future__ import annotations

import numpy as np

GENRE_WORDS = {
    "classical": ["classical", "orchestral", "baroque", "symphonic", "chamber music", "romantic classical"],
    "electronic": ["electronic", "techno", "house", "edm", "electro", "synth dance"],
    "rock": ["rock", "hard rock", "punk rock", "guitar rock", "grunge", "classic rock"],
    "jazz": ["jazz", "swing", "bebop", "smooth jazz", "jazz trio", "cool jazz"],
}
INSTRUMENT_WORDS = {
    "classical": ["strings", "violin", "piano", "flute", "cello", "an orchestra", "a string quartet"],
    "electronic": ["synthesizer", "a drum machine", "synth bass", "an arpeggiator", "a four on the floor kick"],
    "rock": ["electric guitar", "distorted guitars", "drums", "bass guitar", "power chords"],
    "jazz": ["saxophone", "upright bass", "piano", "vibraphone", "ride cymbal", "brushes"],
}
MOOD_WORDS = ["calm", "energetic", "happy", "melancholic", "dark", "uplifting", "relaxed", "intense",
              "dreamy", "bright", "moody", "cheerful"]
TEMPO_WORDS = ["slow", "fast", "upbeat", "mid-tempo", "driving", "laid-back", "lively"]
_TEMPLATES = [
    "{genre}",
    "{genre} music",
    "{mood} {genre}",
    "{tempo} {genre} music",
    "{mood} {genre} with {inst}",
    "a {tempo} {genre} track with {inst}",
    "{genre} music featuring {inst} and {inst2}",
    "{inst} and {inst2}, {genre}, {mood}",
    "a {mood} {tempo} {genre} song",
    "{genre} with {inst}",
]
# Fixed wording used by `python -m workbench.toy evaluate` (also handy in notebooks).
EVAL_PROMPTS = {
    "classical": ["classical music", "calm orchestral music with strings", "a slow piano piece, classical"],
    "electronic": ["electronic music", "energetic techno with a drum machine", "house music with synth bass"],
    "rock": ["rock music", "hard rock with distorted guitars", "an energetic rock song with drums"],
    "jazz": ["jazz music", "relaxed jazz with saxophone", "swing with upright bass and brushes"],
}


def random_prompt(genre: str, rng: np.random.Generator) -> str:
    """One training prompt for `genre` (random template, genre synonym, instruments, mood, tempo)."""
    if genre not in GENRE_WORDS:
        raise ValueError(f"unknown genre {genre!r}: choose one of {', '.join(GENRE_WORDS)}")
    inst, inst2 = rng.choice(INSTRUMENT_WORDS[genre], size=2, replace=False)
    template = _TEMPLATES[int(rng.integers(len(_TEMPLATES)))]
    return template.format(genre=rng.choice(GENRE_WORDS[genre]), inst=inst, inst2=inst2,
                           mood=rng.choice(MOOD_WORDS), tempo=rng.choice(TEMPO_WORDS))


def prompt_corpus(n_per_genre: int = 400, seed: int = 0) -> list[str]:
    """Many prompts (all genres) plus every word list, for training the tokenizer."""
    rng = np.random.default_rng(seed)
    corpus = [random_prompt(g, rng) for _ in range(n_per_genre) for g in GENRE_WORDS]
    corpus += [p for ps in EVAL_PROMPTS.values() for p in ps]
    words = [w for ws in (*GENRE_WORDS.values(), *INSTRUMENT_WORDS.values(), MOOD_WORDS, TEMPO_WORDS)
             for w in ws]
    return corpus + words
