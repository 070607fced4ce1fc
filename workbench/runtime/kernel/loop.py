"""The kernel's decode loop: one batch of text prompts to clips, with codes identical to transformers' ``generate``.

One batch: the text encoder runs once (guidance appends its null rows: zero states, zero mask, as transformers
does), the cross-attention keys and values are computed once, a `StaticCache` is allocated for every position,
and each step feeds one delayed token per codebook (MusicGen's delay pattern, built by transformers' own
``build_delay_pattern_mask``), applies the batch's edits (`workbench.runtime.edits.EditRun`: steering, per-clip
vectors, patching, capture reads...) in place, then samples with the same per-clip `SeededSampler` as the
transformers loop. ``stop`` is polled before every step. An audio prompt is encoded by transformers' own
preparation (``_prepare_audio_encoder_kwargs_for_generation``) and fed whole at step 0, as ``generate`` feeds it.
`workbench.generate` runs its batches here (``GenerationSettings.decoder_loop="kernel"``, the default).

Example:
    >>> from workbench.runtime.model import random_model
    >>> from workbench.runtime.inputs import generation_args
    >>> h = random_model("tiny")
    >>> args = generation_args(h, ["rock", "jazz"], duration_s=0.2, seeds=[1, 2])
    >>> [clip.codes.shape for clip in kernel_batch(h, DecoderWeights.of(h), args, args.batches()[0])]
    [(4, 10), (4, 10)]
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np
import torch

from workbench.errors import StoppedError
from workbench.runtime.clip import Clip, clips_from
from workbench.runtime.edits import EditRun
from workbench.runtime.inputs import Batch, GenerationArgs, processor_inputs
from workbench.runtime.kernel.cache import StaticCache, cache_positions
from workbench.runtime.kernel.forward import CrossAttention, DecoderWeights, decoder_logits
from workbench.runtime.sampling import SeededSampler


def kernel_batch(handle, weights: DecoderWeights, args: GenerationArgs, batch: Batch, run: EditRun | None = None,
                 stop: Callable[[], bool] | None = None) -> list[Clip]:
    """The clips of one batch of ``args`` (from `workbench.runtime.inputs.generation_args`), ``run`` applied at
    every step (made for this batch: ``EditRun(edits, len(batch.prompts), args.guided)``)."""
    with torch.inference_mode():
        codes, scales = decode_codes(handle, weights, args, batch, run, stop)
        waves = audio_from_codes(handle, codes, scales)
    return clips_from(handle, waves, codes.cpu().numpy().astype(np.int64), batch.prompts, batch.seeds,
                      args.steering, args.guidance_scale)


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


@dataclasses.dataclass
class BatchDecode:
    """One batch's decoding state, shared by the eager and the compiled step: the processor's inputs, the delay
    pattern (``ids``: every position, the forced ones filled in), the seeded sampler and the codec scales."""

    inputs: dict
    n_clips: int
    rows: int  # decoder rows: 2 x n_clips under guidance
    prompt_positions: int  # the start token and the audio prompt's frames
    prefix: int  # positions the prefill feeds (the start token and the prompt, delayed)
    steps: int
    ids: torch.Tensor
    pattern: torch.Tensor
    forced: torch.Tensor
    sampler: SeededSampler
    scales: list

    @classmethod
    def of(cls, handle, args: GenerationArgs, batch: Batch) -> BatchDecode:
        model = handle.model
        n_clips = len(batch.prompts)
        inputs = processor_inputs(handle, batch.prompts, batch.audio,
                                  handle.sample_rate_hz if batch.audio is not None else None)
        start_ids, scales = prompt_ids(handle, inputs)
        steps = args.frames + handle.delay_steps
        prefix, pattern = model.decoder.build_delay_pattern_mask(
            start_ids, pad_token_id=model.generation_config.decoder_start_token_id,
            max_length=start_ids.shape[-1] + steps)
        forced = pattern != -1
        sampler = SeededSampler(batch.seeds, handle.n_codebooks, args.guidance_scale if args.guided else None,
                                args.temperature, args.top_k)
        return cls(inputs, n_clips, n_clips * (2 if args.guided else 1), start_ids.shape[-1], prefix.shape[-1], steps,
                   torch.where(forced, pattern, 0), pattern, forced, sampler, scales)

    def sample(self, handle, advance: Callable[[int, int], torch.Tensor],
               stop: Callable[[], bool] | None = None) -> tuple[torch.Tensor, list]:
        """The one sampling loop: at each step ``advance(step, column)`` feeds the decoder up to the position it
        samples (``column``) and returns that position's logits; a code is drawn where the pattern forces none.
        Returns the codes (B, n_codebooks, prompt frames + frames) and the codec scales."""
        sampled_rows = self.n_clips * handle.n_codebooks
        ids, pattern, forced = self.ids, self.pattern, self.forced
        for step in range(self.steps):
            if stop is not None and stop():
                raise StoppedError("generation stopped by request")
            column = self.prefix + step  # the position this step samples
            logits = advance(step, column)
            choice = self.sampler(None, logits)[:sampled_rows].argmax(dim=-1)
            ids[:, column] = torch.where(forced[:, column], pattern[:, column], choice)
        pad = handle.model.generation_config.pad_token_id
        return ids[ids != pad].reshape(self.n_clips, handle.n_codebooks, -1), self.scales


def decode_codes(handle, weights: DecoderWeights, args: GenerationArgs, batch: Batch, run: EditRun | None = None,
                 stop: Callable[[], bool] | None = None) -> tuple[torch.Tensor, list]:
    """Codes (B, n_codebooks, prompt frames + frames) of one batch, sampled step by step (step 0 is the
    prefill: the start token and the whole audio prompt), and the codec scales to decode them with."""
    decode = BatchDecode.of(handle, args, batch)
    n_codebooks, guided, rows = handle.n_codebooks, args.guided, decode.rows
    cross = text_cross_attention(handle, weights, decode.inputs, guided)
    cache = StaticCache(weights.n_layers, rows, weights.heads,
                        cache_positions(weights.config, args.frames, decode.prompt_positions - 1),
                        weights.head_dim, dtype=handle.dtype, device=handle.device)
    if run is not None and not run.sites:
        run = None  # nothing to apply: skip the per-site checks

    def advance(step: int, column: int) -> torch.Tensor:
        tokens = decode.ids[:, cache.length:column]
        if guided:
            tokens = tokens.repeat((2, 1))
        return decoder_logits(weights, tokens.reshape(rows, n_codebooks, -1), cache, cross, run, step)

    return decode.sample(handle, advance, stop)


def audio_from_codes(handle, codes: torch.Tensor, scales: list) -> torch.Tensor:
    """Waveforms (B, channels, samples) of codes (B, n_codebooks, frames), decoded as ``generate`` decodes them."""
    codec = handle.model.audio_encoder
    if handle.audio_channels == 1:
        return codec.decode(codes[None], audio_scales=scales).audio_values
    left = codec.decode(codes[None, :, ::2], audio_scales=scales).audio_values
    right = codec.decode(codes[None, :, 1::2], audio_scales=scales).audio_values
    return torch.cat([left, right], dim=1)
