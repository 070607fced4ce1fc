"""Per-clip seeded sampling, and the codes `generate` hands to the audio decoder.

Shared by the hook path (`workbench.runtime.generation`) and the nnsight path (`workbench.runtime.tracing`).

Example:
    >>> import torch
    >>> sampler = SeededSampler([0], n_codebooks=1, guidance_scale=None, temperature=0.0, top_k=None)
    >>> sampler(None, torch.tensor([[0.1, 0.9, 0.0]])).argmax(-1).tolist()
    [1]
"""
from __future__ import annotations

import contextlib
from collections.abc import Sequence

import numpy as np
import torch


class SeededSampler:
    """A logits processor that samples each clip from its own generator (Gumbel-max trick).

    Runs before or after MusicGen's CFG processor: seeing the doubled batch it applies guidance
    itself and returns identical halves, so the CFG combination that follows keeps its choice.
    """

    def __init__(self, seeds: Sequence[int], n_codebooks: int, guidance_scale: float | None,
                 temperature: float, top_k: int | None):
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.n_codebooks = n_codebooks
        self.guidance_scale = guidance_scale
        self.temperature = temperature
        self.top_k = top_k

    def __call__(self, input_ids, scores):
        rows = len(self.generators) * self.n_codebooks
        logits = scores.float()
        doubled = logits.shape[0] == 2 * rows
        if doubled:
            cond, uncond = logits[:rows], logits[rows:]
            logits = uncond + self.guidance_scale * (cond - uncond)
        if self.top_k:
            kth = torch.topk(logits, min(self.top_k, logits.shape[-1]), dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.temperature > 0:
            uniform = torch.cat([torch.rand((self.n_codebooks, logits.shape[-1]), generator=g)
                                 for g in self.generators]).to(logits.device)
            gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))
            logits = logits / self.temperature + gumbel
        choice = logits.argmax(dim=-1)
        out = scores.new_zeros((rows, scores.shape[-1]))
        out[torch.arange(rows, device=out.device), choice] = 1.0
        return torch.cat([out, out]) if doubled else out


@contextlib.contextmanager
def record_codes(model, sink: list):
    """Keep the codes `generate` hands to the audio decoder (it returns only audio)."""
    original = model.audio_encoder.decode

    def recording_decode(audio_codes, *args, **kwargs):
        sink.append(audio_codes.detach().cpu())
        return original(audio_codes, *args, **kwargs)

    model.audio_encoder.decode = recording_decode
    try:
        yield
    finally:
        del model.audio_encoder.decode  # back to the class method


def codes_from(sink: list, channels: int) -> np.ndarray:
    """(B, n_codebooks, frames) from the recorded decode inputs (two calls, interleaved, for stereo)."""
    parts = [c[0] for c in sink]  # each (B, K/channels, T)
    if channels == 1:
        return parts[0].numpy().astype(np.int64)
    left, right = parts
    merged = torch.stack([left, right], dim=2).reshape(left.shape[0], -1, left.shape[-1])
    return merged.numpy().astype(np.int64)
