"""When during generation does a direction take hold? Per-step projections through an nnsight trace.

`trace_steps` generates clips through `workbench.runtime.tracing` and records, at every decoder step
and every layer, the projection of the residual onto a unit direction and the residual's norm (one
``read`` edit per layer, `workbench.runtime.edits`).
Only those two numbers per (layer, step, clip) are kept, never the activations: for a 30 s clip of
musicgen-small that is 24 x 1503 x 2 floats a clip.

Time: decoder step ``s`` emits codebook 0 of audio frame ``s`` (codebook k of frame ``s - k``, the
delay pattern), so ``time_s = s / frame_rate_hz`` is where the step lands in the clip.

Example:
    >>> import numpy as np, workbench as wb
    >>> h = wb.random_model("tiny")
    >>> from workbench.runtime.settings import GenerationSettings
    >>> tr = trace_steps(h, ["jazz", "rock"], np.ones(h.hidden_size), GenerationSettings(duration_s=0.2, seeds=(1, 2)))
    >>> tr.projection.shape, len(tr.clips)          # (layers, steps, clips)
    ((3, 13, 2), 2)
    >>> sorted(tr.to_frame().columns)
    ['clip', 'layer', 'norm', 'projection', 'step', 'time_s']
"""
from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import torch

from workbench import validation
from workbench.errors import BadInputError, WrongTypeError
from workbench.runtime.edits import Edit
from workbench.runtime.inputs import check_spec
from workbench.runtime.settings import GenerationSettings, settings_of
from workbench.runtime.tracing import generate_traced

__all__ = ["StepTrace", "trace_steps", "trace_steered"]


@dataclasses.dataclass
class StepTrace:
    """projection, norm: float32 (layers, steps, clips); clips: the generated `Clip`s."""

    projection: np.ndarray
    norm: np.ndarray
    clips: list
    layers: tuple
    site: str
    frame_rate_hz: float
    rows: str = "cond"

    def __post_init__(self):
        arrays = {}
        for name in ("projection", "norm"):
            value = getattr(self, name)
            array = np.asarray(value) if isinstance(value, np.ndarray) or hasattr(value, "__array__") else None
            if array is None or array.dtype.kind not in "iuf" or array.ndim != 3:
                raise WrongTypeError(f"{name} is a {type(value).__name__} of shape {np.shape(value)}: pass a float "
                                     "array (layers, steps, clips), as trace_steps makes")
            arrays[name] = array
        if arrays["projection"].shape != arrays["norm"].shape:
            raise BadInputError(f"projection {arrays['projection'].shape} and norm {arrays['norm'].shape} differ: "
                                "pass both from one trace_steps run")
        n_layers, _, n_clips = arrays["projection"].shape
        layers = validation.int_sequence(self.layers, "layers", allow_empty=True, example="(0, 1, 2)")
        if len(layers) != n_layers:
            raise BadInputError(f"layers has {len(layers)} entries for {n_layers} rows of projection: pass one "
                                "layer index per row")
        if isinstance(self.clips, (str, bytes)) or not hasattr(self.clips, "__len__") or len(self.clips) != n_clips:
            raise BadInputError(f"clips={self.clips!r:.60}: pass a list of {n_clips} clips, one per column of "
                                "projection")
        validation.site(self.site)
        validation.choice(self.rows, "rows", ("cond", "uncond"))
        rate = validation.finite_float(self.frame_rate_hz, "frame_rate_hz", low=0, low_inclusive=False)
        for name, value in dict(arrays, layers=layers, frame_rate_hz=rate).items():
            object.__setattr__(self, name, value)

    @property
    def time_s(self) -> np.ndarray:
        """Seconds into the clip of each step (codebook 0 of that frame)."""
        return np.arange(self.projection.shape[1]) / self.frame_rate_hz

    @property
    def cosine(self) -> np.ndarray:
        """projection / norm: how aligned the residual is with the direction, in [-1, 1]."""
        return self.projection / np.maximum(self.norm, 1e-12)

    def to_frame(self):
        """Tidy DataFrame: one row per (clip, layer, step)."""
        import pandas as pd
        n_layers, n_steps, n_clips = self.projection.shape
        clip, layer, step = np.meshgrid(np.arange(n_clips), np.asarray(self.layers), np.arange(n_steps),
                                        indexing="ij")
        return pd.DataFrame({"clip": clip.ravel(), "layer": layer.ravel(), "step": step.ravel(),
                             "time_s": step.ravel() / self.frame_rate_hz,
                             "projection": self.projection.transpose(2, 0, 1).ravel(),
                             "norm": self.norm.transpose(2, 0, 1).ravel()})


def _unit(handle, direction) -> torch.Tensor:
    """The unit direction, refused when made on another model (as `SteeringSpec` refuses it), NaN or zero.

    Its layer is not checked: reading one direction at every layer is what a trace is for.
    """
    unit = validation.unit_direction(direction, handle.hidden_size, model_id=handle.model_id,
                                     zero_hint="there is nothing to project onto; pass a non-zero direction (e.g. "
                                               "a difference of class means)")
    return torch.as_tensor(unit, device=handle.device, dtype=handle.dtype)


def trace_steps(handle, prompts, direction, settings: GenerationSettings | None = None, *, site: str = "resid",
                layers=None, steering=None, rows: str = "cond") -> StepTrace:
    """Generate ``prompts`` (optionally steered) and record every layer's projection on ``direction``.

    direction: a `Direction` or a (hidden,) vector (made unit here). settings: the `GenerationSettings` of
    the clips (its batch size batches the prompts). rows: ``cond`` or ``uncond`` (the null-text rows, under
    guidance). Steering is applied before the reading at each layer, so a steered layer shows the push it gets.
    """
    validation.model_handle(handle)
    settings = settings_of(settings)
    validation.site(site)
    rows = validation.choice(rows, "rows", ("cond", "uncond"))
    if rows == "uncond" and not settings.guided:
        raise BadInputError("rows='uncond' needs guidance_scale > 1 (without it there are no null-text rows)")
    unit = _unit(handle, direction)
    layers = tuple(range(handle.n_layers)) if layers is None else validation.layers_in_range(
        validation.int_sequence(layers, "layers", example="[0, 1]"), handle.n_layers)
    prompts = validation.prompt_list(prompts)
    seeds = validation.seed_list(settings.seeds, len(prompts))
    if steering is not None:
        check_spec(steering, "steering", "SteeringSpec", "SteeringSpec.single(direction, layers=(6,), strength=4.0)")

    def read(hidden, step):
        part = hidden[:, -1].float()  # (n, H): the step's newest position of the rows read
        return torch.stack([part @ unit.float(), part.norm(dim=-1)], dim=-1)
    reads = [Edit("read", site=site, layer=layer, rows=rows, fn=read, name=layer) for layer in layers]
    projections, norms, clips = [], [], []
    for start in range(0, len(prompts), settings.batch_size):
        batch = slice(start, start + settings.batch_size)
        res = generate_traced(handle, prompts[batch], settings.replace(seeds=tuple(seeds[batch])), steering=steering,
                              edits=reads)
        per_layer = np.stack([torch.stack(res.reads[layer]).cpu().numpy() for layer in layers])  # (layers, steps, n, 2)
        projections.append(per_layer[..., 0])
        norms.append(per_layer[..., 1])
        clips.extend(res.clips)
    return StepTrace(np.concatenate(projections, axis=2).astype(np.float32),
                     np.concatenate(norms, axis=2).astype(np.float32), clips, layers, site,
                     float(handle.frame_rate_hz), rows)


def trace_steered(handle, prompts, direction, steering, **kwargs) -> tuple[StepTrace, StepTrace]:
    """(original, steered) traces of the same prompts and seeds, side by side."""
    validation.model_handle(handle)
    if steering is None:
        raise BadInputError("trace_steered needs a SteeringSpec (for the unsteered trace alone use trace_steps)")
    check_spec(steering, "steering", "SteeringSpec", "SteeringSpec.single(direction, layers=(6,), strength=4.0)")
    known = set(inspect.signature(trace_steps).parameters) - {"handle", "prompts", "direction", "steering"}
    unknown = sorted(set(kwargs) - known)
    if unknown:
        raise WrongTypeError(f"trace_steered got {unknown}: pass the steering as its fourth argument and any of "
                             f"{sorted(known)} by name")
    steering.validate_for(handle.n_layers, handle.hidden_size, handle.model_id)
    return (trace_steps(handle, prompts, direction, **kwargs),
            trace_steps(handle, prompts, direction, steering=steering, **kwargs))
