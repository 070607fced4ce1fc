"""One `Edit` type for every change to (or read of) a decoder hidden state, and `EditRun`, the one place its
arithmetic lives.

Steering, per-row steering, patching, ablation, capture, step traces and SAE splicing are lists of edits. Three
runners execute a list, each calling `EditRun.apply` at every (site, layer) an edit names, at every step:

- the kernel's decode loop (`workbench.runtime.kernel`), on its own fresh tensors (``owned=True``: in place);
- the hook runner (`workbench.runtime.hooks.edit_hooks`), forward hooks around transformers' ``generate`` or
  a teacher-forced forward;
- the nnsight runner (`workbench.runtime.tracing`), inside a trace.

Because all three call the same function, they give bit-identical codes and reads (tests/test_edit_runners.py).
Every runner builds its lists with the helpers below: `steering_edits` (a `SteeringSpec` as edits), `capture_edits`
(a `CaptureSpec` as ``read`` edits pooled by one `PooledAccumulator`), `named_edits` (a caller's reads keyed by
their index) and `batch_edits` (one batch's rows of per-clip vectors, on the model's device and dtype).

Operations (``h`` is a hidden state (rows, T, H) at one site; ``s`` the strength at this step):

- ``add``:           h + s * v             (the paper's steering; ``v`` one (H,) vector or one (B, H) row per clip)
- ``norm_relative``: (h + s * |h| * v/|v|) / (1 + s)   (|h| per position)
- ``replace``:       the source's states (patching); with a ``vector`` (a unit direction) only the component
                     along it: h + ((src - h) . u) u
- ``project_out``:   h - (h . u) u                   (ablation)
- ``clamp``:         h - (h . u) u + value * u       (ablation to a fixed value)
- ``read``:          keep ``fn(h, step)`` (or a copy of h) for every step (capture, step traces, SAE inputs)
- ``splice``:        ``fn(h)`` in place of h (an SAE's reconstruction)
- ``call``:          ``fn(h, step)`` -> the new state, or None to keep it (anything else, for researchers)

Rows: under classifier-free guidance the decoder runs 2B rows, the B conditional rows first; ``rows`` picks
``cond`` ([:B]), ``uncond`` ([B:2B]) or ``both``. Without guidance there are only conditional rows: ``cond``
and ``both`` mean all of them and ``uncond`` is refused. Window: ``[start, stop)`` generation steps (step 0 is
the prefill), or positions in a teacher-forced forward (where ``step`` is None); None = everywhere.

Example:
    >>> import torch
    >>> run = EditRun([Edit("add", layer=1, vector=torch.ones(4), strength=2.0, rows="cond"),
    ...                Edit("read", layer=1, name="after")], n_cond=1, guided=True)
    >>> run.apply("resid", 1, torch.zeros(2, 1, 4), step=0)[:, 0, 0].tolist()
    [2.0, 0.0]
    >>> run.reads["after"][0][:, 0, 0].tolist()
    [2.0, 0.0]
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

import numpy as np
import torch

from workbench import validation
from workbench.errors import BadInputError, NotFiniteError, WrongTypeError
from workbench.runtime.capture import CaptureSpec, PooledAccumulator
from workbench.runtime.steering import Schedule, SteeringSpec, steer_tensor

OPS = ("add", "norm_relative", "replace", "project_out", "clamp", "read", "splice", "call")
EDIT_ROWS = ("cond", "uncond", "both")
SITE_ORDER = {"attn": 0, "mlp": 1, "resid": 2}  # execution order within a layer (nnsight needs it)


@dataclasses.dataclass(frozen=True, eq=False)
class Edit:
    """One operation on the hidden state at (site, layer); see the module's docstring for the formulas.

    vector: ``add``/``norm_relative``: (H,) or (N, H), one row per prompt (a generation cuts each batch's rows);
    ``replace``: None (the whole state) or a unit (H,) direction; ``project_out``/``clamp``: a unit (H,) direction.
    A tensor is kept as it is; an array-like becomes a float32 tensor (runners move it to the model's device
    and dtype). strength, schedule: ``add`` and
    ``norm_relative`` (a `Schedule` varies it over steps). value: ``clamp``'s value along the direction.
    source: ``replace``'s states: a list of per-step (rows, 1, H) tensors in a generation, or one (rows, T, H)
    tensor in a teacher-forced forward (rows: the decoder rows ``rows`` selects). fn: ``read``'s reducer
    ``fn(h, step)`` (default: a copy), ``splice``'s ``fn(h)``, ``call``'s ``fn(h, step)``. name: the key of a
    ``read``'s values in `EditRun.reads` (default: its index in the list).
    """

    op: str
    site: str = "resid"
    layer: int = 0
    rows: str = "both"
    window: tuple[int, int] | None = None
    vector: torch.Tensor | None = None
    strength: float = 1.0
    schedule: Schedule | None = None
    value: float | None = None
    source: object = None
    fn: Callable | None = None
    name: object = None  # any hashable key (a str, an int, a tuple)

    def __post_init__(self):
        validation.choice(self.op, "edit op", OPS)
        validation.site(self.site)
        object.__setattr__(self, "layer", validation.integer(self.layer, "layer", low=0))
        validation.choice(self.rows, "edit rows", EDIT_ROWS)
        if self.window is not None:
            start, stop = (validation.integer(v, "window", low=0) for v in self.window)
            if stop <= start:
                raise BadInputError(f"window={self.window!r} is empty: pass (start, stop) with stop > start")
            object.__setattr__(self, "window", (start, stop))
        needs_vector = self.op in ("add", "norm_relative", "project_out", "clamp")
        if needs_vector and self.vector is None:
            raise BadInputError(f"Edit({self.op!r}) needs a vector: pass vector=<(hidden,) tensor>")
        if self.vector is not None:
            object.__setattr__(self, "vector", _as_vector(self.vector, self.op))
        if self.op in ("splice", "call") and not callable(self.fn):
            raise BadInputError(f"Edit({self.op!r}) needs fn: a callable on the hidden state")
        if self.op == "replace" and self.source is None:
            raise BadInputError("Edit('replace') needs source: the states to patch in")
        if self.op == "clamp" and self.value is None:
            raise BadInputError("Edit('clamp') needs value: the value along the direction (project_out for 0)")
        if self.op in ("add", "norm_relative"):
            object.__setattr__(self, "strength", validation.finite_float(self.strength, "strength"))

    def strength_at(self, step: int | None) -> float:
        """The strength at a generation step (the schedule's; the whole strength in a forward, step None)."""
        if step is None or self.schedule is None:
            return self.strength
        return self.schedule.strength_at(self.strength, step)

    def active_at(self, step: int | None) -> bool:
        return step is None or self.window is None or self.window[0] <= step < self.window[1]


def _as_vector(vector, op: str) -> torch.Tensor:
    """A tensor as given, or an array-like as a float32 tensor; (H,), or (N, H) per clip for add/norm_relative."""
    if not isinstance(vector, torch.Tensor):
        try:
            vector = torch.as_tensor(np.asarray(vector, dtype=np.float32))
        except (TypeError, ValueError):
            raise WrongTypeError(f"vector is a {type(vector).__name__}: pass a torch tensor or an array of numbers, "
                                 "(hidden,) or (clips, hidden)") from None
    per_clip = op in ("add", "norm_relative")
    if vector.dim() not in ((1, 2) if per_clip else (1,)):
        shapes = "(hidden,) or (clips, hidden), one row per prompt" if per_clip else "(hidden,): one direction"
        raise BadInputError(f"an Edit({op!r}) vector of shape {tuple(vector.shape)}: pass {shapes}")
    if vector.is_floating_point() and not bool(torch.isfinite(vector).all()):
        raise NotFiniteError(f"an Edit({op!r}) vector holds NaN or inf: recompute it from finite activations")
    return vector


def edit_row_slice(rows: str, n_cond: int, guided: bool) -> slice:
    """The decoder rows ``rows`` names when the batch holds ``n_cond`` clips (2 * n_cond rows under guidance)."""
    if not guided:
        if rows == "uncond":
            raise BadInputError("rows='uncond' needs classifier-free guidance (guidance_scale > 1): without it "
                                "the decoder has conditional rows only; use rows='cond'")
        return slice(0, n_cond)
    return {"cond": slice(0, n_cond), "uncond": slice(n_cond, 2 * n_cond), "both": slice(0, 2 * n_cond)}[rows]


def _along(x: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    return (x @ unit)[..., None] * unit


class EditRun:
    """A list of edits ready for one batch of ``n_cond`` clips: grouped by (site, layer), with their reads.

    ``apply(site, layer, hidden, step)`` runs the edits at that site in list order and returns the new state
    (``hidden`` itself, edited in place, when ``owned``; otherwise a new tensor when anything changed).
    reads: ``{name: {step: value}}`` per ``read`` edit; a step offered again (transformers runs its prefill
    twice) replaces the earlier value. `read_list` gives them in step order.
    """

    def __init__(self, edits: Sequence[Edit], n_cond: int, guided: bool):
        self.edits = list(edits)
        for index, edit in enumerate(self.edits):
            if not isinstance(edit, Edit):
                raise WrongTypeError(f"edits[{index}] is a {type(edit).__name__}: pass Edit(op, site, layer, ...)")
        self.n_cond, self.guided = n_cond, guided
        self.sites: dict[tuple[str, int], list[int]] = {}
        self.slices: list[slice] = []
        self.names: list = []
        for index, edit in enumerate(self.edits):
            self.sites.setdefault((edit.site, edit.layer), []).append(index)
            self.slices.append(edit_row_slice(edit.rows, n_cond, guided))
            self.names.append(edit.name if edit.name is not None else index)
        self.reads: dict = {name: {} for edit, name in zip(self.edits, self.names) if edit.op == "read"}
        self._deltas: dict = {}
        # per site, what `apply` needs of each edit, looked up once (it runs at every site of every step)
        self._at = {key: [(index, self.edits[index], self.slices[index], self.edits[index].op,
                           self.reads.get(self.names[index])) for index in indices]
                    for key, indices in self.sites.items()}
        self.layer_sites: dict[int, frozenset] = {}  # layer -> the sites edited there (a runner's quick check)
        for site, layer in self.sites:
            self.layer_sites[layer] = self.layer_sites.get(layer, frozenset()) | {site}

    def check_for(self, handle) -> None:
        """Every edit's layer and vector fit the model (layer range, hidden size, per-clip rows)."""
        for edit in self.edits:
            handle.check_layer(edit.layer)
            vector = edit.vector
            if vector is not None and vector.shape[-1] != handle.hidden_size:
                raise BadInputError(f"an Edit({edit.op!r}) vector has {vector.shape[-1]} dims but the model's hidden "
                                    f"size is {handle.hidden_size}: use a direction made on this model")
            if vector is not None and vector.dim() == 2 and vector.shape[0] != self.n_cond:
                raise BadInputError(f"an Edit({edit.op!r}) holds {vector.shape[0]} per-clip vectors for a batch of "
                                    f"{self.n_cond} clips: pass one row per prompt, in one batch")

    def plan(self) -> list[tuple[str, int]]:
        """The (site, layer) pairs the edits touch, in execution order (layer, then attn -> mlp -> resid)."""
        return sorted(self.sites, key=lambda key: (key[1], SITE_ORDER[key[0]]))

    def touches(self, site: str, layer: int) -> bool:
        return (site, layer) in self.sites

    def read_list(self, name) -> list:
        """A read edit's values in step order (one value for a teacher-forced forward)."""
        values = self.reads[name]
        return [values[step] for step in sorted(values, key=lambda s: -1 if s is None else s)]

    def _delta(self, edit: Edit, strength: float) -> torch.Tensor:
        """``strength * vector`` (the product `steer_tensor` forms), formed once per vector and strength: the edits
        of one vector (a steering term's layers) and the steps of one strength (a constant schedule) share it."""
        held = self._deltas.get(id(edit.vector))
        if held is not None and held[0] == strength:
            return held[1]
        vector = edit.vector if edit.vector.dim() == 1 else edit.vector[:, None, :]
        delta = strength * vector
        self._deltas[id(edit.vector)] = (strength, delta)
        return delta

    def apply(self, site: str, layer: int, hidden: torch.Tensor, step: int | None, owned: bool = False) -> torch.Tensor:
        """The state after the edits at (site, layer); ``step`` None in a teacher-forced forward."""
        out = hidden
        for index, edit, rows, op, store in self._at.get((site, layer), ()):
            window = edit.window
            if window is not None:
                if step is None:  # a forward: the window is positions
                    rows = (rows, slice(*window))
                elif not window[0] <= step < window[1]:
                    continue
            if op == "read":
                value = out[rows]
                store[step] = edit.fn(value, step) if edit.fn is not None else value.detach().clone()
                continue
            if op == "add":  # the hot path (steering): in place on the rows, as the steering hook always added
                strength = edit.strength_at(step)
                if strength == 0.0:
                    continue  # strength 0 is bit-identical to no edit
                delta = self._delta(edit, strength)
                if not owned and out is hidden:
                    out = hidden.clone()
                view = out[rows]
                if delta.dim() == 3 and view.shape[0] != delta.shape[0]:
                    delta = delta.repeat(view.shape[0] // delta.shape[0], 1, 1)  # per clip: cond and uncond rows alike
                view.add_(delta)
                continue
            new = self._edited(index, edit, out[rows], step)
            if new is None:
                continue
            if not owned and out is hidden:
                out = hidden.clone()
            out[rows] = new
        return out

    def _edited(self, index: int, edit: Edit, h: torch.Tensor, step):
        """The new rows for every op but ``add`` and ``read``; None when nothing changes."""
        op = edit.op
        if op == "norm_relative":
            strength = edit.strength_at(step)
            if strength == 0.0:
                return None  # strength 0 is bit-identical to no edit
            vector = edit.vector
            if vector.dim() == 2:
                unit = torch.stack([v / v.norm().clamp_min(1e-12) for v in vector])  # as steer_tensor forms it
                unit = unit[:, None, :].repeat(h.shape[0] // unit.shape[0], 1, 1)
                return (h + strength * h.norm(dim=-1, keepdim=True) * unit) / (1.0 + strength)
            return steer_tensor(h, vector, strength, op)
        if op == "replace":
            source = edit.source
            if step is None:
                src = source if edit.window is None else source[:, edit.window[0]:edit.window[1]]
            else:
                if step >= len(source):
                    return None
                src = source[step]
            return src if edit.vector is None else h + _along(src - h, edit.vector)
        if op == "project_out":
            return h - _along(h, edit.vector)
        if op == "clamp":
            return h - _along(h, edit.vector) + edit.value * edit.vector
        if op == "splice":
            return edit.fn(h)
        return edit.fn(h, step)  # call


def edit_list(edits) -> tuple[Edit, ...]:
    """``edits`` as a tuple: one `Edit`, a list of them, or None / () for none; anything else is refused."""
    if edits is None:
        return ()
    if isinstance(edits, Edit):
        return (edits,)
    if isinstance(edits, (str, bytes, dict)) or not hasattr(edits, "__iter__"):
        raise WrongTypeError(f"edits={edits!r:.60}: pass a list of Edit(op, site=..., layer=...) "
                             "(workbench.runtime.edits), or ()")
    items = tuple(edits)
    for index, edit in enumerate(items):
        if not isinstance(edit, Edit):
            raise WrongTypeError(f"edits[{index}] is a {type(edit).__name__}: pass Edit(op, site=..., layer=...) "
                                 "objects (workbench.runtime.edits)")
    return items


def named_edits(edits) -> list[Edit]:
    """A caller's edits with each unnamed ``read`` named by its index in the caller's list (so its key in the
    result does not move when steering edits go first and capture reads last)."""
    return [edit if edit.name is not None or edit.op != "read" else dataclasses.replace(edit, name=index)
            for index, edit in enumerate(edit_list(edits))]


def steering_edits(spec: SteeringSpec | None) -> list[Edit]:
    """A `SteeringSpec` as edits: one ``add``/``norm_relative`` per term and layer, terms in order.

    A term's layers share its vector tensor, so `EditRun` forms ``strength * vector`` once a step for all of them
    (the product `steer_tensor` forms: the codes are the steering hook's, bit for bit).
    """
    if spec is None:
        return []
    return [Edit(spec.mode, site=term.site, layer=layer, rows=spec.rows, vector=term.vector,
                 strength=term.strength, schedule=term.schedule)
            for term in spec.terms for layer in term.layers]


class PooledReads:
    """The reads of one capture pooled together: each step, the rows every (site, layer) read are stacked and
    offered once to one `PooledAccumulator` (O(sites x layers x rows x H) for pooled modes), whose arithmetic is
    row by row, so each (site, layer) gets what an accumulator of its own would give, bit for bit, for one
    fold a step instead of one per layer (a decoder step of a small model costs little more than the reads).

    A step read again (transformers' duplicate prefill) replaces the earlier reads. No copy is made: capture reads
    come last at their site and no runner writes a site's output after its edits (the kernel's residual,
    attention and MLP outputs feed new tensors; the hook and nnsight runners edit clones).
    """

    def __init__(self, keys: Sequence[tuple[str, int]], pooling: str):
        self.keys = list(keys)
        self.accumulator = PooledAccumulator(pooling)
        self.step, self.views, self.rows, self.gathered = None, [None] * len(self.keys), None, False

    def reader(self, index: int) -> _Reader:
        """The ``read`` edit ``fn`` of the ``index``-th key."""
        return _Reader(self, index)

    def _fold(self) -> None:
        views, self.views, self.gathered = self.views, [None] * len(self.keys), False
        self.rows = views[0].shape[0]
        self.accumulator.offer(torch.cat(views) if len(views) > 1 else views[0], replace=False)

    def results(self) -> dict:
        """{(site, layer): float32 CPU tensor}: (rows, H) pooled ((rows, 2H) for ``mean_std``, (rows, T, H) for
        ``none``)."""
        if self.gathered:
            self._fold()
        if self.rows is None:
            raise RuntimeError("nothing was captured: the decoder never ran")
        pooled = self.accumulator.result()
        return {key: part.cpu() for key, part in zip(self.keys, pooled.split(self.rows))}


class _Reader:
    __slots__ = ("pool", "index")

    def __init__(self, pool: PooledReads, index: int):
        self.pool, self.index = pool, index

    def __call__(self, hidden: torch.Tensor, step) -> None:
        pool = self.pool
        if step != pool.step and pool.gathered:  # a new step: the finished one is folded
            pool._fold()
        pool.step, pool.gathered = step, True
        pool.views[self.index] = hidden


def capture_edits(spec: CaptureSpec | None, n_layers: int, guided: bool) -> dict[tuple[str, int], Edit]:
    """A `CaptureSpec` as ``read`` edits, one per (site, layer), pooled together by one `PooledReads`.

    `pooled_activations` gives their values once the batch ran: rows as ``spec.rows`` names them. Make them once
    per batch (the accumulator holds one batch).
    """
    if spec is None:
        return {}
    if spec.rows != "cond" and not guided:
        raise BadInputError(f"capture rows={spec.rows!r} needs classifier-free guidance: pass guidance_scale > 1 "
                            "(without guidance the decoder has conditional rows only)")
    keys = [(site, layer) for site in spec.sites for layer in spec.resolved_layers(n_layers)]
    pool = PooledReads(keys, spec.pooling)
    return {key: Edit("read", site=key[0], layer=key[1], rows=spec.rows, fn=pool.reader(index),
                      name=("capture", *key))
            for index, key in enumerate(keys)}


def pooled_activations(captured: dict[tuple[str, int], Edit]) -> dict:
    """{(site, layer): float32 CPU tensor} of `capture_edits`' reads after a batch ran."""
    if not captured:
        return {}
    return next(iter(captured.values())).fn.pool.results()


def batch_edits(edits: Sequence[Edit], start: int, n_cond: int, device, dtype: torch.dtype) -> list[Edit]:
    """The edits for clips ``[start, start + n_cond)`` of a generation: per-clip (N, H) vectors cut to the
    batch's rows, every vector on the model's device and dtype. A vector shared by several edits (a steering
    term's layers) stays one tensor, so its ``strength * vector`` is still formed once a step.
    """
    converted: dict[int, torch.Tensor] = {}
    out = []
    for edit in edits:
        vector = edit.vector
        if vector is None:
            out.append(edit)
            continue
        if id(vector) not in converted:
            rows = vector[start:start + n_cond] if vector.dim() == 2 else vector
            converted[id(vector)] = rows.to(device, dtype)
        new = converted[id(vector)]
        out.append(edit if new is vector else dataclasses.replace(edit, vector=new))
    return out
