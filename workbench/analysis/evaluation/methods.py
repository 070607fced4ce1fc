"""A steering *method* as an evaluation sees it: a direction per (target, layer) and how it is applied.

`Method` is a frozen description (torch-free): unit directions keyed by (target, layer), the steering
mode, the CFG rows, a schedule (a plain dict of `workbench.Schedule` fields), the unit its strengths are
in (per layer: e.g. the mean residual norm there for ``add``, 1 for ``norm_relative``) and its default
strength sweep. `Method.spec(target, layer, strength)` builds the `SteeringSpec` a grid generates with.
Presets that make Methods from activations live in `workbench.analysis.evaluation.presets`.

    >>> import numpy as np
    >>> m = Method("toy", {("rock", 2): np.ones(4)}, strength_unit={2: 3.0}, strengths=(0.0, 1.0))
    >>> m.targets, m.layers, round(float(np.linalg.norm(m.direction("rock", 2))), 6)
    (('rock',), (2,), 1.0)
    >>> m.absolute_strength(2, 0.5)
    1.5
"""
from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from workbench.errors import BadInputError, UnknownOptionError, WrongTypeError
from workbench.validation import choice, finite_float, float_sequence, integer, unit_direction

__all__ = ["Method", "random_like", "strength_list"]

_MODES = ("add", "norm_relative")
_ROWS = ("cond", "both")


@dataclasses.dataclass(frozen=True, eq=False)
class Method:
    """directions: {(target, layer): (hidden,) vector}, stored at unit length.

    strength_unit: {layer: factor}; a grid strength s steers with s x factor (missing layers: 1).
    schedule: keyword arguments of `workbench.Schedule` (empty: constant strength).
    """

    name: str
    directions: dict
    mode: str = "add"
    rows: str = "cond"
    schedule: dict = dataclasses.field(default_factory=dict)
    strength_unit: dict = dataclasses.field(default_factory=dict)
    strengths: tuple = (0.0, 0.125, 0.25, 0.5, 1.0)
    description: str = ""

    def __post_init__(self):
        if not isinstance(self.name, str) or not self.name or "|" in self.name:
            raise BadInputError(f"method name {self.name!r}: use a short non-empty name without '|'")
        choice(self.mode, "steering mode", _MODES)
        choice(self.rows, "steering rows", _ROWS)
        for field in ("directions", "schedule", "strength_unit"):
            if not isinstance(getattr(self, field), dict):
                raise WrongTypeError(f"method {self.name!r}: {field} is a {type(getattr(self, field)).__name__}: pass "
                                     "a dict (directions: {(target, layer): vector})")
        if not isinstance(self.description, str):
            raise WrongTypeError(f"method {self.name!r}: description={self.description!r:.60}: pass text")
        if not self.directions:
            raise BadInputError(f"method {self.name!r} has no directions: pass {{(target, layer): vector}}")
        unit, size = {}, None
        for key, vector in self.directions.items():
            if not (isinstance(key, tuple) and len(key) == 2 and isinstance(key[0], str) and key[0]):
                raise WrongTypeError(f"method {self.name!r}: direction key {key!r:.60} is not a (target, layer) pair "
                                     "such as ('rock', 6)")
            target, layer = str(key[0]), integer(key[1], f"method {self.name!r} layer of {key[0]!r}", low=0)
            raw = getattr(vector, "vector", vector)
            n = int(np.size(raw)) if not isinstance(raw, (str, bytes, dict)) else 0
            v = unit_direction(vector, n, f"method {self.name!r}: the direction for {target!r} at layer {layer}",
                               zero_hint="recompute it from activations that differ between classes")
            if size is not None and v.size != size:
                raise BadInputError(f"method {self.name!r}: directions of {size} and {v.size} values: every direction "
                                    "must have the model's hidden size")
            size = v.size
            unit[(target, layer)] = v
        object.__setattr__(self, "directions", unit)
        object.__setattr__(self, "strength_unit", {
            integer(k, f"method {self.name!r} strength_unit layer", low=0):
                finite_float(v, f"method {self.name!r} strength_unit[{k!r}]", low=0.0, low_inclusive=False)
            for k, v in self.strength_unit.items()})
        object.__setattr__(self, "strengths", strength_list(self.strengths, f"method {self.name!r} strengths"))
        object.__setattr__(self, "schedule", dict(self.schedule))

    @property
    def targets(self) -> tuple:
        return tuple(dict.fromkeys(t for t, _ in self.directions))

    @property
    def layers(self) -> tuple:
        return tuple(sorted({layer for _, layer in self.directions}))

    def direction(self, target: str, layer: int) -> np.ndarray:
        """The unit direction toward `target` at `layer`."""
        if not isinstance(target, str):
            raise WrongTypeError(f"target={target!r:.60}: pass a label as text, one of {list(self.targets)}")
        key = (target, integer(layer, "layer"))
        if key not in self.directions:
            raise UnknownOptionError(f"method {self.name!r} has no direction toward {target!r} at layer {layer}: "
                                     f"it has targets {list(self.targets)} at layers {list(self.layers)}")
        return self.directions[key]

    def absolute_strength(self, layer: int, strength: float) -> float:
        """The strength `SteeringSpec` gets for grid strength `strength` at `layer`."""
        strength = finite_float(strength, "strength")
        return strength * self.strength_unit.get(integer(layer, "layer"), 1.0)

    def spec(self, target: str, layer: int, strength: float):
        """The `workbench.SteeringSpec` for one cell (imports torch)."""
        from workbench.runtime.steering import Schedule, SteeringSpec
        return SteeringSpec.single(self.direction(target, layer), layers=(int(layer),),
                                   strength=self.absolute_strength(layer, strength), mode=self.mode, rows=self.rows,
                                   schedule=Schedule(**self.schedule))

    def fingerprint(self, layer: int) -> str:
        """A short hash of everything that decides this method's clips at `layer` (checked on resume)."""
        layer = integer(layer, "layer")
        sha = hashlib.sha256(f"{self.mode}|{self.rows}|{sorted(self.schedule.items())}|"
                             f"{self.strength_unit.get(int(layer), 1.0)!r}".encode())
        for target in sorted(self.targets):
            if (target, int(layer)) in self.directions:
                sha.update(target.encode())
                sha.update(np.ascontiguousarray(self.directions[(target, int(layer))]).tobytes())
        return sha.hexdigest()[:16]

    def describe(self) -> dict:
        """JSON-friendly settings (no vectors)."""
        return dict(name=self.name, mode=self.mode, rows=self.rows, schedule=self.schedule,
                    strength_unit=self.strength_unit, strengths=list(self.strengths), targets=list(self.targets),
                    layers=list(self.layers), description=self.description)


def strength_list(value, name: str = "strengths") -> tuple:
    """Grid strengths: finite floats, each naming its own cell (two that print alike, e.g. 0.1 and
    0.1000001, would share one cell id, so they are refused)."""
    strengths = float_sequence(value, name, example="(0.0, 0.5, 1.0)")
    shown = {}
    for s in strengths:
        if f"{s:g}" in shown:
            raise BadInputError(f"{name} holds {shown[f'{s:g}']!r} and {s!r}, which name the same grid cell "
                                f"(s{s:g}): pass each strength once, differing in the first 6 digits")
        shown[f"{s:g}"] = s
    return strengths


def random_like(method: Method, *, seed: int = 0, name: str = "random") -> Method:
    """The same method with a random unit direction per (target, layer): the control for an AUC."""
    if not isinstance(method, Method):
        raise WrongTypeError(f"method is a {type(method).__name__}: pass a Method")
    rng = np.random.default_rng(integer(seed, "seed", low=0))
    directions = {key: rng.normal(size=len(v)) for key, v in sorted(method.directions.items())}
    return dataclasses.replace(method, name=name, directions=directions,
                               description=f"random unit directions (seed {seed}) steered like {method.name!r}")
