"""Beyond one machine: `collect` and `generate` over many inputs on Ray, one model replica per worker.

Same signatures as `workbench.data.collect.collect` (which hands ``CollectOptions(engine="ray")`` over to
the one here) and `workbench.generate`, with ``engine="ray"`` or a `RayEngine` (workers, address, GPUs per
worker, retries). The driver cuts the work into the same batches a
local run makes and hands them to Ray actors (`workbench.data.ray_pool`); each worker runs the batch exactly as
the local code does (`CaptureJob.run`, per-clip seeds), so the rows equal a local run's. The driver is the
store's one committer: it holds the store's write lock for the whole run, as a local collect does (a second
run into the same store is refused with StoreLockedError naming it), and commits each returned batch as one
shard (temp folder, rename, manifest replace), in the order batches finish. Kill a worker: its batch is retried
on a fresh one. Kill the driver: run the same call again and only the uncommitted batches run.

Evaluation grids (`workbench.analysis.evaluation.grid`) are not wired in yet; they plug in the same way: a
picklable ``fn(handle, payload)`` per grid cell, given to `workbench.data.ray_pool.run_batches` with the grid's
commit as `on_result` (see `generate` here for the pattern; docs/scale-out.md, Limits).

The size arithmetic of a store (what decides where it can live), in bytes:

    >>> store_bytes(clips=160_000, layers=24, hidden=1024)           # pooled float32: 15.7 GB
    15728640000
    >>> store_bytes(clips=1000, layers=1, hidden=1024, steps=200)    # per-step rows of one layer, 200 steps
    819200000
"""
from __future__ import annotations

from workbench.data.collect_plan import CollectOptions, options_of, plan_collect
from workbench.data.ray_pool import (
    DistributedRunError,
    MissingExtraError,
    RayEngine,
    RunReport,
    as_engine,
    require_ray,
    run_batches,
)
from workbench.data.store import ActivationStore, store_lock
from workbench.runtime.capture import CaptureSpec
from workbench.runtime.generation import GenerationResult
from workbench.runtime.generation import generate as local_generate
from workbench.runtime.inputs import generation_args, merge_batches
from workbench.runtime.settings import GenerationSettings
from workbench.runtime.steering import SteeringSpec
from workbench.runtime.threads import intra_op_threads, resolve_threads

__all__ = ["collect", "generate", "CollectOptions", "RayEngine", "RunReport", "MissingExtraError",
           "DistributedRunError",
           "store_bytes"]


def store_bytes(clips: int, layers: int, hidden: int, steps: int = 1, sites: int = 1, bytes_per_value: int = 4,
                cfg_rows: int = 1) -> int:
    """Bytes of activations: clips x steps x sites x layers x hidden x bytes (x 2 cfg_rows for rows="both").

    steps: 1 for pooled rows (mean_std doubles hidden); decoder steps for per-step capture (50 a second)."""
    return int(clips) * int(steps) * int(sites) * int(layers) * int(hidden) * int(bytes_per_value) * int(cfg_rows)


def _capture(handle, payload):
    """Runs on a worker: one batch of a collection, with the run's thread policy."""
    job, rows, waves, threads = payload
    with intra_op_threads(resolve_threads(handle, threads)):
        return job.run(handle, rows, waves)


def collect(handle, inputs, capture_spec, store_dir, settings: GenerationSettings | None = None, *,
            per_step_layers=(), progress: bool = True, options: CollectOptions | None = None) -> ActivationStore:
    """`workbench.data.collect.collect` on Ray workers: the same store, rows equal to a local run's.

    options.engine: "ray" (the default here: a local cluster, or the one ray.init already joined) or
    RayEngine(workers=, address=, ...). The returned store carries `run_report` (a RunReport: workers, retries,
    rows dispatched). Batches that still fail after engine.max_retries raise DistributedRunError naming their
    rows; the rest is committed.
    """
    options = options_of(options)
    engine = as_engine("ray" if options.engine is None else options.engine)
    require_ray()
    plan = plan_collect(handle, inputs, capture_spec, settings, per_step_layers=per_step_layers, mode=options.mode,
                        keep_audio=options.keep_audio)  # checks the generation on the driver, not once per worker
    threads = plan.job.settings.threads
    with store_lock(store_dir, options.lock_timeout_s):
        store = plan.open_store(handle, store_dir, options.lock_timeout_s)
        batches = plan.batches(store)
        report, bar = RunReport(), None
        if batches:
            if progress:
                from tqdm.auto import tqdm
                left = sum(len(b) for b in batches)
                bar = tqdm(total=len(plan.items.rows), initial=len(plan.items.rows) - left, unit="clip",
                           desc="collect (ray)")

            def commit(i: int, result: dict) -> None:
                store.append(**result)
                if bar is not None:
                    bar.update(len(batches[i]))

            batch_rows = [[str(plan.items.rows[j]["id"]) for j in b] for b in batches]
            try:
                report = run_batches(handle, batch_rows, lambda i: (plan.job, *plan.batch_inputs(batches[i]), threads),
                                     _capture, commit, engine)
            finally:
                if bar is not None:
                    bar.close()
        if options.compact:
            store.compact()
    store.run_report = report
    return store


def _generate(handle, payload):
    """Runs on a worker: one batch of generations."""
    prompts, settings, steering, capture = payload
    return local_generate(handle, prompts, settings, steering=steering, capture=capture)


def generate(handle, prompts, settings: GenerationSettings | None = None, *, steering: SteeringSpec | None = None,
             capture: CaptureSpec | None = None, engine="ray", progress: bool = True) -> GenerationResult:
    """`workbench.generate` over many prompts on Ray workers (steered or captured too); clips in input order.

    settings: as `workbench.generate` takes them; each worker generates batches of ``settings.batch_size``. Each
    clip equals the local one (per-clip seeds). Not resumable (the clips are returned, not stored): for thousands
    of clips use `collect(..., options=CollectOptions(engine="ray"))`, which keeps their audio in a store. The
    result carries `run_report`.
    """
    engine = as_engine(engine)
    require_ray()
    args = generation_args(handle, prompts, settings, steering=steering, capture=capture)  # checked on the driver
    size = args.settings.batch_size
    plist, slist = list(args.prompts), [int(s) for s in args.seeds]
    starts = list(range(0, len(plist), size))
    results: dict = {}
    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=len(plist), unit="clip", desc="generate (ray)")

    def keep(i: int, result) -> None:
        results[i] = result
        if bar is not None:
            bar.update(len(result.clips))

    def payload(i: int):
        cut = slice(starts[i], starts[i] + size)
        batch = args.settings.replace(seeds=tuple(slist[cut]), batch_size=len(plist[cut]))
        return plist[cut], batch, steering, capture

    try:
        batch_rows = [[f"prompt {j}" for j in range(s, min(s + size, len(plist)))] for s in starts]
        report = run_batches(handle, batch_rows, payload, _generate, keep, engine)
    finally:
        if bar is not None:
            bar.close()
    ordered = [results[i] for i in range(len(starts))]
    activations = merge_batches([r.activations for r in ordered], capture.pooling, capture.rows) if capture else None
    out = GenerationResult([c for r in ordered for c in r.clips], activations)
    out.run_report = report
    return out
