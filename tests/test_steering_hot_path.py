"""How steering is executed is an implementation detail: it must give bit-identical results.

`reference_steer_hook` is the straightforward formulation (steer the rows with `steer_tensor` and `torch.cat`
the untouched uncond half back on), registered by hand as bare forward hooks; `workbench.runtime.edits.EditRun`
executes steering as edits (one delta per term per step, in place on the steered rows), in the kernel and in the
hook runner. Codes and every captured activation must match the reference exactly, and strength 0 must match no
steering exactly.
"""
import contextlib

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.runtime.hooks import StepTracker
from workbench.runtime.settings import GenerationSettings
from workbench.runtime.steering import steer_tensor

PROMPTS = ["rock guitar", "smooth jazz"]


def reference_steer_hook(tracker, term, vector, mode, rows, n_cond):
    def hook(module, args, output):
        strength = term.strength_at(tracker.step)
        if strength == 0.0:
            return None
        hidden = output[0] if isinstance(output, tuple) else output
        if rows == "cond" and hidden.shape[0] > n_cond:
            steered = torch.cat([steer_tensor(hidden[:n_cond], vector, strength, mode), hidden[n_cond:]], dim=0)
        else:
            steered = steer_tensor(hidden, vector, strength, mode)
        return (steered,) + tuple(output[1:]) if isinstance(output, tuple) else steered
    return hook


@contextlib.contextmanager
def reference_steering(handle, spec, n_cond):
    """``spec`` as bare hooks (one per term and layer, in the spec's order), a step tracker on the decoder."""
    tracker = StepTracker()
    handles = [handle.model.decoder.model.decoder.register_forward_pre_hook(tracker.pre_hook, with_kwargs=True)]
    for term in spec.terms:
        vector = term.vector.to(handle.device, handle.dtype)
        for layer in term.layers:
            hook = reference_steer_hook(tracker, term, vector, spec.mode, spec.rows, n_cond)
            handles.append(handle.module(term.site, layer).register_forward_hook(hook))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def vec(h, seed):
    return np.random.RandomState(seed).randn(h.hidden_size).astype(np.float32)


def run(tiny, spec, guidance, loop="kernel", reference=False):
    """(codes, activations) from ``loop``; ``reference``: ``spec`` by the reference hooks (transformers' loop)."""
    cap = wb.CaptureSpec(sites=("resid", "attn", "mlp"), layers=None, pooling="none",
                         rows="both" if guidance > 1 else "cond")
    settings = GenerationSettings(decoder_loop="transformers" if reference else loop)
    with reference_steering(tiny, spec, len(PROMPTS)) if reference else contextlib.nullcontext():
        res = wb.generate(tiny, PROMPTS, settings, duration_s=0.3, seeds=[3, 4], guidance_scale=guidance,
                          steering=None if reference else spec, capture=cap)
    assert res.decoder_loop == settings.decoder_loop
    return [c.codes for c in res.clips], res.activations


def assert_identical(a, b):
    codes_a, acts_a = a
    codes_b, acts_b = b
    assert all(np.array_equal(x, y) for x, y in zip(codes_a, codes_b))
    assert acts_a.keys() == acts_b.keys()
    for key in acts_a:
        for x, y in zip(acts_a[key], acts_b[key]):
            assert torch.equal(torch.as_tensor(x), torch.as_tensor(y)), key  # bit for bit, incl. signed zeros


SPECS = {
    "add_cond_two_layers": lambda h: wb.SteeringSpec.single(vec(h, 0), (0, 2), 6.0, rows="cond"),
    "add_both": lambda h: wb.SteeringSpec.single(vec(h, 0), (1,), 6.0, rows="both"),
    "add_decay_pulse_two_terms": lambda h: wb.SteeringSpec((
        wb.SteeringTerm(vec(h, 1), (0, 1, 2), 4.0, wb.Schedule("decay", decay_rate=0.2, floor=0.3)),
        wb.SteeringTerm(vec(h, 2), (1,), -3.0, wb.Schedule("pulse", every=3, width=1)),
        wb.SteeringTerm(vec(h, 3), (2,), 2.0, site="mlp"),
        wb.SteeringTerm(vec(h, 4), (0,), 2.0, wb.Schedule("ramp", ramp_to=-1.0, ramp_steps=5), site="attn"))),
    "norm_relative_cond": lambda h: wb.SteeringSpec.single(vec(h, 0), (0, 2), 0.8, mode="norm_relative"),
    "norm_relative_both": lambda h: wb.SteeringSpec.single(vec(h, 0), (1,), 0.8, mode="norm_relative",
                                                           rows="both"),
}


@pytest.mark.parametrize("loop", ["kernel", "transformers"])
@pytest.mark.parametrize("guidance", [3.0, 1.0])
@pytest.mark.parametrize("name", sorted(SPECS))
def test_steered_generation_matches_reference_formulation(tiny, name, guidance, loop):
    spec = SPECS[name](tiny)
    ours = run(tiny, spec, guidance, loop)
    plain = run(tiny, None, guidance, loop)
    reference = run(tiny, spec, guidance, reference=True)
    assert_identical(ours, reference)
    assert not all(np.array_equal(x, y) for x, y in zip(ours[0], plain[0]))  # the spec does steer


@pytest.mark.parametrize("loop", ["kernel", "transformers"])
@pytest.mark.parametrize("rows", ["cond", "both"])
@pytest.mark.parametrize("mode", ["add", "norm_relative"])
def test_strength_zero_matches_no_steering_bit_for_bit(tiny, mode, rows, loop):
    spec = wb.SteeringSpec.single(vec(tiny, 0), (0, 1, 2), 0.0, mode=mode, rows=rows)
    assert_identical(run(tiny, spec, 3.0, loop), run(tiny, None, 3.0, loop))


def test_bf16_steering_matches_reference():
    h = wb.random_model("tiny", seed=0, dtype=torch.bfloat16)
    spec = wb.SteeringSpec.single(vec(h, 0), (0, 2), 6.0)
    ours = wb.generate(h, PROMPTS, duration_s=0.2, seeds=[3, 4], steering=spec)
    assert ours.decoder_loop == "kernel"
    with reference_steering(h, spec, len(PROMPTS)):
        ref = wb.generate(h, PROMPTS, GenerationSettings(decoder_loop="transformers"), duration_s=0.2, seeds=[3, 4])
    assert all(np.array_equal(x.codes, y.codes) for x, y in zip(ours.clips, ref.clips))
