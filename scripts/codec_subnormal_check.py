"""How much subnormal floats slow the teaching codec's decoding, and whether flushing them changes the audio.

Generates one plain and one steered 4 s clip (a random direction at the middle layer, strength 2: it collapses
into a drone that repeats a few codes, as `python -m benchmarks kernel` steers), then decodes each clip's codes 7
times with subnormals kept and 7 times flushed (`torch.set_flush_denormal`), one thread, and prints the median
decode times, the largest waveform difference and the distinct codes per codebook. `workbench.generate` flushes
them while it runs (`workbench.runtime.threads.flush_denormals`).

    python scripts/codec_subnormal_check.py
"""
from __future__ import annotations

import time

import numpy as np
import torch

import workbench as wb
from workbench.runtime.kernel.loop import audio_from_codes


def decode_ms(handle, codes, flush: bool) -> tuple[float, torch.Tensor]:
    """Median milliseconds of decoding ``codes`` (n_codebooks, frames), and the waveform."""
    torch.set_flush_denormal(flush)
    try:
        batch = torch.as_tensor(codes)[None]
        times = []
        with torch.inference_mode():
            for _ in range(7):
                start = time.perf_counter()
                wave = audio_from_codes(handle, batch, [None])
                times.append(time.perf_counter() - start)
    finally:
        torch.set_flush_denormal(False)
    return 1e3 * float(np.median(times)), wave


def main() -> int:
    torch.set_num_threads(1)
    handle = wb.load_model()
    direction = np.random.RandomState(0).randn(handle.hidden_size)
    steering = wb.SteeringSpec.single(direction, (handle.n_layers // 2,), 2.0)
    clips = {"plain": wb.generate(handle, "rock music", duration_s=4.0, seeds=1).clips[0],
             "steered": wb.generate(handle, "rock music", duration_s=4.0, seeds=1, steering=steering).clips[0]}
    for name, clip in clips.items():
        kept, wave_kept = decode_ms(handle, clip.codes, flush=False)
        flushed, wave_flushed = decode_ms(handle, clip.codes, flush=True)
        print(f"{name:8s} decode {kept:6.1f} ms, subnormals flushed {flushed:6.1f} ms, "
              f"max |difference| {float((wave_kept - wave_flushed).abs().max()):.3g}, distinct codes per book "
              f"{[len(set(row)) for row in clip.codes.tolist()]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
