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
from typing import Any, Sequence

import numpy as np
import torch

from workbench.errors import BadInputError, DirectionMismatchError, LayerOutOfRangeError, NotFiniteError, UnknownSiteError

from workbench.enums import SCHEDULE_KINDS as SCHEDULES
from workbench.enums import SITES as STEER_SITES
from workbench.enums import STEERING_MODES as MODES
from workbench.enums import STEERING_ROWS as ROWS


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
        if self.kind not in SCHEDULES:
            raise BadInputError(f"unknown schedule {self.kind!r}: use one of {SCHEDULES}")
        if self.every < 1 or self.width < 1 or self.ramp_steps < 1:
            raise BadInputError("schedule every, width and ramp_steps must be >= 1")
        if self.stop_step is not None and self.stop_step <= self.start_step:
            raise BadInputError(f"stop_step ({self.stop_step}) must be after start_step ({self.start_step})")
        for name in ("decay_rate", "floor", "ramp_to"):
            if not math.isfinite(getattr(self, name)):
                raise NotFiniteError(f"schedule {name} must be finite, got {getattr(self, name)}")

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
        layers = (self.layers,) if isinstance(self.layers, (int, np.integer)) else tuple(int(x) for x in self.layers)
        if not layers:
            raise BadInputError("a steering term needs at least one layer, e.g. layers=(6,)")
        object.__setattr__(self, "layers", layers)
        if not isinstance(self.strength, (int, float, np.floating, np.integer)) or not math.isfinite(self.strength):
            raise NotFiniteError(f"steering strength must be a finite number, got {self.strength!r}")
        object.__setattr__(self, "strength", float(self.strength))
        if self.site not in STEER_SITES:
            raise UnknownSiteError(f"unknown steering site {self.site!r}: use one of {STEER_SITES}")

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
        object.__setattr__(self, "terms", terms)
        if self.mode not in MODES:
            raise BadInputError(f"unknown steering mode {self.mode!r}: use one of {MODES}")
        if self.rows not in ROWS:
            raise BadInputError(f"unknown steering rows {self.rows!r}: use 'cond' or 'both'")
        if self.mode == "norm_relative":
            for term in terms:
                for s in (term.strength, term.schedule.ramp_to if term.schedule.kind == "ramp" else 0.0):
                    if s <= -1.0:
                        raise BadInputError(
                            f"norm_relative divides by (1 + strength): strength {s} <= -1 is undefined; "
                            "use a strength above -1 or mode='add'")

    @classmethod
    def single(cls, vector, layers: Sequence[int] | int, strength: float, *, mode: str = "add",
               rows: str = "cond", schedule: Schedule | None = None, site: str = "resid") -> "SteeringSpec":
        """One direction at the given layers: ``SteeringSpec.single(direction, layers=(6,), strength=4.0)``."""
        term = SteeringTerm(vector, layers if not isinstance(layers, int) else (layers,), strength,
                            schedule or Schedule(), site=site)
        return cls((term,), mode=mode, rows=rows)

    def scaled(self, factor: float) -> "SteeringSpec":
        """The same spec with every strength multiplied by ``factor`` (a strength sweep)."""
        terms = tuple(dataclasses.replace(t, strength=t.strength * factor) for t in self.terms)
        return SteeringSpec(terms, mode=self.mode, rows=self.rows)

    def validate_for(self, n_layers: int, hidden_size: int, model_id: str) -> None:
        """Raise a specific error if this spec cannot steer that model."""
        for term in self.terms:
            for layer in term.layers:
                if not 0 <= layer < n_layers:
                    raise LayerOutOfRangeError(
                        f"layer {layer} is out of range: this model has {n_layers} decoder layers (0-{n_layers - 1})")
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


def steer_tensor(hidden: torch.Tensor, vector: torch.Tensor, strength: float, mode: str) -> torch.Tensor:
    """Apply one steering formula to hidden states (..., H); returns a new tensor."""
    if mode == "add":
        return hidden + strength * vector
    norm = hidden.norm(dim=-1, keepdim=True)
    unit = vector / vector.norm().clamp_min(1e-12)
    return (hidden + strength * norm * unit) / (1.0 + strength)
