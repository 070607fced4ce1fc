"""The kernel's caches: a preallocated self-attention KV cache and a cross-attention cache computed once.

The self-attention cache holds every position a clip feeds the decoder (the start token, the frames and the
delay pattern's extra steps) for every decoder row (2B under guidance), per layer, keys and values:
``2 x layers x rows x positions x hidden`` elements. Computed from the configs (float32, guidance on, batch 8,
a 30 s clip = 1500 frames + 3 delay steps = 1503 positions; `static_cache_bytes`):

- musicgen-small / stereo-small (24 x 1024): 4.73 GB (4,728,029,184 bytes)
- musicgen-medium / stereo-medium (48 x 1536): 14.18 GB
- musicgen-large / stereo-large (48 x 2048):   18.91 GB

Stereo models feed as many positions (their 8 codebooks are 2 channels of 4, delayed by 3 steps), and a 30 s
clip is within every official model's ``max_duration_s`` (40.88 s: 2048 positions). The teaching model (6 x 96)
has 1024 positions, so at most 20.4 s: its cache for 8 clips of that length is 75.4 MB (75,423,744 bytes). A
cache never holds more positions than the decoder has (`cache_positions` refuses clips beyond ``max_duration_s``).
The cross-attention cache is ``2 x layers x rows x prompt_tokens x hidden``: a few MB for sentence-long prompts.

Example:
    >>> from workbench.runtime.configs import musicgen_config
    >>> static_cache_bytes(musicgen_config("musicgen-small").decoder, batch=8, frames=1500)
    4728029184
"""
from __future__ import annotations

import torch

from workbench.errors import DurationError


def cache_positions(decoder_config, frames: int, prompt_frames: int = 0) -> int:
    """Positions a clip of ``frames`` new frames feeds the decoder: the start token, an audio prompt's
    ``prompt_frames``, then every sampled token but the last (prompt + frames + delay steps in all)."""
    delay_steps = decoder_config.num_codebooks // decoder_config.audio_channels - 1
    positions = prompt_frames + frames + delay_steps
    if positions >= decoder_config.max_position_embeddings:
        longest = decoder_config.max_position_embeddings - 1 - delay_steps - prompt_frames
        raise DurationError(f"{frames} frames need {positions} decoder positions but the decoder has "
                            f"{decoder_config.max_position_embeddings}: generate at most {longest} frames")
    return positions


def static_cache_bytes(decoder_config, batch: int, frames: int, guided: bool = True,
                       dtype: torch.dtype = torch.float32) -> int:
    """Bytes of the self-attention cache for ``batch`` clips of ``frames`` frames (rows doubled when guided)."""
    rows = batch * (2 if guided else 1)
    elements = 2 * decoder_config.num_hidden_layers * rows * cache_positions(decoder_config, frames) \
        * decoder_config.hidden_size
    return elements * torch.empty((), dtype=dtype).element_size()


class StaticCache:
    """Per layer, keys and values (rows, heads, positions, head_dim) allocated once; ``length`` filled so far.

    `write` stores a step's keys and values at ``length`` and returns views of everything up to them, so
    attention reads the same values, in the same layout per head, as transformers' growing cache.
    """

    def __init__(self, n_layers: int, rows: int, heads: int, positions: int, head_dim: int, *,
                 dtype: torch.dtype, device):
        shape = (n_layers, 2, rows, heads, positions, head_dim)
        self.buffer = torch.empty(shape, dtype=dtype, device=device)
        self.keys = list(self.buffer[:, 0].unbind(0))  # per-layer views, so a step indexes no Python slices
        self.values = list(self.buffer[:, 1].unbind(0))
        self.length = 0

    def write(self, layer: int, keys: torch.Tensor, values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Store (rows, heads, q, head_dim) at the current length; views of (rows, heads, length + q, head_dim)."""
        q = keys.shape[2]
        layer_keys, layer_values = self.keys[layer], self.values[layer]
        layer_keys.narrow(2, self.length, q).copy_(keys)
        layer_values.narrow(2, self.length, q).copy_(values)
        end = self.length + q
        return layer_keys.narrow(2, 0, end), layer_values.narrow(2, 0, end)

    def advance(self, q: int) -> None:
        """Mark ``q`` more positions as filled (after every layer wrote them)."""
        self.length += q

    @property
    def nbytes(self) -> int:
        return self.buffer.numel() * self.buffer.element_size()
