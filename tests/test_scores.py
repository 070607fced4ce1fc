import numpy as np
import pytest

import workbench as wb
from workbench import scores
from workbench.errors import BadInputError, ModelNotAvailableError
from workbench.probes import LinearProbe


def test_probe_reading_matches_teacher_forcing(tiny):
    clips = wb.generate(tiny, ["jazz", "rock", "pop"], duration_s=0.2, seeds=[0, 1, 2]).clips
    acts = wb.teacher_force(tiny, [c.mono for c in clips], tiny.sample_rate_hz,
                            capture=wb.CaptureSpec(layers=(2,), pooling="mean"))[("resid", 2)]
    probe = LinearProbe().fit(np.r_[acts, acts + 0.01], ["a", "b", "c"] * 2)
    probs = scores.probe_reading(tiny, clips, probe, layer=2)
    np.testing.assert_allclose(probs, probe.predict_proba(acts), atol=1e-4)
    expected = list(probe.predict(acts))
    rows = scores.steering_success(tiny, clips, "b", probe=probe, layer=2, judge=False, clap=False)
    assert [r["probe_pred"] for r in rows] == expected and rows[1]["target"] == "b"
    summary = scores.summarize(rows)
    assert abs(summary["probe_hit_rate"] - expected.count("b") / 3) < 1e-9
    assert abs(summary["probe_p_target_mean"] - probs[:, 1].mean()) < 1e-6
    with pytest.raises(BadInputError, match="not one of the probe's classes"):
        scores.steering_success(tiny, clips, "polka", probe=probe, layer=2, judge=False, clap=False)
    with pytest.raises(BadInputError, match="layer="):
        scores.steering_success(tiny, clips, "a", probe=probe, judge=False, clap=False)


def test_judge_reading_on_synthetic_genres():
    synth = pytest.importorskip("workbench.toy.synth")
    judge_mod = pytest.importorskip("workbench.toy.judge")
    try:
        judge_mod.load_judge()
    except FileNotFoundError:
        pytest.skip("the teaching model's judge parameters are not fitted yet")
    genre = synth.GENRES[0]
    clip = wb.Clip(synth.synth_clip(genre, 7, 2.0, 32000), 32000)
    classes, probs = scores.judge_reading([clip])
    assert probs.shape == (1, len(classes)) and abs(probs.sum() - 1) < 1e-6
    rows = scores.steering_success(None, [clip], genre, clap=False)
    assert rows[0]["judge_pred"] == genre and rows[0]["judge_p_target"] > 0.5


def test_clap_skips_cleanly_without_local_weights(tmp_path, monkeypatch):
    monkeypatch.setenv(scores.CLAP_ENV, str(tmp_path / "no-clap-here"))
    clip = wb.Clip(np.zeros(3200, np.float32), 32000)
    assert scores.clap_reading([clip], ["jazz"]) is None
    with pytest.raises(ModelNotAvailableError, match=scores.CLAP_ENV):
        scores.clap_reading([clip], ["jazz"], strict=True)
    assert scores.steering_success(None, [clip], "jazz", judge=False) == [dict(clip=0, target="jazz")]
