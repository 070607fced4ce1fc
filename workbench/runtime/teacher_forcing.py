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

from workbench.runtime.capture import CaptureSpec
from workbench.runtime.clip import Clip
from workbench.errors import BadInputError, EmptyInputError
from workbench.runtime.inputs import merge_batches
from workbench.runtime.threads import intra_op_threads, resolve_threads
from workbench.runtime.hooks import instrument


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


def _text_states(handle, prompts: list[str] | None, n: int):
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

    audio: list of 1-D float arrays, or of `Clip`s (their codes are reused when made by this model).
    prompts: None for null text conditioning, else one text per clip. capture.rows ``uncond``/``both``
    add the null-conditioned pass, as under classifier-free guidance.
    threads: as in `workbench.generate`.
    Returns dict[(site, layer)] -> np.ndarray (N, W) (pooling ``none``: list of (T_i, H)).
    """
    with intra_op_threads(resolve_threads(handle, threads)):
        return _teacher_force(handle, audio, sample_rate_hz, prompts, capture, batch_size, codes)


def _teacher_force(handle, audio, sample_rate_hz, prompts, capture, batch_size, codes) -> dict:
    capture = capture or CaptureSpec()
    capture.resolved_layers(handle.n_layers)
    items = list(audio) if audio is not None else list(codes)
    if not items:
        raise EmptyInputError("no audio given: pass a list of 1-D arrays or Clips")
    if prompts is not None:
        prompts = [prompts] * len(items) if isinstance(prompts, str) else list(prompts)
        if len(prompts) != len(items):
            raise BadInputError(f"got {len(prompts)} prompts for {len(items)} clips: pass one per clip, or None")
    per_clip_codes = _codes_for(handle, items, sample_rate_hz, batch_size)
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


def _codes_for(handle, items, sample_rate_hz, batch_size) -> list[torch.Tensor]:
    codes: list[torch.Tensor | None] = [None] * len(items)
    pending = defaultdict(list)
    for i, item in enumerate(items):
        if isinstance(item, Clip) and item.codes is not None and item.model_id == handle.model_id:
            codes[i] = torch.as_tensor(item.codes, device=handle.device)
            continue
        if isinstance(item, (np.ndarray, torch.Tensor)) and np.ndim(item) == 2 and np.issubdtype(
                np.asarray(item).dtype, np.integer):
            codes[i] = torch.as_tensor(np.asarray(item), device=handle.device)
            continue
        wave = item.mono if isinstance(item, Clip) else np.asarray(item, dtype=np.float32).reshape(-1)
        rate = item.sample_rate_hz if isinstance(item, Clip) else sample_rate_hz
        if rate is None:
            raise BadInputError("sample_rate_hz is required for raw audio arrays (e.g. 32000)")
        if not np.isfinite(wave).all():
            raise BadInputError(f"clip {i} contains NaN or inf samples: clean or drop it")
        pending[(len(wave), rate)].append((i, wave))
    for (length, rate), entries in pending.items():
        for start in range(0, len(entries), batch_size):
            part = entries[start:start + batch_size]
            encoded = encode_audio(handle, [w for _, w in part], rate)
            for (i, _), c in zip(part, encoded):
                codes[i] = c
    return codes


def _forward(handle, codes: torch.Tensor, prompts, capture: CaptureSpec, guided: bool) -> dict:
    n = codes.shape[0]
    states, mask = _text_states(handle, prompts, n)
    decoder_ids = delayed_decoder_inputs(handle, codes)
    if guided:
        states = torch.cat([states, torch.zeros_like(states)])
        mask = torch.cat([mask, torch.zeros_like(mask)])
        decoder_ids = torch.cat([decoder_ids.reshape(n, -1, decoder_ids.shape[-1])] * 2).reshape(-1, decoder_ids.shape[-1])
    with instrument(handle, n, guided, capture) as inst, torch.no_grad():
        handle.model(encoder_outputs=(states.to(handle.dtype),), attention_mask=mask,
                     decoder_input_ids=decoder_ids, use_cache=False)
        return inst.activations()
