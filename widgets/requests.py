"""What the views ask the core for, as typed, frozen, validated requests (torch-free).

`SteerRequest` is what `SteeringPanel` builds and `widgets.backend.Backend.generate` consumes;
`DirectionRequest` is what `DirectionPicker` builds and `Backend.make_direction` consumes. Their
vocabularies are `workbench.enums` (modes, schedules, CFG rows, sites) and `DIRECTION_METHODS`
here: stable keys, never the labels a dropdown shows (`METHOD_LABELS` maps one to the other).

    >>> req = SteerRequest("calm piano", layers=[2, 3], strength=1.5, seed=4)
    >>> req.layers, req.mode, req.steered
    ((2, 3), 'add', False)
    >>> SteerRequest("calm piano", layers=[2], strength=1.0, mode="multiply")
    Traceback (most recent call last):
    ...
    workbench.errors.BadInputError: mode='multiply': use one of ('add', 'norm_relative')
    >>> DirectionRequest("class A → B", class_a="jazz", class_b="rock", layer=2).method  # a label reads as its key
    'class_pair'
"""
from __future__ import annotations

import dataclasses
import math
import numbers
from collections.abc import Mapping
from typing import Any

from workbench.enums import SCHEDULE_KINDS, SITES, STEERING_MODES, STEERING_ROWS
from workbench.errors import BadInputError, LayerOutOfRangeError, NotFiniteError, UnknownSiteError

__all__ = ["DIRECTION_METHODS", "METHOD_LABELS", "DirectionRequest", "SteerRequest", "method_key"]

# How a direction is made: key -> what the picker's dropdown shows.
METHOD_LABELS = {
    "probe_class": "probe class",              # the probe's weights for class A (against the rest)
    "class_pair": "class A → B",               # mean of class B minus mean of class A
    "class_vs_rest": "difference of means",    # mean of class A minus mean of the other rows
    "pca": "PCA",                              # a principal component, signed towards class A
    "selection": "current selection",          # the explorer's group A -> group B
}
DIRECTION_METHODS = tuple(METHOD_LABELS)


def method_key(method: str) -> str:
    """The key for a direction method given as a key or as its dropdown label."""
    if method in METHOD_LABELS:
        return method
    by_label = {label: key for key, label in METHOD_LABELS.items()}
    if method in by_label:
        return by_label[method]
    raise BadInputError(f"direction method {method!r}: use one of {DIRECTION_METHODS}")


def _choice(value, name: str, options: tuple) -> str:
    if value not in options:
        raise BadInputError(f"{name}={value!r}: use one of {options}")
    return value


def _integer(value, name: str, low: int | None = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise BadInputError(f"{name}={value!r}: pass a whole number")
    if low is not None and value < low:
        raise BadInputError(f"{name}={value!r}: pass a whole number >= {low}")
    return int(value)


def _number(value, name: str, low: float | None = None, low_open: bool = False) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise BadInputError(f"{name}={value!r}: pass a number")
    if not math.isfinite(value):
        raise NotFiniteError(f"{name}={value!r}: pass a finite number")
    if low is not None and (value < low or (low_open and value == low)):
        raise BadInputError(f"{name}={value!r}: pass a number {'>' if low_open else '>='} {low:g}")
    return float(value)


def _indices(values, name: str) -> tuple[int, ...]:
    if isinstance(values, (str, bytes)) or not hasattr(values, "__iter__"):
        raise BadInputError(f"{name}={values!r}: pass a list of whole numbers")
    out = tuple(_integer(v, name) for v in values)
    if len(set(out)) != len(out):
        raise BadInputError(f"{name}={list(out)} lists an index twice: list each once")
    return out


@dataclasses.dataclass(frozen=True)
class SteerRequest:
    """One generation: prompt, seed, duration and guidance, and (if `direction` is set) the steering.

    layers: decoder layers to steer (checked against the model by the core); strength: in units of
    the layer's mean activation norm for `Backend` directions; direction: an object with `.vector`
    (e.g. `workbench.analysis.directions.Direction`) or None for an unsteered clip.
    """

    prompt: str
    layers: tuple[int, ...] = ()
    strength: float = 0.0
    mode: str = "add"
    schedule: str = "constant"
    rows: str = "cond"
    seed: int = 0
    duration_s: float = 4.0
    guidance_scale: float = 3.0
    direction: Any = dataclasses.field(default=None, compare=False)

    def __post_init__(self):
        if not isinstance(self.prompt, str):
            raise BadInputError(f"prompt={self.prompt!r}: pass a string (an empty one for no text)")
        layers = _indices(self.layers, "layers")
        for name, value in (("layers", layers), ("strength", _number(self.strength, "strength")),
                            ("mode", _choice(self.mode, "mode", STEERING_MODES)),
                            ("schedule", _choice(self.schedule, "schedule", SCHEDULE_KINDS)),
                            ("rows", _choice(self.rows, "rows", STEERING_ROWS)),
                            ("seed", _integer(self.seed, "seed", low=None)),
                            ("duration_s", _number(self.duration_s, "duration_s", low=0.0, low_open=True)),
                            ("guidance_scale", _number(self.guidance_scale, "guidance_scale", low=0.0))):
            object.__setattr__(self, name, value)

    @classmethod
    def of(cls, request) -> SteerRequest:
        """`request` if it is a SteerRequest; a mapping of its fields (the dicts of wave one) checked into one."""
        if isinstance(request, cls):
            return request
        if isinstance(request, Mapping):
            return cls(**request)
        raise TypeError(f"expected a widgets.requests.SteerRequest, not {type(request).__name__}")

    @property
    def steered(self) -> bool:
        """Whether this request steers at all (a direction, a non-zero strength and some layers)."""
        return self.direction is not None and self.strength != 0 and bool(self.layers)

    def unsteered(self) -> SteerRequest:
        """The same prompt, seed, duration and guidance without steering (the comparison twin)."""
        return dataclasses.replace(self, direction=None, strength=0.0)

    def caption(self) -> str:
        """Plain text naming the clip and what steered it (escape it before putting it in HTML).

            >>> class D: name, method, site = "rock − jazz", "class_means", "resid"
            >>> SteerRequest("jazz", layers=[3], strength=0.5, direction=D()).caption()
            '“jazz” seed 0, 4 s · steered along “rock − jazz” (class_means) at resid L3, +0.5 × mean residual norm'
            >>> SteerRequest("jazz", layers=[3], strength=0.5).caption()
            '“jazz” seed 0, 4 s · unsteered'
        """
        return f"“{self.prompt}” seed {self.seed}, {self.duration_s:g} s · {self.steering_caption()}"

    def steering_caption(self) -> str:
        """What steered the clip: the direction's name and origin, its site and layers, the strength in its unit
        (mode add: a multiple of the layer's mean residual norm, `workbench.analysis.strength`)."""
        if not self.steered:
            return "unsteered"
        d = self.direction
        name = getattr(d, "name", None) or "a custom vector"
        method = getattr(d, "method", None)
        site = getattr(d, "site", "resid")
        where = f"{site} L{', L'.join(str(x) for x in self.layers)}"
        unit = "× mean residual norm" if self.mode == "add" else "× each row's own norm (norm_relative)"
        extras = "" if self.schedule == "constant" else f", schedule {self.schedule}"
        return (f"steered along “{name}”" + (f" ({method})" if method else "") + f" at {where}, "
                f"{self.strength:+g} {unit}{extras}")

    def __getitem__(self, name: str):
        """`request["seed"]` still reads a field: callbacks written when requests were dicts keep working."""
        if name not in self.__dataclass_fields__:
            raise KeyError(name)
        return getattr(self, name)


@dataclasses.dataclass(frozen=True)
class DirectionRequest:
    """How to make one direction at (site, layer); `method` is a key of `METHOD_LABELS` (a label is read as
    its key). groups: (group A indices, group B indices) for "selection"."""

    method: str
    site: str = "resid"
    layer: int = 0
    class_a: str = ""
    class_b: str = ""
    component: int = 0
    groups: tuple = ()

    def __post_init__(self):
        method = method_key(self.method)
        if self.site not in SITES:
            raise UnknownSiteError(f"site={self.site!r}: use one of {SITES}")
        if isinstance(self.layer, bool) or not isinstance(self.layer, numbers.Integral) or self.layer < 0:
            raise LayerOutOfRangeError(f"layer={self.layer!r}: pass a decoder layer index (0, 1, ...)")
        groups = tuple(_indices(g, "groups") for g in self.groups)
        if groups and len(groups) != 2:
            raise BadInputError(f"groups has {len(groups)} groups: pass (group A indices, group B indices)")
        if method == "selection" and not (groups and groups[0] and groups[1]):
            raise BadInputError("no selection: lasso group A and group B in the projection explorer first")
        if method == "class_pair" and self.class_a == self.class_b:
            raise BadInputError(f"class A and class B are both {self.class_a!r}: pick two different classes")
        for name, value in (("method", method), ("layer", int(self.layer)), ("groups", groups),
                            ("component", _integer(self.component, "component")),
                            ("class_a", str(self.class_a)), ("class_b", str(self.class_b))):
            object.__setattr__(self, name, value)

    @property
    def label(self) -> str:
        return METHOD_LABELS[self.method]
