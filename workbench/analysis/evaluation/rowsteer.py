"""Steer each row of one batch toward its own direction (a grid cell mixes targets in one batch).

`SteeringSpec` applies one direction to every row; an evaluation cell steers each clip toward its own
target. `row_steering` registers one forward hook on the layer that applies, per conditional row, the
same formula and the same per-step strength as `workbench.runtime.hooks` (step counting by its
`StepTracker`; ``add`` adds ``s * v_row``, ``norm_relative`` forms ``(h + s|h|v_row/|v_row|)/(1+s)``
with the same tensor operations as `steer_tensor`), so rows steered toward one target give the codes a
`SteeringSpec` with that direction gives (tested bit for bit). The hook is always removed.

    >>> import numpy as np, workbench as wb
    >>> h = wb.random_model("tiny"); v = np.random.default_rng(0).normal(size=(2, h.hidden_size))
    >>> with row_steering(h, v, layer=1, strength=4.0, mode="add", n_rows=2):
    ...     clips = wb.generate(h, ["jazz", "rock"], duration_s=0.2, seeds=[0, 1]).clips
    >>> len(clips)
    2
"""
from __future__ import annotations

import contextlib

import numpy as np
import torch

from workbench.errors import BadInputError
from workbench.runtime.hooks import StepTracker
from workbench.runtime.steering import Schedule

__all__ = ["row_steering"]


@contextlib.contextmanager
def row_steering(handle, vectors, *, layer: int, strength: float, mode: str, n_rows: int,
                 schedule: Schedule | None = None, rows: str = "cond"):
    """Within the block, `generate` of `n_rows` prompts steers row i at `layer` with vectors[i].

    rows: "cond" steers only the conditional half of a CFG batch (as `SteeringSpec(rows="cond")`).
    """
    vectors = torch.as_tensor(np.asarray(vectors, dtype=np.float32)).to(handle.device, handle.dtype)
    if vectors.shape != (n_rows, handle.hidden_size):
        raise BadInputError(f"vectors must be (n_rows, hidden) = ({n_rows}, {handle.hidden_size}), got "
                            f"{tuple(vectors.shape)}: one direction per prompt")
    schedule = schedule or Schedule()
    tracker = StepTracker()
    if mode == "norm_relative":  # each row's unit vector, formed as steer_tensor forms it
        units = torch.stack([v / v.norm().clamp_min(1e-12) for v in vectors])[:, None, :]
    per_row = vectors[:, None, :]

    def hook(module, args, output):
        s = schedule.strength_at(float(strength), tracker.step)
        if s == 0.0:
            return None
        hidden = output[0] if isinstance(output, tuple) else output
        if hidden.shape[0] not in (n_rows, 2 * n_rows):
            raise BadInputError(f"row_steering was set up for {n_rows} prompts but the decoder sees "
                                f"{hidden.shape[0]} rows: generate exactly {n_rows} prompts in one batch")
        n = n_rows if rows == "cond" else hidden.shape[0]
        reps = n // n_rows
        if mode == "add":
            steered = hidden.clone()
            steered[:n].add_((s * per_row).repeat(reps, 1, 1))
        else:
            h = hidden[:n]
            norm = h.norm(dim=-1, keepdim=True)
            new = (h + s * norm * units.repeat(reps, 1, 1)) / (1.0 + s)
            steered = torch.cat([new, hidden[n:]], dim=0)
        return (steered,) + tuple(output[1:]) if isinstance(output, tuple) else steered

    decoder = handle.model.decoder.model.decoder
    handles = [decoder.register_forward_pre_hook(tracker.pre_hook, with_kwargs=True),
               handle.module("resid", int(layer)).register_forward_hook(hook)]
    try:
        yield tracker
    finally:
        for h in handles:
            h.remove()
