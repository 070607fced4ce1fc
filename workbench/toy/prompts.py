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

from workbench.toy.synth_v2 import FACTORS, clip_factors

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
# Teaching model v2 (workbench.toy.synth_v2): mood words that carry no factor (mode and tempo have
# words of their own below).
NEUTRAL_MOOD_WORDS = ["dreamy", "warm", "smooth", "raw", "clean", "lo-fi", "intimate", "polished", "vintage", "modern"]
TEMPO_WORDS = ["slow", "fast", "upbeat", "mid-tempo", "driving", "laid-back", "lively"]
# Words for each value of each factor of `workbench.toy.synth_v2.FACTORS` (genre: GENRE_WORDS).
FACTOR_WORDS = {
    "tempo": {"slow": ["slow", "laid-back", "unhurried", "slow-paced"],
              "medium": ["mid-tempo", "moderate tempo", "medium tempo", "walking pace"],
              "fast": ["fast", "upbeat", "uptempo", "quick", "driving"]},
    "mode": {"major": ["major", "major key", "happy", "joyful"],
             "minor": ["minor", "minor key", "sad", "melancholic"]},
    "lead": {"piano": ["piano", "keys", "grand piano"], "flute": ["flute", "wooden flute", "flutes"],
             "sax": ["sax", "saxophone", "tenor sax"], "synth": ["synth lead", "synthesizer", "lead synth"]},
    "contour": {"rising": ["rising melody", "ascending lines", "upward runs", "climbing scales"],
                "falling": ["falling melody", "descending lines", "downward runs", "tumbling scales"]},
    "dynamics": {"crescendo": ["crescendo", "getting louder", "building up", "swelling"],
                 "diminuendo": ["diminuendo", "getting quieter", "fading out", "dying away"]},
    "brightness": {"brightening": ["getting brighter", "opening filter", "filter sweep up", "brightening"],
                   "darkening": ["getting darker", "closing filter", "filter sweep down", "darkening"]},
}
# Teaching model v2: the genre's scene (its accompaniment, drums and feel in `synth_v2`) in v1's
# words, minus the words that name a lead instrument, so that v1-style prompts ("hard rock with
# distorted guitars", `EVAL_PROMPTS`) stay in the training distribution. No word here names a factor
# other than genre.
SCENE_WORDS = {g: [w for w in ws if w not in ("piano", "flute", "saxophone", "synthesizer")]
               for g, ws in INSTRUMENT_WORDS.items()}
SCENE_MOODS = ["calm", "energetic", "relaxed", "intense", "dreamy", "uplifting", "moody"]
# Chance that a training prompt names each factor (factor dropout; the whole prompt is dropped
# separately, by the recipe's cond_dropout).
FACTOR_KEEP = {"genre": 0.85, "scene": 0.35, "tempo": 0.5, "mode": 0.5, "lead": 0.5, "contour": 0.4, "dynamics": 0.4,
               "brightness": 0.4}
NAMED_FACTORS = tuple(f for f in FACTORS if f != "genre")  # the non-genre factors a prompt can name


def factor_keep(chance: float | None) -> dict:
    """`FACTOR_KEEP` with every non-genre factor named with `chance` (None: `FACTOR_KEEP` itself).

        >>> factor_keep(0.8)["dynamics"], factor_keep(0.8)["genre"]
        (0.8, 0.85)
    """
    if chance is None:
        return dict(FACTOR_KEEP)
    chance = float(chance)
    if not 0.0 <= chance <= 1.0:
        raise ValueError(f"factor_keep={chance!r}: a chance of naming a factor, in [0, 1] (None: FACTOR_KEEP)")
    return {k: (chance if k in NAMED_FACTORS else v) for k, v in FACTOR_KEEP.items()}


def factor_phrase(concept: str, word: str, genre: str) -> str:
    """A genre prompt that names one factor value: "fast jazz music", "jazz music with a flute lead",
    "jazz music, crescendo" (genre: "jazz music"), the wording of `factor_prompt`'s phrases.

        >>> factor_phrase("tempo", "fast", "jazz"), factor_phrase("dynamics", "crescendo", "rock")
        ('fast jazz music', 'rock music, crescendo')
    """
    if concept == "genre":
        return f"{word} music"
    if concept in ("tempo", "mode"):
        return f"{word} {genre} music"
    if concept == "lead":
        return f"{genre} music with a {word} lead"
    return f"{genre} music, {word}"


# the factors named after the main phrase ("jazz with a sax lead, crescendo, getting darker")
_TAIL_FACTORS = ("contour", "dynamics", "brightness")
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


def factor_prompt(factors: dict, rng: np.random.Generator, keep: dict | None = None) -> str:
    """A training prompt naming a random subset of a clip's factors in varied words.

    factors: a `workbench.toy.synth_v2.clip_factors` dict (teaching model v2). keep: chance per factor of naming it.

    Example:
        >>> f = dict(genre="jazz", tempo="fast", mode="minor", lead="sax", contour="rising",
        ...          dynamics="crescendo", brightness="darkening")
        >>> factor_prompt(f, np.random.default_rng(0), keep=dict.fromkeys(f, 1.0))  # doctest: +SKIP
        'a uptempo minor key bebop tune with saxophone, climbing scales'
    """
    keep = FACTOR_KEEP if keep is None else keep

    def word(name: str) -> str | None:
        if rng.random() >= keep.get(name, 0.5):
            return None
        options = GENRE_WORDS[factors["genre"]] if name == "genre" else FACTOR_WORDS[name][factors[name]]
        return str(rng.choice(options))

    genre, tempo, mode, lead = (word(n) for n in ("genre", "tempo", "mode", "lead"))
    tails = [w for w in (word(n) for n in _TAIL_FACTORS if n in factors) if w]
    scene = str(rng.choice(SCENE_WORDS[factors["genre"]])) if rng.random() < keep.get("scene", 0.0) else None
    mood = str(rng.choice(NEUTRAL_MOOD_WORDS + SCENE_MOODS)) if rng.random() < 0.25 else None
    noun = str(rng.choice(["music", "tune", "piece", "track", "song", ""]))
    head = " ".join(w for w in (mood, tempo, mode, genre, noun) if w)
    if not head:
        head = str(rng.choice(["music", "a tune", "a piece"]))
    parts = [head]
    if lead:
        parts.append(str(rng.choice([f"with {lead}", f"with a {lead} lead", f"featuring {lead}"])))
    if scene:
        parts.append(f"and {scene}" if lead else f"with {scene}")
    prompt = " ".join(parts)
    for tail in tails:
        prompt = f"{prompt}, {tail}" if rng.random() < 0.6 else f"{tail}, {prompt}"
    return prompt


def prompt_corpus(n_per_genre: int = 400, seed: int = 0, factors: bool = False) -> list[str]:
    """Many prompts (all genres) plus every word list, for training the tokenizer.

    factors: also the factor prompts and words of teaching model v2 (`factor_prompt`)."""
    rng = np.random.default_rng(seed)
    corpus = [random_prompt(g, rng) for _ in range(n_per_genre) for g in GENRE_WORDS]
    corpus += [p for ps in EVAL_PROMPTS.values() for p in ps]
    words = [w for ws in (*GENRE_WORDS.values(), *INSTRUMENT_WORDS.values(), MOOD_WORDS, TEMPO_WORDS)
             for w in ws]
    if factors:
        corpus += [factor_prompt(clip_factors(g, i), rng) for i in range(n_per_genre) for g in GENRE_WORDS]
        words += NEUTRAL_MOOD_WORDS + SCENE_MOODS
        words += [w for values in FACTOR_WORDS.values() for ws in values.values() for w in ws]
    return corpus + words
