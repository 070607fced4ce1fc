"""Honest baselines for probes: what a bag of codes gives, and what the prompt alone gives.

A probe that reads a concept at 0.95 from layer 6 says little about depth if a probe on the
*input* reads it just as well. Two baselines make the comparison explicit:

- `input_embeddings`: the decoder's input embeddings (the sum of the codebook embeddings of each
  frame's delayed codes), mean-pooled over time: a bag of codes, with no context.
- `prompt_embeddings`: the text encoder's output, mean-pooled over the prompt's tokens: how much of
  a generated clip's label is simply in its prompt.

`workbench.analysis.probes.sweep(..., baselines={"input": X_in, "prompt": X_txt})` fits the same
cross-validated probe on them and reports them beside the layers.

Example:
    >>> import numpy as np
    >>> from workbench import random_model
    >>> h = random_model("tiny")
    >>> input_embeddings(h, [np.zeros(6400, np.float32)], 32000).shape
    (1, 32)
    >>> prompt_embeddings(h, ["jazz", "calm rock"]).shape[0]
    2
"""
from __future__ import annotations

import numpy as np
import torch

from workbench.errors import BadInputError, EmptyInputError
from workbench.runtime.clip import Clip
from workbench.runtime.teacher_forcing import delayed_decoder_inputs, encode_audio

__all__ = ["input_embeddings", "prompt_embeddings"]


def _codes_of(handle, item, sample_rate_hz) -> torch.Tensor:
    """(n_codebooks, frames) codes of a Clip made by this model, a code array, or raw audio."""

    if isinstance(item, Clip) and item.codes is not None and item.model_id == handle.model_id:
        return torch.as_tensor(item.codes, device=handle.device)
    array = np.asarray(item.mono if isinstance(item, Clip) else item)
    if array.ndim == 2 and np.issubdtype(array.dtype, np.integer):
        return torch.as_tensor(array, device=handle.device)
    rate = item.sample_rate_hz if isinstance(item, Clip) else sample_rate_hz
    if rate is None:
        raise BadInputError("sample_rate_hz is required for raw audio arrays (e.g. 32000)")
    return encode_audio(handle, [np.asarray(array, np.float32).reshape(-1)], rate)[0]


def input_embeddings(handle, clips, sample_rate_hz: int | None = None) -> np.ndarray:
    """(N, hidden) mean over time of the decoder's input embeddings for each clip (a bag of codes).

    clips: Clips, (n_codebooks, frames) integer code arrays, or 1-D audio arrays at `sample_rate_hz`.
    The frames fed are exactly those teacher forcing feeds (start token and delay pattern included).
    """

    clips = [clips] if isinstance(clips, np.ndarray) and clips.ndim == 1 else list(clips)
    if not clips:
        raise EmptyInputError("no clips given: pass a list of Clips, code arrays or 1-D audio arrays")
    embed = handle.model.decoder.model.decoder.embed_tokens  # one embedding table per codebook
    rows = []
    with torch.no_grad():
        for item in clips:
            codes = _codes_of(handle, item, sample_rate_hz)[None]  # (1, K, T)
            ids = delayed_decoder_inputs(handle, codes).reshape(1, handle.n_codebooks, -1)
            summed = sum(embed[k](ids[:, k]) for k in range(handle.n_codebooks))  # (1, T, H)
            rows.append(summed[0].float().mean(0).cpu().numpy())
    return np.stack(rows).astype(np.float32)


def prompt_embeddings(handle, prompts) -> np.ndarray:
    """(N, text_hidden) text-encoder output mean-pooled over each prompt's tokens."""
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise EmptyInputError("no prompts given: pass a list of strings")
    rows = []
    with torch.no_grad():
        for prompt in prompts:
            tokens = handle.processor(text=[prompt], padding=True, return_tensors="pt")
            mask = tokens["attention_mask"].to(handle.device)
            states = handle.model.text_encoder(input_ids=tokens["input_ids"].to(handle.device),
                                               attention_mask=mask).last_hidden_state
            weights = mask[..., None].to(states.dtype)
            rows.append(((states * weights).sum(1) / weights.sum(1).clamp_min(1))[0].float().cpu().numpy())
    return np.stack(rows).astype(np.float32)
