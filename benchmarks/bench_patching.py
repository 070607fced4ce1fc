"""Benchmarks of causal inspection, for `python -m benchmarks` (which calls `run_all`).

- ``patching_sweep_s``: a teacher-forced `patching_sweep` over every layer x 8 windows of the
  teaching model (two 4 s synthetic clips, jazz into rock; target < 10 s on 2 cores), median of
  ``repeats`` runs with its spread.
- ``patch_over_plain``: one patched forward (nnsight trace, source activations at hand) over one
  plain forward of the model on the same input, interleaved rounds (target <= 1.3).
- ``trace_over_generate``: `trace_steps` (every layer's projection at every step, through nnsight)
  over plain `generate` of the same clip, on a random model of musicgen-small's shape (no target;
  the per-step readings of a 30 s clip are 24 x 1503 x 2 floats, 288 kB).

    >>> out = run_all(repeats=1, duration_s=0.5, windows=2, trace_shape=None)
    >>> sorted(k for k in out if not k.endswith("spread"))
    ['patch_over_plain', 'patch_over_plain_cpu', 'patching_sweep_cells', 'patching_sweep_s']
"""
from __future__ import annotations

import time

import torch

__all__ = ["run_all"]


def _inputs(handle, duration_s: float):
    from workbench.analysis.patching import ForcedInput
    from workbench.data.datasets import SynthSet
    clips = SynthSet(["jazz", "rock"], n_per_genre=1, duration_s=duration_s, seed=5, version=1)
    return (ForcedInput.of(handle, clips.audio(0), prompt=None, label="jazz"),
            ForcedInput.of(handle, clips.audio(1), prompt=None, label="rock"))


def trace_cost(shape: str = "musicgen-small", duration_s: float = 0.5, repeats: int = 3) -> dict:
    """trace_over_generate: per-step traces of every layer over plain generation, one clip, side by side."""
    import numpy as np

    import workbench as wb
    from benchmarks.bench import interleaved, ratio
    from workbench.analysis.step_traces import trace_steps
    from workbench.runtime.settings import GenerationSettings
    handle = wb.random_model(shape, seed=0)
    direction = np.random.default_rng(0).normal(size=handle.hidden_size).astype(np.float32)
    times = interleaved({
        "plain": lambda: wb.generate(handle, "calm piano", duration_s=duration_s, seeds=1),
        "traced": lambda: trace_steps(handle, ["calm piano"], direction,
                                      GenerationSettings(duration_s=duration_s, seeds=1))},
        repeats)
    out: dict = {"trace_shape": shape}
    ratio(times, "traced", "plain", "trace_over_generate", out)
    return out


def run_all(repeats: int = 5, duration_s: float = 4.0, windows: int = 8,
            trace_shape: str | None = "musicgen-small") -> dict:
    """patching_sweep_s and patch_over_plain on the teaching model (one torch thread), and
    trace_over_generate on ``trace_shape`` (None: skipped)."""
    import workbench as wb
    from benchmarks.bench import interleaved, ratio, spread
    from workbench.analysis import patching as P
    from workbench.runtime.teacher_forcing import delayed_decoder_inputs, text_states
    from workbench.runtime.threads import intra_op_threads

    out: dict = {}
    with intra_op_threads(1):
        handle = wb.load_model()
        source, target = _inputs(handle, duration_s)
        P.patching_sweep(handle, source, target, P.PatchSweep(windows=2, layers=[0]))  # warm-up (nnsight twin)
        seconds = []
        for _ in range(repeats):
            began = time.perf_counter()
            df = P.patching_sweep(handle, source, target, P.PatchSweep(windows=windows))
            seconds.append(time.perf_counter() - began)
        s = spread(seconds)
        out.update(patching_sweep_s=s["median"], patching_sweep_s_spread=s, patching_sweep_cells=len(df))

        layer = handle.n_layers // 2
        acts = P.record_forward(handle, source, [("resid", layer)], None)
        states, mask = text_states(handle, None, 1)
        ids = delayed_decoder_inputs(handle, target.codes[None])

        def plain():
            with torch.no_grad():
                handle.model(encoder_outputs=(states,), attention_mask=mask, decoder_input_ids=ids, use_cache=False)

        def patched():
            P.patch_forward(handle, source, target, P.PatchSpec(layer, window=(0, ids.shape[-1] // 2)),
                            source_acts=acts)
        times = interleaved({"plain": plain, "patched": patched}, max(repeats, 3) * 4)
        ratio(times, "patched", "plain", "patch_over_plain", out)
    if trace_shape is not None:
        out.update(trace_cost(trace_shape, repeats=max(1, repeats // 2)))
    return out
