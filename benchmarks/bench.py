"""`python -m benchmarks` (also `python -m workbench bench`, `make bench`): speed ratios measured side by side.

Ratios, not seconds, are the targets (these machines are noisy). Each ratio is measured ``--repeats``
times: every repeat is one round that runs each variant once, back to back (A B C D, then B C D A, ...;
one untimed warm-up of each first), and gives one ratio from its own adjacent runs, so slow drift in
the machine's load cancels. The value reported for a ratio is the median over the repeats; its min
and max are in ``<key>_spread`` and in the table, and only the median is compared to the target (one
stalled generation moves one repeat, not the verdict; the table says when the spread straddles
the target). Each ratio is also given from this process's CPU time (``<key>_cpu``, no target): while
other processes load the CPU, wall time swings far more than CPU time (issue 9: steer_over_plain read
1.050 once, 0.985 once and 2.02 under load 8, for a hook that costs ~0.02% of a decoder step).

Keys: steer_over_plain, capture_over_plain, nnsight_over_hooks, batch8_throughput_gain, bf16_speedup
(per model shape, headline copies from the first shape), decoder_step_ms, steer_hook_us (the
steering hook alone, timed with torch.utils.benchmark) and steer_hook_share_of_step, plus
probe_sweep_s, umap_s, collect_batch_gain (benchmarks.bench_probes), patching_sweep_s and
patch_over_plain (benchmarks.bench_patching), kernel_over_hf (benchmarks.bench_kernel), compiled_over_hf
(benchmarks.bench_compiled), roofline_fraction (benchmarks.bench_roofline: musicgen-small's decoder, ~3.4 GB),
ray_over_local and ray_2workers_gain
(benchmarks.bench_ray, with the ray extra; 64 clips x 3 engines x 3 repeats: 11 minutes on 2 shared vCPUs)
and ui_generate_s (benchmarks.bench_ui) when present. At --repeats 5 the musicgen-small shape took 11-14 minutes under
load average 6 on 2 cores and 18 under load 8 (some 5 estimated on an idle machine: 41 generations of
~7 s); ``--shapes tiny`` takes under a minute.
"""
from __future__ import annotations

import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch: idle OpenMP threads sleep, not spin

import argparse
import gc
import json
import statistics
import time

import numpy as np
import torch

TARGETS = {"steer_over_plain": ("<=", 1.03), "capture_over_plain": ("<=", 1.05),
           "batch8_throughput_gain": (">=", 3.0), "probe_sweep_s": ("<", 10.0),
           "collect_batch_gain": (">=", 3.0), "ui_generate_s": ("<", 3.0),
           "patching_sweep_s": ("<", 10.0), "patch_over_plain": ("<=", 1.3), "ray_over_local": ("<=", 1.5),
           "kernel_over_hf": (">=", 1.6), "kernel_steer_over_plain": ("<=", 1.03),
           "kernel_capture_over_plain": ("<=", 1.05), "kernel_steer_over_plain_loop": ("<=", 1.03),
           "kernel_capture_over_plain_loop": ("<=", 1.05), "compiled_over_hf": (">=", 3.0),
           "roofline_fraction": (">=", 0.85), "kernel_roofline_fraction": (">=", 0.85)}
HEADLINE = ("steer_over_plain", "capture_over_plain", "nnsight_over_hooks", "batch8_throughput_gain",
            "bf16_speedup")
PROMPT = "upbeat electronic dance music"


def _timed(fn) -> tuple[float, float]:
    """(wall seconds, CPU seconds of this process) of one call."""
    gc.collect()
    wall, cpu = time.perf_counter(), time.process_time()
    fn()
    return time.perf_counter() - wall, time.process_time() - cpu


class Timings(dict):
    """name -> wall seconds per round; ``.cpu``: name -> this process's CPU seconds per round."""

    def __init__(self, names):
        super().__init__({name: [] for name in names})
        self.cpu = {name: [] for name in names}


def interleaved(variants: dict, repeats: int) -> Timings:
    """Seconds of each variant per round: name -> list of ``repeats`` wall timings (CPU ones in ``.cpu``).

    One untimed warm-up of each variant, then ``repeats`` rounds running every variant once; the
    order rotates from round to round so no variant always follows the same one.
    """
    names = list(variants)
    for fn in variants.values():
        fn()
    times = Timings(names)
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            wall, cpu = _timed(variants[name])
            times[name].append(wall)
            times.cpu[name].append(cpu)
    return times


def spread(values) -> dict:
    """Median, min and max of repeated measurements (and the measurements)."""
    values = [float(v) for v in values]
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "n": len(values),
            "runs": values}


def ratio(times: Timings, num: str, den: str, key: str, out: dict, factor: float = 1.0) -> None:
    """Per-round ratio factor * num / den of wall times: median in ``out[key]``, spread in ``out[key_spread]``;
    the same from CPU times in ``out[key_cpu]`` and ``out[key_cpu_spread]`` (steadier when others load the CPU)."""
    for suffix, clock in (("", times), ("_cpu", times.cpu)):
        s = spread([factor * n / d for n, d in zip(clock[num], clock[den])])
        out[key + suffix] = s["median"]
        out[f"{key}{suffix}_spread"] = s


def bf16_supported() -> bool:
    try:
        a = torch.ones(64, 64, dtype=torch.bfloat16)
        return bool(torch.isfinite(a @ a).all()) and torch.backends.mkldnn.is_available()
    except RuntimeError:
        return False


def decoder_step_ms(handle, duration_s: float) -> float:
    """Median wall milliseconds of one transformers decoder forward (after the two prefill forwards), plain
    generation in transformers' loop (``decoder_loop="transformers"``: the kernel calls no module hooks)."""
    import workbench as wb
    decoder = handle.model.decoder.model.decoder
    starts, spans = [], []
    pre = decoder.register_forward_pre_hook(lambda m, a: starts.append(time.perf_counter()))
    post = decoder.register_forward_hook(lambda m, a, o: spans.append(time.perf_counter() - starts[-1]))
    try:
        wb.generate(handle, PROMPT, wb.GenerationSettings(duration_s=duration_s, seeds=1, decoder_loop="transformers"))
    finally:
        pre.remove()
        post.remove()
    return 1e3 * statistics.median(spans[2:] or spans)


def steer_hook_us(handle, steer, rows: int = 2, min_run_time: float = 0.5) -> float:
    """Median microseconds of one steering edit alone on (rows, 1, hidden), as a hook applies it: CFG doubles
    batch 1."""
    from torch.utils import benchmark

    from workbench.runtime.edits import EditRun, batch_edits, steering_edits
    edits = batch_edits(steering_edits(steer)[:1], 0, rows // 2, handle.device, handle.dtype)
    run = EditRun(edits, rows // 2, guided=rows > 1)
    site, layer = run.plan()[0]
    hidden = torch.randn(rows, 1, handle.hidden_size, device=handle.device, dtype=handle.dtype)
    # what the hook runner's hook does per call (EditRun.apply on a state it does not own)
    timer = benchmark.Timer(stmt="run.apply(site, layer, hidden, 1)",
                            globals={"run": run, "site": site, "layer": layer, "hidden": hidden},
                            num_threads=torch.get_num_threads())
    return 1e6 * timer.blocked_autorange(min_run_time=min_run_time).median


def core_ratios(handle, duration_s: float, repeats: int) -> dict:
    """Steering, capture, nnsight and batching costs on one model; each ratio with its spread."""
    import workbench as wb
    from workbench.runtime.settings import GenerationSettings
    from workbench.runtime.tracing import generate_traced

    rng = np.random.RandomState(0)
    steer = wb.SteeringSpec.single(rng.randn(handle.hidden_size), (handle.n_layers // 2,), 2.0)
    capture_all = wb.CaptureSpec(layers=None, pooling="mean")
    run = lambda **kw: (lambda: wb.generate(handle, PROMPT, duration_s=duration_s, seeds=1, **kw))
    traced = GenerationSettings(duration_s=duration_s, seeds=1)
    out: dict = {"decoder_step_ms": decoder_step_ms(handle, duration_s)}
    hooks = traced.replace(decoder_loop="transformers")  # the hook runner: transformers' loop, as nnsight runs it
    times = interleaved({"plain": run(), "steer": run(steering=steer), "capture": run(capture=capture_all),
                         "hooks_steer": lambda: wb.generate(handle, PROMPT, hooks, steering=steer),
                         "nnsight_steer": lambda: generate_traced(handle, PROMPT, traced, steering=steer)}, repeats)
    out["plain_s"] = statistics.median(times["plain"])
    out["plain_s_spread"] = spread(times["plain"])
    ratio(times, "steer", "plain", "steer_over_plain", out)
    ratio(times, "capture", "plain", "capture_over_plain", out)
    ratio(times, "nnsight_steer", "hooks_steer", "nnsight_over_hooks", out)  # both in transformers' loop
    batch = interleaved({"b1": run(), "b8": lambda: wb.generate(handle, [PROMPT] * 8, duration_s=duration_s,
                                                                seeds=list(range(8)), batch_size=8)},
                        max(1, (repeats + 1) // 2))
    ratio(batch, "b1", "b8", "batch8_throughput_gain", out, factor=8.0)
    out["steer_hook_us"] = steer_hook_us(handle, steer)
    # what the steering hook adds per step, as a fraction of the step (1 steered layer)
    out["steer_hook_share_of_step"] = out["steer_hook_us"] * len(steer.terms[0].layers) / (1e3 * out["decoder_step_ms"])
    return out


def bf16_ratio(name: str, duration_s: float, repeats: int) -> dict:
    import workbench as wb
    fp32 = wb.random_model(name, seed=0)
    bf16 = wb.random_model(name, seed=0, dtype=torch.bfloat16)
    times = interleaved({"fp32": lambda: wb.generate(fp32, "jazz", duration_s=duration_s),
                         "bf16": lambda: wb.generate(bf16, "jazz", duration_s=duration_s)}, repeats)
    out: dict = {}
    ratio(times, "fp32", "bf16", "bf16_speedup", out)
    return out


def _optional(module: str, function: str) -> dict:
    try:
        mod = __import__(module, fromlist=[function])
    except ImportError:
        return {}
    fn = getattr(mod, function, None)
    if fn is None:
        return {}
    try:
        return fn()
    except Exception as error:  # a broken extra measurement must not hide the core figures
        return {f"{module}.{function}_error": repr(error)}


def run_bench(shapes=("musicgen-small", "tiny"), duration_s: float = 0.5, repeats: int = 5,
              extras: bool = True, bf16: bool = True, threads: int | None = None) -> dict:
    import workbench as wb
    if threads is not None:
        torch.set_num_threads(int(threads))
    started = time.perf_counter()
    results: dict = {"torch_threads": torch.get_num_threads(), "omp_wait_policy": os.environ.get("OMP_WAIT_POLICY"),
                     "load_average_start": _load_average(), "duration_s": duration_s, "repeats": repeats}
    for shape in shapes:
        shape_started = time.perf_counter()
        handle = wb.random_model(shape, seed=0)
        per_shape = core_ratios(handle, duration_s, repeats)
        if bf16 and shape != "tiny" and bf16_supported():
            per_shape.update(bf16_ratio(shape, duration_s, max(1, (repeats + 1) // 2)))
        per_shape["bench_s"] = time.perf_counter() - shape_started
        results[shape] = per_shape
        del handle
        gc.collect()
    headline = results[shapes[0]]
    for key in HEADLINE:
        for name in (key, f"{key}_cpu"):
            if name in headline:
                results[name] = headline[name]
                results[f"{name}_spread"] = headline[f"{name}_spread"]
    if extras:
        for module, function in (("benchmarks.bench_probes", "run_all"),
                                 ("benchmarks.bench_patching", "run_all"),
                                 ("benchmarks.bench_kernel", "run_all"),
                                 ("benchmarks.bench_compiled", "run_all"),
                                 ("benchmarks.bench_roofline", "run_all"),
                                 ("benchmarks.bench_ray", "run_all"),
                                 ("benchmarks.bench_ui", "ui_generate_seconds")):
            extra = _optional(module, function)
            results.update(extra if isinstance(extra, dict) else {function: extra})
    results["load_average_end"] = _load_average()
    results["bench_s"] = time.perf_counter() - started
    return results


def repeats_cli(prog: str, description: str, run_all, argv=None) -> int:
    """The command line of a bench whose ``run_all(repeats, duration_s)`` times interleaved rounds: ``--repeats``,
    ``--duration``, ``--json``; prints the table with the load average before and after."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
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


def _load_average():
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _meets(value, op: str, bound: float) -> bool:
    return {"<=": value <= bound, "<": value < bound, ">=": value >= bound, ">": value > bound}[op]


def _verdict(value, target, spread_: dict | None = None) -> str:
    """The target and whether the value (the median, for repeated measures) meets it; notes a spread
    that lies on both sides of the bound (then the verdict rests on the median only)."""
    if target is None or not isinstance(value, (int, float)):
        return ""
    op, bound = target
    text = f"{op} {bound}  {'ok' if _meets(value, op, bound) else 'MISS'}"
    if spread_ and _meets(spread_["min"], op, bound) != _meets(spread_["max"], op, bound):
        text += " (spread straddles the target)"
    return text


def format_table(results: dict) -> str:
    """One line per measure: value (the median for repeated ratios), min and max, target and verdict on the median."""
    lines = [f"{'measure':38} {'value':>10} {'min':>8} {'max':>8}  target"]
    flat = {}
    for key, value in results.items():
        if isinstance(value, dict) and not key.endswith("_spread"):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    for key, value in flat.items():
        if key.endswith("_spread"):
            continue
        s = flat.get(f"{key}_spread")
        lo = f"{s['min']:8.3f}" if s else " " * 8
        hi = f"{s['max']:8.3f}" if s else " " * 8
        shown = f"{value:10.3f}" if isinstance(value, float) else f"{value!s:>10}"
        if isinstance(value, float) and 0 < abs(value) < 0.001:
            shown = f"{value:10.2e}"
        lines.append(f"{key:38} {shown} {lo} {hi}  {_verdict(value, TARGETS.get(key.split('.')[-1]), s)}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results to this JSON file (the tracked figures: "
                        "docs/figures/bench.json, from a quiet machine)")
    parser.add_argument("--shapes", default="musicgen-small,tiny", help="comma-separated model shapes")
    parser.add_argument("--duration", type=float, default=0.5, help="seconds of audio per generation")
    parser.add_argument("--repeats", type=int, default=5,
                        help="rounds per ratio (median reported, min/max as its spread; batch and bf16 use half)")
    parser.add_argument("--threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    parser.add_argument("--no-extras", action="store_true", help="skip probe/UMAP/UI measurements")
    parser.add_argument("--no-bf16", action="store_true")
    args = parser.parse_args(argv)
    if args.repeats < 1:
        parser.error("--repeats must be >= 1")
    results = run_bench(tuple(args.shapes.split(",")), args.duration, args.repeats, not args.no_extras,
                        not args.no_bf16, args.threads)
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0
