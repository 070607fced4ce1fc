"""Findings are computed from their numbers, and the checker refuses a claim its numbers do not back."""
from __future__ import annotations

import json

import nbformat
import numpy as np
import pytest
from nbformat.v4 import new_code_cell, new_notebook, new_output

from workbench.analysis.findings import (
    Finding,
    check,
    check_notebook,
    depth_finding,
    layers_finding,
    verdict_finding,
)
from workbench.analysis.probes import SweepConfig, sweep

BACKED = dict(effect=0.41, effect_ci=[0.2, 0.6], random_p95=0.1, p_value=0.001, order_rate=0.9, collapsed_share=0.0,
              off_target={}, beyond_random=True, strength=0.5)
RANDOM_PUSH = dict(BACKED, effect=0.3, random_p95=0.38, p_value=0.2, order_rate=0.6, beyond_random=False)


@pytest.fixture(scope="module")
def deep_sweep():
    """Layer 1 reads the label, layer 0 and the input baseline hold noise; folds grouped by 'seed'."""
    rng = np.random.default_rng(0)
    y = np.repeat(["crescendo", "diminuendo"], 30)
    groups = np.tile(np.arange(30), 2)
    signal = rng.normal(size=(60, 6)) + 2.0 * (y == "crescendo")[:, None]
    return sweep({("resid", 0): rng.normal(size=(60, 6)), ("resid", 1): signal}, y, SweepConfig(folds=5), groups=groups,
                 baselines={"input": rng.normal(size=(60, 6))})


def executed(*outputs) -> nbformat.NotebookNode:
    """A notebook as nbclient leaves it, its one code cell holding `outputs`."""
    nb = new_notebook()
    nb.cells.append(new_code_cell("finding", outputs=list(outputs), execution_count=1))
    return nb


def printed(record: dict):
    return new_output("stream", name="stdout", text="some table\nFINDING: " + json.dumps(record) + "\n")


def shown(finding: Finding):
    return new_output("display_data", data=finding._repr_mimebundle_())


def test_depth_finding_from_a_sweep(deep_sweep):
    finding = depth_finding("dynamics", deep_sweep)
    assert finding.claim == "deeper_than_baseline" and check(finding) == []
    assert finding.sentence.startswith("dynamics: read deeper than the input baseline (a bag of codes): layer 1")
    assert "1 of 2 layers" in finding.sentence


def test_depth_claims_follow_the_numbers(deep_sweep):
    row = deep_sweep.best()
    at_input = dict(by_layer={0: 0.9}, by_layer_margin={0: 0.4}, best=0.9, best_layer=0, chance=0.5, control=0.5,
                    margin=0.4, input_baseline=0.85, input_margin=0.35, folds=5, grouping="seed")
    assert depth_finding("genre", at_input).claim == "not_deeper"
    flat = dict(at_input, by_layer={0: 0.6}, by_layer_margin={0: 0.1}, best=0.6, margin=0.1, input_baseline=0.5)
    assert depth_finding("mode", flat).claim == "not_read"
    assert row["layer"] == 1


def test_layers_finding(deep_sweep):
    finding = layers_finding("genre", deep_sweep)
    assert finding.claim == "some_layers" and "at 1 of 2 layers (1)" in finding.sentence and check(finding) == []


def test_verdict_finding_uses_the_verdict_sentence():
    finding = verdict_finding("genre", "rock", BACKED, "P(target)")
    assert finding.claim == "beyond_random" and finding.sentence.endswith("beyond random.") and check(finding) == []
    finding = verdict_finding("genre", "rock", RANDOM_PUSH, "P(target)")
    assert finding.claim == "not_beyond_random" and "not beyond random" in finding.sentence and check(finding) == []


@pytest.mark.parametrize("change", [dict(p_value=0.01), dict(order_rate=0.74), dict(collapsed_share=0.25),
                                    dict(buzzing_share=0.25), dict(level_only_effect=0.3)])
def test_each_bar_decides(change):
    assert verdict_finding("genre", "rock", dict(BACKED, **change, beyond_random=False)).claim == "not_beyond_random"


def test_a_backed_notebook_passes(deep_sweep):
    nb = executed(printed(verdict_finding("genre", "rock", BACKED).record()),
                  shown(depth_finding("dynamics", deep_sweep)))
    found, problems = check_notebook(nb)
    assert [f.kind for f in found] == ["verdict", "depth"] and problems == []


def test_a_claim_its_numbers_do_not_back_fails_the_notebook():
    """A notebook that prints "beyond random" over numbers a random push matches fails the check."""
    honest = verdict_finding("genre", "rock", RANDOM_PUSH, "P(target)").record()
    typed = honest["sentence"].split(": not beyond")[0] + ": beyond random."
    forged = dict(honest, claim="beyond_random", sentence=typed)
    _, problems = check_notebook(executed(printed(forged)))
    assert len(problems) == 2
    assert "claims 'beyond_random', its numbers say 'not_beyond_random'" in problems[0]
    assert "the sentence is not the one its numbers give" in problems[1]


def test_a_verdict_flag_its_numbers_contradict_fails():
    honest = verdict_finding("genre", "rock", RANDOM_PUSH)
    forged = Finding("verdict", "genre -> rock", "not_beyond_random", honest.sentence,
                     dict(honest.numbers, beyond_random=True))
    assert any("its verdict says beyond_random=True" in p for p in check(forged))


def test_a_typed_depth_claim_fails(deep_sweep):
    """The sentence a notebook once typed ("lives in the deeper layers") over numbers that say otherwise."""
    finding = depth_finding("dynamics", deep_sweep)
    flat = dict(finding.numbers, baseline_accuracy=finding.numbers["best"] - 0.05)
    forged = Finding("depth", "dynamics", "deeper_than_baseline", finding.sentence, flat)
    _, problems = check_notebook(executed(shown(forged)))
    assert any("claims 'deeper_than_baseline', its numbers say 'not_deeper'" in p for p in problems)


def test_inconsistent_numbers_fail(deep_sweep):
    finding = depth_finding("dynamics", deep_sweep)
    forged = Finding.from_record(dict(finding.record(), numbers=dict(finding.numbers, best=0.99)))
    assert any("is not the best of by_layer" in p for p in check(forged))


def test_an_unreadable_finding_is_a_problem():
    _, problems = check_notebook(executed(new_output("stream", name="stdout", text="FINDING: {not json\n")))
    assert problems and "could not be read back" in problems[0]
