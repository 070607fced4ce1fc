"""`python -m benchmarks` (also `python -m workbench bench`, `make bench`): speed ratios measured side by side in one run.

Ratios, not seconds, are the targets (these machines are noisy): each pair of variants runs
interleaved (A B A B ...) and the median of each is compared.

Keys: steer_over_plain, capture_over_plain, nnsight_over_hooks, batch8_throughput_gain, bf16_speedup
(per model shape), plus probe_sweep_s, umap_s, collect_batch_gain (benchmarks.bench_probes) and
ui_generate_s (benchmarks.bench_ui) when those modules are present.
"""
from __future__ import annotations

import argparse
import gc
import json
import statistics
import time

import numpy as np
import torch

TARGETS = {"steer_over_plain": ("<=", 1.03), "capture_over_plain": ("<=", 1.05),
           "batch8_throughput_gain": (">=", 3.0), "probe_sweep_s": ("<", 10.0),
           "collect_batch_gain": (">=", 3.0), "ui_generate_s": ("<", 3.0)}


def _timed(fn) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def interleaved(variants: dict, repeats: int) -> dict:
    """Median seconds of each variant, run round-robin after one untimed warm-up each."""
    for fn in variants.values():
        fn()
    times = {name: [] for name in variants}
    for _ in range(repeats):
        for name, fn in variants.items():
            times[name].append(_timed(fn))
    return {name: statistics.median(values) for name, values in times.items()}


def bf16_supported() -> bool:
    try:
        a = torch.ones(64, 64, dtype=torch.bfloat16)
        return bool(torch.isfinite(a @ a).all()) and torch.backends.mkldnn.is_available()
    except RuntimeError:
        return False


def core_ratios(handle, duration_s: float, repeats: int) -> dict:
    """Steering, capture, nnsight and batching costs on one model."""
    import workbench as wb
    from workbench.runtime.tracing import generate_traced

    prompt = "upbeat electronic dance music"
    rng = np.random.RandomState(0)
    steer = wb.SteeringSpec.single(rng.randn(handle.hidden_size), (handle.n_layers // 2,), 2.0)
    capture_all = wb.CaptureSpec(layers=None, pooling="mean")
    run = lambda **kw: (lambda: wb.generate(handle, prompt, duration_s=duration_s, seeds=1, **kw))
    med = interleaved({"plain": run(), "steer": run(steering=steer), "capture": run(capture=capture_all),
                       "nnsight_steer": lambda: generate_traced(handle, prompt, duration_s=duration_s, seeds=1,
                                                                steering=steer)}, repeats)
    batch = interleaved({"b1": run(), "b8": lambda: wb.generate(handle, [prompt] * 8, duration_s=duration_s,
                                                                seeds=list(range(8)), batch_size=8)},
                        max(1, repeats // 2))
    return {"plain_s": med["plain"], "steer_over_plain": med["steer"] / med["plain"],
            "capture_over_plain": med["capture"] / med["plain"],
            "nnsight_over_hooks": med["nnsight_steer"] / med["steer"],
            "batch8_throughput_gain": (8 / batch["b8"]) / (1 / batch["b1"])}


def bf16_ratio(name: str, duration_s: float, repeats: int) -> dict:
    import workbench as wb
    fp32 = wb.random_model(name, seed=0)
    bf16 = wb.random_model(name, seed=0, dtype=torch.bfloat16)
    med = interleaved({"fp32": lambda: wb.generate(fp32, "jazz", duration_s=duration_s),
                       "bf16": lambda: wb.generate(bf16, "jazz", duration_s=duration_s)}, repeats)
    return {"bf16_speedup": med["fp32"] / med["bf16"]}


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


def run_bench(shapes=("musicgen-small", "tiny"), duration_s: float = 0.5, repeats: int = 3,
              extras: bool = True, bf16: bool = True) -> dict:
    import workbench as wb
    results: dict = {"torch_threads": torch.get_num_threads(), "duration_s": duration_s}
    for shape in shapes:
        handle = wb.random_model(shape, seed=0)
        per_shape = core_ratios(handle, duration_s, repeats)
        if bf16 and shape != "tiny" and bf16_supported():
            per_shape.update(bf16_ratio(shape, duration_s, max(1, repeats // 2)))
        results[shape] = per_shape
        del handle
        gc.collect()
    headline = results[shapes[0]]
    for key in ("steer_over_plain", "capture_over_plain", "nnsight_over_hooks", "batch8_throughput_gain",
                "bf16_speedup"):
        if key in headline:
            results[key] = headline[key]
    if extras:
        for module, function in (("benchmarks.bench_probes", "run_all"), ("benchmarks.bench_ui", "ui_generate_seconds")):
            extra = _optional(module, function)
            results.update(extra if isinstance(extra, dict) else {function: extra})
    return results


def format_table(results: dict) -> str:
    lines = [f"{'measure':32} {'value':>10}  target"]
    flat = {}
    for key, value in results.items():
        if isinstance(value, dict):
            flat.update({f"{key}.{k}": v for k, v in value.items()})
        else:
            flat[key] = value
    for key, value in flat.items():
        target = TARGETS.get(key.split(".")[-1])
        target_text = "" if target is None else f"{target[0]} {target[1]}"
        shown = f"{value:10.3f}" if isinstance(value, float) else f"{value!s:>10}"
        lines.append(f"{key:32} {shown}  {target_text}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--json", help="write the results to this JSON file")
    parser.add_argument("--shapes", default="musicgen-small,tiny", help="comma-separated model shapes")
    parser.add_argument("--duration", type=float, default=0.5, help="seconds of audio per generation")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--no-extras", action="store_true", help="skip probe/UMAP/UI measurements")
    parser.add_argument("--no-bf16", action="store_true")
    args = parser.parse_args(argv)
    results = run_bench(tuple(args.shapes.split(",")), args.duration, args.repeats, not args.no_extras,
                        not args.no_bf16)
    print(format_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0
