"""The nnsight runner: the one module that talks to nnsight, and the third runner of `workbench.runtime.edits`.

`generate_traced` and `traced_forward` execute a list of `Edit`s inside an nnsight trace: at every step, at each
(site, layer) of `EditRun.plan`, ``EditRun.apply`` gives the new state and it is written back in place. The
arithmetic is `EditRun`'s, shared with the kernel and the hook runner, so codes and reads are bit-identical to
`workbench.generate`'s (tests/test_edit_runners_nnsight.py, tests/test_core_tracing.py). Steering and capture
are lists of edits too. Researchers reach here for what hooks do not give: any module by its path
(`traced_model`, `envoy`), ``.source`` internals, and (later) remote execution. nnsight quirks handled here:

- `generate` runs the prefill forward twice in transformers 5.x, so a trace sees N + 1 iterations for N new
  tokens; iterations 0 and 1 are both step 0: edited alike, and a read of the repeat replaces the earlier one
  (`EditRun.reads` is keyed by step), as the hook runner does.
- Trace bodies must live in a source file; the `EditRun` is made outside the trace and filled inside.
- Under guidance the trace sees all 2B decoder rows: `Edit.rows` picks them (`workbench.runtime.edits`).

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

import copy
import dataclasses

import nnsight
import torch
from transformers import LogitsProcessorList

from workbench.runtime.capture import CaptureSpec
from workbench.runtime.clip import clips_from
from workbench.runtime.edits import EditRun, batch_edits, capture_edits, named_edits, pooled_activations
from workbench.runtime.generation import GenerationResult
from workbench.runtime.inputs import GenerationArgs, generation_args, merge_batches, processor_inputs, prompt_list
from workbench.runtime.sampling import SeededSampler, codes_from, record_codes
from workbench.runtime.settings import GenerationSettings
from workbench.runtime.steering import SteeringSpec
from workbench.runtime.threads import intra_op_threads, resolve_threads


def traced_model(handle):
    """The nnsight wrapper of the handle's model, made once.

    nnsight patches the forward of every module it wraps (a few % slower even outside traces), so
    it wraps a twin module tree that shares the weights: the hot path keeps the untouched model.
    """
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


@dataclasses.dataclass
class ForwardTrace:
    """What `traced_forward` gives: logits (rows * K, T, V) and ``reads``: {name: value} per ``read`` edit
    (its ``fn(h, None)``, or a copy of the rows it names: (rows, T, H), or its window's positions)."""

    logits: torch.Tensor
    reads: dict


def _main(output):
    return output[0] if isinstance(output, tuple) else output


def _plan(handle, nm, run: EditRun) -> list:
    """[(envoy, site, layer)] in execution order (nnsight needs a step's accesses in that order)."""
    return [(envoy(nm, handle.site_path(site, layer)), site, layer) for site, layer in run.plan()]


def _run_step(plan, run: EditRun, step) -> None:
    for module, site, layer in plan:
        hidden = _main(module.output)
        new = run.apply(site, layer, hidden, step)
        if new is not hidden:
            hidden[:] = new


def traced_forward(handle, decoder_input_ids, encoder_states, attention_mask, edits=(),
                   guided: bool = False) -> ForwardTrace:
    """One teacher-forced decoder forward through nnsight with ``edits`` applied (their window: positions).

    decoder_input_ids (rows * K, T) as from `workbench.runtime.teacher_forcing.delayed_decoder_inputs`;
    encoder_states / attention_mask for every decoder row. guided: the rows are B conditional rows followed
    by B null-text rows (what `Edit.rows` ``cond``/``uncond`` name); otherwise every row is conditional.

    >>> from workbench import random_model
    >>> from workbench.runtime.edits import Edit
    >>> h = random_model("tiny")
    >>> ids = bos_ids(h, 1).repeat(1, 5)
    >>> states = torch.zeros(1, 2, h.config.text_encoder.d_model)
    >>> zero_l0 = [Edit("splice", layer=0, fn=torch.zeros_like), Edit("read", layer=0, fn=lambda x, s: x.abs().sum())]
    >>> out = traced_forward(h, ids, states, torch.ones(1, 2, dtype=torch.long), zero_l0)
    >>> tuple(out.logits.shape), float(out.reads[1])
    ((4, 5, 64), 0.0)
    """
    rows = decoder_input_ids.shape[0] // handle.n_codebooks
    n_cond = rows // 2 if guided else rows
    edits = named_edits(edits)
    EditRun(edits, n_cond, guided).check_for(handle)
    run = EditRun(batch_edits(edits, 0, n_cond, handle.device, handle.dtype), n_cond, guided)
    nm = traced_model(handle)
    plan = _plan(handle, nm, run)
    with torch.no_grad():
        with nm.trace(encoder_outputs=(encoder_states.to(handle.dtype),), attention_mask=attention_mask,
                      decoder_input_ids=decoder_input_ids, use_cache=False):
            _run_step(plan, run, None)
            logits = nm.output.logits.save()
    return ForwardTrace(logits, {name: run.reads[name][None] for name in run.reads})


def generate_traced(handle, prompts, settings: GenerationSettings | None = None, *,
                    steering: SteeringSpec | None = None, capture: CaptureSpec | None = None,
                    edits=()) -> GenerationResult:
    """`workbench.generate` through an nnsight trace: one batch of ``prompts``, the same checks, sampling and
    list of edits (the steering's, then ``edits``, then the capture's reads).

    settings: a `GenerationSettings` (default: its defaults); its batch size and decoder loop do not apply
    (one batch, transformers' ``generate`` inside the trace). The result's ``reads`` holds, per ``read`` edit
    of ``edits`` (by ``Edit.name``, else its index in ``edits``), its per-step values in step order (step 0 =
    the prefill); ``activations`` the capture, pooled as `workbench.generate` pools it.
    """
    one_batch = len(prompt_list(prompts))  # the batch is every prompt (checked again, with the rest, below)
    args = generation_args(handle, prompts, settings, steering=steering, capture=capture, edits=edits,
                           batch_size=max(one_batch, 1))
    with intra_op_threads(resolve_threads(handle, args.settings.threads)):
        return _generate_traced(handle, args)


def _generate_traced(handle, args: GenerationArgs) -> GenerationResult:
    n_new, n = args.frames + handle.delay_steps, len(args.prompts)
    captured = capture_edits(args.capture, handle.n_layers, args.guided)
    run = EditRun([*batch_edits(args.edits, 0, n, handle.device, handle.dtype), *captured.values()], n, args.guided)
    nm = traced_model(handle)
    plan = _plan(handle, nm, run)
    inputs = processor_inputs(handle, args.prompts)
    sampler = SeededSampler(args.seeds, handle.n_codebooks, args.guidance_scale if args.guided else None,
                            args.temperature, args.top_k)
    codes_sink: list = []
    with torch.no_grad(), record_codes(nm._module, codes_sink):
        with nm.trace(**inputs, fn="generate", max_new_tokens=n_new, do_sample=False,
                      guidance_scale=args.guidance_scale if args.guided else None, top_k=None, temperature=None,
                      logits_processor=LogitsProcessorList([sampler])) as tracer:
            for i in tracer.iter[: n_new + 1]:
                _run_step(plan, run, max(i - 1, 0))  # iterations 0 and 1 are the same prefill step
            waves = tracer.result.save()
    activations = None
    if args.capture is not None:
        activations = merge_batches([pooled_activations(captured)], args.capture.pooling, args.capture.rows)
    clips = clips_from(handle, waves, codes_from(codes_sink, handle.audio_channels), args.prompts, args.seeds,
                       args.steering, args.guidance_scale)
    reads = {name: run.read_list(name) for name in args.read_names}
    return GenerationResult(clips, activations, reads or None)
