"""Torch intra-op thread policy while the decoder runs (one thread for small models).

Example:
    >>> import torch
    >>> before = torch.get_num_threads()
    >>> with intra_op_threads(1):
    ...     torch.get_num_threads()
    1
    >>> torch.get_num_threads() == before
    True
"""
from __future__ import annotations

import contextlib

import torch

SMALL_MODEL_HIDDEN = 512  # at or below this width one intra-op thread is fastest (per-op overhead dominates)


@contextlib.contextmanager
def intra_op_threads(threads: int | None):
    """Temporarily set torch's intra-op thread count (None: leave it as it is)."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextlib.contextmanager
def flush_denormals():
    """Treat subnormal floats as zero while generating (the calling thread's FTZ/DAZ bits); restored after.

    The codec's decoder meets subnormals on clips that repeat codes (a drone): the teaching model decoded a steered
    4 s drone in 124 ms instead of 89 ms, a plain clip in 103 ms instead of 87 ms, and the waveforms were identical
    (max |difference| 0). torch has no getter for the mode: on exit it is switched off, torch's default.
    """
    supported = torch.set_flush_denormal(True)
    try:
        yield supported
    finally:
        if supported:
            torch.set_flush_denormal(False)


def resolve_threads(handle, threads) -> int | None:
    """``"auto"``: one thread for small decoders (on a shared 2-core CPU two threads spin-waited
    15-36x slower on the teaching model), unchanged for full-size ones."""
    if threads == "auto":
        return 1 if handle.hidden_size <= SMALL_MODEL_HIDDEN else None
    return threads
