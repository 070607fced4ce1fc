"""Input preparation shared by every path that runs the decoder (hooks, nnsight, teacher forcing):
prompt and seed lists, audio prompts, processor tensors on the model's device, and merging of batches.

Example:
    >>> prompt_list("jazz"), seeds_for(3, 2)
    (['jazz'], [3, 3])
"""
from __future__ import annotations

import numpy as np
import torch

from workbench.errors import BadInputError, EmptyInputError


def prompt_list(prompts) -> list[str]:
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise EmptyInputError("prompts is empty: pass at least one text prompt, e.g. ['lo-fi jazz']")
    return prompts


def seeds_for(seeds, n: int) -> list[int]:
    if seeds is None:
        return [0] * n
    if isinstance(seeds, (int, np.integer)):
        return [int(seeds)] * n
    seeds = [int(s) for s in seeds]
    if len(seeds) != n:
        raise BadInputError(f"got {len(seeds)} seeds for {n} prompts: pass one seed per prompt or a single int")
    return seeds


def audio_prompts(audio_prompt, n: int):
    if audio_prompt is None:
        return None
    if isinstance(audio_prompt, np.ndarray) and audio_prompt.ndim == 1:
        return [audio_prompt] * n
    audio = [np.asarray(a, dtype=np.float32).reshape(-1) for a in audio_prompt]
    if len(audio) != n:
        raise BadInputError(f"got {len(audio)} audio prompts for {n} text prompts: pass one per prompt or one array")
    return audio


def processor_inputs(handle, prompts: list[str], audio=None, audio_sample_rate_hz: int | None = None) -> dict:
    """The processor's tensors for these prompts (and audio prompts), on the handle's device and dtype."""
    if audio is not None:
        if audio_sample_rate_hz is None:
            raise BadInputError("audio_prompt needs audio_prompt_sample_rate_hz (e.g. 32000)")
        if audio_sample_rate_hz != handle.sample_rate_hz:
            raise BadInputError(f"audio prompt is {audio_sample_rate_hz} Hz but the model expects {handle.sample_rate_hz} Hz: "
                                "resample it first (e.g. workbench.data.datasets.resample)")
        inputs = handle.processor(text=prompts, audio=audio, sampling_rate=audio_sample_rate_hz, padding=True,
                                  return_tensors="pt")
    else:
        inputs = handle.processor(text=prompts, padding=True, return_tensors="pt")
    return {k: (v.to(handle.device, handle.dtype) if v.dtype.is_floating_point else v.to(handle.device))
            for k, v in inputs.items()}


def merge_batches(per_batch: list[dict], pooling: str, rows: str) -> dict | None:
    """Concatenate batch results; with rows='both' keep all cond rows first, then all uncond rows."""
    if not per_batch:
        return None
    merged = {}
    for key in per_batch[0]:
        parts = [b[key] for b in per_batch]
        if rows == "both":
            conds = [p[: p.shape[0] // 2] for p in parts]
            unconds = [p[p.shape[0] // 2:] for p in parts]
            parts = conds + unconds
        if pooling == "none":
            merged[key] = [row.numpy() for p in parts for row in p]
        else:
            merged[key] = torch.cat(parts).numpy()
    return merged
