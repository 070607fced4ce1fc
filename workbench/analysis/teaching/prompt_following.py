"""Does the teaching model follow each factor word? Generations from prompts that name one value, read by clean readers.

For every concept of `workbench.toy.synth_v2.FACTORS` and every value (target) of it, clips are generated from
genre prompts that name that value (`workbench.toy.prompts.factor_phrase`: "fast jazz music", "rock music,
crescendo"; genre: "bebop music"), `words` words per target x the four genres x `seeds`, and read by
`workbench.toy.clean_readers` (fitted on clean synthesiser audio, or plain DSP). Per target:

- ``hit``: the share of its own prompts' clips that the reader calls the target;
- ``hit_other_prompts``: the share of the *other* targets' prompts' clips that the reader calls the target. It is
  the control: a model that ignores the word, or a reader that calls most clips one class, reads the same there.

Per concept, ``margin`` is the mean over targets of ``hit - hit_other_prompts`` (0: the word does nothing; a
model that always obeys it reaches 1). Steering along a concept's direction asks the model for what its prompt
words would: a concept whose words the model does not follow is unlikely to steer beyond random either (the
teaching model v3 card has both).

Example (a rough look in a minute):
    >>> import workbench as wb
    >>> from workbench.analysis.teaching.prompt_following import prompt_following
    >>> following = prompt_following(wb.load_model(), words=1, seeds=(0,))  # doctest: +SKIP
    >>> following["dynamics"]["margin"]  # doctest: +SKIP

The command: ``python -m workbench.analysis.teaching.prompt_following [--weights DIR] [--json PATH]``.
"""
from __future__ import annotations

import dataclasses

import numpy as np

import workbench as wb
from workbench import validation
from workbench.errors import BadInputError
from workbench.runtime.settings import GenerationSettings
from workbench.toy import clean_readers
from workbench.toy.prompts import FACTOR_WORDS, GENRE_WORDS, factor_phrase
from workbench.toy.synth_v2 import FACTORS, GENRES

PROMPT_FOLLOWING_SEEDS = (2000, 2001)  # 4 genres x 2 words x 2 seeds = 16 clips per target
PROMPT_FOLLOWING_WORDS = 2


def factor_prompts(concept: str, words: int = PROMPT_FOLLOWING_WORDS, seeds=PROMPT_FOLLOWING_SEEDS):
    """(prompts, target of each, seed of each) naming each value of `concept` in its first `words` words.
    Genre prompts name the genre alone, with len(GENRES) x as many seeds (the same count per target)."""
    if concept not in FACTORS:
        raise BadInputError(f"{concept!r} is not a teaching-model concept: choose one of {', '.join(FACTORS)}")
    words = validation.positive_int(words, "words")
    seeds = validation.seeds(seeds)
    prompts, targets, seed_of = [], [], []
    for target in FACTORS[concept]:
        if concept == "genre":
            for w in GENRE_WORDS[target][:words]:
                for k in range(len(GENRES)):
                    for s in seeds:
                        prompts.append(factor_phrase("genre", w, target))
                        targets.append(target)
                        seed_of.append(s + 1000 * k)
            continue
        for g in GENRES:
            for w in FACTOR_WORDS[concept][target][:words]:
                for s in seeds:
                    prompts.append(factor_phrase(concept, w, g))
                    targets.append(target)
                    seed_of.append(s)
    return prompts, targets, seed_of


def following(predicted, targets, classes) -> dict:
    """The hit rates and margin of one concept from the reader's class per clip and each clip's prompted target.

        >>> following(["a", "a", "b", "b"], ["a", "a", "b", "b"], ("a", "b"))["margin"]
        1.0
        >>> following(["a", "a", "a", "a"], ["a", "a", "b", "b"], ("a", "b"))["margin"]
        0.0
    """
    predicted, targets = np.asarray(predicted), np.asarray(targets)
    by_target = {}
    for t in classes:
        own, other = targets == t, targets != t
        by_target[t] = dict(hit=float(np.mean(predicted[own] == t)) if own.any() else float("nan"),
                            hit_other_prompts=float(np.mean(predicted[other] == t)) if other.any() else float("nan"),
                            n_clips=int(own.sum()))
    margins = [v["hit"] - v["hit_other_prompts"] for v in by_target.values() if np.isfinite(v["hit"])]
    return dict(by_target=by_target, margin=float(np.mean(margins)) if margins else float("nan"),
                chance=1.0 / len(classes))


def prompt_following(handle, concepts=tuple(FACTORS), words: int = PROMPT_FOLLOWING_WORDS,
                     seeds=PROMPT_FOLLOWING_SEEDS, settings: GenerationSettings | None = None,
                     progress: bool = False) -> dict:
    """{concept: `following`} for a teaching model (trained on `workbench.toy.synth_v2`).

    settings: how the clips are generated (default 4 s, guidance 3; its seeds are this protocol's)."""
    settings = GenerationSettings(duration_s=4.0, guidance_scale=3.0) if settings is None else \
        validation.config_object(settings, GenerationSettings, "settings", "GenerationSettings(duration_s=4.0)")
    out = {}
    for concept in concepts:
        prompts, targets, seed_of = factor_prompts(concept, words, seeds)
        res = wb.generate(handle, prompts, dataclasses.replace(settings, seeds=tuple(seed_of)), progress=progress)
        values = clean_readers.read_values(concept, [c.mono for c in res.clips], res.clips[0].sample_rate_hz)
        out[concept] = following(clean_readers.predict(concept, values), targets, FACTORS[concept])
    return out


def format_following(result: dict) -> str:
    """One line per concept: each target's hit on its own prompts / on the other targets' prompts, and the margin."""
    lines = [f"{'concept':10} {'hit on own prompts / on the others, per target':66} margin"]
    for concept, f in result.items():
        hits = " ".join(f"{t} {v['hit']:.2f}/{v['hit_other_prompts']:.2f}" for t, v in f["by_target"].items())
        lines.append(f"{concept:10} {hits:66} {f['margin']:+.2f}")
    return "\n".join(lines)


def _main(argv=None) -> int:
    import argparse
    import json

    parser = argparse.ArgumentParser(prog="python -m workbench.analysis.teaching.prompt_following",
                                     description="does the teaching model follow each factor word?")
    parser.add_argument("--weights", default=None, help="model folder (default: the shipped teaching model)")
    parser.add_argument("--words", type=int, default=PROMPT_FOLLOWING_WORDS)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(PROMPT_FOLLOWING_SEEDS))
    parser.add_argument("--json", default=None, help="write the result here")
    args = parser.parse_args(argv)
    result = prompt_following(wb.load_model(args.weights, device="cpu"), words=args.words, seeds=tuple(args.seeds))
    print(format_following(result))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(_main())
