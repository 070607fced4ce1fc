"""The kernel's decode loop: text prompts to clips, with codes identical to `workbench.runtime.generation.generate`.

One batch: the text encoder runs once (guidance appends its null rows: zero states, zero mask, as transformers
does), the cross-attention keys and values are computed once, a `StaticCache` is allocated for every position,
and each step feeds one delayed token per codebook (MusicGen's delay pattern, built by transformers' own
``build_delay_pattern_mask``), then samples with the same per-clip `SeededSampler` as ``wb.generate``.
Inputs are checked and prepared by the runtime's own `generation_args` and `processor_inputs`; an audio
prompt is encoded by transformers' own preparation (``_prepare_audio_encoder_kwargs_for_generation``) and fed
whole at step 0, as ``generate`` feeds it.

Example:
    >>> from workbench.runtime.model import random_model
    >>> from workbench.runtime.inputs import generation_args
    >>> h = random_model("tiny")
    >>> args = generation_args(h, ["rock", "jazz"], duration_s=0.2, seeds=[1, 2], guidance_scale=3.0,
    ...                        temperature=1.0, top_k=250)
    >>> result = kernel_generate(h, args)
    >>> [clip.codes.shape for clip in result.clips]
    [(4, 10), (4, 10)]
"""
from __future__ import annotations

import numpy as np
import torch

from workbench.runtime.clip import clips_from
from workbench.runtime.generation import GenerationResult
from workbench.runtime.inputs import GenerationArgs, processor_inputs
from workbench.runtime.kernel.cache import StaticCache, cache_positions
from workbench.runtime.kernel.edits import SteeringEdits
from workbench.runtime.kernel.forward import CrossAttention, DecoderWeights, decoder_logits
from workbench.runtime.sampling import SeededSampler
from workbench.runtime.steering import SteeringSpec
from workbench.runtime.threads import intra_op_threads, resolve_threads


def kernel_generate(handle, args: GenerationArgs, steering: SteeringSpec | None = None,
                    threads: int | str | None = "auto") -> GenerationResult:
    """One clip per prompt of ``args`` (from `workbench.runtime.inputs.generation_args`), optionally steered.

    The same clips as ``wb.generate`` given the same arguments (codes and waveforms, audio prompts
    continued), through the kernel's own loop.
    """
    if steering is not None:
        steering.validate_for(handle.n_layers, handle.hidden_size, handle.model_id)
    weights = DecoderWeights.of(handle)
    clips = []
    with intra_op_threads(resolve_threads(handle, threads)), torch.inference_mode():
        for start in range(0, len(args.prompts), args.batch_size):
            prompts = args.prompts[start:start + args.batch_size]
            seeds = args.seeds[start:start + args.batch_size]
            audio = args.audio[start:start + args.batch_size] if args.audio is not None else None
            codes, scales = decode_codes(handle, weights, prompts, seeds, args, steering, audio)
            waves = audio_from_codes(handle, codes, scales)
            clips.extend(clips_from(handle, waves, codes.cpu().numpy().astype(np.int64), prompts, seeds, steering,
                                    args.guidance_scale))
    return GenerationResult(clips)


def text_cross_attention(handle, weights: DecoderWeights, inputs: dict, guided: bool) -> CrossAttention:
    """The text encoder's states for the processor's ``inputs`` (prompts padded as ``generate`` pads them) and
    their cross-attention cache."""
    mask = inputs["attention_mask"]
    states = handle.model.text_encoder(input_ids=inputs["input_ids"], attention_mask=mask).last_hidden_state
    if guided:
        states = torch.cat([states, torch.zeros_like(states)], dim=0)
        mask = torch.cat([mask, torch.zeros_like(mask)], dim=0)
    return CrossAttention.of(weights, states, mask)


def prompt_ids(handle, inputs: dict) -> tuple[torch.Tensor, list]:
    """(B x codebooks, 1 + prompt frames) decoder ids: the start token, then an audio prompt's codes if the
    processor's ``inputs`` hold one (encoded as ``generate`` encodes it); and the codec's scales."""
    model = handle.model
    start_id = model.generation_config.decoder_start_token_id
    n_clips = inputs["input_ids"].shape[0]
    first = torch.full((n_clips * handle.n_codebooks, 1), start_id, dtype=torch.long, device=handle.device)
    if "input_values" not in inputs:
        return first, [None] * n_clips
    encoded = model._prepare_audio_encoder_kwargs_for_generation(inputs["input_values"],
                                                                 {"padding_mask": inputs.get("padding_mask")})
    scales = encoded["audio_scales"]
    return torch.cat([first, encoded["decoder_input_ids"]], dim=-1), scales if scales is not None else [None] * n_clips


def decode_codes(handle, weights: DecoderWeights, prompts: list[str], seeds: list[int], args: GenerationArgs,
                 steering: SteeringSpec | None = None, audio: list | None = None) -> tuple[torch.Tensor, list]:
    """Codes (B, n_codebooks, prompt frames + frames) of one batch, sampled step by step (step 0 is the
    prefill: the start token and the whole audio prompt), and the codec scales to decode them with."""
    model = handle.model
    n_clips, n_codebooks, guided = len(prompts), handle.n_codebooks, args.guided
    rows = n_clips * (2 if guided else 1)
    inputs = processor_inputs(handle, prompts, audio, handle.sample_rate_hz if audio is not None else None)
    cross = text_cross_attention(handle, weights, inputs, guided)
    start_ids, scales = prompt_ids(handle, inputs)
    steps = args.frames + handle.delay_steps
    prefix, pattern = model.decoder.build_delay_pattern_mask(
        start_ids, pad_token_id=model.generation_config.decoder_start_token_id,
        max_length=start_ids.shape[-1] + steps)
    prefix = prefix.shape[-1]  # positions the prefill feeds (the start token and the prompt, delayed)
    forced = pattern != -1
    ids = torch.where(forced, pattern, 0)
    cache = StaticCache(weights.n_layers, rows, weights.heads,
                        cache_positions(weights.config, args.frames, start_ids.shape[-1] - 1),
                        weights.head_dim, dtype=handle.dtype, device=handle.device)
    sampler = SeededSampler(seeds, n_codebooks, args.guidance_scale if guided else None, args.temperature,
                            args.top_k)
    edits = None if steering is None else SteeringEdits(steering, n_clips, guided, device=handle.device,
                                                        dtype=handle.dtype)
    sampled_rows = n_clips * n_codebooks
    for step in range(steps):
        column = prefix + step  # the position this step samples
        tokens = ids[:, cache.length:column]
        if guided:
            tokens = tokens.repeat((2, 1))
        if edits is not None:
            edits.begin_step(step)
        logits = decoder_logits(weights, tokens.reshape(rows, n_codebooks, -1), cache, cross, edits)
        choice = sampler(None, logits)[:sampled_rows].argmax(dim=-1)
        ids[:, column] = torch.where(forced[:, column], pattern[:, column], choice)
    pad = model.generation_config.pad_token_id
    return ids[ids != pad].reshape(n_clips, n_codebooks, -1), scales


def audio_from_codes(handle, codes: torch.Tensor, scales: list) -> torch.Tensor:
    """Waveforms (B, channels, samples) of codes (B, n_codebooks, frames), decoded as ``generate`` decodes them."""
    codec = handle.model.audio_encoder
    if handle.audio_channels == 1:
        return codec.decode(codes[None], audio_scales=scales).audio_values
    left = codec.decode(codes[None, :, ::2], audio_scales=scales).audio_values
    right = codec.decode(codes[None, :, 1::2], audio_scales=scales).audio_values
    return torch.cat([left, right], dim=1)
