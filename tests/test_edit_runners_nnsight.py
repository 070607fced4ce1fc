"""The nnsight runner executes a list of edits as the other runners do: for every operation (add, norm_relative,
per-clip add, replace, replace along a direction, project_out, clamp, read, splice, call) `generate_traced` and
``wb.generate`` (the kernel loop and transformers' loop with hooks) give bit-identical codes and reads, greedy
and with seeded sampling, under guidance (and without, for a few); and `traced_forward` gives the hook runner's
logits and reads on a teacher-forced forward. The tiny random model throughout."""
import numpy as np
import pytest
import torch

import workbench as wb
from workbench.runtime.edits import Edit, EditRun
from workbench.runtime.hooks import edit_hooks
from workbench.runtime.settings import GenerationSettings
from workbench.runtime.teacher_forcing import delayed_decoder_inputs, text_states
from workbench.runtime.tracing import generate_traced, traced_forward

pytestmark = pytest.mark.usefixtures("one_torch_thread")

PROMPTS = ["rock", "a slow jazz ballad with brushed drums", "ambient pads"]
SAMPLING = {"greedy": dict(temperature=0.0, top_k=None), "seeded": dict(temperature=1.0, top_k=250)}
OPS = ["add", "norm_relative", "per_clip_add", "replace", "replace_along", "project_out", "clamp", "read", "splice",
       "call"]


def unit(handle, seed: int) -> torch.Tensor:
    v = torch.as_tensor(np.random.RandomState(seed).randn(handle.hidden_size), dtype=torch.float32)
    return v / v.norm()


def settings(**changes) -> GenerationSettings:
    return GenerationSettings(**dict(dict(duration_s=0.3, seeds=(1, 2, 3), guidance_scale=3.0), **changes))


def donor_states(handle, rows: str, sampling: dict) -> list:
    """Per-step (rows, 1, H) states of other prompts at layer 1: a patching source."""
    donor = wb.generate(handle, ["techno", "folk guitar", "choir"], settings(seeds=(7, 8, 9), **sampling),
                        edits=[Edit("read", layer=1, rows=rows, name="src")])
    return donor.reads["src"]


def op_edits(handle, op: str, source=None) -> list:
    """One list of edits per operation, then reads of the state they change (so each compares states as well
    as codes). source: ``replace``'s states (generation: per-step list; forward: one (rows, T, H) tensor)."""
    v, u = unit(handle, 0), unit(handle, 1)
    per_clip = torch.stack([unit(handle, 2), -unit(handle, 3), unit(handle, 4)]) * 2.0
    edits = {
        "add": lambda: [Edit("add", layer=1, vector=v * 3.0, strength=2.0, rows="cond")],
        "norm_relative": lambda: [Edit("norm_relative", site="mlp", layer=1, vector=v, strength=4.0, rows="both",
                                       schedule=wb.Schedule("pulse", every=3, width=2))],
        "per_clip_add": lambda: [Edit("add", layer=1, vector=per_clip, strength=3.0, rows="cond",
                                      schedule=wb.Schedule("decay", decay_rate=0.1))],
        "replace": lambda: [Edit("replace", layer=1, rows="cond", window=(2, 8), source=source("cond"))],
        "replace_along": lambda: [Edit("replace", layer=1, rows="both", vector=u, source=source("both"))],
        "project_out": lambda: [Edit("project_out", site="attn", layer=1, vector=u, rows="both")],
        "clamp": lambda: [Edit("clamp", layer=1, vector=u, value=4.0, rows="cond", window=(0, 6))],
        "read": lambda: [Edit("read", site="attn", layer=0, rows="uncond", name="attn0"),
                         Edit("read", layer=2, rows="cond", fn=lambda h, step: h.norm(dim=-1))],
        "splice": lambda: [Edit("splice", layer=1, rows="cond", fn=lambda h: h - 0.5 * (h @ u)[..., None] * u)],
        "call": lambda: [Edit("call", site="mlp", layer=0, fn=lambda h, step: h * 1.5 if not step or step % 2
                              else None)],
    }[op]()
    # "after": the edited state itself; "below": a layer under the edits, which sees them only when the runner
    # writes the edited state back into the model (its own position, and earlier ones through the cache)
    return [*edits, Edit("read", layer=1, rows="both", name="after"), Edit("read", layer=2, rows="both",
                                                                         name="below")]


def assert_same_reads(a: dict | None, b: dict | None) -> None:
    assert (a is None) == (b is None)
    assert sorted(map(str, a or {})) == sorted(map(str, b or {}))
    for name, values in (a or {}).items():
        others = b[name]
        if not isinstance(values, list):
            values, others = [values], [others]
        assert len(values) == len(others) > 0, name
        for step, (x, y) in enumerate(zip(values, others)):
            assert torch.equal(torch.as_tensor(x), torch.as_tensor(y)), (name, step)  # bit for bit


def assert_same(traced, reference) -> None:
    for a, b in zip(traced.clips, reference.clips, strict=True):
        np.testing.assert_array_equal(a.codes, b.codes)
    assert_same_reads(traced.reads, reference.reads)


@pytest.mark.parametrize("sampling", sorted(SAMPLING))
@pytest.mark.parametrize("op", OPS)
def test_generate_traced_equals_generate_for_every_op(tiny, op, sampling):
    edits = op_edits(tiny, op, lambda rows: donor_states(tiny, rows, SAMPLING[sampling]))
    chosen = settings(**SAMPLING[sampling])
    traced = generate_traced(tiny, PROMPTS, chosen, edits=edits)
    for loop in ("kernel", "transformers"):
        reference = wb.generate(tiny, PROMPTS, chosen.replace(decoder_loop=loop), edits=edits)
        assert reference.decoder_loop == loop, reference.fallback_reason
        assert_same(traced, reference)
    plain = generate_traced(tiny, PROMPTS, chosen, edits=edits[-2:])
    for name in ("after", "below"):
        moved = not all(torch.equal(a, b) for a, b in zip(traced.reads[name], plain.reads[name]))
        assert moved == (op != "read"), name  # the edit does change the states the runners compare
    n_steps = tiny.frames_for(0.3) + tiny.delay_steps
    assert len(traced.reads["after"]) == n_steps  # one read a step: the duplicate prefill replaced, not added


@pytest.mark.parametrize("op", ["add", "per_clip_add", "project_out", "read", "call"])
def test_generate_traced_equals_generate_without_guidance(tiny, op):
    edits = [e if e.rows != "uncond" else Edit("read", site="attn", layer=0, name="attn0")
             for e in op_edits(tiny, op)]
    chosen = settings(guidance_scale=None, **SAMPLING["seeded"])
    assert_same(generate_traced(tiny, PROMPTS, chosen, edits=edits),
                wb.generate(tiny, PROMPTS, chosen.replace(decoder_loop="transformers"), edits=edits))


def test_steering_capture_and_edits_together(tiny):
    """Steering first, then the caller's edits, then the capture's reads: one list on both runners."""
    steering = wb.SteeringSpec.single(unit(tiny, 5).numpy(), (0, 2), 3.0, rows="cond",
                                      schedule=wb.Schedule("pulse", every=3, width=2))
    capture = wb.CaptureSpec(layers=(0, 2), sites=("resid", "mlp"), pooling="mean_std", rows="both")
    edits = op_edits(tiny, "clamp")
    chosen = settings(**SAMPLING["seeded"])
    traced = generate_traced(tiny, PROMPTS, chosen, steering=steering, capture=capture, edits=edits)
    reference = wb.generate(tiny, PROMPTS, chosen.replace(decoder_loop="transformers"), steering=steering,
                            capture=capture, edits=edits)
    assert_same(traced, reference)
    for key, value in reference.activations.items():
        assert np.array_equal(value, traced.activations[key]), key


def forward_inputs(handle, guided: bool):
    """Decoder ids, encoder states and mask for two clips of random codes (null text rows after them if guided)."""
    codes = torch.randint(0, handle.config.decoder.vocab_size, (2, handle.n_codebooks, 10),
                          generator=torch.Generator().manual_seed(0))
    ids = delayed_decoder_inputs(handle, codes)
    states, mask = text_states(handle, ["rock", "a slow jazz ballad"], 2)
    if guided:
        states, mask = torch.cat([states, torch.zeros_like(states)]), torch.cat([mask, torch.zeros_like(mask)])
        ids = torch.cat([ids.reshape(2, -1, ids.shape[-1])] * 2).reshape(-1, ids.shape[-1])
    return ids, states, mask


def hook_forward(handle, ids, states, mask, edits, guided: bool):
    """The hook runner on a teacher-forced forward (as `workbench.runtime.teacher_forcing` runs it)."""
    rows = ids.shape[0] // handle.n_codebooks
    run = EditRun(edits, rows // 2 if guided else rows, guided)
    with edit_hooks(handle, run, steps=False), torch.no_grad():
        logits = handle.model(encoder_outputs=(states,), attention_mask=mask, decoder_input_ids=ids,
                              use_cache=False).logits
    return logits, {name: run.reads[name][None] for name in run.reads}


@pytest.mark.parametrize("guided", [True, False])
@pytest.mark.parametrize("op", [op for op in OPS if op != "per_clip_add"] + ["per_clip_add_forward"])
def test_traced_forward_equals_the_hook_runner(tiny, op, guided):
    ids, states, mask = forward_inputs(tiny, guided)
    donor_ids, _, _ = forward_inputs(tiny, guided)
    donor_ids = donor_ids.flip(0)  # other codes in every row: a patching source
    with torch.no_grad():
        _, donor = hook_forward(tiny, donor_ids, states, mask, [Edit("read", layer=1, name="src")], guided)
    n_cond = 2

    def source(rows):
        return donor["src"][{"cond": slice(0, n_cond), "both": slice(None)}[rows]]
    if op == "per_clip_add_forward":  # one row per clip: 2 clips here
        per_clip = torch.stack([unit(tiny, 2), -unit(tiny, 3)]) * 2.0
        edits = [Edit("add", layer=1, vector=per_clip, strength=3.0, rows="cond"),
                 Edit("read", layer=1, rows="both", name="after"), Edit("read", layer=2, rows="both", name="below")]
    else:
        edits = op_edits(tiny, op, source)
    if not guided:  # only conditional rows: 'cond' and 'both' name them all
        edits = [e for e in edits if e.rows != "uncond"]
    traced = traced_forward(tiny, ids, states, mask, edits, guided=guided)
    logits, reads = hook_forward(tiny, ids, states, mask, edits, guided)
    assert torch.equal(traced.logits, logits)
    assert_same_reads(traced.reads, reads)
    plain = traced_forward(tiny, ids, states, mask, edits[-2:], guided=guided)
    assert (torch.equal(plain.logits, logits)) == (op == "read")  # the edit changes the run
