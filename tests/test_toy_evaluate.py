"""`python -m workbench.toy evaluate`: the reduced protocol in CI (same code, same keys), and the committed
evaluation.json made from the shipped weights."""
import json

import pytest

VERDICT_KEYS = {"effect", "effect_ci", "random_p95", "p_value", "order_rate", "collapsed_share", "buzzing_share",
                "off_target", "beyond_random", "strength"}


def _check_steer(m):
    from workbench.toy.synth_v2 import ORDER_FACTORS
    from workbench.toy.synth_v3 import FACTORS  # v2's seven and the bass line (synth_v3's clips)

    assert set(m["steer"]) == set(FACTORS) == set(m["concepts"])  # genre included
    # states pushed the paper's way along class means; orders ramped along their course, their constant pushes kept
    assert {c: (s["push"], s["direction"]) for c, s in m["steer"].items()} == {
        c: ("ramp", "course") if c in ORDER_FACTORS else ("constant", "class_means") for c in FACTORS}
    assert set(m["steer_constant"]) == set(ORDER_FACTORS)
    assert all(s["push"] == "constant" for s in m["steer_constant"].values())
    assert m["beyond_random_concepts"] == [c for c in FACTORS if m["steer"][c]["beyond_random_all"]]
    for concept, steer in [*m["steer"].items(), *m["steer_constant"].items()]:
        assert set(steer["verdict"]) == set(FACTORS[concept]), concept  # every target, both poles
        for target, verdict in steer["verdict"].items():
            assert VERDICT_KEYS <= set(verdict), (concept, target)
            assert verdict["strength"] in steer["strengths_x_mean_norm"]
            assert set(verdict["off_target"]) == set(FACTORS) - {concept}
            lo, hi = verdict["effect_ci"]
            assert lo <= verdict["effect"] <= hi
            level_explains = verdict.get("level_only_effect", float("-inf")) > 0.5 * verdict["effect"]
            assert verdict["beyond_random"] == (verdict["p_value"] < 0.01 and verdict["order_rate"] >= 0.75
                                                and verdict["collapsed_share"] <= 0.2
                                                and verdict["buzzing_share"] <= 0.2 and not level_explains)
        assert steer["beyond_random_all"] == all(v["beyond_random"] for v in steer["verdict"].values())
        assert steer["mean_residual_norm"] > 0


@pytest.mark.slow
def test_the_reduced_protocol_reports_every_verdict(tmp_path, capsys):
    from workbench.analysis.teaching.evaluate import weights_sha256
    from workbench.toy.__main__ import main

    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--quick", "--json", str(out), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "judge_accuracy_generated" in printed and "beyond random" in printed
    m = json.loads(out.read_text())
    assert m["quick"] and m["weights_sha256"] == weights_sha256()
    _check_steer(m)
    assert 0.0 <= m["comb_share_generated_median"] <= 1.0
    # code diversity of generations next to the codec's round trips of clean clips (issue 30's bar)
    assert 1.0 <= m["distinct_codes_reconstructed_median"] <= m["distinct_codes_generated_median"] * 10
    assert 0.0 <= m["repeat_rate_reconstructed_median"] < 1.0 and "distinct_codes_reconstructed" in printed
    assert "depth_bar_met" in m and "deep_concepts" in m  # at --quick size (10 clips a genre) the bar is noise
    from workbench.toy.synth_v2 import FACTORS
    assert set(m["prompt_following"]) == set(FACTORS) and "follow each factor word" in printed
    for concept, f in m["prompt_following"].items():
        assert set(f["by_target"]) == set(FACTORS[concept]) and -1.0 <= f["margin"] <= 1.0


def test_the_committed_evaluation_was_made_from_the_shipped_weights():
    from workbench.analysis.teaching.evaluate import weights_sha256
    from workbench.toy import WEIGHTS_DIR

    m = json.loads((WEIGHTS_DIR / "evaluation.json").read_text())
    assert m["weights_sha256"] == weights_sha256(), (
        "weights/evaluation.json is not from the shipped weights: rerun `python -m workbench.toy evaluate "
        "--json workbench/toy/weights/evaluation.json`")
    assert not m["quick"]
    _check_steer(m)


def test_the_model_card_prints_the_committed_evaluation():
    """The card's evaluation table is `format_table` of weights/evaluation.json, not a typed copy."""
    from workbench.analysis.teaching.evaluate import format_table
    from workbench.toy import WEIGHTS_DIR

    table = format_table(json.loads((WEIGHTS_DIR / "evaluation.json").read_text()))
    card = (WEIGHTS_DIR.parent / "MODEL_CARD.md").read_text()
    assert table in card, ("the model card's evaluation table is not weights/evaluation.json's: paste the table "
                           "`python -m workbench.toy evaluate` printed (or format_table of the JSON) into it")


def test_prompt_following_prompts_name_one_value_each_and_its_control_can_fail():
    from workbench.analysis.teaching.prompt_following import factor_prompts, following
    from workbench.errors import BadInputError
    from workbench.toy.synth_v2 import FACTORS

    for concept in FACTORS:
        prompts, targets, seeds = factor_prompts(concept, words=2, seeds=(0, 1))
        assert [targets.count(t) for t in FACTORS[concept]] == [16] * len(FACTORS[concept])  # the same per target
        assert len(set(zip(prompts, seeds))) == len(prompts)  # no clip twice
    prompts, targets, _ = factor_prompts("dynamics", words=1, seeds=(0,))
    assert prompts[0] == "classical music, crescendo" and targets[0] == "crescendo"
    # a reader that calls every clip one class, or a model that ignores the word, has no margin
    assert following(["fast"] * 6, ["slow", "medium", "fast"] * 2, FACTORS["tempo"])["margin"] == 0.0
    assert following(["slow", "medium", "fast"] * 2, ["slow", "medium", "fast"] * 2, FACTORS["tempo"])["margin"] == 1.0
    with pytest.raises(BadInputError, match="concept"):
        factor_prompts("loudness")


@pytest.mark.slow
def test_the_shipped_model_follows_its_genre_words_by_the_prompt_following_command(tmp_path, capsys):
    """The command on the shipped model, reduced: genre words are followed (the clean genre reader hears them)."""
    from workbench.analysis.teaching.prompt_following import _main
    from workbench.toy.synth_v2 import FACTORS

    out = tmp_path / "following.json"
    assert _main(["--words", "1", "--seeds", "0", "--json", str(out)]) == 0
    result = json.loads(out.read_text())
    assert set(result) == set(FACTORS) and "margin" in capsys.readouterr().out
    assert result["genre"]["margin"] >= 0.5, result["genre"]


def test_order_verdicts_refuse_a_state_and_pairs_never_repeat_across_seeds():
    from workbench.analysis.teaching.evaluate import order_verdicts, pair_seeds
    from workbench.errors import BadInputError

    with pytest.raises(BadInputError, match="not order concepts: pass some of contour, dynamics, brightness"):
        order_verdicts(None, {"dynamics": 1, "tempo": 3})
    assert pair_seeds(0, 8) == tuple(range(100, 108))  # the committed evaluation's pairs
    assert not set(pair_seeds(0, 16)) & set(pair_seeds(1, 16))  # seed 1 is a replication on other pairs
