"""`python -m benchmarks kernel [--repeats N] [--duration S] [--json PATH]`: the runtime kernel's decode loop
against ``wb.generate`` (transformers' generate), side by side (also part of `python -m benchmarks`).

- ``kernel_over_hf``: ``wb.generate``'s wall time in transformers' loop over its time in the kernel for one
  clip of the teaching model (4 s, guidance 3, its own temperature and top-k 250, one torch thread); target
  >= 1.6. Rounds interleave the two (see `benchmarks.bench.interleaved`); the median ratio is reported with
  its spread, and the same from this process's CPU time (``kernel_over_hf_cpu``), steadier on a loaded machine.
  Every timed run's codes are compared: the bench fails unless they are bit-identical.
- ``hf_s`` / ``kernel_s``: the median seconds of each (audio decoding included in both).

    >>> out = run_all(repeats=1, duration_s=0.2)
    >>> out["codes_identical"], out["kernel_over_hf"] > 0
    (True, True)
"""
from __future__ import annotations

import argparse
import json
import statistics

import numpy as np

PROMPT = "upbeat electronic dance music"


def run_all(repeats: int = 7, duration_s: float = 4.0) -> dict:
    """kernel_over_hf on the teaching model with one torch thread; raises if any run's codes differ."""
    import workbench as wb
    from benchmarks.bench import interleaved, ratio, spread
    from workbench.runtime.settings import GenerationSettings
    from workbench.runtime.threads import intra_op_threads

    handle = wb.load_model()
    settings = GenerationSettings(duration_s=duration_s, seeds=1, guidance_scale=3.0, top_k=250, threads=1)
    codes: dict[str, list] = {"hf": [], "kernel": []}

    def hf():
        result = wb.generate(handle, PROMPT, settings.replace(decoder_loop="transformers"))
        codes["hf"].append(result.clips[0].codes)

    def kernel():
        result = wb.generate(handle, PROMPT, settings)
        assert result.decoder_loop == "kernel", result.fallback_reason
        codes["kernel"].append(result.clips[0].codes)

    with intra_op_threads(1):
        times = interleaved({"hf": hf, "kernel": kernel}, repeats)
    reference = codes["hf"][0]
    identical = all(np.array_equal(c, reference) for runs in codes.values() for c in runs)
    if not identical:
        raise AssertionError("the kernel's codes differ from wb.generate's: kernel_over_hf compares unlike work")
    out: dict = {"kernel_model": handle.model_id, "kernel_clip_s": duration_s, "kernel_threads": 1,
                 "codes_identical": identical}
    for name in ("hf", "kernel"):
        out[f"{name}_s"] = statistics.median(times[name])
        out[f"{name}_s_spread"] = spread(times[name])
    ratio(times, "hf", "kernel", "kernel_over_hf", out)
    return out


def main(argv=None) -> int:
    from benchmarks.bench import _load_average, format_table
    parser = argparse.ArgumentParser(prog="python -m benchmarks kernel", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=7, help="interleaved rounds (median and min/max reported)")
    parser.add_argument("--duration", type=float, default=4.0, help="seconds of audio per clip")
    parser.add_argument("--json", help="write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    results = {"load_average_start": _load_average()}
    results.update(run_all(args.repeats, args.duration))
    results["load_average_end"] = _load_average()
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0
