"""The compiled variant of the kernel (workbench.runtime.kernel.compiled) against the eager kernel: logits within
``LOGITS_ATOL`` step after step, identical greedy codes (with and without guidance, steered with every form an
``add`` edit takes, continuing audio prompts, prompts of different lengths in one batch), and the refusals.

The compiled tests share two shapes on the tiny model (4 rows: two prompts under guidance; 2 rows: the same
without), so the suite compiles twice (~15-40 s each on a shared 2-core CPU; inductor's disk cache makes later
runs faster); the arithmetic itself is also checked uncompiled (``compile=False``), which takes no compile time.
"""
import numpy as np
import pytest
import torch

import workbench as wb
from workbench.errors import BadInputError
from workbench.runtime.edits import Edit
from workbench.runtime.inputs import generation_args, processor_inputs
from workbench.runtime.kernel import StaticCache
from workbench.runtime.kernel.compiled import (
    LOGITS_ATOL,
    POSITION_BUCKET,
    CompiledDecoder,
    CrossCache,
    StepCache,
    StepDeltas,
    compiled_clips,
)
from workbench.runtime.kernel.forward import CrossAttention, DecoderWeights, decoder_logits
from workbench.runtime.settings import GenerationSettings

PROMPTS = ["rock", "a slow jazz ballad with brushed drums and a walking bass"]  # different lengths: padded
GREEDY = GenerationSettings(duration_s=0.3, seeds=(1, 2), temperature=0.0, top_k=None, threads=1)


@pytest.fixture(scope="module")
def compiled(tiny):
    return CompiledDecoder(tiny)


@pytest.fixture(scope="module")
def eager(tiny):
    return CompiledDecoder(tiny, compile=False)


def direction(handle, seed: int = 0) -> torch.Tensor:
    v = torch.from_numpy(np.random.RandomState(seed).randn(handle.hidden_size)).float()
    return v / v.norm()


def kernel_codes(handle, prompts, settings, steering=None, edits=(), **kwargs) -> list[np.ndarray]:
    result = wb.generate(handle, prompts, settings, steering=steering, edits=edits, **kwargs)
    assert result.decoder_loop == "kernel"
    return [clip.codes for clip in result.clips]


def compiled_codes(handle, decoder, prompts, settings, steering=None, edits=(), **kwargs) -> list[np.ndarray]:
    args = generation_args(handle, prompts, settings, steering=steering, edits=edits, **kwargs)
    return [clip.codes for clip in compiled_clips(handle, args, decoder)]


def assert_same(a: list, b: list) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def step_logits(handle, decoder: CompiledDecoder, steps: int = 12, guided: bool = True):
    """(eager kernel, compiled step) logits of the same token stream, step after step."""
    weights = DecoderWeights.of(handle)
    rows = 2 * len(PROMPTS) if guided else len(PROMPTS)
    inputs = processor_inputs(handle, PROMPTS)
    states = handle.model.text_encoder(input_ids=inputs["input_ids"],
                                       attention_mask=inputs["attention_mask"]).last_hidden_state
    mask = inputs["attention_mask"]
    if guided:
        states, mask = torch.cat([states, torch.zeros_like(states)]), torch.cat([mask, torch.zeros_like(mask)])
    cross = CrossAttention.of(weights, states, mask)
    eager_cache = StaticCache(weights.n_layers, rows, weights.heads, steps, weights.head_dim, dtype=handle.dtype,
                              device=handle.device)
    cache = StepCache.empty(weights, rows, steps, dtype=handle.dtype, device=handle.device)
    deltas = StepDeltas([], weights.n_layers, handle.hidden_size, len(PROMPTS), guided, device=handle.device,
                        dtype=handle.dtype).at(0)
    step_cross = CrossCache.of(cross, weights, rows, dtype=handle.dtype, device=handle.device)
    tokens = torch.randint(0, handle.config.decoder.vocab_size, (steps, rows, handle.n_codebooks),
                           generator=torch.Generator().manual_seed(0))
    pairs = []
    for t in range(steps):
        reference = decoder_logits(weights, tokens[t][..., None], eager_cache, cross)
        pairs.append((reference, decoder.step(tokens[t], cache, step_cross, deltas)))
    return pairs


@pytest.mark.parametrize("guided", [True, False])
def test_step_logits_match_the_eager_kernel(tiny, compiled, eager, one_torch_thread, guided):
    with torch.inference_mode():
        for decoder in (eager, compiled):
            for reference, got in step_logits(tiny, decoder, guided=guided):
                assert got.shape == reference.shape and got.dtype == torch.float32
                torch.testing.assert_close(got, reference, atol=LOGITS_ATOL, rtol=0)
    assert compiled.compile_s > 0 and eager.compile_s == 0.0


def test_greedy_codes_identical_to_the_eager_kernel(tiny, compiled, eager, one_torch_thread):
    reference = kernel_codes(tiny, PROMPTS, GREEDY)
    for decoder in (eager, compiled):
        assert_same(compiled_codes(tiny, decoder, PROMPTS, GREEDY), reference)
    unguided = GREEDY.replace(guidance_scale=1.0)
    assert_same(compiled_codes(tiny, compiled, PROMPTS, unguided), kernel_codes(tiny, PROMPTS, unguided))


def test_greedy_codes_identical_when_steered(tiny, compiled, one_torch_thread):
    """Every form an ``add`` takes: one site per term, scheduled, windowed, cond rows only, per-clip vectors."""
    v, u = direction(tiny, 0), direction(tiny, 1)
    steering = wb.SteeringSpec((wb.SteeringTerm(v, (0, 2), 4.0),
                                wb.SteeringTerm(u, (1,), -3.0, site="attn",
                                                schedule=wb.Schedule("decay", decay_rate=0.2, start_step=2))))
    edits = [Edit("add", site="mlp", layer=1, vector=torch.stack([v, u]), strength=2.5, rows="cond", window=(3, 9))]
    reference = kernel_codes(tiny, PROMPTS, GREEDY, steering=steering, edits=edits)
    assert_same(compiled_codes(tiny, compiled, PROMPTS, GREEDY, steering=steering, edits=edits), reference)
    assert not all(np.array_equal(a, b) for a, b in zip(reference, kernel_codes(tiny, PROMPTS, GREEDY)))


def test_audio_prompt_continuation_identical(tiny, compiled, one_torch_thread):
    clip = wb.generate(tiny, "rock", duration_s=0.4, seeds=1).clips[0].mono
    noise = (0.1 * np.random.RandomState(0).randn(int(0.25 * 32000))).astype(np.float32)
    audio = dict(audio_prompt=[clip, noise], audio_prompt_sample_rate_hz=tiny.sample_rate_hz)
    reference = kernel_codes(tiny, PROMPTS, GREEDY, **audio)
    assert reference[0].shape[-1] == 20 + 15  # the prompt's frames, then the new ones
    assert_same(compiled_codes(tiny, compiled, PROMPTS, GREEDY, **audio), reference)


def test_clips_of_nearby_lengths_share_one_compiled_step(tiny, compiled, one_torch_thread):
    compiled_codes(tiny, compiled, PROMPTS, GREEDY)
    before = compiled.compile_s
    shapes = set(compiled._shapes)
    compiled_codes(tiny, compiled, PROMPTS, GREEDY.replace(duration_s=0.5))
    assert compiled._shapes == shapes and compiled.compile_s == before  # 25 and 15 frames: one bucket
    weights = DecoderWeights.of(tiny)
    assert StepCache.empty(weights, 2, 28, dtype=torch.float32, device="cpu").keys[0].shape[2] == POSITION_BUCKET


def test_null_rows_attend_to_nothing_as_sdpa_does(tiny):
    weights = DecoderWeights.of(tiny)
    states = torch.randn(2, 5, tiny.model.text_encoder.config.hidden_size)
    mask = torch.tensor([[1, 1, 1, 0, 0], [0, 0, 0, 0, 0]])  # a padded prompt, and guidance's null row
    cross = CrossCache.of(CrossAttention.of(weights, states, mask), weights, 2, dtype=torch.float32, device="cpu")
    assert cross.keep.flatten().tolist() == [1.0, 0.0]
    assert torch.isinf(cross.bias[0, ..., 3:]).all() and (cross.bias[0, ..., :3] == 0).all()
    assert torch.isfinite(cross.bias[1]).all()  # no -inf-only row: softmax stays finite, then keep zeroes it


def test_deltas_are_zero_without_edits_and_follow_schedules(tiny):
    v = direction(tiny)
    edit = Edit("add", layer=2, vector=v, strength=2.0, rows="cond", window=(1, 3))
    deltas = StepDeltas([edit], tiny.n_layers, tiny.hidden_size, 2, True, device="cpu", dtype=torch.float32)
    assert not deltas.at(0).any()
    at_1 = deltas.at(1)
    torch.testing.assert_close(at_1[2, 2, :2, 0], torch.stack([2.0 * v] * 2))
    assert not at_1[2, 2, 2:].any() and not at_1[:2].any() and not at_1[2, :2].any()
    assert not deltas.at(3).any()


def test_other_operations_and_capture_are_refused_with_the_way_out(tiny, eager):
    v = direction(tiny)
    for edit in (Edit("norm_relative", layer=1, vector=v, strength=0.5), Edit("read", layer=1),
                 Edit("project_out", layer=1, vector=v)):
        args = generation_args(tiny, PROMPTS, GREEDY, edits=[edit])
        with pytest.raises(BadInputError, match="eager kernel"):
            compiled_clips(tiny, args, eager)
    args = generation_args(tiny, PROMPTS, GREEDY, capture=wb.CaptureSpec())
    with pytest.raises(BadInputError, match="capture"):
        compiled_clips(tiny, args, eager)
