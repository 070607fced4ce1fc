"""Steering as in-loop edits: the arithmetic of `workbench.runtime.hooks`' steering hook, applied by the
kernel's own forward at the same sites (a layer's output, its self-attention output, its ``fc2`` output).

Mode ``add`` adds ``strength * vector``, formed once a step per term and shared by its layers, in place on
the steered rows: the same product and the same addition as the hook (which clones, then adds in place), so
codes are bit-identical. Mode ``norm_relative`` calls `workbench.runtime.steering.steer_tensor` as the hook does.

Example:
    >>> import torch
    >>> from workbench.runtime.steering import SteeringSpec
    >>> edits = SteeringEdits(SteeringSpec.single(torch.ones(4), layers=(1,), strength=2.0), n_cond=1,
    ...                       guided=True, device="cpu", dtype=torch.float32)
    >>> edits.begin_step(0)
    >>> edits.apply("resid", 1, torch.zeros(2, 1, 4))[:, 0, 0].tolist()
    [2.0, 0.0]
"""
from __future__ import annotations

import torch

from workbench.runtime.steering import SteeringSpec, steer_tensor


class SteeringEdits:
    """A `SteeringSpec` ready for the kernel: which (site, layer) pairs it touches and, per step, each term's delta.

    n_cond: B, the conditional rows (the decoder runs 2B rows when ``guided``; ``rows='cond'`` steers [:B]).
    """

    def __init__(self, steering: SteeringSpec, n_cond: int, guided: bool, *, device, dtype: torch.dtype):
        self.mode = steering.mode
        self.rows = steering.rows if guided else "both"
        self.n_cond = n_cond
        self.terms = [(term, term.vector.to(device, dtype)) for term in steering.terms]
        self.sites: dict[tuple[str, int], list[int]] = {}
        for index, (term, _) in enumerate(self.terms):
            for layer in term.layers:
                self.sites.setdefault((term.site, layer), []).append(index)
        self.strengths: list[float] = [0.0] * len(self.terms)
        self.deltas: list[torch.Tensor | None] = [None] * len(self.terms)

    def touches(self, site: str, layer: int) -> bool:
        return (site, layer) in self.sites

    def begin_step(self, step: int) -> None:
        """Each term's strength at this step (step 0 is the prefill) and its ``strength * vector``."""
        for index, (term, vector) in enumerate(self.terms):
            strength = term.strength_at(step)
            self.strengths[index] = strength
            self.deltas[index] = strength * vector if strength != 0.0 else None

    def apply(self, site: str, layer: int, hidden: torch.Tensor) -> torch.Tensor:
        """The steered hidden state (B', T, H); ``hidden`` is the kernel's own fresh tensor, edited in place."""
        for index in self.sites[(site, layer)]:
            strength = self.strengths[index]
            if strength == 0.0:
                continue  # strength 0 leaves the tensor untouched, as the hook does
            cond_only = self.rows == "cond" and hidden.shape[0] > self.n_cond
            if self.mode == "add":
                if cond_only:
                    hidden[:self.n_cond].add_(self.deltas[index])
                else:
                    hidden = hidden + self.deltas[index]
                continue
            vector = self.terms[index][1]
            if cond_only:
                hidden = torch.cat([steer_tensor(hidden[:self.n_cond], vector, strength, self.mode),
                                    hidden[self.n_cond:]], dim=0)
            else:
                hidden = steer_tensor(hidden, vector, strength, self.mode)
        return hidden
