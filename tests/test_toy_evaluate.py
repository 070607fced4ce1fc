"""The shipped teaching model meets its quality bars, measured by `python -m workbench.toy evaluate`."""
import json

import numpy as np
import pytest


@pytest.mark.slow
def test_shipped_teaching_model_meets_its_bars(tmp_path, capsys):
    from workbench.toy.__main__ import main
    from workbench.toy.evaluate import TARGETS

    out = tmp_path / "metrics.json"
    assert main(["evaluate", "--json", str(out), "--device", "cpu"]) == 0
    assert "judge_accuracy_generated" in capsys.readouterr().out  # the table is printed
    m = json.loads(out.read_text())
    missed = {k: m[k] for k, bar in TARGETS.items() if m[k] < bar}
    assert not missed, f"bars missed: {missed}"
    assert m["steer_flip_rate_zero"] <= 0.10
    assert set(m["steer_flip_rate_by_strength"]) == {"0", "0.25", "0.5", "1", "2"}
    by_target = m["steer_flip_rate_by_target"]
    assert set(by_target) == {"classical", "electronic", "rock", "jazz"}
    for s, rate in m["steer_flip_rate_by_strength"].items():  # equal clips per target: the mean of the targets
        assert rate == pytest.approx(np.mean([by_target[t][s] for t in by_target]))
    assert m["n_clips"]["generated"] == 48 and m["n_clips"]["steered_per_strength"] == 48
    if m["synth_version"] == 2:  # teaching model v2: where each concept lives, and steering it
        from workbench.toy.synth_v2 import FACTORS
        assert m["concepts"] == list(FACTORS) and set(m["probe_profile"]) == set(FACTORS)
        assert set(m["steer"]) == set(FACTORS) - {"genre"}
        for profile in m["probe_profile"].values():
            assert {"by_layer", "input_baseline", "best", "chance"} <= set(profile)
        for steer in m["steer"].values():
            assert {"reader", "flip_rate_best", "flip_rate_zero", "by_strength"} <= set(steer)
        assert m["depth_bar_met"], f"deep concepts: {m['deep_concepts']} (need 2)"
        assert m["steer_bar_met"], f"steerable concepts: {m['steerable_concepts']} (need 2)"
