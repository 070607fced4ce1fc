"""Teacher-force real audio: EnCodec codes -> one decoder pass with MusicGen's delay pattern.

The decoder sees exactly the inputs it would have seen had it generated those codes itself
(tests check this against capture during generation), so probes trained on generated clips read
real audio the same way.

Example:
    >>> import numpy as np
    >>> from workbench import random_model, CaptureSpec
    >>> h = random_model("tiny")
    >>> acts = teacher_force(h, [np.zeros(6400, np.float32)], 32000, capture=CaptureSpec(layers=(1,)))
    >>> acts[("resid", 1)].shape
    (1, 32)
"""
from __future__ import annotations

from collections import defaultdict

import numpy as np
import torch

from workbench import validation
from workbench.errors import BadInputError, DurationError, EmptyInputError
from workbench.runtime.capture import CaptureSpec
from workbench.runtime.clip import Clip
from workbench.runtime.edits import EditRun, capture_edits, pooled_activations
from workbench.runtime.hooks import edit_hooks
from workbench.runtime.inputs import check_audio_length, check_sample_rate, check_spec, checked_prompts, merge_batches
from workbench.runtime.threads import intra_op_threads, resolve_threads


def encode_audio(handle, audio: list[np.ndarray], sample_rate_hz: int) -> torch.Tensor:
    """EnCodec codes (B, n_codebooks, frames) for equal-length mono clips."""
    if sample_rate_hz != handle.sample_rate_hz:
        raise BadInputError(f"audio is {sample_rate_hz} Hz but the model expects {handle.sample_rate_hz} Hz: resample "
                            "it first (workbench.data.datasets.resample)")
    batch = torch.as_tensor(np.stack(audio), dtype=handle.dtype, device=handle.device)
    batch = batch[:, None, :].expand(-1, handle.audio_channels, -1) if handle.audio_channels == 1 else batch
    with torch.no_grad():
        if handle.audio_channels == 1:
            codes = handle.model.audio_encoder.encode(batch).audio_codes[0]
        else:  # stereo checkpoints interleave left/right codebooks
            halves = [handle.model.audio_encoder.encode(batch[:, c:c + 1]).audio_codes[0] for c in (0, 1)]
            codes = torch.stack(halves, dim=2).reshape(batch.shape[0], -1, halves[0].shape[-1])
    return codes


def delayed_decoder_inputs(handle, codes: torch.Tensor) -> torch.Tensor:
    """(B * K, frames + delay) decoder input ids: what generation feeds for these codes."""
    bsz, n_codebooks, frames = codes.shape
    bos = handle.model.generation_config.decoder_start_token_id
    if bos is None:
        bos = handle.config.decoder.bos_token_id
    ids = torch.cat([torch.full((bsz, n_codebooks, 1), bos, dtype=torch.long, device=codes.device), codes.long()], -1)
    _, pattern = handle.model.decoder.build_delay_pattern_mask(
        ids.reshape(bsz * n_codebooks, -1), pad_token_id=bos, max_length=frames + handle.delay_steps + 1)
    return pattern[:, : frames + handle.delay_steps]


def text_states(handle, prompts: list[str] | None, n: int):
    """Encoder states and mask for the conditional rows (null conditioning when prompts is None)."""
    model = handle.model
    if prompts is None:
        tokens = handle.processor(text=[""] * n, padding=True, return_tensors="pt")
        states = model.text_encoder(input_ids=tokens["input_ids"].to(handle.device)).last_hidden_state
        return torch.zeros_like(states), torch.zeros_like(tokens["attention_mask"]).to(handle.device)
    tokens = handle.processor(text=prompts, padding=True, return_tensors="pt")
    mask = tokens["attention_mask"].to(handle.device)
    states = model.text_encoder(input_ids=tokens["input_ids"].to(handle.device), attention_mask=mask).last_hidden_state
    return states, mask


def teacher_force(handle, audio, sample_rate_hz: int | None = None, prompts=None,
                  capture: CaptureSpec | None = None, batch_size: int = 8, codes=None,
                  threads: int | str | None = "auto") -> dict:
    """Capture the decoder while it reads real audio (or given codes) with one forward pass per batch.

    audio: a list of clips, each a 1-D array, a stereo (2, n) / (n, 2) array (mixed to mono), integer PCM
    (scaled to [-1, 1]) or a `Clip` (its codes are reused when made by this model); one bare 1-D array is one
    clip. Each lasts from the codec's minimum (3 frames, 0.06 s) to ``handle.max_duration_s``.
    prompts: None for null text conditioning, else one text per clip. capture.rows ``uncond``/``both``
    add the null-conditioned pass, as under classifier-free guidance.
    threads: as in `workbench.generate`.
    Returns dict[(site, layer)] -> np.ndarray (N, W) (pooling ``none``: list of (T_i, H)).
    """
    validation.threads(threads)
    with intra_op_threads(resolve_threads(handle, threads)):
        return _teacher_force(handle, audio, sample_rate_hz, prompts, capture, batch_size, codes)


def _teacher_force(handle, audio, sample_rate_hz, prompts, capture, batch_size, codes) -> dict:
    capture = capture or CaptureSpec()
    check_spec(capture, "capture", "CaptureSpec", "CaptureSpec(layers=(6,), pooling='mean')")
    capture.resolved_layers(handle.n_layers)
    batch_size = validation.positive_int(batch_size, "batch_size")
    if audio is not None:
        items = validation.audio_clips(audio, "audio")
    elif codes is not None:
        items = [codes] if getattr(codes, "ndim", None) == 2 else validation.audio_clips(codes, "codes")
    else:
        raise EmptyInputError("no audio given: pass a list of 1-D arrays or Clips (or codes=)")
    if not items:
        raise EmptyInputError("no audio given: pass a list of 1-D arrays or Clips")
    if prompts is not None:
        prompts = [prompts] * len(items) if isinstance(prompts, str) else prompts
        prompts = checked_prompts(handle, prompts)
        if len(prompts) != len(items):
            raise BadInputError(f"got {len(prompts)} prompts for {len(items)} clips: pass one per clip, or None")
    per_clip_codes = codes_for(handle, items, sample_rate_hz, batch_size)
    groups = defaultdict(list)  # equal frame counts batch together; padding would pollute the pooling
    for index, c in enumerate(per_clip_codes):
        groups[c.shape[-1]].append(index)
    order, results = [], []
    guided = capture.rows != "cond"
    for frames in sorted(groups):
        indices = groups[frames]
        for start in range(0, len(indices), batch_size):
            chunk = indices[start:start + batch_size]
            results.append(_forward(handle, torch.stack([per_clip_codes[i] for i in chunk]),
                                    None if prompts is None else [prompts[i] for i in chunk], capture, guided))
            order.extend(chunk)
    merged = merge_batches(results, capture.pooling, capture.rows)
    inverse = np.argsort(order)
    n = len(order)
    out = {}
    for key, value in merged.items():
        index = np.concatenate([inverse, inverse + n]) if capture.rows == "both" else inverse
        out[key] = [value[i] for i in index] if capture.pooling == "none" else value[index]
    return out


def _is_codes(handle, item) -> bool:
    """A 2-D integer (n_codebooks, frames) array of this model's codes, rather than integer PCM audio."""
    if isinstance(item, torch.Tensor):
        integral = not (item.dtype.is_floating_point or item.dtype.is_complex or item.dtype == torch.bool)
        pcm = item.dtype in (torch.int8, torch.uint8, torch.int16)
    elif isinstance(item, np.ndarray):
        integral, pcm = np.issubdtype(item.dtype, np.integer), item.dtype in (np.int8, np.uint8, np.int16, np.uint16)
    else:
        return False
    return item.ndim == 2 and integral and not pcm and item.shape[0] == handle.n_codebooks


def codes_for(handle, items, sample_rate_hz, batch_size) -> list[torch.Tensor]:
    codes: list[torch.Tensor | None] = [None] * len(items)
    pending = defaultdict(list)
    for i, item in enumerate(items):
        if isinstance(item, Clip) and item.codes is not None and item.model_id == handle.model_id:
            codes[i] = torch.as_tensor(item.codes, device=handle.device)
            continue
        if _is_codes(handle, item):
            frames = tuple(item.shape)[1]
            if not handle.min_frames <= frames <= handle.max_frames:
                raise DurationError(f"clip {i} has {frames} frames of codes: this model reads {handle.min_frames} "
                                    f"to {handle.max_frames} frames; crop or drop it")
            codes[i] = torch.as_tensor(np.asarray(item), device=handle.device)
            continue
        rate = item.sample_rate_hz if isinstance(item, Clip) else sample_rate_hz
        check_sample_rate(handle, rate, f"clip {i}")
        wave = validation.audio_mono(item.mono if isinstance(item, Clip) else item, f"clip {i}")
        check_audio_length(handle, len(wave), f"clip {i}")
        pending[(len(wave), rate)].append((i, wave))
    for (_, rate), entries in pending.items():
        for start in range(0, len(entries), batch_size):
            part = entries[start:start + batch_size]
            encoded = encode_audio(handle, [w for _, w in part], rate)
            for (i, _), c in zip(part, encoded):
                codes[i] = c
    return codes


def _forward(handle, codes: torch.Tensor, prompts, capture: CaptureSpec, guided: bool) -> dict:
    n = codes.shape[0]
    states, mask = text_states(handle, prompts, n)
    decoder_ids = delayed_decoder_inputs(handle, codes)
    if guided:
        states = torch.cat([states, torch.zeros_like(states)])
        mask = torch.cat([mask, torch.zeros_like(mask)])
        width = decoder_ids.shape[-1]
        decoder_ids = torch.cat([decoder_ids.reshape(n, -1, width)] * 2).reshape(-1, width)
    captured = capture_edits(capture, handle.n_layers, guided)
    with edit_hooks(handle, EditRun(list(captured.values()), n, guided), steps=False), torch.no_grad():
        handle.model(encoder_outputs=(states.to(handle.dtype),), attention_mask=mask,
                     decoder_input_ids=decoder_ids, use_cache=False)
    return pooled_activations(captured)
