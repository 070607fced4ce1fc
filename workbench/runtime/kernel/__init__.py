"""The runtime's own decode loop for MusicGen (issue 32, item 3): a static self-attention KV cache, a
cross-attention cache computed once, guidance as one doubled batch, the delay pattern, the per-clip seeded
sampler and steering edits in the loop. Codes are identical to ``wb.generate`` (tests/test_kernel_parity.py).

Example:
    >>> from workbench.runtime.model import random_model
    >>> from workbench.runtime.inputs import generation_args
    >>> h = random_model("tiny")
    >>> args = generation_args(h, "rock", duration_s=0.1, seeds=1, guidance_scale=3.0, temperature=0.0, top_k=None)
    >>> kernel_generate(h, args).clips[0].codes.shape
    (4, 5)
"""
from workbench.runtime.kernel.cache import StaticCache, cache_positions, static_cache_bytes
from workbench.runtime.kernel.loop import decode_codes, kernel_generate

__all__ = ["StaticCache", "cache_positions", "decode_codes", "kernel_generate", "static_cache_bytes"]
