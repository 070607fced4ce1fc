"""The runtime's own decode loop for MusicGen (issue 32, item 3): a static self-attention KV cache, a
cross-attention cache computed once, guidance as one doubled batch, the delay pattern, the per-clip seeded
sampler and edits (`workbench.runtime.edits`) applied in place in the loop. `workbench.generate` runs it by
default (``GenerationSettings(decoder_loop="kernel")``); codes and reads are identical to transformers'
``generate`` with the hook runner (tests/test_kernel_parity.py, tests/test_edit_runners.py).

Example:
    >>> from workbench.runtime.model import random_model
    >>> from workbench.runtime.inputs import generation_args
    >>> h = random_model("tiny")
    >>> args = generation_args(h, "rock", duration_s=0.1, seeds=1, temperature=0.0, top_k=None)
    >>> kernel_batch(h, DecoderWeights.of(h), args, args.batches()[0])[0].codes.shape
    (4, 5)
"""
from workbench.runtime.kernel.cache import StaticCache, cache_positions, static_cache_bytes
from workbench.runtime.kernel.forward import DecoderWeights, kernel_refusal
from workbench.runtime.kernel.loop import decode_codes, kernel_batch

__all__ = ["DecoderWeights", "StaticCache", "cache_positions", "decode_codes", "kernel_batch", "kernel_refusal",
           "static_cache_bytes"]
