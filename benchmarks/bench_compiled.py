"""`python -m benchmarks compiled [--repeats N] [--duration S] [--json PATH]`: the kernel's compiled variant
(`workbench.runtime.kernel.compiled`) beside the eager kernel and transformers' generate (issue 32, item 5).

- ``compiled_over_hf``: transformers' ``generate`` (``decoder_loop="transformers"``) wall time over the compiled
  kernel's, for one clip of the teaching model (4 s, guidance 3, its own temperature and top-k 250, one torch
  thread, as ``kernel_over_hf`` in benchmarks/bench_kernel.py); goal >= 3. ``compiled_over_kernel``: the eager
  kernel (``wb.generate``'s default loop) over the compiled one. Rounds interleave the three (see
  `benchmarks.bench.interleaved`); medians with their spread, and the same from CPU time (``*_cpu``).
- ``compiled_compile_s``: seconds the first (untimed) call spent compiling (inductor's disk cache makes a later
  process faster); not in the ratios.
- ``compiled_codes_identical_greedy``: greedy codes of the compiled kernel equal the eager kernel's (checked in
  an untimed run; the bench fails otherwise). ``compiled_codes_identical_sampled``: the same for the timed,
  sampled runs (expected, not promised: the compiled arithmetic is reordered).
- ``compiled_run_hf_s`` / ``compiled_run_kernel_s`` / ``compiled_s``: median seconds of each (audio decoding
  included in all three: ~0.12 s of CPU per 4 s clip of the teaching model, the same in every loop).

    >>> out = run_all(repeats=1, duration_s=0.2, model="tiny")
    >>> out["compiled_codes_identical_greedy"], out["compiled_over_hf"] > 0
    (True, True)
"""
from __future__ import annotations

import statistics

import numpy as np

import workbench as wb
from benchmarks.bench import interleaved, ratio, repeats_cli, spread
from workbench.runtime.inputs import generation_args
from workbench.runtime.kernel.compiled import CompiledDecoder, compiled_clips
from workbench.runtime.settings import GenerationSettings
from workbench.runtime.threads import intra_op_threads

PROMPT = "upbeat electronic dance music"


def run_all(repeats: int = 7, duration_s: float = 4.0, model: str = "teaching") -> dict:
    """compiled_over_hf and compiled_over_kernel on one model with one torch thread."""
    handle = wb.load_model() if model == "teaching" else wb.random_model(model, seed=0)
    sampled = GenerationSettings(duration_s=duration_s, seeds=1, threads=1)
    greedy = sampled.replace(temperature=0.0, top_k=None)
    decoder = CompiledDecoder(handle)
    with intra_op_threads(1):
        check = compiled_clips(handle, generation_args(handle, [PROMPT], greedy), decoder)[0].codes
        if not np.array_equal(check, wb.generate(handle, PROMPT, greedy).clips[0].codes):
            raise AssertionError("the compiled kernel's greedy codes differ from the eager kernel's")
        args = generation_args(handle, [PROMPT], sampled)
        codes: dict[str, list] = {"hf": [], "kernel": [], "compiled": []}

        def hf():
            result = wb.generate(handle, PROMPT, sampled.replace(decoder_loop="transformers"))
            codes["hf"].append(result.clips[0].codes)

        def kernel():
            result = wb.generate(handle, PROMPT, sampled)
            assert result.decoder_loop == "kernel", result.fallback_reason
            codes["kernel"].append(result.clips[0].codes)

        def compiled():
            codes["compiled"].append(compiled_clips(handle, args, decoder)[0].codes)

        times = interleaved({"hf": hf, "kernel": kernel, "compiled": compiled}, repeats)
    reference = codes["hf"][0]
    if not all(np.array_equal(c, reference) for c in codes["hf"] + codes["kernel"]):
        raise AssertionError("the eager kernel's codes differ from transformers': the ratios compare unlike work")
    out: dict = {"compiled_model": handle.model_id, "compiled_clip_s": duration_s, "compiled_threads": 1,
                 "compiled_compile_s": decoder.compile_s, "compiled_codes_identical_greedy": True,
                 "compiled_codes_identical_sampled": all(np.array_equal(c, reference) for c in codes["compiled"])}
    for name, key in (("hf", "compiled_run_hf_s"), ("kernel", "compiled_run_kernel_s"), ("compiled", "compiled_s")):
        out[key] = statistics.median(times[name])
        out[f"{key}_spread"] = spread(times[name])
    ratio(times, "hf", "compiled", "compiled_over_hf", out)
    ratio(times, "kernel", "compiled", "compiled_over_kernel", out)
    return out


def main(argv=None) -> int:
    return repeats_cli("python -m benchmarks compiled", __doc__.splitlines()[0], run_all, argv)
