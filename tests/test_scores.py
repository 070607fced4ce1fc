import numpy as np
import pytest

import workbench as wb
from workbench.analysis import scores
from workbench.analysis.probes import LinearProbe
from workbench.errors import BadInputError, ModelNotAvailableError

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_probe_reading_matches_teacher_forcing(tiny):
    clips = wb.generate(tiny, ["jazz", "rock", "pop"], duration_s=0.2, seeds=[0, 1, 2]).clips
    acts = wb.teacher_force(tiny, [c.mono for c in clips], tiny.sample_rate_hz,
                            capture=wb.CaptureSpec(layers=(2,), pooling="mean"))[("resid", 2)]
    probe = LinearProbe().fit(np.r_[acts, acts + 0.01], ["a", "b", "c"] * 2)
    probs = scores.probe_reading(tiny, clips, probe, layer=2)
    np.testing.assert_allclose(probs, probe.predict_proba(acts), atol=1e-4)
    expected = list(probe.predict(acts))
    readers = scores.Readers(judge=False, probe=probe, probe_layer=2, clap=False)
    rows = scores.steering_success(tiny, clips, "b", readers)
    assert [r["probe_pred"] for r in rows] == expected and rows[1]["target"] == "b"
    summary = scores.summarize(rows)
    assert abs(summary["probe_hit_rate"] - expected.count("b") / 3) < 1e-9
    assert abs(summary["probe_p_target_mean"] - probs[:, 1].mean()) < 1e-6
    with pytest.raises(BadInputError, match="not one of the probe's classes"):
        scores.steering_success(tiny, clips, "polka", readers)
    with pytest.raises(BadInputError, match="needs probe_layer="):
        scores.Readers(judge=False, probe=probe, clap=False)
    with pytest.raises(BadInputError, match="not a Readers: pass e.g. Readers"):
        scores.steering_success(tiny, clips, "a", dict(probe=probe, probe_layer=2))


def test_judge_reading_on_synthetic_genres():
    synth = pytest.importorskip("workbench.toy.synth")
    judge_mod = pytest.importorskip("workbench.toy.judge")
    try:
        judge_mod.load_judge()
    except (FileNotFoundError, ValueError) as error:
        pytest.skip(f"the teaching model's judge is not usable yet: {error}")
    genre = synth.GENRES[0]
    clip = wb.Clip(synth.synth_clip(genre, 7, 2.0, 32000), 32000)
    classes, probs = scores.judge_reading([clip])
    assert probs.shape == (1, len(classes)) and abs(probs.sum() - 1) < 1e-6
    rows = scores.steering_success(None, [clip], genre, scores.Readers(clap=False))
    assert rows[0]["judge_pred"] == genre and rows[0]["judge_p_target"] > 0.5


def test_clap_skips_cleanly_without_local_weights(tmp_path, monkeypatch):
    monkeypatch.setenv(scores.CLAP_ENV, str(tmp_path / "no-clap-here"))
    clip = wb.Clip(np.zeros(3200, np.float32), 32000)
    assert scores.clap_reading([clip], ["jazz"]) is None
    with pytest.raises(ModelNotAvailableError, match=scores.CLAP_ENV):
        scores.clap_reading([clip], ["jazz"], strict=True)
    assert scores.steering_success(None, [clip], "jazz", scores.Readers(judge=False)) == [dict(clip=0, target="jazz")]


def test_end_to_end_collect_sweep_direction_steer_score(tiny, tmp_path):
    """The paper's loop on the tiny model: labelled prompts -> store -> probes -> direction -> steer -> score."""
    from workbench.analysis.directions import Direction, from_probe
    from workbench.analysis.probes import SweepConfig, sweep
    from workbench.data.collect import collect
    from workbench.data.datasets import PromptSet
    from workbench.runtime.settings import GenerationSettings
    genres = ("classical", "rock")
    data = PromptSet(genres, templates=["{label}", "some {label}"], seeds=range(3))
    store = collect(tiny, data, wb.CaptureSpec(pooling="mean"), tmp_path / "store",
                    GenerationSettings(batch_size=6, duration_s=0.3), progress=False)
    assert store.labels() == [g for g in genres for _ in range(6)]
    result = sweep(store, config=SweepConfig(folds=3))
    assert len(result.rows) == tiny.n_layers and all("control_accuracy_mean" in r for r in result.rows)
    best = result.best()
    probe = result.probes[("resid", best["layer"])]
    direction = from_probe(probe, "rock", model_id=tiny.model_id, layer=best["layer"], normalize="mean_norm",
                           activations=store.array("resid", best["layer"]))
    path = direction.save(tmp_path / "rock")
    direction = Direction.load(path, expect_model_id=tiny.model_id, expect_hidden_size=tiny.hidden_size)
    steer = wb.SteeringSpec.single(direction, layers=(best["layer"],), strength=4.0)
    clips = wb.generate(tiny, ["classical"] * 2, duration_s=0.3, seeds=[0, 1], steering=steer).clips
    readers = scores.Readers(judge=False, probe=probe, probe_layer=best["layer"], clap=False)
    rows = scores.steering_success(tiny, clips, "rock", readers)
    assert len(rows) == 2 and 0 <= rows[0]["probe_p_target"] <= 1
    assert store.clip(0).duration_s == pytest.approx(0.3, abs=0.01)  # a point can be listened to
