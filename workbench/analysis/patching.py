"""Where does the model *use* a concept? Activation patching and directional ablation, as lists of edits.

A probe says a layer *holds* a concept; patching says whether the model *uses* it there. Run a
source input and a target input; at chosen (site, layer, window of steps, CFG rows) put the source's
activations into the target's run (the whole vector, or only its component along a direction) and
measure how far the target moves towards the source. Directional ablation projects a direction out
of the residual (or clamps the projection to a chosen value) and measures what is lost.

Each cell is a list of `workbench.runtime.edits.Edit`s run by the nnsight runner
(`workbench.runtime.tracing`): ``replace`` (with an optional unit direction) patches, ``project_out`` /
``clamp`` ablate, ``read`` records. What to patch is a `PatchSpec`, what to ablate an `AblationSpec`,
what a sweep varies and measures a `PatchSweep` / `AblationSweep`; generation settings travel as one
`workbench.runtime.settings.GenerationSettings`. Two ways to run a cell:

- ``forward``: teacher forcing, one decoder forward per cell, no sampling. Inputs are code
  sequences (a `Clip`, an (n_codebooks, frames) code array, or audio) with a prompt; windows are
  frame positions. Default metric: the mean log-probability of the *source's* codes.
- ``generate``: a generation per cell with the same seed as source and target; windows are decoder
  steps. Metric: the teaching model's judge (``"judge"``), a `ProbeMetric`, or any ``fn(clip)``.

`patching_sweep` runs layers x windows (x sites) and returns a tidy DataFrame, one row per cell, with
``recovered`` = (cell - target) / (source - target): 0 = no effect, 1 = the source's value.

Every public function checks its arguments before any forward runs (`workbench.validation`), so a
mistake cannot read as a finding: a window is ``(start, stop)`` with 0 <= start < stop <= the run's
positions (frames + the delay pattern's steps) or decoder steps, and reversed, empty, negative or
out-of-run windows are refused (patched, they would change nothing: "recovered 0"). A direction
with NaN/inf entries, of zero length, of another size or made on another model is refused as
`SteeringSpec` refuses it; pass ``direction.vector`` to transfer one to another model on purpose.

Example (a random tiny model, whose source and target differ by under 1e-3 nats, so float32 rounding
shows in the third decimal and differs between CPUs; on the teaching model use clips of two genres):
    >>> import workbench as wb
    >>> h = wb.random_model("tiny")
    >>> a, b = wb.generate(h, ["jazz", "rock"], duration_s=0.3, seeds=[1, 2]).clips
    >>> df = patching_sweep(h, ForcedInput.of(h, a), ForcedInput.of(h, b), PatchSweep(windows=2))
    >>> df[["layer", "start", "stop"]].values.tolist()[:2], len(df) == 2 * h.n_layers
    ([[0, 0, 9], [0, 9, 18]], True)
    >>> last = df[df.layer == h.n_layers - 1]   # the last layer, window by window: the source's logits
    >>> abs(float(last.recovered.sum()) - 1.0) < 0.01   # the windows add up (float32 rounding aside)
    True
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch

from workbench import validation
from workbench.analysis.scores import probe_reading
from workbench.errors import (
    BadInputError,
    DirectionMismatchError,
    DurationError,
    EmptyInputError,
    NotFiniteError,
    OutOfRangeError,
    WrongTypeError,
)
from workbench.runtime.edits import Edit, edit_list, edit_row_slice, named_edits
from workbench.runtime.inputs import checked_prompts
from workbench.runtime.settings import GenerationSettings, settings_of
from workbench.runtime.steering import MAX_ADDED_NORM
from workbench.runtime.teacher_forcing import codes_for, delayed_decoder_inputs, text_states
from workbench.runtime.tracing import ForwardTrace, generate_traced, traced_forward
from workbench.toy.judge import load_judge

__all__ = ["ForcedInput", "ProbeMetric", "PatchSpec", "AblationSpec", "PatchSweep", "AblationSweep", "windows",
           "forward", "code_logprob", "record_forward", "patch_forward", "ablate_forward", "generate_patched",
           "generate_ablated", "patching_sweep", "ablation_sweep", "ROWS", "MODES"]

ROWS = ("cond", "uncond", "both")
MODES = ("forward", "generate")


@dataclasses.dataclass(frozen=True, eq=False)  # compared by identity: == on its codes tensor has no single truth
class ForcedInput:
    """One teacher-forced input: codes (n_codebooks, frames) int64 and the prompt (None: null text)."""

    codes: torch.Tensor
    prompt: str | None = None
    label: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "codes", _code_tensor(self.codes))
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise WrongTypeError(f"prompt={self.prompt!r} is a {type(self.prompt).__name__}: pass the text prompt "
                                 "as a string, or None for the null text")

    @classmethod
    def of(cls, handle, item, prompt: str | None = "from clip", label: str | None = None) -> ForcedInput:
        """From a `Clip` of this model (its codes; its prompt unless ``prompt`` is given), a code
        array, or mono audio at the model's rate (encoded by its codec)."""
        validation.model_handle(handle)
        if isinstance(prompt, str) and prompt == "from clip":
            prompt = getattr(item, "prompt", None)
        if prompt is not None:
            prompt = checked_prompts(handle, [prompt], "prompt")[0]
        codes = codes_for(handle, [item], handle.sample_rate_hz, 1)[0]
        return cls(codes.long(), prompt, label if label is not None else getattr(item, "label", None))

    @property
    def frames(self) -> int:
        return int(self.codes.shape[-1])


@dataclasses.dataclass(frozen=True)
class ProbeMetric:
    """The probe's probability of ``label`` read at (site, layer), mean-pooled over positions/steps."""

    probe: object
    layer: int
    label: str
    site: str = "resid"

    def __post_init__(self):
        object.__setattr__(self, "layer", validation.integer(self.layer, "layer", low=0))
        validation.site(self.site)

    def column(self) -> int:
        if not hasattr(self.probe, "classes_") or not hasattr(self.probe, "predict_proba"):
            raise WrongTypeError(f"probe is a {type(self.probe).__name__} without classes_/predict_proba: pass a "
                                 "fitted probe, e.g. LinearProbe().fit(activations, labels)")
        classes = [str(c) for c in self.probe.classes_]
        if str(self.label) not in classes:
            raise BadInputError(f"label {self.label!r} is not a class of this probe ({classes}): pick one of them")
        return classes.index(str(self.label))


def _optional_rows(rows) -> str | None:
    return None if rows is None else validation.choice(rows, "rows", ROWS)


def _optional_layers(layers) -> tuple[int, ...] | None:
    return None if layers is None else validation.int_sequence(layers, "layers", example="[0, 1]")


@dataclasses.dataclass(frozen=True, eq=False)  # by identity: a direction array has no single ==
class PatchSpec:
    """One patch: the source's states put into the target's run at (site, layer).

    window: (start, stop) positions of a teacher-forced run (frames + the delay pattern's steps) or decoder
    steps of a generation; None = the whole run. direction: patch only the component along it (a `Direction`
    or a (hidden,) vector; None: the whole vector). rows: the CFG rows patched; None = ``cond`` in a forward,
    ``both`` in a generation (patching only the conditional rows leaves guidance pulling back). The layer's
    range, the window and the direction are checked against the model and the run when the patch runs.

    >>> PatchSpec(layer=3, window=(0, 8)).rows is None
    True
    """

    layer: int
    site: str = "resid"
    window: tuple[int, int] | None = None
    direction: object = None
    rows: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "layer", validation.integer(self.layer, "layer"))
        object.__setattr__(self, "site", validation.site(self.site))
        object.__setattr__(self, "rows", _optional_rows(self.rows))


@dataclasses.dataclass(frozen=True, eq=False)
class AblationSpec:
    """One ablation: ``direction`` projected out at every layer of ``layers`` (or its projection set to ``value``).

    window and rows as in `PatchSpec`. value: None projects the direction out; a finite number clamps the
    projection to it (a distance along the unit direction).

    >>> AblationSpec([1.0, 0.0], layers=[2], value=0.5).layers
    (2,)
    """

    direction: object
    layers: tuple[int, ...]
    site: str = "resid"
    window: tuple[int, int] | None = None
    value: float | None = None
    rows: str | None = None

    def __post_init__(self):
        if self.direction is None:
            raise WrongTypeError("direction=None: ablation needs a direction to project out, a Direction or a "
                                 "(hidden,) array")
        object.__setattr__(self, "layers", validation.int_sequence(self.layers, "layers", example="[0, 1]"))
        object.__setattr__(self, "site", validation.site(self.site))
        object.__setattr__(self, "value", _checked_value(self.value))
        object.__setattr__(self, "rows", _optional_rows(self.rows))


@dataclasses.dataclass(frozen=True, eq=False)
class PatchSweep:
    """What `patching_sweep` varies and how it measures a cell.

    mode: ``forward`` (teacher forcing; windows are positions; metric ``logprob`` or a `ProbeMetric`) or
    ``generate`` (prompts; windows are decoder steps; metric ``judge`` with ``label``, the source's genre, a
    `ProbeMetric` or ``fn(clip)``). layers: None = every layer. windows: how many equal windows, or a list of
    (start, stop) within the run. direction, rows: as in `PatchSpec`.

    >>> PatchSweep(layers=[0, 1], windows=4).sites
    ('resid',)
    """

    mode: str = "forward"
    sites: tuple[str, ...] = ("resid",)
    layers: tuple[int, ...] | None = None
    windows: int | list = 8
    direction: object = None
    rows: str | None = None
    metric: object = "logprob"
    label: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "mode", validation.choice(self.mode, "mode", MODES))
        object.__setattr__(self, "sites", validation.sites(self.sites))
        object.__setattr__(self, "layers", _optional_layers(self.layers))
        object.__setattr__(self, "rows", _optional_rows(self.rows))
        object.__setattr__(self, "label", _checked_label(self.label))


@dataclasses.dataclass(frozen=True, eq=False)
class AblationSweep:
    """What `ablation_sweep` varies (one cell per layer x window) and how it measures a cell.

    mode, layers, windows, rows, metric and label as in `PatchSweep`; site and value as in `AblationSpec`.

    >>> AblationSweep(layers=[1], windows=2, value=0.0).value
    0.0
    """

    mode: str = "forward"
    site: str = "resid"
    layers: tuple[int, ...] | None = None
    windows: int | list = 8
    value: float | None = None
    rows: str | None = None
    metric: object = "logprob"
    label: str | None = None

    def __post_init__(self):
        object.__setattr__(self, "mode", validation.choice(self.mode, "mode", MODES))
        object.__setattr__(self, "site", validation.site(self.site))
        object.__setattr__(self, "layers", _optional_layers(self.layers))
        object.__setattr__(self, "value", _checked_value(self.value))
        object.__setattr__(self, "rows", _optional_rows(self.rows))
        object.__setattr__(self, "label", _checked_label(self.label))


def _checked_spec(value, name: str, kind: type, example: str):
    """``value`` must be a ``kind`` (a PatchSpec, an AblationSweep...); by class name, so a spec made before a
    module reload (autoreload in notebooks) still passes."""
    if kind.__name__ not in {cls.__name__ for cls in type(value).__mro__}:
        article = "an" if kind.__name__[0] in "AEIOU" else "a"
        raise WrongTypeError(f"{name} is a {type(value).__name__}, not {article} {kind.__name__}: pass e.g. {example}")
    return value


def windows(n: int, n_windows: int) -> list[tuple[int, int]]:
    """``n_windows`` contiguous half-open windows covering 0..n (as equal as integers allow).

    >>> windows(10, 3)
    [(0, 3), (3, 7), (7, 10)]
    """
    n = validation.integer(n, "n", low=1, high=2 ** 31 - 1)  # positions of a run: no model has more
    n_windows = validation.positive_int(n_windows, "windows")
    if n_windows > n:
        raise OutOfRangeError(f"{n_windows} windows over {n} positions: ask for at most {n}")
    edges = np.linspace(0, n, n_windows + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _checked_rows(rows: str | None, default: str, guided: bool) -> str:
    """The CFG rows an edit names (``default`` for None); other than ``cond`` needs guidance."""
    rows = default if rows is None else rows
    if rows != "cond" and not guided:
        raise BadInputError(f"rows={rows!r} needs classifier-free guidance (guidance_scale > 1): without it "
                            "there are only conditional rows; use rows='cond'")
    return rows


def _unit(handle, direction, zero_hint: str) -> torch.Tensor:
    """The unit vector of a `Direction` / array / tensor, checked against the model (size, model id, NaN, zero)."""
    unit = validation.unit_direction(direction, handle.hidden_size, model_id=handle.model_id, zero_hint=zero_hint)
    return torch.as_tensor(unit).to(handle.device, handle.dtype)


PATCH_ZERO_HINT = ("patching along it would patch nothing and read as 'recovered 0'; pass a non-zero direction, "
                   "or direction=None to patch the whole vector")
ABLATE_ZERO_HINT = "ablating it would change nothing; pass a non-zero direction (e.g. a difference of class means)"


def _patch_unit(handle, direction) -> torch.Tensor | None:
    return None if direction is None else _unit(handle, direction, PATCH_ZERO_HINT)


def _ablate_unit(handle, direction) -> torch.Tensor:
    if direction is None:
        raise WrongTypeError("direction=None: ablation needs a direction to project out, a Direction or a "
                             "(hidden,) array")
    return _unit(handle, direction, ABLATE_ZERO_HINT)


@dataclasses.dataclass(frozen=True, eq=False)
class _Cell:
    """A patch or an ablation checked against the model and the run: what its edits are made of."""

    site: str
    layers: tuple[int, ...]
    rows: str
    window: tuple[int, int] | None
    unit: torch.Tensor | None
    value: float | None = None

    def patch(self, source) -> list[Edit]:
        """``replace`` with the source's states (per step in a generation, one tensor in a forward)."""
        return [Edit("replace", site=self.site, layer=self.layers[0], rows=self.rows, window=self.window,
                     vector=self.unit, source=source)]

    def ablation(self) -> list[Edit]:
        op = "project_out" if self.value is None else "clamp"
        return [Edit(op, site=self.site, layer=layer, rows=self.rows, window=self.window, vector=self.unit,
                     value=self.value) for layer in self.layers]


# ----- argument checks: every public entry point runs them once, before any work ------------------

def _code_tensor(codes) -> torch.Tensor:
    """(n_codebooks, frames) int64 codes from a tensor, array or nested list of ints."""
    if isinstance(codes, (str, bytes)) or codes is None or isinstance(codes, dict):
        raise WrongTypeError(f"codes={codes!r:.60}: pass an (n_codebooks, frames) array of ints, or use "
                             "ForcedInput.of(handle, clip)")
    if not isinstance(codes, torch.Tensor):
        try:
            array = np.asarray(codes)
        except (ValueError, TypeError):
            array = np.asarray(None)
        if array.dtype.kind not in "iufb":
            raise WrongTypeError("codes are not a rectangular array of ints: pass (n_codebooks, frames) ints, or "
                                 "use ForcedInput.of(handle, clip)")
        # unsigned codes as int64 (torch has no min/max for them); a wrapped huge code turns negative and is refused
        codes = torch.as_tensor(array.astype(np.int64) if array.dtype.kind in "iu" else array)
    if codes.dtype.is_floating_point or codes.dtype.is_complex or codes.dtype == torch.bool:
        raise WrongTypeError(f"codes are {codes.dtype}: pass integer codes (n_codebooks, frames), or use "
                             "ForcedInput.of(handle, clip) to encode audio")
    codes = codes.to(torch.int64)
    if codes.ndim != 2:
        raise WrongTypeError(f"codes have shape {tuple(codes.shape)}: pass (n_codebooks, frames), one input at a "
                             "time (ForcedInput.of(handle, clip))")
    if codes.shape[1] == 0:
        raise EmptyInputError("codes have no frames: pass at least a few frames of a clip")
    if int(codes.min()) < 0:
        raise OutOfRangeError(f"codes hold a negative code ({int(codes.min())}): codes are codebook indices >= 0")
    return codes


def _checked_input(handle, value, name: str) -> ForcedInput:
    """A `ForcedInput` whose codes this model can read (codebooks, code range, frames)."""
    if not isinstance(value, ForcedInput):
        raise WrongTypeError(f"{name} is a {type(value).__name__}: pass ForcedInput.of(handle, clip) (teacher "
                             "forcing), or a prompt string with mode='generate'")
    n_codebooks, frames = value.codes.shape
    if n_codebooks != handle.n_codebooks:
        raise BadInputError(f"{name} has {n_codebooks} codebooks but this model reads {handle.n_codebooks}: make it "
                            "with ForcedInput.of(handle, audio) on this model")
    vocab = handle.config.decoder.vocab_size
    if int(value.codes.max()) >= vocab:
        raise OutOfRangeError(f"{name} holds code {int(value.codes.max())} but this model's codebooks have {vocab} "
                              f"codes (0-{vocab - 1}): make it with ForcedInput.of(handle, audio) on this model")
    if not handle.min_frames <= frames <= handle.max_frames:
        raise DurationError(f"{name} has {frames} frames: this model reads {handle.min_frames} to {handle.max_frames} "
                            "frames; crop or drop it")
    if value.prompt is not None:
        checked_prompts(handle, [value.prompt], f"{name}.prompt")
    return value


def _checked_inputs(handle, inputs) -> list[ForcedInput]:
    if isinstance(inputs, ForcedInput):
        return [_checked_input(handle, inputs, "inputs")]
    if isinstance(inputs, (str, bytes)) or inputs is None or isinstance(inputs, dict):
        raise WrongTypeError(f"inputs={inputs!r:.60}: pass a ForcedInput or a list of them "
                             "(ForcedInput.of(handle, clip))")
    try:
        inputs = list(inputs)
    except TypeError:
        raise WrongTypeError(f"inputs is a {type(inputs).__name__}: pass a ForcedInput or a list of them") from None
    if not inputs:
        raise EmptyInputError("inputs is empty: pass at least one ForcedInput (ForcedInput.of(handle, clip))")
    inputs = [_checked_input(handle, x, f"inputs[{i}]") for i, x in enumerate(inputs)]
    _same_length(*inputs)
    return inputs


def _checked_prompt(handle, value, name: str) -> str:
    if not isinstance(value, str):
        raise WrongTypeError(f"{name}={value!r:.60} is a {type(value).__name__}: pass one text prompt, e.g. "
                             "'jazz music'")
    return checked_prompts(handle, [value], name)[0]


def _checked_layers(handle, layers, *, default_all: bool) -> tuple[int, ...]:
    if layers is None and default_all:
        return tuple(range(handle.n_layers))
    layers = validation.int_sequence(layers, "layers", example="[0, 1]")
    return validation.layers_in_range(layers, handle.n_layers)


def _checked_value(value) -> float | None:
    """None (project the direction out) or the finite value to clamp its projection to."""
    if value is None:
        return None
    return validation.finite_float(value, "value", low=-MAX_ADDED_NORM, high=MAX_ADDED_NORM,
                                   hint="the clamped projection is a distance along a unit direction, comparable to "
                                        "the residual's norm (a few to a few hundred); None projects it out")


def _scalar_of(value):
    return value.item() if getattr(value, "ndim", None) == 0 and hasattr(value, "item") else value


def _checked_stop(stop):
    if stop is not None and not callable(stop):
        raise WrongTypeError(f"stop={stop!r:.60} is not callable: pass a function returning True to stop, or None")
    return stop


def _guided(guidance_scale) -> bool:
    return guidance_scale is not None and guidance_scale > 1


def _n_steps(handle, duration_s) -> int:
    """Decoder steps of a generation of ``duration_s``: its frames plus the delay pattern's."""
    return handle.frames_for(duration_s) + handle.delay_steps


def _spans(windows_arg, n: int, unit: str) -> list[tuple[int, int]]:
    """A sweep's windows: ``n_windows`` equal ones, or a list of (start, stop) each within 0..n."""
    value = _scalar_of(windows_arg)
    if isinstance(value, (str, bytes)) or value is None or isinstance(value, dict):
        raise WrongTypeError(f"windows={value!r:.60}: pass how many equal windows (an int such as 8) or a list of "
                             "(start, stop) pairs such as [(0, 4), (4, 8)]")
    if isinstance(value, (bool, np.bool_, float, int, np.number)):
        return windows(n, value)
    try:
        items = list(value)
    except TypeError:
        raise WrongTypeError(f"windows is a {type(value).__name__}: pass an int or a list of (start, stop) "
                             "pairs") from None
    if not items:
        raise EmptyInputError("windows=[] patches nothing: pass an int (how many equal windows) or at least one "
                              "(start, stop) pair")
    if all(isinstance(_scalar_of(x), (int, float, np.number)) and not isinstance(x, bool) for x in items):
        raise WrongTypeError(f"windows={value!r:.60} is a flat list: pass a list of (start, stop) pairs, e.g. "
                             f"[{tuple(items[:2])}]")
    return [validation.window(w, n, f"windows[{i}]", unit=unit) for i, w in enumerate(items)]


def _checked_source_acts(source_acts, key, rows: int, n: int, hidden: int):
    try:
        acts = source_acts[key]
    except (KeyError, TypeError, IndexError):
        raise BadInputError(f"source_acts has no {key}: pass record_forward(handle, source, [{key}], "
                            "guidance_scale) of this source") from None
    shape = tuple(getattr(acts, "shape", ()))
    if not isinstance(acts, torch.Tensor) or shape != (rows, n, hidden):
        raise BadInputError(f"source_acts[{key}] has shape {shape}, not ({rows}, {n}, {hidden}): pass "
                            "record_forward(handle, source, keys, guidance_scale) of this source with the same "
                            "guidance_scale")
    return source_acts


def _checked_keys(handle, keys) -> list[tuple[str, int]]:
    example = "[('resid', 1)]"
    if isinstance(keys, (str, bytes)) or keys is None or isinstance(keys, dict):
        raise WrongTypeError(f"keys={keys!r:.60}: pass a list of (site, layer) pairs such as {example}")
    try:
        items = list(keys)
    except TypeError:
        raise WrongTypeError(f"keys is a {type(keys).__name__}: pass a list of (site, layer) pairs such as "
                             f"{example}") from None
    if not items:
        raise EmptyInputError(f"keys is empty: it would record nothing; pass (site, layer) pairs such as {example}")
    checked = []
    for i, key in enumerate(items):
        if not isinstance(key, (tuple, list)) or len(key) != 2:
            raise WrongTypeError(f"keys[{i}]={key!r:.60} is not a (site, layer) pair: pass a list of pairs such as "
                                 f"{example}")
        checked.append((validation.site(key[0]), validation.layer_index(key[1], handle.n_layers)))
    return checked


def _checked_edits(handle, edits) -> tuple[Edit, ...]:
    """Extra edits run alongside a cell (e.g. a read): `Edit`s whose layers this model has; their reads
    named by their index in ``edits`` unless named."""
    items = edit_list(edits)
    for edit in items:
        validation.layer_index(edit.layer, handle.n_layers)
    return tuple(named_edits(items))


def _one_seed_settings(handle, settings) -> tuple[GenerationSettings, int]:
    """(settings, decoder steps) of a one-prompt generation, every setting checked before any generation runs."""
    settings = settings_of(settings)
    if isinstance(settings.seeds, tuple) and len(settings.seeds) != 1:
        raise BadInputError(f"seeds={settings.seeds}: a cell generates one clip, with the seed its source and "
                            "target share; pass one int, e.g. GenerationSettings(seeds=3)")
    return settings, _n_steps(handle, settings.duration_s)


def _forward_guidance(settings) -> float | None:
    """A teacher-forced run reads only the guidance scale of ``settings`` (None: a plain, unguided forward)."""
    return None if settings is None else settings_of(settings).guidance_scale


# ----- teacher forcing: one forward per cell -------------------------------------------------------

def _same_length(*inputs: ForcedInput) -> None:
    frames = sorted({i.frames for i in inputs})
    if len(frames) != 1:
        raise BadInputError(f"inputs have different lengths {frames} frames: patching aligns positions, "
                            "so crop them to the same number of frames")


def _text_states_cached(handle, prompts: tuple) -> tuple:
    """Encoder states and mask for these prompts (None: null text), kept on the handle: a sweep runs
    the same target prompt once per cell, and the text encoder would cost as much as the patch."""
    cache = handle.__dict__.setdefault("_patching_text_states", {})
    if prompts not in cache:
        if all(p is None for p in prompts):
            states, mask = text_states(handle, None, len(prompts))
        else:
            states, mask = text_states(handle, [p or "" for p in prompts], len(prompts))
            null = [k for k, p in enumerate(prompts) if p is None]
            states[null], mask[null] = 0, 0
        if len(cache) >= 16:
            cache.pop(next(iter(cache)))
        cache[prompts] = (states, mask)
    return cache[prompts]


def _forward_args(handle, inputs: list[ForcedInput], guidance_scale):
    n = len(inputs)
    states, mask = _text_states_cached(handle, tuple(i.prompt for i in inputs))
    ids = delayed_decoder_inputs(handle, torch.stack([i.codes for i in inputs]).to(handle.device))
    guided = _guided(guidance_scale)
    if guided:
        states, mask = torch.cat([states, torch.zeros_like(states)]), torch.cat([mask, torch.zeros_like(mask)])
        ids = torch.cat([ids.reshape(n, -1, ids.shape[-1])] * 2).reshape(-1, ids.shape[-1])
    return ids, states, mask, guided


def forward(handle, inputs, edits=(), guidance_scale: float | None = None) -> ForwardTrace:
    """Teacher-force `ForcedInput`s (one or a list of equal length) through nnsight, with ``edits`` applied.

    Under guidance (``guidance_scale > 1``) the null-text rows follow the conditional ones and the
    logits are combined as generation does: ``uncond + guidance_scale * (cond - uncond)``. The result's
    ``reads`` holds each ``read`` edit's value by its name (default: its index in ``edits``).
    """
    validation.model_handle(handle)
    inputs = _checked_inputs(handle, inputs)
    edits = _checked_edits(handle, edits)
    return _forward(handle, inputs, edits, validation.guidance_scale(guidance_scale))


def _forward(handle, inputs: list[ForcedInput], edits, guidance_scale) -> ForwardTrace:
    ids, states, mask, guided = _forward_args(handle, inputs, guidance_scale)
    out = traced_forward(handle, ids, states, mask, edits, guided=guided)
    if guided:
        cond, uncond = out.logits.chunk(2)
        out = ForwardTrace(uncond + guidance_scale * (cond - uncond), out.reads)
    return out


def code_logprob(handle, logits: torch.Tensor, inp: ForcedInput) -> float:
    """Mean log-probability (nats per code) that ``logits`` give ``inp``'s codes (pad positions skipped)."""
    validation.model_handle(handle)
    inp = _checked_input(handle, inp, "inp")
    n = inp.frames + handle.delay_steps
    if not isinstance(logits, torch.Tensor) or logits.ndim != 3 or not logits.dtype.is_floating_point:
        raise WrongTypeError(f"logits is a {type(logits).__name__} of shape {tuple(getattr(logits, 'shape', ()))}: "
                             "pass the float logits of forward(handle, inp).logits, shape (rows * codebooks, "
                             "positions, codes)")
    if logits.shape[0] < handle.n_codebooks or logits.shape[1] != n:
        raise BadInputError(f"logits have shape {tuple(logits.shape)}, but {inp.frames} frames of "
                            f"{handle.n_codebooks} codebooks need at least ({handle.n_codebooks}, {n}, codes): pass "
                            "forward(handle, inp).logits of this input")
    return _code_logprob(handle, logits, inp)


def _code_logprob(handle, logits: torch.Tensor, inp: ForcedInput) -> float:
    ids = delayed_decoder_inputs(handle, inp.codes[None].to(handle.device))  # (K, T)
    bos = handle.model.generation_config.decoder_start_token_id
    nxt = ids[:, 1:]
    logp = torch.log_softmax(logits[: ids.shape[0], :-1].float(), dim=-1)
    picked = logp.gather(-1, nxt.clamp(max=logp.shape[-1] - 1)[..., None])[..., 0]
    valid = nxt != bos
    return float(picked[valid].mean())


def record_forward(handle, inp: ForcedInput, keys, guidance_scale=None) -> dict:
    """(site, layer) -> the full activation tensor (rows, positions, hidden) of one forward of ``inp`` (what
    `patch_forward`'s ``source_acts`` takes, so many cells share one source forward)."""
    validation.model_handle(handle)
    inp = _checked_input(handle, inp, "inp")
    keys = _checked_keys(handle, keys)
    return _record_forward(handle, inp, keys, validation.guidance_scale(guidance_scale))


def _record_forward(handle, inp: ForcedInput, keys, guidance_scale) -> dict:
    reads = [Edit("read", site=site, layer=layer, name=(site, layer)) for site, layer in keys]
    return _forward(handle, [inp], reads, guidance_scale).reads


def _patch_cell(handle, spec, n: int, guided: bool, unit: str) -> _Cell:
    """A `PatchSpec` checked against the model and a run of ``n`` positions / decoder steps."""
    layer = validation.layer_index(spec.layer, handle.n_layers)
    rows = _checked_rows(spec.rows, "cond" if unit == "positions" else "both", guided)
    window = None if spec.window is None else validation.window(spec.window, n, unit=unit)
    return _Cell(spec.site, (layer,), rows, window, _patch_unit(handle, spec.direction))


def _ablation_cell(handle, spec, n: int, guided: bool, unit: str) -> _Cell:
    """An `AblationSpec` checked against the model and a run of ``n`` positions / decoder steps."""
    direction = _ablate_unit(handle, spec.direction)
    layers = validation.layers_in_range(spec.layers, handle.n_layers)
    rows = _checked_rows(spec.rows, "cond" if unit == "positions" else "both", guided)
    window = None if spec.window is None else validation.window(spec.window, n, unit=unit)
    return _Cell(spec.site, layers, rows, window, direction, spec.value)


def patch_forward(handle, source: ForcedInput, target: ForcedInput, spec: PatchSpec, *,
                  guidance_scale: float | None = None, edits=(), source_acts=None) -> ForwardTrace:
    """The target's forward with the source's activations patched in as ``spec`` says (window: positions
    within the run, frames + the delay pattern's steps; rows default ``cond``).

    edits: extra edits (e.g. a named read for a metric) run after the patch; their reads are in the
    result's ``reads`` by name (default: their index in ``edits``). source_acts: `record_forward` of the
    source at this (site, layer), if already at hand.
    """
    validation.model_handle(handle)
    source, target = _checked_input(handle, source, "source"), _checked_input(handle, target, "target")
    _same_length(source, target)
    spec = _checked_spec(spec, "spec", PatchSpec, "PatchSpec(layer=1, window=(0, 8))")
    guidance_scale = validation.guidance_scale(guidance_scale)
    n = source.frames + handle.delay_steps
    cell = _patch_cell(handle, spec, n, _guided(guidance_scale), "positions")
    edits = _checked_edits(handle, edits)
    if source_acts is not None:
        _checked_source_acts(source_acts, (cell.site, cell.layers[0]), 2 if _guided(guidance_scale) else 1, n,
                             handle.hidden_size)
    return _patch_forward(handle, source, target, cell, guidance_scale, edits, source_acts)


def _patch_forward(handle, source, target, cell: _Cell, guidance_scale, edits, acts) -> ForwardTrace:
    key = (cell.site, cell.layers[0])
    if acts is None:
        acts = _record_forward(handle, source, [key], guidance_scale)
    rows = edit_row_slice(cell.rows, 1, _guided(guidance_scale))
    return _forward(handle, [target], [*cell.patch(acts[key][rows]), *edits], guidance_scale)


def ablate_forward(handle, inp: ForcedInput, spec: AblationSpec, *, guidance_scale: float | None = None,
                   edits=()) -> ForwardTrace:
    """``inp``'s forward with ``spec``'s direction projected out at its layers (or its projection set to
    its value); window: positions, rows default ``cond``. edits: as in `patch_forward`."""
    validation.model_handle(handle)
    inp = _checked_input(handle, inp, "inp")
    spec = _checked_spec(spec, "spec", AblationSpec, "AblationSpec(direction, layers=[1])")
    guidance_scale = validation.guidance_scale(guidance_scale)
    cell = _ablation_cell(handle, spec, inp.frames + handle.delay_steps, _guided(guidance_scale), "positions")
    edits = _checked_edits(handle, edits)
    return _forward(handle, [inp], [*cell.ablation(), *edits], guidance_scale)


# ----- generation: one clip per cell ---------------------------------------------------------------

def _record_generation(handle, prompt, keys, rows: str, settings) -> tuple:
    """(clip, {(site, layer): per-step states of ``rows``}) of one generation."""
    reads = [Edit("read", site=site, layer=layer, rows=rows, name=(site, layer)) for site, layer in keys]
    res = generate_traced(handle, [prompt], settings, edits=reads)
    return res.clips[0], res.reads


def generate_patched(handle, source_prompt: str, target_prompt: str, spec: PatchSpec,
                     settings: GenerationSettings | None = None, *, _source=None):
    """(source clip, patched clip): the target prompt's generation with the source's activations patched in
    as ``spec`` says (window: decoder steps within the run, its frames + the delay pattern's steps; rows
    default ``both``), source and target with the same settings (one seed)."""
    validation.model_handle(handle)
    source_prompt = _checked_prompt(handle, source_prompt, "source_prompt")
    target_prompt = _checked_prompt(handle, target_prompt, "target_prompt")
    spec = _checked_spec(spec, "spec", PatchSpec, "PatchSpec(layer=1, window=(0, 8))")
    settings, n = _one_seed_settings(handle, settings)
    cell = _patch_cell(handle, spec, n, settings.guided, "decoder steps")
    return _generate_patched(handle, source_prompt, target_prompt, cell, settings, _source)


def _generate_patched(handle, source_prompt, target_prompt, cell: _Cell, settings, source=None):
    key = (cell.site, cell.layers[0])
    source_clip, acts = source if source is not None else _record_generation(handle, source_prompt, [key],
                                                                             cell.rows, settings)
    patched = generate_traced(handle, [target_prompt], settings, edits=cell.patch(acts[key]))
    return source_clip, patched.clips[0]


def generate_ablated(handle, prompt: str, spec: AblationSpec, settings: GenerationSettings | None = None):
    """The prompt's clip generated with ``spec``'s direction projected out (or clamped to its value) at its
    layers; window: decoder steps, rows default ``both``."""
    validation.model_handle(handle)
    prompt = _checked_prompt(handle, prompt, "prompt")
    spec = _checked_spec(spec, "spec", AblationSpec, "AblationSpec(direction, layers=[1])")
    settings, n = _one_seed_settings(handle, settings)
    cell = _ablation_cell(handle, spec, n, settings.guided, "decoder steps")
    return _generate_ablated(handle, prompt, cell, settings)


def _generate_ablated(handle, prompt, cell: _Cell, settings):
    return generate_traced(handle, [prompt], settings, edits=cell.ablation()).clips[0]


# ----- metrics and sweeps --------------------------------------------------------------------------

def _checked_probe_metric(handle, metric: ProbeMetric) -> int:
    """The probe's column of the label, once the probe is known to read this model at that layer."""
    validation.layer_index(metric.layer, handle.n_layers)
    col = metric.column()
    width = getattr(metric.probe, "n_features_in_", None)
    if width is not None and width != handle.hidden_size:
        raise DirectionMismatchError(f"the probe reads {width} features but the model's hidden size is "
                                     f"{handle.hidden_size}: fit it on this model's activations")
    return col


def _clip_metric(handle, metric, label) -> Callable:
    """fn(clip) -> float for generate-mode sweeps."""
    if callable(metric) and not isinstance(metric, ProbeMetric):
        return metric
    if isinstance(metric, ProbeMetric):
        col = _checked_probe_metric(handle, metric)
        return lambda clip: float(probe_reading(handle, [clip], metric.probe, layer=metric.layer,
                                                site=metric.site)[0, col])
    if isinstance(metric, str) and metric == "judge":
        if label is None:
            raise BadInputError("metric 'judge' needs the source's label (label='jazz'): the judge's probability "
                                "of it is the metric")
        judge = load_judge()
        classes = [str(c) for c in judge.classes]
        if str(label) not in classes:
            raise BadInputError(f"label {label!r} is not a genre the judge knows ({classes})")
        col = classes.index(str(label))
        return lambda clip: float(judge.predict_proba([clip.mono], sr=clip.sample_rate_hz)[0][col])
    raise BadInputError(f"metric {metric!r:.60} does not apply to generation: use 'judge', a ProbeMetric or "
                        "fn(clip)")


def _forward_metric(handle, metric, source: ForcedInput):
    """(extra edits, fn(ForwardTrace) -> float) for forward-mode sweeps."""
    if isinstance(metric, str) and metric == "logprob":
        return [], lambda out: _code_logprob(handle, out.logits, source)
    if isinstance(metric, ProbeMetric):
        col = _checked_probe_metric(handle, metric)
        name = ("metric", metric.site, metric.layer)
        read = Edit("read", site=metric.site, layer=metric.layer, fn=lambda x, step: x[:1].float().mean(dim=1),
                    name=name)
        return [read], lambda out: float(metric.probe.predict_proba(out.reads[name].cpu().numpy())[0, col])
    raise BadInputError(f"metric {metric!r:.60} does not apply to teacher forcing: use 'logprob' or a ProbeMetric")


def _measured(value, metric, what: str) -> float:
    """A metric's reading as a finite float (a custom fn(clip) may return anything)."""
    value = _scalar_of(value)
    name = _metric_name(metric)
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, float, np.number)):
        raise WrongTypeError(f"metric {name!r} returned a {type(value).__name__} for {what}: fn(clip) must return "
                             "a number")
    if not np.isfinite(value):
        raise NotFiniteError(f"metric {name!r} returned {value} for {what}: fn(clip) must return a finite number")
    return float(value)


def _check_mode(handle, mode, source, target):
    mode = validation.choice(mode, "mode", ("forward", "generate"))
    if mode == "forward":
        for name, value in (("source", source), ("target", target)):
            if not isinstance(value, ForcedInput):
                raise WrongTypeError(f"{name} must be ForcedInput.of(handle, clip) for mode='forward', got "
                                     f"{type(value).__name__} (prompt strings need mode='generate')")
        source, target = _checked_input(handle, source, "source"), _checked_input(handle, target, "target")
        _same_length(source, target)
    else:
        for name, value in (("source", source), ("target", target)):
            if not isinstance(value, str):
                raise WrongTypeError(f"{name} must be a prompt string for mode='generate', got "
                                     f"{type(value).__name__} (ForcedInputs need mode='forward')")
        source, target = _checked_prompt(handle, source, "source"), _checked_prompt(handle, target, "target")
    return mode, source, target


def _checked_label(label):
    if label is not None and not isinstance(label, (str, int, np.integer)) or isinstance(label, bool):
        raise WrongTypeError(f"label={label!r:.60} is a {type(label).__name__}: pass the source's class name, e.g. "
                             "'jazz'")
    return label


def patching_sweep(handle, source, target, sweep: PatchSweep | None = None,
                   settings: GenerationSettings | None = None, *,
                   progress: bool | Callable[[int, int], None] = False, stop: Callable[[], bool] | None = None):
    """Patch the source into the target at every (site, layer, window) of ``sweep``; one DataFrame row per cell.

    sweep: a `PatchSweep` (default: teacher forcing, every layer, 8 windows, metric ``logprob``). In mode
    ``forward`` source/target are `ForcedInput`s; in mode ``generate`` prompts. settings: mode ``generate``:
    the `GenerationSettings` of every clip (one seed; default `GenerationSettings()`); mode ``forward`` reads
    only its ``guidance_scale`` (default None: an unguided forward). stop: polled between cells (the table
    so far is returned). progress: True for a bar over the cells (tqdm.auto: a widget bar in a notebook), or
    ``fn(done, total)`` called with 0 once the source and target are measured and after each cell (what a
    view's readout shows).
    Columns: mode, site, layer, window, start, stop, patch, rows, metric, value, source_value,
    target_value, recovered, seconds (and ``clip`` in generate mode).
    """
    validation.model_handle(handle)
    sweep = _checked_spec(PatchSweep() if sweep is None else sweep, "sweep", PatchSweep,
                          "PatchSweep(layers=[0, 1], windows=4)")
    mode, source, target = _check_mode(handle, sweep.mode, source, target)
    if (source == target if mode == "generate" else
            source.prompt == target.prompt and torch.equal(source.codes, target.codes)):
        raise BadInputError("source and target are the same input: every cell would equal both, and 'recovered' "
                            "divides by their difference; pass two different inputs (e.g. clips of two genres)")
    layers = _checked_layers(handle, sweep.layers, default_all=True)
    keys = [(s, layer) for s in sweep.sites for layer in layers]
    unit = _patch_unit(handle, sweep.direction)
    metric = sweep.metric
    stop = _checked_stop(stop)
    progress = _checked_progress(progress)
    if mode == "forward":
        guidance_scale = _forward_guidance(settings)
        rows = _checked_rows(sweep.rows, "cond", _guided(guidance_scale))
        spans = _spans(sweep.windows, source.frames + handle.delay_steps, "positions")
        extra, measure = _forward_metric(handle, metric, source)
        acts = _record_forward(handle, source, keys, guidance_scale)
        source_value = _measured(measure(_forward(handle, [source], extra, guidance_scale)), metric, "the source")
        target_value = _measured(measure(_forward(handle, [target], extra, guidance_scale)), metric, "the target")
    else:
        settings, n = _one_seed_settings(handle, settings)
        rows = _checked_rows(sweep.rows, "both", settings.guided)
        spans = _spans(sweep.windows, n, "decoder steps")
        measure = _clip_metric(handle, metric, sweep.label)
        source_clip, acts = _record_generation(handle, source, keys, rows, settings)
        target_clip = generate_traced(handle, [target], settings).clips[0]
        source_value = _measured(measure(source_clip), metric, "the source")
        target_value = _measured(measure(target_clip), metric, "the target")
    cells = []
    bar = _CellProgress(progress, len(keys) * len(spans), "patching")
    for site, layer in keys:
        for index, span in enumerate(spans):
            if stop is not None and stop():
                break
            began = time.perf_counter()
            row = {"mode": mode, "site": site, "layer": layer, "window": index, "start": span[0], "stop": span[1],
                   "patch": "full" if unit is None else "direction", "rows": rows, "metric": _metric_name(metric)}
            what = f"the cell at {site} layer {layer}, window {span}"
            cell = _Cell(site, (layer,), rows, span, unit)
            if mode == "forward":
                out = _patch_forward(handle, source, target, cell, guidance_scale, extra, acts)
                row["value"] = _measured(measure(out), metric, what)
            else:
                _, clip = _generate_patched(handle, source, target, cell, settings, (source_clip, acts))
                row["value"], row["clip"] = _measured(measure(clip), metric, what), clip
            row["seconds"] = time.perf_counter() - began
            cells.append(row)
            bar.update()
    bar.close()
    df = pd.DataFrame(cells, columns=None if cells else ["mode", "site", "layer", "window", "start", "stop", "patch",
                                                         "rows", "metric", "value", "seconds"])
    df["source_value"], df["target_value"] = source_value, target_value
    gap = source_value - target_value
    df["recovered"] = (df["value"] - target_value) / gap if gap != 0 else np.nan
    if mode == "generate":  # the two unpatched clips, for views that play a cell next to them
        df.attrs.update(source_clip=source_clip, target_clip=target_clip)
    return df


def ablation_sweep(handle, inp, direction, sweep: AblationSweep | None = None,
                   settings: GenerationSettings | None = None, *,
                   progress: bool | Callable[[int, int], None] = False):
    """Ablate ``direction`` at one layer and window per cell of ``sweep``; DataFrame with ``value`` and
    ``change`` (cell - unablated). inp: a `ForcedInput` (mode ``forward``; metric ``logprob`` of its own
    codes) or a prompt (mode ``generate``; metric ``judge`` with ``label``, a `ProbeMetric` or ``fn(clip)``).
    settings and progress: as in `patching_sweep`."""
    validation.model_handle(handle)
    sweep = _checked_spec(AblationSweep() if sweep is None else sweep, "sweep", AblationSweep,
                          "AblationSweep(layers=[0, 1], windows=4)")
    mode, inp, _ = _check_mode(handle, sweep.mode, inp, inp)
    unit = _ablate_unit(handle, direction)
    layers = _checked_layers(handle, sweep.layers, default_all=True)
    metric = sweep.metric
    progress = _checked_progress(progress)
    cells = []
    if mode == "forward":
        guidance_scale = _forward_guidance(settings)
        rows = _checked_rows(sweep.rows, "cond", _guided(guidance_scale))
        spans = _spans(sweep.windows, inp.frames + handle.delay_steps, "positions")
        extra, measure = _forward_metric(handle, metric, inp)
        base = _measured(measure(_forward(handle, [inp], extra, guidance_scale)), metric, "the input")
    else:
        settings, n = _one_seed_settings(handle, settings)
        rows = _checked_rows(sweep.rows, "both", settings.guided)
        spans = _spans(sweep.windows, n, "decoder steps")
        measure = _clip_metric(handle, metric, sweep.label)
        base = _measured(measure(generate_traced(handle, [inp], settings).clips[0]), metric, "the unablated clip")
    bar = _CellProgress(progress, len(layers) * len(spans), "ablation")
    for layer in layers:
        for index, span in enumerate(spans):
            row = {"mode": mode, "site": sweep.site, "layer": layer, "window": index, "start": span[0],
                   "stop": span[1], "rows": rows, "metric": _metric_name(metric), "clamp": sweep.value}
            what = f"the cell at {sweep.site} layer {layer}, window {span}"
            cell = _Cell(sweep.site, (layer,), rows, span, unit, sweep.value)
            if mode == "forward":
                out = _forward(handle, [inp], [*cell.ablation(), *extra], guidance_scale)
                row["value"] = _measured(measure(out), metric, what)
            else:
                clip = _generate_ablated(handle, inp, cell, settings)
                row["value"], row["clip"] = _measured(measure(clip), metric, what), clip
            cells.append(row)
            bar.update()
    bar.close()
    df = pd.DataFrame(cells)
    df["base_value"] = base
    df["change"] = df["value"] - base
    return df


def _metric_name(metric) -> str:
    if isinstance(metric, ProbeMetric):
        return f"probe_p({metric.label})@{metric.site}{metric.layer}"
    return metric if isinstance(metric, str) else getattr(metric, "__name__", "custom")


def _checked_progress(progress):
    """True / False, or a callable ``fn(done, total)``."""
    if callable(progress):
        return progress
    try:
        return validation.flag(progress, "progress")
    except WrongTypeError:
        raise WrongTypeError(f"progress={progress!r:.60}: pass True (a bar over the cells), False, or "
                             "fn(done, total) to be called after each cell") from None


class _CellProgress:
    """Counts cells for a bar (tqdm.auto: a widget bar in a notebook) and/or a ``fn(done, total)`` callback."""

    def __init__(self, progress, total: int, what: str):
        self.done, self.total = 0, total
        self.callback = progress if callable(progress) else None
        self.bar = None
        if progress is True:
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, unit="cell", desc=f"{what} cells")
        if self.callback is not None:
            self.callback(0, total)

    def update(self) -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(1)
        if self.callback is not None:
            self.callback(self.done, self.total)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

