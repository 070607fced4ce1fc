"""Where does the model *use* a concept? Activation patching and directional ablation through nnsight.

A probe says a layer *holds* a concept; patching says whether the model *uses* it there. Run a
source input and a target input; at chosen (site, layer, window of steps, CFG rows) put the source's
activations into the target's run (the whole vector, or only its component along a direction) and
measure how far the target moves towards the source. Directional ablation projects a direction out
of the residual (or clamps the projection to a chosen value) and measures what is lost.

Two ways to run a cell, both nnsight traces (`workbench.runtime.tracing`; the hot path keeps hooks):

- ``forward``: teacher forcing, one decoder forward per cell, no sampling. Inputs are code
  sequences (a `Clip`, an (n_codebooks, frames) code array, or audio) with a prompt; windows are
  frame positions. Default metric: the mean log-probability of the *source's* codes.
- ``generate``: a generation per cell with the same seed as source and target; windows are decoder
  steps. Metric: the teaching model's judge (``"judge"``), a `ProbeMetric`, or any ``fn(clip)``.

`patching_sweep` runs layers x windows (x sites) and returns a tidy DataFrame, one row per cell, with
``recovered`` = (cell - target) / (source - target): 0 = no effect, 1 = the source's value.

Example (a random tiny model, whose source and target differ by under 1e-3 nats, so float32 rounding
shows in the third decimal and differs between CPUs; on the teaching model use clips of two genres):
    >>> import workbench as wb
    >>> h = wb.random_model("tiny")
    >>> a, b = wb.generate(h, ["jazz", "rock"], duration_s=0.3, seeds=[1, 2]).clips
    >>> df = patching_sweep(h, ForcedInput.of(h, a), ForcedInput.of(h, b), windows=2)
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
import torch

from workbench import validation
from workbench.errors import BadInputError
from workbench.runtime.tracing import ForwardTrace, Intervention, generate_traced, traced_forward

__all__ = ["ForcedInput", "ProbeMetric", "windows", "forward", "code_logprob", "record_forward", "patch_forward",
           "ablate_forward", "generate_patched", "generate_ablated", "patching_sweep", "ablation_sweep", "ROWS"]

ROWS = ("cond", "uncond", "both")


@dataclasses.dataclass(frozen=True)
class ForcedInput:
    """One teacher-forced input: codes (n_codebooks, frames) int64 and the prompt (None: null text)."""

    codes: torch.Tensor
    prompt: str | None = None
    label: str | None = None

    @classmethod
    def of(cls, handle, item, prompt: str | None = "from clip", label: str | None = None) -> ForcedInput:
        """From a `Clip` of this model (its codes; its prompt unless ``prompt`` is given), a code
        array, or mono audio at the model's rate (encoded by its codec)."""
        from workbench.runtime.teacher_forcing import codes_for
        if prompt == "from clip":
            prompt = getattr(item, "prompt", None)
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

    def column(self) -> int:
        classes = [str(c) for c in self.probe.classes_]
        if str(self.label) not in classes:
            raise BadInputError(f"label {self.label!r} is not a class of this probe ({classes}): pick one of them")
        return classes.index(str(self.label))


def windows(n: int, n_windows: int) -> list[tuple[int, int]]:
    """``n_windows`` contiguous half-open windows covering 0..n (as equal as integers allow).

    >>> windows(10, 3)
    [(0, 3), (3, 7), (7, 10)]
    """
    n_windows = validation.positive_int(n_windows, "windows")
    if n_windows > n:
        raise BadInputError(f"{n_windows} windows over {n} positions: ask for at most {n}")
    edges = np.linspace(0, n, n_windows + 1).round().astype(int)
    return [(int(a), int(b)) for a, b in zip(edges[:-1], edges[1:])]


def _row_slice(rows: str, n: int, guided: bool) -> slice:
    rows = validation.choice(rows, "rows", ROWS)
    if rows != "cond" and not guided:
        raise BadInputError(f"rows={rows!r} needs classifier-free guidance (guidance_scale > 1): without it "
                            "there are only conditional rows; use rows='cond'")
    return {"cond": slice(0, n), "uncond": slice(n, 2 * n), "both": slice(0, 2 * n)}[rows]


def _unit(handle, direction) -> torch.Tensor | None:
    """The unit vector of a `Direction` / array (a zero vector stays zero: ablating it is a no-op)."""
    if direction is None:
        return None
    vector = torch.as_tensor(np.asarray(getattr(direction, "vector", direction), dtype=np.float32).reshape(-1))
    if vector.numel() != handle.hidden_size:
        raise BadInputError(f"direction has {vector.numel()} entries but the model's hidden size is "
                            f"{handle.hidden_size}: use a direction made on this model")
    norm = float(vector.norm())
    return (vector / norm if norm > 0 else vector).to(handle.device, handle.dtype)


def _along(x: torch.Tensor, unit: torch.Tensor) -> torch.Tensor:
    return (x @ unit)[..., None] * unit


def _replaced(hidden, source, unit):
    """hidden with the source's values: all of it, or only its component along ``unit``."""
    return source if unit is None else hidden + _along(source - hidden, unit)


def _ablated(hidden, unit, value):
    return hidden - _along(hidden, unit) + (0.0 if value is None else value) * unit


# ----- teacher forcing: one forward per cell -------------------------------------------------------

def _same_length(*inputs: ForcedInput) -> None:
    frames = sorted({i.frames for i in inputs})
    if len(frames) != 1:
        raise BadInputError(f"inputs have different lengths {frames} frames: patching aligns positions, "
                            "so crop them to the same number of frames")


def _text_states_cached(handle, prompts: tuple) -> tuple:
    """Encoder states and mask for these prompts (None: null text), kept on the handle: a sweep runs
    the same target prompt once per cell, and the text encoder would cost as much as the patch."""
    from workbench.runtime.teacher_forcing import text_states
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
    from workbench.runtime.teacher_forcing import delayed_decoder_inputs
    _same_length(*inputs)
    n = len(inputs)
    states, mask = _text_states_cached(handle, tuple(i.prompt for i in inputs))
    ids = delayed_decoder_inputs(handle, torch.stack([i.codes for i in inputs]).to(handle.device))
    guided = guidance_scale is not None and guidance_scale > 1
    if guided:
        states, mask = torch.cat([states, torch.zeros_like(states)]), torch.cat([mask, torch.zeros_like(mask)])
        ids = torch.cat([ids.reshape(n, -1, ids.shape[-1])] * 2).reshape(-1, ids.shape[-1])
    return ids, states, mask, guided


def forward(handle, inputs, interventions=(), guidance_scale: float | None = None) -> ForwardTrace:
    """Teacher-force `ForcedInput`s (one or a list of equal length) through nnsight, with interventions.

    Under guidance (``guidance_scale > 1``) the null-text rows follow the conditional ones and the
    logits are combined as generation does: ``uncond + guidance_scale * (cond - uncond)``.
    """
    inputs = [inputs] if isinstance(inputs, ForcedInput) else list(inputs)
    ids, states, mask, guided = _forward_args(handle, inputs, guidance_scale)
    out = traced_forward(handle, ids, states, mask, interventions)
    if guided:
        cond, uncond = out.logits.chunk(2)
        out = ForwardTrace(uncond + guidance_scale * (cond - uncond), out.reads)
    return out


def code_logprob(handle, logits: torch.Tensor, inp: ForcedInput) -> float:
    """Mean log-probability (nats per code) that ``logits`` give ``inp``'s codes (pad positions skipped)."""
    from workbench.runtime.teacher_forcing import delayed_decoder_inputs
    ids = delayed_decoder_inputs(handle, inp.codes[None].to(handle.device))  # (K, T)
    bos = handle.model.generation_config.decoder_start_token_id
    nxt = ids[:, 1:]
    logp = torch.log_softmax(logits[: ids.shape[0], :-1].float(), dim=-1)
    picked = logp.gather(-1, nxt.clamp(max=logp.shape[-1] - 1)[..., None])[..., 0]
    valid = nxt != bos
    return float(picked[valid].mean())


def record_forward(handle, inp: ForcedInput, keys, guidance_scale=None) -> dict:
    """(site, layer) -> the full activation tensor of one forward of ``inp`` (what `patch_forward`'s
    ``source_acts`` takes, so many cells share one source forward)."""
    ivs = [Intervention(site, layer, read=lambda x, step: x) for site, layer in keys]
    out = forward(handle, inp, ivs, guidance_scale)
    return dict(zip(keys, out.reads))


def _forward_edit(source, rs, start, stop, unit):
    def edit(hidden, step):
        if start >= hidden.shape[1] or stop <= 0:
            return None
        new = hidden.clone()
        new[rs, start:stop] = _replaced(hidden[rs, start:stop], source[rs, start:stop], unit)
        return new
    return edit


def patch_forward(handle, source: ForcedInput, target: ForcedInput, *, site: str = "resid", layer: int,
                  window: tuple[int, int] | None = None, direction=None, rows: str = "cond",
                  guidance_scale: float | None = None, interventions=(), source_acts=None) -> ForwardTrace:
    """The target's forward with the source's activations at (site, layer) over positions ``window``.

    direction: patch only the component along it (None: the whole vector). window: (start, stop)
    positions, None = all. Extra ``interventions`` (e.g. a read for a metric) run alongside.
    source_acts: `record_forward` of the source at this (site, layer), if already at hand.
    """
    validation.site(site)
    handle.check_layer(layer)
    _same_length(source, target)
    guided = guidance_scale is not None and guidance_scale > 1
    rs = _row_slice(rows, 1, guided)
    acts = source_acts if source_acts is not None else record_forward(handle, source, [(site, layer)], guidance_scale)
    start, stop = window if window is not None else (0, acts[(site, layer)].shape[1])
    edit = _forward_edit(acts[(site, layer)], rs, start, stop, _unit(handle, direction))
    return forward(handle, target, [Intervention(site, layer, edit=edit), *interventions], guidance_scale)


def ablate_forward(handle, inp: ForcedInput, direction, *, layers, site: str = "resid",
                   window: tuple[int, int] | None = None, value: float | None = None, rows: str = "cond",
                   guidance_scale: float | None = None, interventions=()) -> ForwardTrace:
    """``inp``'s forward with ``direction`` projected out at ``layers`` (or its projection set to ``value``)."""
    unit = _unit(handle, direction)
    rs = _row_slice(rows, 1, guidance_scale is not None and guidance_scale > 1)
    start, stop = window if window is not None else (0, 1 << 30)

    def edit(hidden, step):
        if start >= hidden.shape[1] or stop <= 0:
            return None
        new = hidden.clone()
        new[rs, start:stop] = _ablated(hidden[rs, start:stop], unit, value)
        return new
    layers = [layers] if isinstance(layers, int) else list(layers)
    return forward(handle, inp, [*(Intervention(site, layer, edit=edit) for layer in layers), *interventions],
                   guidance_scale)


# ----- generation: one clip per cell ---------------------------------------------------------------

def _generation_kwargs(duration_s, seed, guidance_scale, temperature, top_k) -> dict:
    return {"duration_s": duration_s, "seeds": [seed], "guidance_scale": guidance_scale, "temperature": temperature,
            "top_k": top_k}


def _step_edit(per_step, rs, start, stop, unit):
    def edit(hidden, step):
        if not start <= step < stop or step >= len(per_step):
            return None
        new = hidden.clone()
        new[rs] = _replaced(hidden[rs], per_step[step][rs], unit)
        return new
    return edit


def _record_generation(handle, prompt, keys, gen) -> tuple:
    ivs = [Intervention(site, layer, read=lambda x, step: x) for site, layer in keys]
    res = generate_traced(handle, [prompt], interventions=ivs, **gen)
    return res.clips[0], dict(zip(keys, res.reads))


def generate_patched(handle, source_prompt: str, target_prompt: str, *, site: str = "resid", layer: int,
                     window: tuple[int, int] | None = None, direction=None, rows: str = "both",
                     duration_s: float = 4.0, seed: int = 0, guidance_scale: float = 3.0,
                     temperature: float | None = None, top_k: int | None = 250, _source=None):
    """(source clip, patched clip): the target prompt's generation with the source's activations at
    (site, layer) over decoder steps ``window`` (same seed for both). rows: which CFG rows get patched
    (``both`` by default: patching only the conditional rows leaves guidance pulling back)."""
    validation.site(site)
    handle.check_layer(layer)
    gen = _generation_kwargs(duration_s, seed, guidance_scale, temperature, top_k)
    guided = guidance_scale is not None and guidance_scale > 1
    rs = _row_slice(rows, 1, guided)
    source_clip, acts = _source if _source is not None else _record_generation(handle, source_prompt,
                                                                               [(site, layer)], gen)
    start, stop = window if window is not None else (0, 1 << 30)
    edit = _step_edit(acts[(site, layer)], rs, start, stop, _unit(handle, direction))
    patched = generate_traced(handle, [target_prompt], interventions=[Intervention(site, layer, edit=edit)], **gen)
    return source_clip, patched.clips[0]


def generate_ablated(handle, prompt: str, direction, *, layers, site: str = "resid",
                     window: tuple[int, int] | None = None, value: float | None = None, rows: str = "both",
                     duration_s: float = 4.0, seed: int = 0, guidance_scale: float = 3.0,
                     temperature: float | None = None, top_k: int | None = 250):
    """The prompt's clip generated with ``direction`` projected out (or clamped to ``value``) at ``layers``."""
    unit = _unit(handle, direction)
    rs = _row_slice(rows, 1, guidance_scale is not None and guidance_scale > 1)
    start, stop = window if window is not None else (0, 1 << 30)

    def edit(hidden, step):
        if not start <= step < stop:
            return None
        new = hidden.clone()
        new[rs] = _ablated(hidden[rs], unit, value)
        return new
    layers = [layers] if isinstance(layers, int) else list(layers)
    gen = _generation_kwargs(duration_s, seed, guidance_scale, temperature, top_k)
    ivs = [Intervention(site, layer, edit=edit) for layer in layers]
    return generate_traced(handle, [prompt], interventions=ivs, **gen).clips[0]


# ----- metrics and sweeps --------------------------------------------------------------------------

def _clip_metric(handle, metric, label) -> Callable:
    """fn(clip) -> float for generate-mode sweeps."""
    if callable(metric) and not isinstance(metric, ProbeMetric):
        return metric
    if isinstance(metric, ProbeMetric):
        from workbench.analysis.scores import probe_reading
        col = metric.column()
        return lambda clip: float(probe_reading(handle, [clip], metric.probe, layer=metric.layer,
                                                site=metric.site)[0, col])
    if metric == "judge":
        if label is None:
            raise BadInputError("metric 'judge' needs the source's label (label='jazz'): the judge's probability "
                                "of it is the metric")
        from workbench.toy.judge import load_judge
        judge = load_judge()
        classes = [str(c) for c in judge.classes]
        if str(label) not in classes:
            raise BadInputError(f"label {label!r} is not a genre the judge knows ({classes})")
        col = classes.index(str(label))
        return lambda clip: float(judge.predict_proba([clip.mono], sr=clip.sample_rate_hz)[0][col])
    raise BadInputError(f"metric {metric!r} does not apply to generation: use 'judge', a ProbeMetric or fn(clip)")


def _forward_metric(handle, metric, source: ForcedInput):
    """(extra interventions, fn(ForwardTrace) -> float) for forward-mode sweeps."""
    if metric == "logprob":
        return [], lambda out: code_logprob(handle, out.logits, source)
    if isinstance(metric, ProbeMetric):
        col = metric.column()
        read = Intervention(metric.site, metric.layer, read=lambda x, step: x[:1].float().mean(dim=1))
        return [read], lambda out: float(metric.probe.predict_proba(out.reads[-1].cpu().numpy())[0, col])
    raise BadInputError(f"metric {metric!r} does not apply to teacher forcing: use 'logprob' or a ProbeMetric")


def _check_mode(mode, source, target):
    mode = validation.choice(mode, "mode", ("forward", "generate"))
    want = ForcedInput if mode == "forward" else str
    for name, value in (("source", source), ("target", target)):
        if not isinstance(value, want):
            hint = "ForcedInput.of(handle, clip)" if mode == "forward" else "a prompt string"
            raise BadInputError(f"{name} must be {hint} for mode={mode!r}, got {type(value).__name__}")
    return mode


def patching_sweep(handle, source, target, *, mode: str = "forward", sites=("resid",), layers=None,
                   windows: int | list = 8, direction=None, metric="logprob", rows: str | None = None,
                   label: str | None = None, guidance_scale: float | None = None, duration_s: float = 4.0,
                   seed: int = 0, progress: bool = False, stop: Callable[[], bool] | None = None):
    """Patch the source into the target at every (site, layer, window); one DataFrame row per cell.

    mode ``forward``: source/target are `ForcedInput`s, windows are positions, metric ``logprob`` or
    a `ProbeMetric`. mode ``generate``: prompts, windows are decoder steps, metric ``judge`` (with
    ``label``, the source's genre), a `ProbeMetric` or ``fn(clip)``; ``guidance_scale`` defaults to 3.
    windows: how many equal windows, or a list of (start, stop). stop: polled between cells (the
    table so far is returned). Columns: mode, site, layer, window, start, stop, patch, rows, metric,
    value, source_value, target_value, recovered, seconds (and ``clip`` in generate mode).
    """
    import pandas as pd
    mode = _check_mode(mode, source, target)
    sites = [validation.site(s) for s in ([sites] if isinstance(sites, str) else sites)]
    layers = list(range(handle.n_layers)) if layers is None else [layers] if isinstance(layers, int) else list(layers)
    for layer in layers:
        handle.check_layer(layer)
    keys = [(s, layer) for s in sites for layer in layers]
    if mode == "forward":
        _same_length(source, target)
        rows = rows or "cond"
        extra, measure = _forward_metric(handle, metric, source)
        acts = record_forward(handle, source, keys, guidance_scale)
        source_value = measure(forward(handle, source, extra, guidance_scale))
        target_value = measure(forward(handle, target, extra, guidance_scale))
        n_positions = next(iter(acts.values())).shape[1]
    else:
        rows = rows or "both"
        guidance_scale = 3.0 if guidance_scale is None else guidance_scale
        measure = _clip_metric(handle, metric, label)
        gen = _generation_kwargs(duration_s, seed, guidance_scale, 1.0, 250)
        source_clip, acts = _record_generation(handle, source, keys, gen)
        target_clip = generate_traced(handle, [target], **gen).clips[0]
        source_value, target_value = measure(source_clip), measure(target_clip)
        n_positions = len(next(iter(acts.values())))
    spans = globals()["windows"](n_positions, windows) if isinstance(windows, int) else [tuple(w) for w in windows]
    cells = []
    bar = _bar(progress, len(keys) * len(spans))
    for site, layer in keys:
        for index, (start, stop_at) in enumerate(spans):
            if stop is not None and stop():
                break
            began = time.perf_counter()
            row = {"mode": mode, "site": site, "layer": layer, "window": index, "start": start, "stop": stop_at,
                   "patch": "full" if direction is None else "direction", "rows": rows,
                   "metric": _metric_name(metric)}
            if mode == "forward":
                out = patch_forward(handle, source, target, site=site, layer=layer, window=(start, stop_at),
                                    direction=direction, rows=rows, guidance_scale=guidance_scale,
                                    interventions=extra, source_acts=acts)
                row["value"] = measure(out)
            else:
                _, clip = generate_patched(handle, source, target, site=site, layer=layer, window=(start, stop_at),
                                           direction=direction, rows=rows, _source=(source_clip, acts), seed=seed,
                                           duration_s=duration_s, guidance_scale=guidance_scale)
                row["value"], row["clip"] = measure(clip), clip
            row["seconds"] = time.perf_counter() - began
            cells.append(row)
            if bar is not None:
                bar.update(1)
    if bar is not None:
        bar.close()
    df = pd.DataFrame(cells)
    df["source_value"], df["target_value"] = source_value, target_value
    gap = source_value - target_value
    df["recovered"] = (df["value"] - target_value) / gap if gap != 0 else np.nan
    if mode == "generate":  # the two unpatched clips, for views that play a cell next to them
        df.attrs.update(source_clip=source_clip, target_clip=target_clip)
    return df


def ablation_sweep(handle, inp, direction, *, mode: str = "forward", site: str = "resid", layers=None,
                   windows: int | list = 8, value: float | None = None, metric="logprob", label: str | None = None,
                   guidance_scale: float | None = None, duration_s: float = 4.0, seed: int = 0,
                   rows: str | None = None):
    """Ablate ``direction`` at one layer and window per cell; DataFrame with ``value`` and ``change``
    (cell - unablated). inp: a `ForcedInput` (forward; metric ``logprob`` of its own codes) or a prompt
    (generate; metric ``judge`` with ``label``, a `ProbeMetric` or ``fn(clip)``)."""
    import pandas as pd
    mode = _check_mode(mode, inp, inp)
    layers = list(range(handle.n_layers)) if layers is None else [layers] if isinstance(layers, int) else list(layers)
    cells = []
    if mode == "forward":
        rows = rows or "cond"
        extra, measure = _forward_metric(handle, metric, inp)
        base = measure(forward(handle, inp, extra, guidance_scale))
        n = inp.frames + handle.delay_steps
    else:
        rows = rows or "both"
        guidance_scale = 3.0 if guidance_scale is None else guidance_scale
        measure = _clip_metric(handle, metric, label)
        base = measure(generate_traced(handle, [inp], **_generation_kwargs(duration_s, seed, guidance_scale, 1.0,
                                                                          250)).clips[0])
        n = handle.frames_for(duration_s) + handle.delay_steps
    spans = globals()["windows"](n, windows) if isinstance(windows, int) else [tuple(w) for w in windows]
    for layer in layers:
        for index, (start, stop_at) in enumerate(spans):
            row = {"mode": mode, "site": site, "layer": layer, "window": index, "start": start, "stop": stop_at,
                   "rows": rows, "metric": _metric_name(metric), "clamp": value}
            if mode == "forward":
                out = ablate_forward(handle, inp, direction, layers=layer, site=site, window=(start, stop_at),
                                     value=value, rows=rows, guidance_scale=guidance_scale, interventions=extra)
                row["value"] = measure(out)
            else:
                clip = generate_ablated(handle, inp, direction, layers=layer, site=site, window=(start, stop_at),
                                        value=value, rows=rows, duration_s=duration_s, seed=seed,
                                        guidance_scale=guidance_scale)
                row["value"], row["clip"] = measure(clip), clip
            cells.append(row)
    df = pd.DataFrame(cells)
    df["base_value"] = base
    df["change"] = df["value"] - base
    return df


def _metric_name(metric) -> str:
    if isinstance(metric, ProbeMetric):
        return f"probe_p({metric.label})@{metric.site}{metric.layer}"
    return metric if isinstance(metric, str) else getattr(metric, "__name__", "custom")


def _bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="cell")
