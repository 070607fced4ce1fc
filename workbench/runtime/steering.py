"""What to add to the residual stream, where, how strongly, and when.

A `SteeringSpec` is a frozen description; `workbench.runtime.hooks` applies it. The formulas:

- ``add``:           h' = h + s * v
- ``norm_relative``: h' = (h + s * |h| * v_hat) / (1 + s)   (arXiv 2506.10225's code; |h| per position)

Example:
    >>> import numpy as np
    >>> spec = SteeringSpec.single(np.ones(8), layers=(1,), strength=2.0,
    ...                            schedule=Schedule("decay", decay_rate=0.1, floor=0.5))
    >>> [round(spec.terms[0].strength_at(step), 3) for step in (0, 1, 100)]
    [2.0, 1.81, 1.0]
"""
from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from workbench import validation
from workbench.enums import SCHEDULE_KINDS as SCHEDULES
from workbench.enums import SITES as STEER_SITES  # noqa: F401  (re-exported)
from workbench.enums import STEERING_MODES as MODES
from workbench.enums import STEERING_ROWS as ROWS
from workbench.errors import (
    BadInputError,
    DirectionMismatchError,
    NotFiniteError,
    OutOfRangeError,
    WrongTypeError,
    ZeroNormError,
)

# Bounds on a strength, relative to the residual stream it is added to. MusicGen's residual norms run from
# about sqrt(hidden / 2) (the sinusoidal positions alone: 23 at hidden 1024, 7 in the teaching model, measured
# 7-11 there) to a few hundred per position; both bounds are two orders of magnitude past any useful setting.
MAX_ADDED_NORM = 1e4              # add mode: |strength| x |vector| above this buries the music under the direction
MAX_NORM_RELATIVE_STRENGTH = 100.0  # norm_relative: at s the residual keeps 1/(1+s) of itself; 100 leaves 1%


@dataclasses.dataclass(frozen=True)
class Schedule:
    """How a term's strength varies over generation steps (step 0 is the prefill forward).

    kind: ``constant``; ``decay`` (s * exp(-decay_rate * t), never below floor * s);
    ``pulse`` (s for ``width`` steps every ``every`` steps, else 0); ``ramp`` (linear from s to
    ``ramp_to`` between start_step and stop_step, or over ``ramp_steps`` steps when stop_step is None).
    Outside [start_step, stop_step) the strength is 0.
    """

    kind: str = "constant"
    start_step: int = 0
    stop_step: int | None = None
    decay_rate: float = 0.05
    floor: float = 0.0
    every: int = 25
    width: int = 1
    ramp_to: float = 0.0
    ramp_steps: int = 100

    def __post_init__(self):
        validation.choice(self.kind, "schedule", SCHEDULES)
        checked = dict(start_step=validation.non_negative_int(self.start_step, "start_step"),
                       stop_step=None if self.stop_step is None else validation.integer(self.stop_step, "stop_step"),
                       every=validation.positive_int(self.every, "every"),
                       width=validation.positive_int(self.width, "width"),
                       ramp_steps=validation.positive_int(self.ramp_steps, "ramp_steps"),
                       floor=validation.finite_float(self.floor, "floor", low=0.0, high=1.0,
                                                     hint="decay never goes below floor x strength"),
                       ramp_to=validation.finite_float(self.ramp_to, "ramp_to"))
        rate = validation.finite_float(self.decay_rate, "decay_rate")
        if rate < 0:
            raise OutOfRangeError(
                f"decay_rate={rate:g} is negative: the strength would grow as exp({-rate:g} x step), "
                f"x{math.exp(min(-rate * 100, 700)):.3g} after 100 steps; use decay_rate >= 0 (0.05 halves it in "
                "about 14 steps)")
        checked["decay_rate"] = rate
        if checked["stop_step"] is not None and checked["stop_step"] <= checked["start_step"]:
            raise BadInputError(f"stop_step ({self.stop_step}) must be after start_step ({self.start_step})")
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def strength_at(self, strength: float, step: int) -> float:
        if step < self.start_step or (self.stop_step is not None and step >= self.stop_step):
            return 0.0
        t = step - self.start_step
        if self.kind == "constant":
            return strength
        if self.kind == "decay":
            decayed = strength * math.exp(-self.decay_rate * t)
            bound = self.floor * strength
            return max(decayed, bound) if strength >= 0 else min(decayed, bound)
        if self.kind == "pulse":
            return strength if t % self.every < self.width else 0.0
        span = (self.stop_step - self.start_step) if self.stop_step is not None else self.ramp_steps
        frac = min(t / max(span - 1, 1), 1.0)
        return strength + (self.ramp_to - strength) * frac


def _as_vector(vector: Any) -> tuple[torch.Tensor, str | None]:
    model_id = getattr(vector, "model_id", None)
    raw = getattr(vector, "vector", vector)
    if isinstance(raw, torch.Tensor):
        tensor = raw.detach().to("cpu", torch.float32)
    else:
        tensor = torch.as_tensor(np.asarray(raw, dtype=np.float32))
    tensor = tensor.reshape(-1) if tensor.ndim == 2 and 1 in tensor.shape else tensor
    if tensor.ndim != 1:
        raise DirectionMismatchError(f"a steering direction must be 1-D (hidden,), got shape {tuple(tensor.shape)}")
    if not torch.isfinite(tensor).all():
        raise NotFiniteError("the steering direction contains NaN or inf: recompute it from finite activations")
    return tensor, model_id


@dataclasses.dataclass(frozen=True, eq=False)
class SteeringTerm:
    """One direction added at some layers with a strength and a schedule.

    vector: (hidden,) array/tensor, or a `workbench.analysis.directions.Direction` (its model_id is checked).
    """

    vector: Any
    layers: tuple[int, ...]
    strength: float
    schedule: Schedule = Schedule()
    site: str = "resid"
    label: str = ""
    model_id: str | None = None  # taken from a Direction when one is given

    def __post_init__(self):
        tensor, model_id = _as_vector(self.vector)
        object.__setattr__(self, "vector", tensor)
        if model_id is not None:
            object.__setattr__(self, "model_id", model_id)
        layers = validation.int_sequence(self.layers, "layers", allow_empty=True, example="(6,)")
        if not layers:
            raise BadInputError("a steering term needs at least one layer, e.g. layers=(6,)")
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "strength", validation.finite_float(self.strength, "strength"))
        validation.site(self.site)
        if not isinstance(self.schedule, Schedule):
            raise WrongTypeError(f"schedule={self.schedule!r} is not a Schedule: pass e.g. "
                                 "Schedule('decay', decay_rate=0.1), or leave it out for a constant strength")

    def strength_at(self, step: int) -> float:
        return self.schedule.strength_at(self.strength, step)


@dataclasses.dataclass(frozen=True, eq=False)
class SteeringSpec:
    """Several `SteeringTerm`s applied together with one mode and one choice of CFG rows.

    rows: ``cond`` steers only the conditional half of the doubled CFG batch; ``both`` steers all rows.
    """

    terms: tuple[SteeringTerm, ...]
    mode: str = "add"
    rows: str = "cond"

    def __post_init__(self):
        terms = (self.terms,) if isinstance(self.terms, SteeringTerm) else tuple(self.terms)
        for term in terms:
            if not isinstance(term, SteeringTerm):
                raise WrongTypeError(f"terms holds a {type(term).__name__}: pass SteeringTerm(vector, layers, "
                                     "strength) objects, or use SteeringSpec.single(vector, layers, strength)")
        object.__setattr__(self, "terms", terms)
        validation.choice(self.mode, "steering mode", MODES)
        validation.choice(self.rows, "steering rows", ROWS)
        for term in terms:
            _check_strengths(term, self.mode)

    @classmethod
    def single(cls, vector, layers: Sequence[int] | int, strength: float, *, mode: str = "add",
               rows: str = "cond", schedule: Schedule | None = None, site: str = "resid") -> SteeringSpec:
        """One direction at the given layers: ``SteeringSpec.single(direction, layers=(6,), strength=4.0)``."""
        term = SteeringTerm(vector, layers, strength, schedule or Schedule(), site=site)
        return cls((term,), mode=mode, rows=rows)

    def scaled(self, factor: float) -> SteeringSpec:
        """The same spec with every strength multiplied by ``factor`` (a strength sweep)."""
        terms = tuple(dataclasses.replace(t, strength=t.strength * factor) for t in self.terms)
        return SteeringSpec(terms, mode=self.mode, rows=self.rows)

    def validate_for(self, n_layers: int, hidden_size: int, model_id: str) -> None:
        """Raise a specific error if this spec cannot steer that model."""
        for term in self.terms:
            validation.layers_in_range(term.layers, n_layers)
            if term.vector.shape[0] != hidden_size:
                raise DirectionMismatchError(
                    f"direction has {term.vector.shape[0]} dims but the model's hidden size is {hidden_size}: "
                    "use a direction computed on this model's activations")
            if term.model_id is not None and term.model_id != model_id:
                raise DirectionMismatchError(
                    f"direction was made on model {term.model_id!r}, not on {model_id!r}: recompute it on this "
                    "model, or pass the raw vector (direction.vector) if you really mean to transfer it")

    def describe(self) -> dict:
        """A JSON-friendly summary (no vectors) for clip metadata."""
        return {"mode": self.mode, "rows": self.rows, "terms": [
            {"layers": list(t.layers), "strength": t.strength, "site": t.site, "label": t.label,
             "model_id": t.model_id, "schedule": dataclasses.asdict(t.schedule)} for t in self.terms]}


def _check_strengths(term: SteeringTerm, mode: str) -> None:
    """Refuse strengths that cannot steer: undefined, or so large the residual stream is replaced by noise."""
    strengths = [("strength", term.strength)]
    if term.schedule.kind == "ramp":
        strengths.append(("ramp_to", term.schedule.ramp_to))
    norm = float(term.vector.norm())
    if mode == "norm_relative":
        if norm == 0.0:
            raise ZeroNormError("the direction has zero norm: norm_relative steering would only shrink every "
                                "activation by 1/(1 + strength) instead of pointing it anywhere; pass a non-zero "
                                "direction (e.g. a difference of class means)")
        for what, s in strengths:
            if s <= -1.0:
                raise BadInputError(
                    f"norm_relative divides by (1 + strength): {what} {s} <= -1 is undefined; "
                    "use a strength above -1 or mode='add'")
            if s > MAX_NORM_RELATIVE_STRENGTH:
                raise OutOfRangeError(
                    f"norm_relative {what} {s:g} is above {MAX_NORM_RELATIVE_STRENGTH:g}: at strength s each "
                    "position keeps 1/(1+s) of its activation and the rest is the direction at the activation's own "
                    f"norm, so {MAX_NORM_RELATIVE_STRENGTH:g} already replaces 99% of it and more changes only "
                    f"rounding; use a strength between -1 and {MAX_NORM_RELATIVE_STRENGTH:g}")
        return
    for what, s in strengths:
        added = abs(s) * norm
        if added > MAX_ADDED_NORM:
            raise OutOfRangeError(
                f"{what} {s:g} x direction norm {norm:.3g} adds a vector of norm {added:.3g} to every position, but "
                "MusicGen's residual stream has norms from about sqrt(hidden / 2) (its sinusoidal positions alone: 23 "
                "at hidden 1024, 7 in the teaching model) to a few hundred per position: above "
                f"{MAX_ADDED_NORM:g} the direction buries the music. Use a smaller strength (for a unit direction, "
                "a fraction of the residual norm: tens at most), or mode='norm_relative' for strengths relative "
                "to each position's norm")


def steer_tensor(hidden: torch.Tensor, vector: torch.Tensor, strength: float, mode: str) -> torch.Tensor:
    """Apply one steering formula to hidden states (..., H); returns a new tensor."""
    if mode == "add":
        return hidden + strength * vector
    norm = hidden.norm(dim=-1, keepdim=True)
    unit = vector / vector.norm().clamp_min(1e-12)
    return (hidden + strength * norm * unit) / (1.0 + strength)
