"""Steering directions: where they come from, how they are scaled, and how they are saved.

A `Direction` is a frozen vector in activation space with its provenance. `SteeringSpec` takes it
as is (it reads `.vector` and `.model_id`). Makers: `from_probe` (class vs rest, or class A minus
class B, mapped from standardised back to activation space), `from_class_means`, `from_pca` (top
component, sign aligned to a label), `from_point_sets` (two selections in a plot) and `from_course` (how a
class's clips move over time, for concepts that are an order of events, such as a crescendo).

On disk (directions and `LinearProbe`s alike) a name is kept as given: `save("rock_s1.0")` writes
`rock_s1.0.safetensors` (tensors, with the metadata in its header) and `rock_s1.0.safetensors.json`
(the same metadata, for people and other tools); `load` takes the name or the full file name
(`workbench.analysis.saving` holds that layout).

    >>> import numpy as np, tempfile, os
    >>> X = np.random.default_rng(0).normal(size=(40, 8)).astype(np.float32); y = np.repeat(["jazz", "rock"], 20)
    >>> X[y == "rock", 0] += 3
    >>> d = from_class_means(X, y, "rock", model_id="random/tiny@seed0", layer=1)
    >>> int(np.argmax(np.abs(d.vector))), round(float(np.linalg.norm(d.vector)), 3)
    (0, 1.0)
    >>> path = d.save(os.path.join(tempfile.mkdtemp(), "rock.safetensors"))
    >>> Direction.load(path, expect_model_id="random/tiny@seed0").method
    'class_means'
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np

from workbench.analysis.saving import read_saved, save_paths
from workbench.data.store import array_hash
from workbench.errors import BadInputError, CorruptFileError, DirectionMismatchError, NotFiniteError

__all__ = ["Direction", "from_probe", "from_class_means", "from_pca", "from_point_sets", "from_course", "normalize",
           "NORMALIZATIONS", "save_paths", "read_saved"]  # the last two live in workbench.analysis.saving

NORMALIZATIONS = ("unit", "none", "mean_norm")


@dataclasses.dataclass(frozen=True, eq=False)
class Direction:
    """vector (hidden,) float32 in activation space at (site, layer) of model `model_id`."""

    vector: np.ndarray
    model_id: str
    layer: int
    site: str = "resid"
    method: str = "manual"
    provenance: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        vec = np.asarray(self.vector, dtype=np.float32).reshape(-1)
        if not np.isfinite(vec).all():
            raise NotFiniteError("direction vector has NaN/inf entries: check the activations it came from")
        object.__setattr__(self, "vector", vec)
        object.__setattr__(self, "layer", int(self.layer))

    @property
    def hidden_size(self) -> int:
        return len(self.vector)

    @property
    def norm(self) -> float:
        return float(np.linalg.norm(self.vector))

    @property
    def name(self) -> str:
        return self.provenance.get("name", self.method)

    def project(self, X) -> np.ndarray:
        """Scalar projection of activations (N, hidden) on the unit direction."""
        return np.asarray(X, dtype=np.float32) @ (self.vector / max(self.norm, 1e-12))

    def cosine(self, other) -> float:
        v = np.asarray(getattr(other, "vector", other), dtype=np.float32)
        return float(self.vector @ v / max(self.norm * float(np.linalg.norm(v)), 1e-12))

    def __neg__(self) -> Direction:
        return dataclasses.replace(self, vector=-self.vector,
                                   provenance=dict(self.provenance, negated=not self.provenance.get("negated", False)))

    def __repr__(self) -> str:
        return (f"Direction({self.name!r}, {self.site} layer {self.layer}, |v|={self.norm:.3g}, "
                f"model={self.model_id!r})")

    def save(self, path) -> Path:
        """Write `<path>.safetensors` (tensor "vector") and a JSON sidecar `<path>.safetensors.json`; returns
        the first. The name is kept as given (`rock_s1.0` -> `rock_s1.0.safetensors`)."""
        from safetensors.numpy import save_file
        path, sidecar = save_paths(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = dict(model_id=self.model_id, layer=self.layer, site=self.site, method=self.method,
                    hidden_size=self.hidden_size, provenance=self.provenance, format="workbench.direction/1")
        text = json.dumps(meta, indent=1, default=str)
        save_file({"vector": self.vector}, str(path), metadata={"workbench": text})
        sidecar.write_text(text)
        return path

    @classmethod
    def load(cls, path, expect_model_id: str | None = None, expect_hidden_size: int | None = None) -> Direction:
        """Read a saved direction (by the name given to `save`, or the full `.safetensors` name; older saves
        with a `<stem>.json` sidecar load too); refuse one made on another model or of another size."""
        path, tensors, meta, source = read_saved(path, "direction", ("vector",))
        vector = tensors["vector"]
        fields = dict(model_id=(str, "unknown"), layer=(int, -1), site=(str, "resid"), method=(str, "manual"),
                      provenance=(dict, {}))
        for name, (kind, default) in fields.items():
            value = meta.get(name, default)
            if not isinstance(value, kind) or isinstance(value, bool):
                raise CorruptFileError(source, f"{name} is {value!r}, not a {kind.__name__}: fix it or re-save the "
                                               "direction")
        if vector.ndim != 1 or not np.issubdtype(vector.dtype, np.floating):
            raise CorruptFileError(path, f"its vector has shape {vector.shape} and dtype {vector.dtype}, not a "
                                         "1-D float array: re-save the direction")
        if expect_model_id is not None and meta.get("model_id") != expect_model_id:
            raise DirectionMismatchError(
                f"{path.name} was made on {meta.get('model_id')!r}, not {expect_model_id!r}: load that model, "
                "or recompute the direction on this one")
        if expect_hidden_size is not None and len(vector) != expect_hidden_size:
            raise DirectionMismatchError(
                f"{path.name} has {len(vector)} dimensions but the model's hidden size is {expect_hidden_size}: "
                "it belongs to another model")
        return cls(vector, meta.get("model_id", "unknown"), meta.get("layer", -1), meta.get("site", "resid"),
                   meta.get("method", "manual"), meta.get("provenance", {}))


def normalize(vector, how: str = "unit", activations=None) -> tuple[np.ndarray, dict]:
    """Scale a vector: "unit" (length 1), "none", or "mean_norm" (length = mean |activation|)."""
    vector = np.asarray(vector, dtype=np.float64)
    raw_norm = float(np.linalg.norm(vector))
    if how not in NORMALIZATIONS:
        raise BadInputError(f"normalize={how!r}: use one of {NORMALIZATIONS}")
    if how != "none" and raw_norm < 1e-12:
        raise BadInputError("the direction is zero (the two groups have the same mean?): pick groups that differ")
    info = dict(normalize=how, raw_norm=raw_norm)
    if how == "unit":
        vector = vector / raw_norm
    elif how == "mean_norm":
        if activations is None:
            raise BadInputError("normalize='mean_norm' needs activations=... (the layer's activations)")
        target = float(np.linalg.norm(np.asarray(activations, dtype=np.float64), axis=1).mean())
        vector, info["mean_activation_norm"] = vector / raw_norm * target, target
    return vector.astype(np.float32), info


def _checked(X, labels=None):
    X = np.asarray(X, dtype=np.float64)
    if X.ndim != 2:
        raise BadInputError(f"activations must be (N, hidden); got shape {X.shape}")
    if not np.isfinite(X).all():
        raise NotFiniteError("activations contain NaN/inf: drop those rows first")
    if labels is None:
        return X, None
    labels = np.asarray(labels)
    if len(labels) != len(X):
        raise BadInputError(f"got {len(labels)} labels for {len(X)} rows: pass one label per row")
    return X, labels


def _mask(labels, value, what):
    mask = labels == value
    if not mask.any():
        raise BadInputError(f"no rows labelled {value!r} ({what}); labels are {sorted(set(labels.tolist()))}")
    return mask


def _make(vector, how, activations, model_id, layer, site, method, provenance):
    vector, info = normalize(vector, how, activations)
    return Direction(vector, model_id, layer, site, method, dict(provenance, **info))


def from_probe(probe, positive, negative=None, *, model_id: str, layer: int, site: str = "resid",
               normalize: str = "unit", activations=None) -> Direction:
    """Class `positive` vs the rest (weights minus their class mean), or `positive` minus `negative`.

    Uses the probe's activation-space weights (`coef_`), i.e. the gradient of the class score with
    respect to the activation, which folds the standardisation back in.
    """
    classes = [c.item() if hasattr(c, "item") else c for c in probe.classes_]
    for c in (positive,) + (() if negative is None else (negative,)):
        if c not in classes:
            raise BadInputError(f"class {c!r} is not one of the probe's classes {classes}")
    coef = np.asarray(probe.coef_, dtype=np.float64)
    vec = coef[classes.index(positive)] - (coef.mean(0) if negative is None else coef[classes.index(negative)])
    name = f"probe: {positive} − {'rest' if negative is None else negative}"
    prov = dict(name=name, positive=positive, negative=negative, classes=classes,
                probe=getattr(probe, "get_params", lambda: {})())
    return _make(vec, normalize, activations, model_id, layer, site, "probe", prov)


def from_class_means(X, labels, positive, negative=None, *, model_id: str, layer: int, site: str = "resid",
                     normalize: str = "unit") -> Direction:
    """mean(X[label == positive]) − mean(X[label == negative]) (negative None: all other rows)."""
    X, labels = _checked(X, labels)
    pos = _mask(labels, positive, "positive")
    neg = ~pos if negative is None else _mask(labels, negative, "negative")
    if not neg.any():
        raise BadInputError("every row is the positive class: a difference of means needs other rows")
    vec = X[pos].mean(0) - X[neg].mean(0)
    prov = dict(name=f"{positive} − {'rest' if negative is None else negative}", positive=positive,
                negative=negative, n_positive=int(pos.sum()), n_negative=int(neg.sum()),
                data_hash=array_hash(X.astype(np.float32), extra=labels.tolist()))
    return _make(vec, normalize, X, model_id, layer, site, "class_means", prov)


def from_pca(X, labels=None, positive=None, *, component: int = 0, model_id: str, layer: int,
             site: str = "resid", normalize: str = "unit") -> Direction:
    """Principal component `component` of X; with labels and `positive`, signed so that class scores higher."""
    X, labels = _checked(X, labels)
    centred = X - X.mean(0)
    _, sv, vt = np.linalg.svd(centred, full_matrices=False)
    if component >= len(vt):
        raise BadInputError(f"component {component} does not exist: X has {len(vt)} components")
    vec = vt[component]
    if positive is not None:
        if labels is None:
            raise BadInputError("sign alignment needs labels=... along with positive=...")
        pos = _mask(labels, positive, "positive")
        if (centred[pos] @ vec).mean() < 0:
            vec = -vec
    explained = float(sv[component] ** 2 / max((sv ** 2).sum(), 1e-30))
    prov = dict(name=f"PC{component}" + (f" (+{positive})" if positive is not None else ""), component=component,
                explained_variance_ratio=explained, aligned_to=positive, data_hash=array_hash(X.astype(np.float32)))
    return _make(vec, normalize, X, model_id, layer, site, "pca", prov)


def from_point_sets(X, away, toward, *, model_id: str, layer: int, site: str = "resid",
                    normalize: str = "unit") -> Direction:
    """mean(X[toward]) − mean(X[away]) for two index sets (e.g. two lasso selections in a plot)."""
    X, _ = _checked(X)
    away, toward = np.asarray(list(away), dtype=np.int64), np.asarray(list(toward), dtype=np.int64)
    if len(away) == 0 or len(toward) == 0:
        raise BadInputError("both point sets need at least one point: select two groups")
    vec = X[toward].mean(0) - X[away].mean(0)
    prov = dict(name=f"selection ({len(away)}) → ({len(toward)})", away=away.tolist(), toward=toward.tolist(),
                data_hash=array_hash(X.astype(np.float32)))
    return _make(vec, normalize, X, model_id, layer, site, "point_sets", prov)


def _course(frames: np.ndarray, i: int) -> np.ndarray:
    frames = np.asarray(frames, dtype=np.float64)
    if frames.ndim != 2 or frames.shape[0] < 2:
        raise BadInputError(f"clip {i}: frames have shape {frames.shape}; pass (frames >= 2, hidden) per clip "
                            "(capture with pooling='none')")
    if not np.isfinite(frames).all():
        raise NotFiniteError(f"clip {i}: frames contain NaN/inf: drop that clip first")
    half = frames.shape[0] // 2
    return frames[half:].mean(0) - frames[:half].mean(0)


def from_course(frames, labels, positive, negative=None, *, model_id: str, layer: int, site: str = "resid",
                normalize: str = "unit") -> Direction:
    """Where class `positive`'s clips go over time: the late half's mean minus the early half's, per clip
    (`frames`: one (frames, hidden) array per clip, e.g. captured with ``pooling="none"``), averaged over the
    `positive` clips, minus the same over the `negative` clips (None: over every clip, which removes what all
    clips do over time).

    For a concept that is an order of events (crescendo / diminuendo: the same levels in the opposite order) a
    class mean over whole clips has no sign in time; this direction points from the class's start to its end,
    so a push ramped from -s to +s along it (`VerdictPlan(push="ramp")`) asks for that course.

        >>> rng = np.random.default_rng(0)
        >>> t = np.linspace(-1, 1, 20)[:, None]
        >>> rise, drift = np.eye(4)[0], np.eye(4)[1]   # "up" clips rise on axis 0, "down" fall; all drift on 1
        >>> clips = [rng.normal(0, 0.1, (20, 4)) + t * (s * rise + drift) for s in (1, -1) * 10]
        >>> d = from_course(clips, ["up", "down"] * 10, "up", model_id="random/tiny@seed0", layer=1)
        >>> (np.round(d.vector, 1) + 0.0).tolist()
        [1.0, 0.0, 0.0, 0.0]
    """
    if normalize == "mean_norm":
        raise BadInputError("normalize='mean_norm' scales to the activations' norm, which a course (a difference "
                            "over time) does not have: use 'unit' and a strength in multiples of the layer's mean "
                            "residual norm (`workbench.analysis.strength`)")
    if isinstance(frames, np.ndarray) and frames.ndim == 3:
        frames = list(frames)
    if isinstance(frames, (str, bytes)) or not hasattr(frames, "__len__"):
        raise BadInputError(f"frames is a {type(frames).__name__}: pass one (frames, hidden) array per clip")
    courses = np.stack([_course(f, i) for i, f in enumerate(frames)]) if len(frames) else np.zeros((0, 0))
    labels = np.asarray(labels)
    if len(labels) != len(courses):
        raise BadInputError(f"got {len(labels)} labels for {len(courses)} clips: pass one label per clip")
    pos = _mask(labels, positive, "positive")
    neg = np.ones(len(labels), bool) if negative is None else _mask(labels, negative, "negative")
    vec = courses[pos].mean(0) - courses[neg].mean(0)
    if not np.any(vec):
        other = "other" if negative is None else repr(negative)
        raise BadInputError(f"the {positive!r} clips move over time exactly as the {other} clips: there is no "
                            "course to push along")
    prov = dict(name=f"course: {positive} − {'all' if negative is None else negative}", positive=positive,
                negative=negative, n_positive=int(pos.sum()), n_negative=int(neg.sum()),
                data_hash=array_hash(courses.astype(np.float32), extra=labels.tolist()))
    return _make(vec, normalize, courses, model_id, layer, site, "course", prov)
