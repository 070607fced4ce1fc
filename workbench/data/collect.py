"""Run a capture over a labelled input set, in batches, into a resumable `ActivationStore`.

Text sets are generated (`workbench.generate`), audio sets teacher-forced (`workbench.teacher_force`),
and mode="continuation" continues each item's audio with its prompt. Each batch becomes one
committed shard, so a run killed at any moment (even kill -9) resumes where it stopped when called
again with the same arguments: stored rows are neither lost nor recomputed. A run holds the store's
write lock throughout, so a second run into the same folder waits (lock_timeout_s) or is refused with
StoreLockedError. The store is keyed by the *effective* generation settings (defaults filled in).

    >>> import tempfile, workbench as wb
    >>> from workbench.data.datasets import PromptSet
    >>> h = wb.random_model("tiny")
    >>> store = collect(h, PromptSet(["jazz", "rock"], seeds=[0, 1]), wb.CaptureSpec(layers=(1,)),
    ...                 tempfile.mkdtemp(), batch_size=2, duration_s=0.2, progress=False, threads=1)
    >>> store.array("resid", 1).shape, store.labels()
    ((4, 32), ['jazz', 'jazz', 'rock', 'rock'])
"""
from __future__ import annotations

from tqdm.auto import tqdm

from workbench.data.collect_plan import CollectPlan, plan_collect
from workbench.data.distributed import collect as distributed_collect
from workbench.data.store import ActivationStore, store_lock
from workbench.runtime.threads import intra_op_threads, resolve_threads

__all__ = ["collect"]


def _collect_batches(handle, plan: CollectPlan, batches, store, bar) -> None:
    """Capture and append batch after batch; each append is committed before the next starts."""
    for indices in batches:
        store.append(**plan.job.run(handle, *plan.batch_inputs(indices)))
        if bar is not None:
            bar.update(len(indices))


def collect(handle, inputs, capture_spec, store_dir, batch_size: int = 8, *, per_step_layers=(),
            mode: str | None = None, keep_audio: bool = True, progress: bool = True, compact: bool = True,
            threads: int | str | None = "auto", lock_timeout_s: float = 0.0, engine="local",
            **gen_kwargs) -> ActivationStore:
    """Capture `capture_spec` for every input into the store at `store_dir` (resuming it if it exists).

    inputs: PromptSet / AudioSet / SynthSet, a list of prompts, or a list of dicts.
    per_step_layers: layers whose unpooled (T, H) activations are kept too (opt-in: they are big;
    conditional rows only when rows="both").
    gen_kwargs go to `workbench.generate` (duration_s, guidance_scale, ...). Reopening a store made
    by another model, spec or settings raises StoreMismatchError. compact merges the shards at the end
    so each layer is one memory-mapped file. threads: torch intra-op threads while collecting (``"auto"``: one
    for small models, as in `workbench.generate`; None: unchanged). lock_timeout_s: how long to wait for
    another run writing into store_dir before StoreLockedError (0: refuse at once).
    engine: "local" (this process), or "ray" / a `workbench.data.distributed.RayEngine` (one model replica per
    Ray worker, the same store; needs ``pip install -e ".[ray]"``).
    """
    if not (isinstance(engine, str) and engine == "local"):
        return distributed_collect(handle, inputs, capture_spec, store_dir, batch_size, per_step_layers=per_step_layers,
                                   mode=mode, keep_audio=keep_audio, progress=progress, compact=compact,
                                   threads=threads, lock_timeout_s=lock_timeout_s, engine=engine, **gen_kwargs)
    plan = plan_collect(handle, inputs, capture_spec, batch_size, per_step_layers=per_step_layers, mode=mode,
                        keep_audio=keep_audio, **gen_kwargs)
    with store_lock(store_dir, lock_timeout_s):
        store = plan.open_store(handle, store_dir, lock_timeout_s)
        batches = plan.batches(store)
        bar = None
        if progress:
            left = sum(len(b) for b in batches)
            bar = tqdm(total=len(plan.items.rows), initial=len(plan.items.rows) - left, unit="clip", desc="collect")
        try:
            with intra_op_threads(resolve_threads(handle, threads)):
                _collect_batches(handle, plan, batches, store, bar)
        finally:
            if bar is not None:
                bar.close()
        if compact:
            store.compact()
    return store
