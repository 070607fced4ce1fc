"""Speed of the seeded synthesisers (`workbench.toy.synth_v2`, `workbench.toy.synth`) against their
original implementation, measured side by side: `python -m benchmarks.bench_synth [--repeats 5]`.

Every round synthesises the same fresh dataset (``n_per_genre`` clips of each genre, a new seed
per round) with the current code and with the baseline, loaded from git at ``BASELINE_COMMIT`` (the
last commit before the synthesisers were sped up), one after the other, in alternating order, on
one thread. Reported: clips/s of each (median, min and max over the rounds, wall and this
process's CPU time) and ``<synth>_speedup``, the per-round ratio new clips/s over old clips/s (the
CPU-time ratio is steadier when other processes load the machine). Target: synth_v2 at least 25
clips/s of 4 s on one core (issue bar); the clips are bit-identical (tests/test_toy_synth*.py).

    >>> out = run_all(repeats=1, n_per_genre=1, synths=("synth_v2",))
    >>> out["synth_v2_bit_identical"], sorted(k for k in out if k.startswith("synth_v2_old") and "spread" not in k)
    (True, ['synth_v2_old_clips_per_s', 'synth_v2_old_clips_per_s_cpu'])
    >>> sorted(k for k in out if k.startswith("synth_v2_speedup"))
    ['synth_v2_speedup', 'synth_v2_speedup_cpu', 'synth_v2_speedup_cpu_spread', 'synth_v2_speedup_spread']
"""
from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import types
from pathlib import Path

__all__ = ["BASELINE_COMMIT", "TARGET_V2_CLIPS_PER_S", "baseline_modules", "run_all", "main"]

TARGET_V2_CLIPS_PER_S = 25.0  # issue bar: synth_v2 clips of 4 s per second on one core
# the synthesisers before the cached wavetable indices and envelopes
BASELINE_COMMIT = "d0a11078c29a44e9b3fe89a344557f08fbc69c6e"
SYNTHS = ("synth_v2", "synth")
_ROOT = Path(__file__).resolve().parent.parent


def baseline_modules(commit: str = BASELINE_COMMIT) -> dict[str, types.ModuleType]:
    """The synthesisers (and their voices) as they were at `commit`, importable side by side with today's."""
    package = f"_baseline_toy_{commit}"
    if package in sys.modules:
        return {name: sys.modules[f"{package}.{name}"] for name in SYNTHS}
    sys.modules[package] = types.ModuleType(package)
    modules = {}
    for name in ("voices", *SYNTHS):
        source = subprocess.run(["git", "show", f"{commit}:workbench/toy/{name}.py"], cwd=_ROOT, check=True,
                                capture_output=True, text=True).stdout
        source = source.replace("from workbench.toy.voices import", f"from {package}.voices import")
        module = types.ModuleType(f"{package}.{name}")
        module.__file__ = f"<{commit}:workbench/toy/{name}.py>"
        sys.modules[module.__name__] = module
        exec(compile(source, module.__file__, "exec"), module.__dict__)
        modules[name] = module
    return {name: modules[name] for name in SYNTHS}


def _dataset_maker(module, n_per_genre: int, first_seed: int):
    """A callable that synthesises a new dataset on each call (seeds first_seed, first_seed + 1, ...)."""
    seeds = iter(range(first_seed, first_seed + 1_000_000))
    return lambda: module.synth_dataset(n_per_genre, seed=next(seeds))


def run_all(repeats: int = 5, n_per_genre: int = 6, synths: tuple[str, ...] = SYNTHS,
            commit: str = BASELINE_COMMIT) -> dict:
    """``<synth>_clips_per_s`` (today's code), ``<synth>_old_clips_per_s`` (at `commit`) and
    ``<synth>_speedup`` (new over old, per round), each with ``_cpu`` twins and ``_spread``s, and
    ``<synth>_bit_identical`` (both give the same float32 bytes for two datasets)."""
    from benchmarks.bench import interleaved, ratio, spread

    old = baseline_modules(commit)
    clips = 4 * n_per_genre
    out: dict = {"synth_rounds": repeats, "synth_clips_per_round": clips, "synth_baseline": commit[:10]}
    for name in synths:  # numpy elementwise work and scipy's lfilter: one thread, whatever the BLAS
        new = importlib.import_module(f"workbench.toy.{name}")
        times = interleaved({"new": _dataset_maker(new, n_per_genre, 1000),
                             "old": _dataset_maker(old[name], n_per_genre, 1000)}, repeats)
        for variant, prefix in (("new", name), ("old", f"{name}_old")):
            for suffix, clock in (("", times), ("_cpu", times.cpu)):
                s = spread([clips / seconds for seconds in clock[variant]])
                out[f"{prefix}_clips_per_s{suffix}"] = s["median"]
                out[f"{prefix}_clips_per_s{suffix}_spread"] = s
        ratio(times, "old", "new", f"{name}_speedup", out)  # old seconds / new seconds: new clips/s over old
        same = [new.synth_dataset(1, seed=seed)[0].tobytes() == old[name].synth_dataset(1, seed=seed)[0].tobytes()
                for seed in (0, 1000 + repeats)]
        out[f"{name}_bit_identical"] = all(same)  # the same float32 bytes as the baseline, on this machine
    return out


def _table(out: dict) -> str:
    rows = [f"{'':28s} {'median':>8s} {'min':>8s} {'max':>8s}"]
    for key, value in out.items():
        spread_ = out.get(f"{key}_spread")
        if spread_ is not None:
            rows.append(f"{key:28s} {value:8.2f} {spread_['min']:8.2f} {spread_['max']:8.2f}")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_synth", description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5, help="rounds (each runs new and old once)")
    parser.add_argument("--n-per-genre", type=int, default=6, help="clips of each genre per dataset")
    parser.add_argument("--synths", default=",".join(SYNTHS), help="comma-separated: synth_v2,synth")
    parser.add_argument("--baseline", default=BASELINE_COMMIT, help="git commit of the old implementation")
    args = parser.parse_args(argv)
    for var in ("OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS"):  # one thread: before numpy loads
        os.environ.setdefault(var, "1")
    out = run_all(args.repeats, args.n_per_genre, tuple(args.synths.split(",")), args.baseline)
    print(f"{out['synth_rounds']} rounds x {out['synth_clips_per_round']} clips of 4 s, one thread, "
          f"baseline {out['synth_baseline']}; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} cores")
    print(_table(out))
    for name in SYNTHS:
        if f"{name}_bit_identical" in out:
            print(f"{name}: clips bit-identical to the baseline: {out[f'{name}_bit_identical']}")
    if "synth_v2_clips_per_s_cpu" in out:
        rate = out["synth_v2_clips_per_s_cpu"]
        print(f"synth_v2: {rate:.1f} clips/s of CPU time (median), target >= {TARGET_V2_CLIPS_PER_S:.0f}: "
              f"{'met' if rate >= TARGET_V2_CLIPS_PER_S else 'NOT met'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
