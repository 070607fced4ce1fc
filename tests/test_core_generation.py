"""Generation, sampling, steering and capture on a tiny random MusicGen."""
import numpy as np
import pytest

import workbench as wb
from workbench.errors import (
    DirectionMismatchError,
    DurationError,
    EmptyInputError,
    LayerOutOfRangeError,
    NotFiniteError,
    StoppedError,
    UnknownSiteError,
)
from workbench.runtime.inputs import generation_args
from workbench.runtime.settings import GenerationSettings

PROMPTS = ["rock guitar", "smooth jazz"]


def vector(h, seed=0):
    return np.random.RandomState(seed).randn(h.hidden_size).astype(np.float32)


def codes_equal(a, b):
    return all(np.array_equal(x.codes, y.codes) for x, y in zip(a.clips, b.clips))


def test_clip_carries_codes_prompt_seed_and_audio(tiny):
    res = wb.generate(tiny, PROMPTS, duration_s=0.2, seeds=[1, 2])
    assert [c.prompt for c in res.clips] == PROMPTS and [c.seed for c in res.clips] == [1, 2]
    clip = res.clips[0]
    assert clip.codes.shape == (4, 10) and clip.codes.dtype == np.int64
    assert clip.waveform.shape == (1, 10 * 640) and clip.sample_rate_hz == 32000
    assert abs(clip.duration_s - 0.2) < 1e-9


def test_same_seed_same_clip_whatever_the_batch(tiny):
    batched = wb.generate(tiny, PROMPTS, duration_s=0.2, seeds=[1, 2], batch_size=2)
    alone = wb.generate(tiny, PROMPTS[1], duration_s=0.2, seeds=2)
    assert np.array_equal(batched.clips[1].codes, alone.clips[0].codes)
    other = wb.generate(tiny, PROMPTS[1], duration_s=0.2, seeds=3)
    assert not np.array_equal(other.clips[0].codes, alone.clips[0].codes)


@pytest.mark.parametrize("mode", ["add", "norm_relative"])
def test_strength_zero_is_bit_identical(tiny, mode):
    plain = wb.generate(tiny, PROMPTS, duration_s=0.2, seeds=[1, 2])
    zero = wb.generate(tiny, PROMPTS, duration_s=0.2, seeds=[1, 2],
                       steering=wb.SteeringSpec.single(vector(tiny), (0, 1, 2), 0.0, mode=mode, rows="both"))
    assert codes_equal(plain, zero)
    assert all(np.array_equal(x.waveform, y.waveform) for x, y in zip(plain.clips, zero.clips))
    steered = wb.generate(tiny, PROMPTS, duration_s=0.2, seeds=[1, 2],
                          steering=wb.SteeringSpec.single(vector(tiny), (0, 1, 2), 0.9 if mode != "add" else 8.0,
                                                          mode=mode))
    assert not codes_equal(plain, steered)


def test_steering_cond_rows_leaves_uncond_rows_alone(tiny):
    cap = wb.CaptureSpec(layers=(2,), pooling="none", rows="both")
    plain = wb.generate(tiny, PROMPTS, duration_s=0.2, seeds=[1, 2], capture=cap)
    steer = wb.SteeringSpec.single(vector(tiny), (2,), 5.0, rows="cond", schedule=wb.Schedule(stop_step=1))
    steered = wb.generate(tiny, PROMPTS, duration_s=0.2, seeds=[1, 2], capture=cap, steering=steer)
    p, s = plain.activations[("resid", 2)], steered.activations[("resid", 2)]
    # only step 0 is steered (stop_step=1): cond rows move by exactly 5 * v there, uncond rows not at all
    assert np.allclose(s[0][0] - p[0][0], 5.0 * vector(tiny), atol=1e-4)
    assert np.array_equal(s[2][0], p[2][0]) and np.array_equal(s[3][0], p[3][0])


def test_pooling_modes_agree_with_per_step_capture(tiny):
    per_step = wb.generate(tiny, PROMPTS, duration_s=0.2, seeds=[1, 2],
                           capture=wb.CaptureSpec(pooling="none", sites=("resid", "attn", "mlp")))
    steps = per_step.activations[("mlp", 1)]
    assert steps[0].shape == (13, tiny.hidden_size)  # 10 frames + 3 delay steps, the duplicate prefill dropped
    expect = {"mean": lambda x: x.mean(0), "max": lambda x: x.max(0), "last": lambda x: x[-1],
              "mean_std": lambda x: np.concatenate([x.mean(0), x.std(0)])}
    for pooling, fn in expect.items():
        pooled = wb.generate(tiny, PROMPTS, duration_s=0.2, seeds=[1, 2],
                             capture=wb.CaptureSpec(pooling=pooling, sites=("mlp",), layers=(1,)))
        got = pooled.activations[("mlp", 1)]
        assert np.allclose(got, np.stack([fn(x) for x in steps]), atol=1e-5), pooling


def test_capture_rows_both_puts_cond_first(tiny):
    both = wb.generate(tiny, PROMPTS, duration_s=0.2, seeds=[1, 2], batch_size=1,
                       capture=wb.CaptureSpec(layers=(0,), rows="both"))
    cond = wb.generate(tiny, PROMPTS, duration_s=0.2, seeds=[1, 2], capture=wb.CaptureSpec(layers=(0,)))
    uncond = wb.generate(tiny, PROMPTS, duration_s=0.2, seeds=[1, 2],
                         capture=wb.CaptureSpec(layers=(0,), rows="uncond"))
    b = both.activations[("resid", 0)]
    assert b.shape == (4, tiny.hidden_size)
    assert np.allclose(b[:2], cond.activations[("resid", 0)], atol=1e-6)
    assert np.allclose(b[2:], uncond.activations[("resid", 0)], atol=1e-6)


def test_schedules():
    s = wb.Schedule
    assert s("pulse", every=25, width=1).strength_at(2.0, 25) == 2.0
    assert s("pulse", every=25, width=1).strength_at(2.0, 26) == 0.0
    assert s("decay", decay_rate=1.0, floor=0.25).strength_at(4.0, 10) == 1.0
    assert s("decay", decay_rate=1.0, floor=0.25).strength_at(-4.0, 10) == -1.0
    ramp = s("ramp", start_step=10, stop_step=21, ramp_to=-1.0)
    assert [ramp.strength_at(1.0, t) for t in (9, 10, 15, 20, 21)] == [0.0, 1.0, 0.0, -1.0, 0.0]
    assert s(start_step=5).strength_at(3.0, 4) == 0.0 and s(start_step=5).strength_at(3.0, 5) == 3.0


def test_two_directions_at_once(tiny):
    a, b = vector(tiny, 1), vector(tiny, 2)
    spec = wb.SteeringSpec((wb.SteeringTerm(a, (1,), 3.0), wb.SteeringTerm(b, (1,), -3.0)))
    one = wb.generate(tiny, PROMPTS[0], duration_s=0.2, seeds=1, steering=spec)
    net = wb.generate(tiny, PROMPTS[0], duration_s=0.2, seeds=1,
                      steering=wb.SteeringSpec.single(3.0 * (a - b), (1,), 1.0))
    assert np.array_equal(one.clips[0].codes, net.clips[0].codes)


def test_audio_prompt_continuation(tiny):
    prompt_audio = wb.generate(tiny, PROMPTS[0], duration_s=0.2, seeds=1).clips[0].mono
    res = wb.generate(tiny, PROMPTS, duration_s=0.2, seeds=[1, 2], audio_prompt=prompt_audio,
                      audio_prompt_sample_rate_hz=32000, capture=wb.CaptureSpec(layers=(0,), pooling="none"))
    assert res.clips[0].codes.shape[-1] >= 20  # the prompt's 10 frames plus 10 new ones
    assert res.activations[("resid", 0)][0].shape[0] >= 20


def test_hooks_are_removed_even_when_generation_raises(tiny):
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 3

    before = {name: (len(m._forward_hooks), len(m._forward_pre_hooks)) for name, m in tiny.model.named_modules()}
    with pytest.raises(StoppedError) as info:
        wb.generate(tiny, PROMPTS * 2, duration_s=0.2, batch_size=2, stop=stop,
                    steering=wb.SteeringSpec.single(vector(tiny), (0,), 1.0), capture=wb.CaptureSpec())
    after = {name: (len(m._forward_hooks), len(m._forward_pre_hooks)) for name, m in tiny.model.named_modules()}
    assert before == after
    assert hasattr(info.value, "partial_result")
    # and the model still generates normally afterwards
    assert len(wb.generate(tiny, PROMPTS, duration_s=0.2).clips) == 2


def test_stop_keeps_clips_of_finished_batches(tiny):
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 16  # first batch (13 steps) finishes, second is stopped

    with pytest.raises(StoppedError) as info:
        wb.generate(tiny, PROMPTS * 2, duration_s=0.2, batch_size=2, stop=stop, capture=wb.CaptureSpec(layers=(0,)))
    partial = info.value.partial_result
    assert len(partial.clips) == 2 and partial.activations[("resid", 0)].shape[0] == 2


def test_bad_input_errors_name_the_fix(tiny):
    v = vector(tiny)
    with pytest.raises(LayerOutOfRangeError, match=r"3 decoder layers \(0-2\)"):
        wb.generate(tiny, "x", duration_s=0.2, steering=wb.SteeringSpec.single(v, (5,), 1.0))
    with pytest.raises(LayerOutOfRangeError):
        wb.generate(tiny, "x", duration_s=0.2, capture=wb.CaptureSpec(layers=(3,)))
    with pytest.raises(UnknownSiteError, match="resid"):
        wb.CaptureSpec(sites=("ffn",))
    with pytest.raises(DirectionMismatchError, match="hidden size is 32"):
        wb.generate(tiny, "x", duration_s=0.2, steering=wb.SteeringSpec.single(np.ones(7), (0,), 1.0))
    with pytest.raises(NotFiniteError):
        wb.SteeringSpec.single(np.full(32, np.nan), (0,), 1.0)
    with pytest.raises(NotFiniteError):
        wb.SteeringSpec.single(v, (0,), float("inf"))
    with pytest.raises(EmptyInputError):
        wb.generate(tiny, [], duration_s=0.2)
    with pytest.raises(DurationError, match="positions"):
        wb.generate(tiny, "x", duration_s=10_000.0)
    with pytest.raises(ValueError, match="norm_relative"):
        wb.SteeringSpec.single(v, (0,), -1.0, mode="norm_relative")

    class OtherModelDirection:
        vector = v
        model_id = "facebook/musicgen-small"

    with pytest.raises(DirectionMismatchError, match="made on model"):
        wb.generate(tiny, "x", duration_s=0.2, steering=wb.SteeringSpec.single(OtherModelDirection(), (0,), 1.0))
    with pytest.raises(ValueError, match="guidance"):
        wb.generate(tiny, "x", duration_s=0.2, guidance_scale=1.0, capture=wb.CaptureSpec(rows="uncond"))


def test_clip_wav_round_trip(tiny, tmp_path):
    clip = wb.generate(tiny, "jazz", duration_s=0.2, seeds=4).clips[0]
    path = clip.to_wav(tmp_path / "a.wav")
    back = wb.Clip.from_wav(path)
    assert back.sample_rate_hz == 32000 and back.waveform.shape == clip.waveform.shape
    assert back.prompt == "jazz" and back.seed == 4


def test_no_temperature_means_the_models_own(tmp_path):
    """temperature=None (the default) samples at the model's generation-config temperature, so a
    model whose config says 0.8 (the v2 recipe) generates and collects at 0.8 unless told otherwise."""
    from workbench.data.collect import collect
    from workbench.runtime.settings import GenerationSettings

    h = wb.random_model("tiny", seed=0)
    assert h.default_temperature == 1.0  # MusicGen's
    at_one = wb.generate(h, PROMPTS, duration_s=0.2, seeds=[1, 2])
    assert codes_equal(at_one, wb.generate(h, PROMPTS, duration_s=0.2, seeds=[1, 2], temperature=1.0))
    h.model.generation_config.temperature = 0.3
    assert h.default_temperature == 0.3
    own = wb.generate(h, PROMPTS, duration_s=0.2, seeds=[1, 2])
    assert codes_equal(own, wb.generate(h, PROMPTS, duration_s=0.2, seeds=[1, 2], temperature=0.3))
    assert not codes_equal(own, at_one)
    spec = wb.CaptureSpec(layers=(1,), pooling="mean")
    store = collect(h, [{"prompt": "rock", "label": "rock"}], spec, tmp_path / "s", GenerationSettings(duration_s=0.2),
                    progress=False)
    assert store.spec["generation"]["temperature"] == 0.3  # the store records what ran


def test_settings_object_and_keyword_shortcuts(tiny):
    """generate takes a GenerationSettings whole; a keyword shortcut overrides its field (the README's one-liners)."""
    settings = GenerationSettings(duration_s=0.2, seeds=(1, 2), guidance_scale=3.0)
    whole = wb.generate(tiny, PROMPTS, settings)
    assert [c.seed for c in whole.clips] == [1, 2] and whole.clips[0].codes.shape == (4, 10)
    assert codes_equal(whole, wb.generate(tiny, PROMPTS, duration_s=0.2, seeds=[1, 2]))
    shorter = wb.generate(tiny, PROMPTS, settings, duration_s=0.1)
    assert shorter.clips[0].codes.shape == (4, 5) and [c.seed for c in shorter.clips] == [1, 2]
    with pytest.raises(ValueError, match="GenerationSettings has no stop_after"):  # the keyword-compatible path
        generation_args(tiny, PROMPTS, settings, stop_after=3)
    with pytest.raises(TypeError, match="not a GenerationSettings"):
        wb.generate(tiny, PROMPTS, {"duration_s": 0.2})


def test_device_is_checked_not_moved(tiny):
    assert wb.generate(tiny, "x", GenerationSettings(duration_s=0.1, device="cpu")).clips
    with pytest.raises(ValueError, match=r"device='cuda' but the model is on cpu: load it there"):
        wb.generate(tiny, "x", GenerationSettings(duration_s=0.1, device="cuda"))


def test_generation_flushes_subnormals_and_restores_the_mode(tiny, monkeypatch):
    """The codec decodes drones 20-30% faster with subnormals flushed (threads.flush_denormals); the mode is on
    while generate runs and off again after it."""
    import torch

    from workbench.runtime import kernel
    from workbench.runtime.threads import flush_denormals

    tiny_value = torch.tensor([1e-40])  # subnormal in float32
    assert float(tiny_value * 1.0) != 0.0
    with flush_denormals() as supported:
        if not supported:
            pytest.skip("this CPU cannot flush subnormals")
        assert float(tiny_value * 1.0) == 0.0
    assert float(tiny_value * 1.0) != 0.0
    seen = []
    real = kernel.loop.audio_from_codes
    monkeypatch.setattr(kernel.loop, "audio_from_codes",
                        lambda *a, **k: (seen.append(float(tiny_value * 1.0)), real(*a, **k))[1])
    wb.generate(tiny, "jazz", duration_s=0.2)
    assert seen == [0.0] and float(tiny_value * 1.0) != 0.0
