"""`python -m benchmarks kernel [--repeats N] [--duration S] [--json PATH]`: the runtime kernel's decode loop
against transformers' generate, and what steering and capture cost in the kernel, side by side in one run (also
part of `python -m benchmarks`). One clip of the teaching model (4 s, guidance 3, its own temperature, top-k 250,
one torch thread); every variant runs once per round, rounds interleaved (`benchmarks.bench.interleaved`); each
ratio is the median over rounds with its min-max, and the same from this process's CPU time (``<key>_cpu``,
steadier on a loaded machine).

- ``kernel_over_hf``: ``wb.generate`` in transformers' loop over ``wb.generate`` in the kernel (the default);
  target >= 1.6. Every timed run's codes are compared: the bench fails unless they are bit-identical.
- ``kernel_steer_over_plain``: ``wb.generate`` steered (one direction at the middle layer, as
  `benchmarks.bench.core_ratios` steers) over plain, both in the kernel; target <= 1.03.
- ``kernel_capture_over_plain``: with a capture of every layer's residual, mean-pooled (as ``core_ratios``
  captures), over plain, both in the kernel; target <= 1.05.
- ``*_loop``: the same two ratios for the decode loop alone (`workbench.runtime.kernel.decode_codes`, no text
  encoding, no audio decoding): what the edits cost. The end-to-end steered ratio also holds the audio decoding
  of a different clip: the codec's time depends on the codes (subnormal floats in some clips' decoding: on the
  teaching model a steered clip decoded 20-30% slower than the plain one, and as fast under
  ``torch.set_flush_denormal(True)``), which ``codec_steered_over_plain`` reports.
- ``hf_s`` / ``kernel_s`` / ``steer_s`` / ``capture_s``: the median seconds of each (audio decoding included).

    >>> out = run_all(repeats=1, duration_s=0.2)
    >>> out["codes_identical"], out["kernel_over_hf"] > 0, out["kernel_capture_over_plain_loop"] > 0
    (True, True, True)
"""
from __future__ import annotations

import statistics

import numpy as np

PROMPT = "upbeat electronic dance music"


def run_all(repeats: int = 7, duration_s: float = 4.0) -> dict:
    """The kernel's ratios on the teaching model with one torch thread; raises if the two loops' codes differ."""
    import torch

    import workbench as wb
    from benchmarks.bench import interleaved, ratio, spread
    from workbench.runtime.edits import EditRun, batch_edits, capture_edits
    from workbench.runtime.inputs import generation_args
    from workbench.runtime.kernel import DecoderWeights, decode_codes
    from workbench.runtime.kernel.loop import audio_from_codes
    from workbench.runtime.settings import GenerationSettings
    from workbench.runtime.threads import intra_op_threads

    handle = wb.load_model()
    settings = GenerationSettings(duration_s=duration_s, seeds=1, guidance_scale=3.0, top_k=250, threads=1)
    rng = np.random.RandomState(0)
    steering = wb.SteeringSpec.single(rng.randn(handle.hidden_size), (handle.n_layers // 2,), 2.0)
    capture = wb.CaptureSpec(layers=None, pooling="mean")
    codes: dict[str, list] = {"hf": [], "kernel": []}

    def generation(name: str, loop: str = "kernel", **edits):
        def run():
            result = wb.generate(handle, PROMPT, settings.replace(decoder_loop=loop), **edits)
            assert result.decoder_loop == loop, result.fallback_reason
            if name in codes:
                codes[name].append(result.clips[0].codes)
        return run

    weights = DecoderWeights.of(handle)
    loop_args = {name: generation_args(handle, PROMPT, settings, **edits)
                 for name, edits in (("loop", {}), ("loop_steer", {"steering": steering}),
                                     ("loop_capture", {"capture": capture}))}
    decoded = {}

    def decode_loop(name: str):
        args = loop_args[name]

        def run():
            batch = args.batches()[0]
            reads = capture_edits(args.capture, handle.n_layers, args.guided)
            edits = batch_edits(args.edits, 0, 1, handle.device, handle.dtype)
            with torch.inference_mode():
                edit_run = EditRun([*edits, *reads.values()], 1, args.guided)
                decoded[name] = decode_codes(handle, weights, args, batch, edit_run)
        return run

    def codec(name: str):
        def run():
            with torch.inference_mode():
                audio_from_codes(handle, *decoded[name])
        return run

    with intra_op_threads(1):
        times = interleaved({"hf": generation("hf", "transformers"), "kernel": generation("kernel"),
                             "steer": generation("steer", steering=steering),
                             "capture": generation("capture", capture=capture)}, repeats)
        loops = interleaved({name: decode_loop(name) for name in loop_args}, repeats)
        codecs = interleaved({"codec_plain": codec("loop"), "codec_steered": codec("loop_steer")}, repeats)
    reference = codes["hf"][0]
    identical = all(np.array_equal(c, reference) for runs in codes.values() for c in runs)
    if not identical:
        raise AssertionError("the kernel's codes differ from transformers' generate's: kernel_over_hf compares "
                             "unlike work")
    out: dict = {"kernel_model": handle.model_id, "kernel_clip_s": duration_s, "kernel_threads": 1,
                 "codes_identical": identical}
    for name in ("hf", "kernel", "steer", "capture"):
        out[f"{name}_s"] = statistics.median(times[name])
        out[f"{name}_s_spread"] = spread(times[name])
    ratio(times, "hf", "kernel", "kernel_over_hf", out)
    ratio(times, "steer", "kernel", "kernel_steer_over_plain", out)
    ratio(times, "capture", "kernel", "kernel_capture_over_plain", out)
    ratio(loops, "loop_steer", "loop", "kernel_steer_over_plain_loop", out)
    ratio(loops, "loop_capture", "loop", "kernel_capture_over_plain_loop", out)
    ratio(codecs, "codec_steered", "codec_plain", "codec_steered_over_plain", out)
    return out


def main(argv=None) -> int:
    from benchmarks.bench import repeats_cli
    return repeats_cli("python -m benchmarks kernel", __doc__.splitlines()[0], run_all, argv)
