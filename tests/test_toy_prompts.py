"""Training prompts of the teaching model: what they name and what they never name."""

import re

import numpy as np
import pytest

from workbench.toy.prompts import EVAL_PROMPTS, FACTOR_WORDS, SCENE_WORDS, factor_prompt
from workbench.toy.synth_v2 import GENRES, clip_factors


def _words(text: str) -> set[str]:
    return set(re.findall(r"[a-z\-]+", text.lower()))


def _has(prompt: str, phrase: str) -> bool:
    return re.search(rf"(?<![a-z]){re.escape(phrase)}(?![a-z])", prompt) is not None


@pytest.fixture(scope="module")
def prompts():
    rng = np.random.default_rng(0)
    clips = [clip_factors(g, i) for i in range(150) for g in GENRES]
    return [(f, factor_prompt(f, rng)) for f in clips]


def test_v2_training_prompts_cover_every_word_of_the_evaluation_prompts(prompts):
    # Evaluation prompts ("hard rock with distorted guitars") are v1-style; a word the decoder never
    # saw in training only adds noise to the condition.
    seen = set().union(*(_words(p) for _, p in prompts))
    missing = {w for ps in EVAL_PROMPTS.values() for p in ps for w in _words(p)} - seen
    assert not missing, f"evaluation words never in a v2 training prompt: {sorted(missing)}"


def test_v2_training_prompts_never_name_another_value_of_a_factor(prompts):
    for factors, prompt in prompts:
        for name, values in FACTOR_WORDS.items():
            for value, words in values.items():
                if value == factors[name]:
                    continue
                own = FACTOR_WORDS[name][factors[name]]
                clash = [w for w in words if _has(prompt, w) and not any(w in o for o in own)]
                assert not clash, f"{prompt!r} names {name}={value} ({clash}) on a {factors[name]} clip"


def test_scene_words_belong_to_the_clip_genre_and_name_no_lead():
    leads = {w for ws in FACTOR_WORDS["lead"].values() for w in ws}
    for words in SCENE_WORDS.values():
        assert words and not set(words) & leads
    rng = np.random.default_rng(1)
    f = clip_factors("rock", 0)
    texts = [factor_prompt(f, rng, keep={"scene": 1.0}) for _ in range(40)]
    assert all(any(_has(t, w) for w in SCENE_WORDS["rock"]) for t in texts)
    assert not any(_has(t, w) for t in texts for w in SCENE_WORDS["jazz"] if w not in SCENE_WORDS["rock"])
