"""The one module that talks to nnsight: inspection traces and an nnsight generation path.

The workbench's hot path is plain hooks (`workbench.runtime.hooks`), picked by `python -m benchmarks`
(nnsight_over_hooks); this module gives the same generation through nnsight, so researchers can
address any site by its module path, reach `.source` internals, and check parity (tests compare
activations and codes of both paths). nnsight quirks handled here:

- `generate` runs the prefill forward twice in transformers 5.x, so a trace sees N + 1 steps for
  N new tokens; iteration 0 is dropped from captures (the hook path replaces it the same way).
- Trace bodies must live in a source file; saved lists go through `nnsight.save`.
- Under guidance each invoke sees all 2B decoder rows: rows are sliced here.

`Intervention` is the general tool: at one (site, layer) it may edit the output and/or read from it,
at every step of a generation (`generate_traced(..., interventions=...)`) or in one teacher-forced
forward (`traced_forward`). Patching, ablation and per-step traces (`workbench.analysis.patching`,
`workbench.analysis.step_traces`) and the SAE splice are written with it.

Example:
    >>> from workbench import random_model
    >>> h = random_model("tiny")
    >>> nm = traced_model(h)
    >>> with nm.trace(**h.processor(text=["jazz"], return_tensors="pt"), decoder_input_ids=bos_ids(h, 1)):
    ...     out = nm.decoder.model.decoder.layers[0].output.save()
    >>> tuple(out.shape)
    (1, 1, 32)
"""
from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch

from workbench import validation
from workbench.runtime.capture import CaptureSpec, PooledAccumulator
from workbench.runtime.clip import clips_from
from workbench.runtime.generation import GenerationResult
from workbench.runtime.inputs import generation_args, merge_batches, processor_inputs, prompt_list, seeds_for
from workbench.runtime.sampling import SeededSampler, codes_from, record_codes
from workbench.runtime.steering import SteeringSpec, steer_tensor
from workbench.runtime.threads import intra_op_threads, resolve_threads


def traced_model(handle):
    """The nnsight wrapper of the handle's model, made once.

    nnsight patches the forward of every module it wraps (a few % slower even outside traces), so
    it wraps a twin module tree that shares the weights: the hot path keeps the untouched model.
    """
    import copy

    import nnsight
    if getattr(handle, "_nnsight", None) is None:
        shared = {id(t): t for t in list(handle.model.parameters()) + list(handle.model.buffers())}
        twin = copy.deepcopy(handle.model, memo=shared)
        handle._nnsight = nnsight.NNsight(twin)
    return handle._nnsight


def envoy(nm, path: str):
    """The nnsight envoy at a module path such as ``decoder.model.decoder.layers.3.fc2``."""
    node = nm
    for part in path.split("."):
        node = node[int(part)] if part.isdigit() else getattr(node, part)
    return node


def bos_ids(handle, batch: int) -> torch.Tensor:
    """Decoder input of one step of start tokens, shape (batch * n_codebooks, 1)."""
    bos = handle.model.generation_config.decoder_start_token_id
    return torch.full((batch * handle.n_codebooks, 1), bos, dtype=torch.long, device=handle.device)


@dataclasses.dataclass(frozen=True)
class Intervention:
    """Edit and/or read the output of one (site, layer) inside an nnsight trace.

    edit: ``fn(hidden, step) -> tensor | None``, the new output (same shape; None keeps it). read:
    ``fn(hidden, step) -> tensor``, kept for every step (after this module's edits). ``hidden`` holds
    every decoder row: (2B, T, H) under guidance, conditional rows first. ``step`` is the generation
    step (0 = prefill), or None in a teacher-forced forward (T = every position at once).
    """

    site: str
    layer: int
    edit: Callable | None = None
    read: Callable | None = None

    def __post_init__(self):
        validation.site(self.site)
        object.__setattr__(self, "layer", validation.integer(self.layer, "layer", low=0))


@dataclasses.dataclass
class ForwardTrace:
    """What `traced_forward` gives: logits (B * K, T, V) and one read per intervention (None: no read)."""

    logits: torch.Tensor
    reads: list


_ORDER = {"attn": 0, "mlp": 1, "resid": 2}  # nnsight needs accesses in execution order


def _grouped(handle, nm, interventions) -> list:
    """[(envoy, [(index, intervention)...])] sorted by execution order, one entry per module."""
    groups: dict = {}
    for index, iv in enumerate(interventions):
        handle.check_layer(iv.layer)
        groups.setdefault((iv.layer, _ORDER[iv.site], iv.site), []).append((index, iv))
    return [(envoy(nm, handle.site_path(site, layer)), items) for (layer, _, site), items in sorted(groups.items())]


def _apply(hidden, items, step, reads) -> None:
    for index, iv in items:
        if iv.edit is not None:
            new = iv.edit(hidden, step)
            if new is not None:
                hidden[:] = new
        if iv.read is not None and reads is not None:
            reads[index].append(iv.read(hidden, step).detach().clone())


def traced_forward(handle, decoder_input_ids, encoder_states, attention_mask, interventions=()) -> ForwardTrace:
    """One teacher-forced decoder forward through nnsight with ``interventions`` applied.

    decoder_input_ids (B * K, T) as from `workbench.runtime.teacher_forcing.delayed_decoder_inputs`;
    encoder_states / attention_mask for every decoder row (2B rows under guidance).

    >>> from workbench import random_model
    >>> h = random_model("tiny")
    >>> ids = bos_ids(h, 1).repeat(1, 5)
    >>> states = torch.zeros(1, 2, h.config.text_encoder.d_model)
    >>> zero_l0 = Intervention("resid", 0, edit=lambda x, step: torch.zeros_like(x), read=lambda x, step: x.abs().sum())
    >>> out = traced_forward(h, ids, states, torch.ones(1, 2, dtype=torch.long), [zero_l0])
    >>> tuple(out.logits.shape), float(out.reads[0])
    ((4, 5, 64), 0.0)
    """
    import nnsight

    nm = traced_model(handle)
    plan = _grouped(handle, nm, interventions)
    with torch.no_grad():
        with nm.trace(encoder_outputs=(encoder_states.to(handle.dtype),), attention_mask=attention_mask,
                      decoder_input_ids=decoder_input_ids, use_cache=False):
            reads = nnsight.save([[] for _ in interventions])
            for module, items in plan:
                _apply(_main(module.output), items, None, reads)
            logits = nm.output.logits.save()
    return ForwardTrace(logits, [r[0] if r else None for r in reads])


def _main(output):
    return output[0] if isinstance(output, tuple) else output


def generate_traced(handle, prompts, *, duration_s: float = 4.0, seeds=0, guidance_scale: float = 3.0,
                    steering: SteeringSpec | None = None, capture: CaptureSpec | None = None,
                    temperature: float | None = None, top_k: int | None = 250, threads="auto",
                    interventions=()) -> GenerationResult:
    """`workbench.generate` through an nnsight trace (one batch; same sampling, steering and capture).

    interventions: `Intervention`s applied at every step after the steering; the result's ``reads``
    holds, per intervention with a ``read``, the list of its per-step values (step 0 = prefill).
    """
    args = generation_args(handle, prompts, duration_s=duration_s, seeds=seeds, guidance_scale=guidance_scale,
                           temperature=temperature, top_k=top_k, steering=steering, capture=capture,
                           threads=threads)  # the same checks
    with intra_op_threads(resolve_threads(handle, threads)):
        return _generate_traced(handle, prompts, duration_s, seeds, guidance_scale, steering, capture, args.temperature,
                                top_k, tuple(interventions))


def _generate_traced(handle, prompts, duration_s, seeds, guidance_scale, steering, capture, temperature, top_k,
                     interventions=()):
    import nnsight
    from transformers import LogitsProcessorList

    prompts = prompt_list(prompts)
    seeds = seeds_for(seeds, len(prompts))
    n = len(prompts)
    n_new = handle.frames_for(duration_s) + handle.delay_steps
    guided = guidance_scale is not None and guidance_scale > 1
    if steering is not None:
        steering.validate_for(handle.n_layers, handle.hidden_size, handle.model_id)
    keys = ([(site, layer) for site in capture.sites for layer in capture.resolved_layers(handle.n_layers)]
            if capture else [])
    steer_rows = n if (steering is not None and guided and steering.rows == "cond") else None
    nm = traced_model(handle)
    inputs = processor_inputs(handle, prompts)
    sampler = SeededSampler(seeds, handle.n_codebooks, guidance_scale if guided else None, temperature, top_k)
    codes_sink: list = []
    # nnsight needs each iteration's accesses in execution order: by layer, then attn -> mlp -> resid
    points: dict = {}
    for term in (steering.terms if steering is not None else ()):
        vector = term.vector.to(handle.device, handle.dtype)
        for layer in term.layers:
            points.setdefault((layer, _ORDER[term.site], term.site), [[], False, []])[0].append((term, vector))
    for site, layer in keys:
        points.setdefault((layer, _ORDER[site], site), [[], False, []])[1] = True
    for index, iv in enumerate(interventions):
        handle.check_layer(iv.layer)
        points.setdefault((iv.layer, _ORDER[iv.site], iv.site), [[], False, []])[2].append((index, iv))
    plan = [(envoy(nm, handle.site_path(site, layer)), (site, layer), steer_terms, captured, items)
            for (layer, _, site), (steer_terms, captured, items) in sorted(points.items())]
    rows = capture.rows if capture else "cond"
    lo, hi = (n, 2 * n) if rows == "uncond" else (0, 2 * n if rows == "both" else n)
    with torch.no_grad(), record_codes(nm._module, codes_sink):
        with nm.trace(**inputs, fn="generate", max_new_tokens=n_new, do_sample=False,
                      guidance_scale=guidance_scale if guided else None, top_k=None, temperature=None,
                      logits_processor=LogitsProcessorList([sampler])) as tracer:
            saved = nnsight.save([])
            reads = nnsight.save([[] for _ in interventions])
            for i in tracer.iter[: n_new + 1]:
                step = max(i - 1, 0)  # iterations 0 and 1 are the same prefill step
                step_outputs = {}
                for module, key, steer_terms, captured, items in plan:
                    hidden = _main(module.output)
                    for term, vector in steer_terms:
                        strength = term.strength_at(step)
                        if strength == 0.0:
                            continue
                        if steer_rows is None:
                            hidden[:] = steer_tensor(hidden, vector, strength, steering.mode)
                        else:
                            hidden[:steer_rows] = steer_tensor(hidden[:steer_rows], vector, strength, steering.mode)
                    if items:  # iteration 0 (the discarded prefill) is edited alike but not read
                        _apply(hidden, items, step, reads if i > 0 else None)
                    if captured and i > 0:
                        step_outputs[key] = hidden[lo:hi].clone()
                if i > 0:
                    saved.append(step_outputs)
            waves = tracer.result.save()
    activations = None
    if capture is not None:
        pooled = {}
        for key in keys:
            acc = PooledAccumulator(capture.pooling)
            for step_outputs in saved:
                acc.offer(step_outputs[key], replace=False)
            pooled[key] = acc.result().cpu()
        activations = merge_batches([pooled], capture.pooling, capture.rows)
    clips = clips_from(handle, waves, codes_from(codes_sink, handle.audio_channels), prompts, seeds, steering,
                       guidance_scale)
    return GenerationResult(clips, activations, reads=[r if interventions[k].read else None
                                                       for k, r in enumerate(reads)] if interventions else None)
