"""Run a capture over a labelled input set, in batches, into a resumable `ActivationStore`.

Text sets are generated (`workbench.generate`), audio sets teacher-forced (`workbench.teacher_force`),
and mode="continuation" continues each item's audio with its prompt. Each batch becomes one
committed shard, so a run killed at any moment (even kill -9) resumes where it stopped when called
again with the same arguments: stored rows are neither lost nor recomputed. A run holds the store's
write lock throughout, so a second run into the same folder waits (`CollectOptions.lock_timeout_s`) or is
refused with StoreLockedError. The store is keyed by the *effective* generation settings (defaults filled in).

    >>> import tempfile, workbench as wb
    >>> from workbench.data.datasets import PromptSet
    >>> from workbench.runtime.settings import GenerationSettings
    >>> h = wb.random_model("tiny")
    >>> settings = GenerationSettings(duration_s=0.2, batch_size=2, threads=1)
    >>> store = collect(h, PromptSet(["jazz", "rock"], seeds=[0, 1]), wb.CaptureSpec(layers=(1,)), tempfile.mkdtemp(),
    ...                 settings, progress=False)
    >>> store.array("resid", 1).shape, store.labels()
    ((4, 32), ['jazz', 'jazz', 'rock', 'rock'])
"""
from __future__ import annotations

from tqdm.auto import tqdm

from workbench.data.collect_plan import CollectOptions, CollectPlan, options_of, plan_collect
from workbench.data.distributed import collect as distributed_collect
from workbench.data.store import ActivationStore, store_lock
from workbench.runtime.settings import GenerationSettings
from workbench.runtime.threads import intra_op_threads, resolve_threads

__all__ = ["collect", "CollectOptions"]


def _collect_batches(handle, plan: CollectPlan, batches, store, bar) -> None:
    """Capture and append batch after batch; each append is committed before the next starts."""
    for indices in batches:
        store.append(**plan.job.run(handle, *plan.batch_inputs(indices)))
        if bar is not None:
            bar.update(len(indices))


def collect(handle, inputs, capture_spec, store_dir, settings: GenerationSettings | None = None, *,
            per_step_layers=(), progress: bool = True, options: CollectOptions | None = None) -> ActivationStore:
    """Capture `capture_spec` for every input into the store at `store_dir` (resuming it if it exists).

    inputs: PromptSet / AudioSet / SynthSet, a list of prompts, or a list of dicts.
    settings: how the clips are generated (a `GenerationSettings`: duration_s, guidance_scale, ...; default its
    defaults); its batch_size is the rows per committed shard, its threads the torch intra-op threads while
    collecting (``"auto"``: one for small models, as in `workbench.generate`; None: unchanged), its seeds apply to
    a plain list of prompts (an input set carries its own). Reopening a store made by another model, spec or
    settings raises StoreMismatchError.
    per_step_layers: layers whose unpooled (T, H) activations are kept too (opt-in: they are big;
    conditional rows only when rows="both").
    options: a `CollectOptions` (mode, keep_audio, compact, lock_timeout_s, engine: "ray" or a
    `workbench.data.distributed.RayEngine` runs the batches on Ray workers, one model replica each, into the same
    store; needs ``pip install -e ".[ray]"``).
    """
    options = options_of(options)
    if options.engine not in (None, "local"):
        return distributed_collect(handle, inputs, capture_spec, store_dir, settings,
                                   per_step_layers=per_step_layers, progress=progress, options=options)
    plan = plan_collect(handle, inputs, capture_spec, settings, per_step_layers=per_step_layers, mode=options.mode,
                        keep_audio=options.keep_audio)
    with store_lock(store_dir, options.lock_timeout_s):
        store = plan.open_store(handle, store_dir, options.lock_timeout_s)
        batches = plan.batches(store)
        bar = None
        if progress:
            left = sum(len(b) for b in batches)
            bar = tqdm(total=len(plan.items.rows), initial=len(plan.items.rows) - left, unit="clip", desc="collect")
        try:
            with intra_op_threads(resolve_threads(handle, plan.job.settings.threads)):
                _collect_batches(handle, plan, batches, store, bar)
        finally:
            if bar is not None:
                bar.close()
        if options.compact:
            store.compact()
    return store
