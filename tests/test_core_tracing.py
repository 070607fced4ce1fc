"""The nnsight path and the hook path agree exactly; steering matches an independent implementation."""
import numpy as np
import pytest
import torch

import workbench as wb
from workbench.runtime.settings import GenerationSettings
from workbench.runtime.tracing import bos_ids, envoy, generate_traced, traced_model

PROMPTS = ["rock guitar", "smooth jazz"]


@pytest.mark.parametrize("guidance,rows,mode,strength", [(3.0, "cond", "add", 4.0), (3.0, "both", "norm_relative", 0.5),
                                                         (1.0, "cond", "add", 3.0)])
def test_nnsight_and_hooks_identical(tiny, guidance, rows, mode, strength):
    v = np.random.RandomState(0).randn(tiny.hidden_size)
    steer = wb.SteeringSpec.single(v, (0, 2), strength, mode=mode, rows=rows,
                                   schedule=wb.Schedule("pulse", every=3, width=2))
    cap = wb.CaptureSpec(pooling="mean_std", rows="both" if guidance > 1 else "cond", sites=("resid", "mlp", "attn"))
    hooks = wb.generate(tiny, PROMPTS, duration_s=0.3, seeds=[3, 4], guidance_scale=guidance, steering=steer,
                        capture=cap)
    nns = generate_traced(tiny, PROMPTS, GenerationSettings(duration_s=0.3, seeds=(3, 4), guidance_scale=guidance),
                          steering=steer, capture=cap)
    for a, b in zip(hooks.clips, nns.clips):
        assert np.array_equal(a.codes, b.codes)
    for key in hooks.activations:
        assert np.array_equal(hooks.activations[key], nns.activations[key]), key


def test_sites_are_addressable_by_module_path(tiny):
    nm = traced_model(tiny)
    inputs = tiny.processor(text=["jazz"], return_tensors="pt")
    with torch.no_grad(), nm.trace(**inputs, decoder_input_ids=bos_ids(tiny, 1)):
        mlp = envoy(nm, tiny.site_path("mlp", 1)).output.save()
        resid = envoy(nm, tiny.site_path("resid", 1)).output.save()
    assert tuple(mlp.shape) == tuple(resid.shape) == (1, 1, tiny.hidden_size)


def test_golden_norm_relative_every_25th_step_on_cond_rows(tiny):
    """arXiv 2506.10225's formula, written independently as a bare forward hook."""
    v = np.random.RandomState(7).randn(tiny.hidden_size).astype(np.float32)
    alpha, layer, every, batch = 0.8, 1, 25, len(PROMPTS)
    ours = wb.generate(tiny, PROMPTS, duration_s=0.6, seeds=[5, 6], steering=wb.SteeringSpec.single(
        v, (layer,), alpha, mode="norm_relative", rows="cond", schedule=wb.Schedule("pulse", every=every, width=1)))

    unit = torch.tensor(v) / torch.tensor(v).norm()
    calls = {"n": 0}

    def paper_hook(module, args, output):
        step = max(calls["n"] - 1, 0)  # generate() runs the prefill forward twice
        calls["n"] += 1
        if step % every:
            return None
        h = output.clone()
        cond = h[:batch]
        h[:batch] = (cond + alpha * cond.norm(dim=-1, keepdim=True) * unit) / (1 + alpha)
        return h

    from transformers import LogitsProcessorList

    from workbench.runtime.sampling import SeededSampler, record_codes
    sink = []
    handle = tiny.layers[layer].register_forward_hook(paper_hook)
    try:
        inputs = tiny.processor(text=PROMPTS, padding=True, return_tensors="pt")
        sampler = SeededSampler([5, 6], 4, 3.0, 1.0, 250)
        with torch.no_grad(), record_codes(tiny.model, sink):
            tiny.model.generate(**inputs, max_new_tokens=30 + 3, do_sample=False, guidance_scale=3.0, top_k=None,
                                temperature=None, logits_processor=LogitsProcessorList([sampler]))
    finally:
        handle.remove()
    assert calls["n"] == 34  # 33 new tokens, plus the duplicate prefill
    plain = wb.generate(tiny, PROMPTS, duration_s=0.6, seeds=[5, 6])
    paper_codes = sink[0][0].numpy()
    for i, clip in enumerate(ours.clips):
        assert np.array_equal(clip.codes, paper_codes[i])
    assert any(not np.array_equal(a.codes, b.codes) for a, b in zip(ours.clips, plain.clips))
