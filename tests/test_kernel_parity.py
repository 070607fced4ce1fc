"""The runtime kernel's own decode loop (workbench.runtime.kernel, ``wb.generate``'s default) against transformers'
generate with the hook runner (``decoder_loop="transformers"``): identical codes and waveforms, greedy and seeded
sampling, with and without steering, on the tiny random model, the teaching model and (slow) random models of
the official mono and stereo shapes; prompts of different lengths share a batch, padded as generate pads them.
Also the static cache's size and limits, and where the kernel refuses (and generate falls back)."""
import numpy as np
import pytest
import torch

import workbench as wb
from workbench.errors import BadInputError, DurationError
from workbench.runtime.configs import OFFICIAL_NAMES, musicgen_config
from workbench.runtime.generation import KernelFallbackWarning
from workbench.runtime.kernel import DecoderWeights, StaticCache, cache_positions, static_cache_bytes
from workbench.runtime.settings import GenerationSettings

PROMPTS = ["rock", "a slow jazz ballad with brushed drums and a walking bass", "ambient pads"]
SAMPLING = {"greedy": dict(temperature=0.0, top_k=None), "seeded": dict(temperature=1.0, top_k=250)}


@pytest.fixture(scope="module")
def teaching():
    return wb.load_model()


TRANSFORMERS = GenerationSettings(decoder_loop="transformers")


def kernel(handle, prompts, steering=None, **settings):
    result = wb.generate(handle, prompts, steering=steering, **settings)
    assert result.decoder_loop == "kernel" and result.fallback_reason is None
    return result


def both(handle, prompts, steering=None, **settings):
    """(transformers' result, the kernel's) for the same settings."""
    settings = dict(dict(seeds=list(range(1, len(prompts) + 1)), guidance_scale=3.0, batch_size=8), **settings)
    reference = wb.generate(handle, prompts, TRANSFORMERS, steering=steering, **settings)
    assert reference.decoder_loop == "transformers"
    return reference, kernel(handle, prompts, steering, **settings)


def assert_same_clips(reference, kernel):
    assert len(kernel.clips) == len(reference.clips)
    for ref, got in zip(reference.clips, kernel.clips):
        np.testing.assert_array_equal(got.codes, ref.codes)
        np.testing.assert_array_equal(got.waveform, ref.waveform)
        assert (got.prompt, got.seed, got.guidance_scale, got.steering) == (ref.prompt, ref.seed, ref.guidance_scale,
                                                                            ref.steering)


def add_steering(handle, layer: int, strength: float) -> wb.SteeringSpec:
    direction = np.random.RandomState(0).randn(handle.hidden_size)
    return wb.SteeringSpec.single(direction / np.linalg.norm(direction), (layer,), strength)


def test_prompts_have_different_lengths(tiny, teaching):
    for handle in (tiny, teaching):
        lengths = {len(ids) for ids in handle.processor.tokenizer(PROMPTS)["input_ids"]}
        assert len(lengths) == len(PROMPTS)  # one batch, so generate pads all but the longest


@pytest.mark.parametrize("steered", [False, True])
@pytest.mark.parametrize("sampling", sorted(SAMPLING))
def test_tiny_same_codes(tiny, one_torch_thread, sampling, steered):
    steering = add_steering(tiny, 1, 4.0) if steered else None
    assert_same_clips(*both(tiny, PROMPTS, steering, duration_s=0.3, **SAMPLING[sampling]))


@pytest.mark.parametrize("steered", [False, True])
@pytest.mark.parametrize("sampling", sorted(SAMPLING))
def test_teaching_model_same_codes(teaching, one_torch_thread, sampling, steered):
    steering = add_steering(teaching, 3, 6.0) if steered else None
    assert_same_clips(*both(teaching, PROMPTS, steering, duration_s=1.0, **SAMPLING[sampling]))


def test_teaching_model_in_bfloat16_same_codes(one_torch_thread):
    handle = wb.load_model(dtype="bfloat16")
    assert_same_clips(*both(handle, PROMPTS, add_steering(handle, 3, 6.0), duration_s=0.5, **SAMPLING["seeded"]))


def test_steering_moves_the_codes_the_parity_tests_compare(tiny, teaching, one_torch_thread):
    for handle, layer, strength in ((tiny, 1, 4.0), (teaching, 3, 6.0)):
        settings = dict(duration_s=1.0 if handle is teaching else 0.3, seeds=[1, 2, 3], **SAMPLING["greedy"])
        plain = kernel(handle, PROMPTS, **settings)
        steered = kernel(handle, PROMPTS, add_steering(handle, layer, strength), **settings)
        assert not all(np.array_equal(a.codes, b.codes) for a, b in zip(plain.clips, steered.clips))


@pytest.mark.parametrize("spec", ["rows_both", "attn_site", "mlp_site", "norm_relative", "decay", "two_terms"])
def test_tiny_every_steering_form_same_codes(tiny, one_torch_thread, spec):
    v = add_steering(tiny, 0, 1.0).terms[0].vector.numpy()
    w = np.roll(v, 5)
    specs = {
        "rows_both": wb.SteeringSpec.single(v, (0, 2), 3.0, rows="both"),
        "attn_site": wb.SteeringSpec.single(v, (1,), 3.0, site="attn"),
        "mlp_site": wb.SteeringSpec.single(v, (2,), 3.0, site="mlp"),
        "norm_relative": wb.SteeringSpec.single(v, (1,), 0.8, mode="norm_relative"),
        "decay": wb.SteeringSpec.single(v, (1,), 4.0, schedule=wb.Schedule("decay", decay_rate=0.2, start_step=2)),
        "two_terms": wb.SteeringSpec((wb.SteeringTerm(v, (0,), 2.0), wb.SteeringTerm(w, (0, 2), -3.0))),
    }
    assert_same_clips(*both(tiny, PROMPTS, specs[spec], duration_s=0.3, **SAMPLING["seeded"]))


def test_tiny_without_guidance_and_in_several_batches(tiny, one_torch_thread):
    steering = add_steering(tiny, 1, 4.0)
    assert_same_clips(*both(tiny, PROMPTS, steering, duration_s=0.3, guidance_scale=1.0, **SAMPLING["seeded"]))
    assert_same_clips(*both(tiny, PROMPTS, steering, duration_s=0.3, batch_size=2, **SAMPLING["seeded"]))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["musicgen-small", "musicgen-stereo-small"])
def test_official_shapes_same_codes(name, one_torch_thread):
    """Random weights at the released shapes: 24 x 1024, mono with 4 codebooks and stereo with 8."""
    handle = wb.random_model(name, seed=0)
    assert handle.n_codebooks == (8 if "stereo" in name else 4)
    steering = add_steering(handle, 12, 30.0)
    for sampling in sorted(SAMPLING):
        for spec in (None, steering):
            assert_same_clips(*both(handle, PROMPTS[:2], spec, duration_s=0.1, **SAMPLING[sampling]))


def test_static_cache_size_for_30_s_at_batch_8_fits_every_official_model():
    """The figures stated in workbench.runtime.kernel.cache's docstring, and 30 s within max_duration_s."""
    stated = {"musicgen-small": 4_728_029_184, "musicgen-stereo-small": 4_728_029_184,
              "musicgen-medium": 14_184_087_552, "musicgen-large": 18_912_116_736}
    for name in OFFICIAL_NAMES:
        config = musicgen_config(name)
        handle = wb.MusicGenHandle(model=type("M", (), {"config": config})(), processor=None, model_id=name)
        assert handle.max_duration_s >= 30.0
        frames = handle.frames_for(30.0)
        assert frames == 1500
        if name in stated:
            assert static_cache_bytes(config.decoder, batch=8, frames=frames) == stated[name]
        # the longest clip the handle allows fills the decoder's positions and one frame more is refused
        assert cache_positions(config.decoder, handle.max_frames) == config.decoder.max_position_embeddings - 1
        with pytest.raises(DurationError, match=f"at most {handle.max_frames} frames"):
            cache_positions(config.decoder, handle.max_frames + 1)


def test_static_cache_allocates_what_it_states(tiny, teaching):
    for handle in (tiny, teaching):
        d = handle.config.decoder
        frames = handle.frames_for(4.0)
        cache = StaticCache(d.num_hidden_layers, 16, d.num_attention_heads, cache_positions(d, frames),
                            d.hidden_size // d.num_attention_heads, dtype=torch.float32, device="cpu")
        assert cache.nbytes == static_cache_bytes(d, batch=8, frames=frames)
    assert static_cache_bytes(teaching.config.decoder, batch=8, frames=teaching.max_frames) == 75_423_744


def test_other_attention_implementations_are_refused_and_generate_falls_back(tiny):
    config = tiny.model.decoder.model.decoder.config
    before = config._attn_implementation
    config._attn_implementation = "eager"
    try:
        with pytest.raises(BadInputError, match="attn_implementation='sdpa'"):
            DecoderWeights.of(tiny)
        with pytest.warns(KernelFallbackWarning, match="attn_implementation='sdpa'"):
            result = wb.generate(tiny, "rock", duration_s=0.2, seeds=1)
        assert result.decoder_loop == "transformers" and "sdpa" in result.fallback_reason
    finally:
        config._attn_implementation = before


def test_hooks_on_the_decoder_make_generate_fall_back(tiny):
    """Someone's hook on a decoder module (a measurement) still sees every step: the kernel would skip it."""
    calls = []
    handle = tiny.module("resid", 1).register_forward_hook(lambda module, args, output: calls.append(1))
    try:
        with pytest.warns(KernelFallbackWarning, match="forward hooks"):
            result = wb.generate(tiny, "rock", duration_s=0.2, seeds=1)
    finally:
        handle.remove()
    assert result.decoder_loop == "transformers" and len(calls) == 10 + 3 + 1  # the prefill runs twice there
    assert wb.generate(tiny, "rock", duration_s=0.2, seeds=1).decoder_loop == "kernel"


@pytest.mark.parametrize("steered", [False, True])
def test_audio_prompt_continuation_same_codes(tiny, teaching, one_torch_thread, steered):
    """One audio prompt for all, and prompts of different lengths in one batch (padded as generate pads them)."""
    noise = (0.1 * np.random.RandomState(0).randn(int(0.25 * 32000))).astype(np.float32)
    for handle in (tiny, teaching):
        clip = wb.generate(handle, "rock", duration_s=0.4, seeds=1).clips[0].mono
        steering = add_steering(handle, 1, 4.0) if steered else None
        for audio in (clip, [clip, noise]):
            reference, kernel = both(handle, PROMPTS[:2], steering, duration_s=0.3, audio_prompt=audio,
                                     audio_prompt_sample_rate_hz=handle.sample_rate_hz, **SAMPLING["seeded"])
            assert reference.clips[0].codes.shape[-1] == 20 + 15  # the prompt's frames, then the new ones
            assert_same_clips(reference, kernel)
