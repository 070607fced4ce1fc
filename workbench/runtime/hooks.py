"""The hook runner: plain PyTorch forward hooks that execute an `EditRun` while transformers' ``generate`` (or a
teacher-forced forward) runs.

`edit_hooks(handle, run)` is a context manager: one forward hook per (site, layer) of ``run.plan()``, each calling
``run.apply(site, layer, output, step)`` (the arithmetic of `workbench.runtime.edits`, shared with the kernel and
the nnsight runner), and a `StepTracker` on the decoder; every hook is removed on exit, also when generation
raises or is interrupted. Steering, capture, patching and reads are all edits (`workbench.runtime.edits`).

Steps: step 0 is the prefill forward. transformers 5.x ``generate`` runs the prefill twice; the tracker
recognises the repeat (the same KV-cache length as the previous call) and gives it the same step: edits apply
alike, and a read of the repeat replaces the earlier value (`EditRun.reads` is keyed by step). In a
teacher-forced forward (``steps=False``) the step is None and an edit's window means positions.

Example:
    >>> import torch
    >>> from workbench.runtime.model import random_model
    >>> from workbench.runtime.edits import Edit, EditRun
    >>> h = random_model("tiny")
    >>> run = EditRun([Edit("read", layer=1, name="l1")], n_cond=1, guided=False)
    >>> with edit_hooks(h, run, steps=False), torch.no_grad():
    ...     _ = h.model.decoder(input_ids=torch.zeros(4, 3, dtype=torch.long))
    >>> tuple(run.reads["l1"][None].shape)
    (1, 3, 32)
"""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass

from workbench.errors import StoppedError
from workbench.runtime.edits import EditRun


@dataclass
class StepTracker:
    """Counts distinct decoder forwards; ``repeat`` is True for the duplicate prefill.

    stop: a callable polled once a step (not for the repeat); True raises `StoppedError` before the step runs.
    """

    step: int = -1
    repeat: bool = False
    last_cache_length: int | None = None
    stop: Callable[[], bool] | None = None

    def pre_hook(self, module, args, kwargs):
        cache = kwargs.get("cache", kwargs.get("past_key_values"))
        length = int(cache.get_seq_length()) if cache is not None else 0
        self.repeat = self.last_cache_length is not None and length == self.last_cache_length
        if not self.repeat:
            if self.stop is not None and self.stop():
                raise StoppedError("generation stopped by request")
            self.step += 1
        self.last_cache_length = length


def _edit_hook(run: EditRun, site: str, layer: int, tracker: StepTracker | None):
    def hook(module, args, output):
        hidden = output[0] if isinstance(output, tuple) else output
        new = run.apply(site, layer, hidden, tracker.step if tracker is not None else None)
        if new is hidden:
            return None  # unchanged (reads only, or every edit inactive at this step)
        return (new,) + tuple(output[1:]) if isinstance(output, tuple) else new
    return hook


@contextlib.contextmanager
def edit_hooks(handle, run: EditRun, *, steps: bool = True, stop: Callable[[], bool] | None = None):
    """Hooks executing ``run`` on the handle's decoder; always removed on exit. Yields the `StepTracker`.

    steps: count generation steps (``generate``); False for one teacher-forced forward (step None).
    stop: polled once a step (see `StepTracker`).
    """
    tracker = StepTracker(stop=stop) if steps else None
    handles = []
    try:
        if tracker is not None:
            decoder = handle.model.decoder.model.decoder
            handles.append(decoder.register_forward_pre_hook(tracker.pre_hook, with_kwargs=True))
        for site, layer in run.plan():
            handles.append(handle.module(site, layer).register_forward_hook(_edit_hook(run, site, layer, tracker)))
        yield tracker
    finally:
        for h in handles:
            h.remove()
