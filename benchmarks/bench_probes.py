"""Benchmarks of the probes/data side, for `python -m benchmarks` (which calls `run_all`).

- `probe_sweep_seconds`: logistic probes, 5-fold CV + shuffled-label control, 24 layers x 1024 dims
  x 2000 clips (synthetic activations; target < 10 s on 2 cores).
- `umap_seconds`: one seeded UMAP map of 5000 x 1024 after the numba warm-up.
- `collect_batch_gain`: clips/s of `collect` batched (8) over one at a time, same clips, tiny model.

    >>> out = probe_sweep_seconds(n_layers=2, n_clips=200, hidden=64)
    >>> sorted(out)
    ['probe_sweep_best_accuracy', 'probe_sweep_cpu_s', 'probe_sweep_s']
"""
from __future__ import annotations

import gc
import statistics
import tempfile
import time

import numpy as np

__all__ = ["probe_sweep_seconds", "umap_seconds", "collect_batch_gain", "run_all"]


def _activations(n_layers: int, n_clips: int, hidden: int, n_classes: int = 4, seed: int = 0):
    """Gaussian activations whose class signal grows with depth (like a real layer sweep)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n_clips) % n_classes
    centres = rng.normal(size=(n_classes, hidden)).astype(np.float32)
    acts = {("resid", layer): rng.standard_normal((n_clips, hidden), dtype=np.float32)
            + (0.15 * layer / max(n_layers - 1, 1)) * centres[labels] for layer in range(n_layers)}
    return acts, labels


def probe_sweep_seconds(n_layers: int = 24, n_clips: int = 2000, hidden: int = 1024, folds: int = 5,
                        threads: int | None = None) -> dict:
    """Wall seconds of `probes.sweep` (logistic, `folds`-fold, with control) on synthetic activations.

    threads: torch threads for the fit (None: torch's default, i.e. all cores)."""
    from workbench.analysis.probes import SweepConfig, sweep
    acts, labels = _activations(n_layers, n_clips, hidden)
    gc.collect()
    start, cpu = time.perf_counter(), time.process_time()
    result = sweep(acts, labels, config=SweepConfig(folds=folds, control=True, threads=threads), kind="logistic")
    seconds = time.perf_counter() - start
    return {"probe_sweep_s": seconds, "probe_sweep_cpu_s": time.process_time() - cpu,
            "probe_sweep_best_accuracy": result.best()["accuracy_mean"]}


def umap_seconds(n_points: int = 5000, hidden: int = 1024) -> dict:
    """Wall seconds of one 2-D UMAP map after `warm_up_umap` (the compile is excluded, and reported)."""
    from workbench.analysis import projections
    start = time.perf_counter()
    projections.warm_up_umap(background=False)
    warm = time.perf_counter() - start
    acts, _ = _activations(1, n_points, hidden, n_classes=6, seed=1)
    X = acts[("resid", 0)] * 3
    projections.clear_cache()
    gc.collect()
    start = time.perf_counter()
    projections.project(X, "umap", seed=0)
    return {"umap_s": time.perf_counter() - start, "umap_warm_up_s": warm}


def collect_batch_gain(n_clips: int = 8, duration_s: float = 1.0, repeats: int = 3, shape: str = "tiny",
                       threads: int | None = 1) -> dict:
    """Clips per second of `collect` with batch_size=n_clips over batch_size=1, same clips (interleaved).

    threads=1 by default: a tiny decoder is latency-bound, and on a shared 2-core machine two torch
    threads spin-wait against other processes (measured 10-50x slower), which would drown the ratio."""
    import workbench as wb
    from workbench.data.collect import collect
    from workbench.data.datasets import PromptSet
    from workbench.runtime.settings import GenerationSettings
    handle = wb.random_model(shape, seed=0)
    inputs = PromptSet(["jazz", "rock"], templates=["{label}", "calm {label}"], seeds=range(n_clips // 4 or 1))
    spec = wb.CaptureSpec(pooling="mean")

    def run(batch_size):
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            collect(handle, inputs, spec, folder,
                    GenerationSettings(batch_size=batch_size, duration_s=duration_s, threads=threads), progress=False)
            return time.perf_counter() - start

    run(len(inputs)), run(1)  # warm-up
    times = {1: [], len(inputs): []}
    for _ in range(repeats):
        for batch_size in times:
            times[batch_size].append(run(batch_size))
    one, batched = statistics.median(times[1]), statistics.median(times[len(inputs)])
    return {"collect_batch_gain": one / batched, "collect_clips_per_s_batched": len(inputs) / batched,
            "collect_clips_per_s_one_at_a_time": len(inputs) / one, "collect_threads": threads}


def run_all() -> dict:
    """Every measurement above, merged into one dict. The sweep runs twice: with torch's default
    threads (the headline `probe_sweep_s`) and on one thread (`probe_sweep_1thread_s`), because on a
    CPU shared with other busy processes one thread was 3x faster than two."""
    out = probe_sweep_seconds()
    out["probe_sweep_1thread_s"] = probe_sweep_seconds(threads=1)["probe_sweep_s"]
    for measure in (umap_seconds, collect_batch_gain):
        out.update(measure())
    return out


if __name__ == "__main__":
    import json
    import sys
    names = sys.argv[1:] or ["run_all"]
    print(json.dumps({k: v for name in names for k, v in globals()[name]().items()}, indent=1))
