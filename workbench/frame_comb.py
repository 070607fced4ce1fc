"""The frame-rate comb: how much of a clip's power is periodic at a codec's frame period.

A codec that decodes each code to an almost fixed frame-long waveform adds a buzz at its frame rate (50 Hz
for MusicGen's 32 kHz EnCodec, 640 samples a frame) and its harmonics, phase-locked to the frames. This
module holds the one measure of it, used by the steering verdicts (`workbench.analysis.evaluation.collapse`:
a steered clip *buzzes*) and by the teaching codec's checks (`workbench.toy.audio_checks`).

`comb_share`: the clip in mono, its mean removed, cut into blocks of `COMB_BLOCK_S` (whole frame periods;
a clip shorter than a block is one block, a tail shorter than a block is left out); the frame periods of a
block are averaged, which removes everything not locked to the frame period, and that average, tiled over
the block, is the block's comb. Its power over the block's power, pooled over blocks by power, is the share
(0-1). Clean synthesised music reads 0.01-0.10, the teaching model v2's generations 0.67-0.98.

    >>> import numpy as np
    >>> t = np.arange(32000) / 32000
    >>> round(comb_share(np.sin(2 * np.pi * 50 * t), 32000, 640), 2)  # a 50 Hz tone is all comb
    1.0
    >>> round(comb_share(np.sin(2 * np.pi * 441 * t), 32000, 640), 2)  # drifts 0.82 cycle a frame: averages away
    0.01
    >>> comb_share(np.random.default_rng(0).normal(size=32000), 32000, 640) < 0.1  # noise: 1/25, a block's periods
    True
"""
from __future__ import annotations

import numpy as np

from workbench.errors import BadInputError

__all__ = ["COMB_BLOCK_S", "comb_share"]

COMB_BLOCK_S = 0.5  # the period-synchronous average is taken over blocks this long


def comb_share(audio, sample_rate_hz: int, frame_period: int) -> float:
    """Share of a clip's power that is periodic at `frame_period` samples (see the module doc); 0.0 for a
    silent clip. audio: (samples,) or (channels, samples)."""
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.ndim != 1:
        raise BadInputError(f"audio must be (samples,) or (channels, samples), got shape {x.shape}")
    period = int(frame_period)
    if period < 2:
        raise BadInputError(f"frame_period must be at least 2 samples, got {frame_period}")
    x = x - x.mean()
    block = max(period, int(round(COMB_BLOCK_S * sample_rate_hz / period)) * period)
    n_periods_total = len(x) // period
    if n_periods_total < 2:
        raise BadInputError(f"a clip of {len(x)} samples holds fewer than two frame periods of {period}: "
                            f"measure clips of at least {2 * period} samples")
    if len(x) < block:  # a short clip: one block over the whole clip
        block = n_periods_total * period
    comb_power, total_power = 0.0, 0.0
    for start in range(0, len(x) - block + 1, block):
        seg = x[start:start + block].reshape(-1, period)
        mean_period = seg.mean(axis=0)
        comb_power += float(np.sum(mean_period ** 2)) * seg.shape[0]
        total_power += float(np.sum(seg ** 2))
    return comb_power / total_power if total_power > 0 else 0.0
