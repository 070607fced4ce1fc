"""What engine="ray" costs and gains, for `python -m benchmarks` (which calls `run_all`): issue 14.

- `ray_over_local`: wall time of `collect(..., engine=RayEngine(workers=1))` over a local `collect` of the same
  64 clips on the teaching model (target <= 1.5): the engine's whole overhead for one call, replica start-up
  (a worker process importing torch and receiving the weights) and the shipping of results included.
- `ray_2workers_gain`: the one-worker Ray run's wall time over the two-worker run's.

Each is measured ``repeats`` times, one round running the three variants back to back in a rotating order
(after a small untimed warm-up of each engine); the median is the value, min and max in ``<key>_spread``. The
Ray cluster is started once (``ray_init_s``, not part of the ratios: a session pays it once). Every store is
fresh, so nothing resumes. Without Ray installed the keys are absent and ``ray_skipped`` says why.

    >>> clips_prompts(8).rows[0]["prompt"], len(clips_prompts(64))
    ('classical music', 64)
"""
from __future__ import annotations

import statistics
import tempfile
import time

__all__ = ["ray_collect_ratios", "run_all", "clips_prompts"]

GENRES = ["classical", "electronic", "rock", "jazz"]


def clips_prompts(n_clips: int):
    """n_clips prompts over the teaching model's four genres and two templates (n_clips a multiple of 8)."""
    from workbench.data.datasets import PromptSet
    return PromptSet(GENRES, templates=["{label} music", "a {label} song"], seeds=range(max(1, n_clips // 8)))


def ray_collect_ratios(n_clips: int = 64, duration_s: float = 4.0, batch_size: int = 8, repeats: int = 3) -> dict:
    """ray_over_local and ray_2workers_gain (medians over `repeats` rounds, with spreads) and their seconds."""
    import ray

    import workbench as wb
    from benchmarks.bench import spread
    from workbench.data.collect import collect
    from workbench.data.collect_plan import CollectOptions
    from workbench.data.distributed import RayEngine
    from workbench.data.ray_pool import init_ray
    from workbench.runtime.settings import GenerationSettings

    started_here = not ray.is_initialized()
    start = time.perf_counter()
    if started_here:
        init_ray()
    init_s = time.perf_counter() - start
    handle = wb.load_model()
    spec = wb.CaptureSpec(pooling="mean")  # every layer, as a probe sweep wants
    reports = {"ray1": [], "ray2": []}

    def run(engine, n=n_clips):
        with tempfile.TemporaryDirectory() as folder:
            t = time.perf_counter()
            store = collect(handle, clips_prompts(n), spec, folder,
                            GenerationSettings(batch_size=batch_size, duration_s=duration_s), progress=False,
                            options=CollectOptions(engine=engine))
            seconds = time.perf_counter() - t
            assert len(store) == n
            return seconds, getattr(store, "run_report", None)

    variants = {"local": "local", "ray1": RayEngine(workers=1), "ray2": RayEngine(workers=2)}
    try:
        run("local", 8), run(RayEngine(workers=1), 8)  # warm-up: imports, caches, Ray's first worker processes
        times = {name: [] for name in variants}
        names = list(variants)
        for r in range(repeats):
            for name in names[r % 3:] + names[:r % 3]:
                seconds, report = run(variants[name])
                times[name].append(seconds)
                if report is not None:
                    reports[name].append(report.replica_start_s)
    finally:
        if started_here:
            ray.shutdown()
    out = {"ray_bench_clips": n_clips, "ray_bench_duration_s": duration_s, "ray_bench_batch_size": batch_size,
           "ray_init_s": init_s}
    for key, (num, den) in {"ray_over_local": ("ray1", "local"), "ray_2workers_gain": ("ray1", "ray2")}.items():
        s = spread([n / d for n, d in zip(times[num], times[den])])
        out[key], out[f"{key}_spread"] = s["median"], s
    for name in variants:
        out[f"collect_{name}_s"] = statistics.median(times[name])
        out[f"collect_{name}_s_spread"] = spread(times[name])
    out["ray_replica_start_s"] = statistics.median(reports["ray1"] + reports["ray2"])
    return out


def run_all() -> dict:
    """`ray_collect_ratios()`, or ``ray_skipped`` when Ray is not installed."""
    try:
        import ray  # noqa: F401
    except ImportError:
        return {"ray_skipped": 'ray is not installed: pip install -e ".[ray]"'}
    return ray_collect_ratios()


if __name__ == "__main__":
    import argparse
    import json
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clips", type=int, default=64)
    parser.add_argument("--duration", type=float, default=4.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--json", help="write the results here too (the tracked figures: docs/figures/bench-ray.json)")
    args = parser.parse_args()
    results = ray_collect_ratios(args.clips, args.duration, repeats=args.repeats)
    print(json.dumps(results, indent=1))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
