"""The kernel and the hook runner execute the same list of edits alike: for every operation (add, norm_relative,
per-clip add, replace, project_out, clamp, read, splice, call) ``wb.generate`` in the kernel loop and in
transformers' loop (``decoder_loop="transformers"``, hooks) gives bit-identical codes, reads and captured
activations, greedy and with seeded sampling, under guidance (and without, for a few); on the tiny random model,
and on the teaching model for add and read. Also the kernel's own duties: capture in every pooling and row
choice, stop with the finished batches kept, progress per batch."""
import numpy as np
import pytest
import torch

import workbench as wb
from workbench.errors import BadInputError, StoppedError
from workbench.runtime.capture import PooledAccumulator
from workbench.runtime.edits import Edit
from workbench.runtime.settings import GenerationSettings

PROMPTS = ["rock", "a slow jazz ballad with brushed drums", "ambient pads"]
SAMPLING = {"greedy": dict(temperature=0.0, top_k=None), "seeded": dict(temperature=1.0, top_k=250)}


@pytest.fixture(scope="module")
def teaching():
    return wb.load_model()


def unit(handle, seed: int) -> torch.Tensor:
    v = torch.as_tensor(np.random.RandomState(seed).randn(handle.hidden_size), dtype=torch.float32)
    return v / v.norm()


def run(handle, loop: str, edits, *, capture=None, **settings):
    settings = dict(dict(duration_s=0.3, seeds=[1, 2, 3], guidance_scale=3.0), **settings)
    result = wb.generate(handle, PROMPTS, GenerationSettings(decoder_loop=loop), edits=edits, capture=capture,
                         **settings)
    assert result.decoder_loop == loop, result.fallback_reason
    return result


def assert_same(kernel, hooks):
    for a, b in zip(kernel.clips, hooks.clips, strict=True):
        np.testing.assert_array_equal(a.codes, b.codes)
    assert (kernel.reads is None) == (hooks.reads is None)
    for name, steps in (kernel.reads or {}).items():
        assert len(steps) == len(hooks.reads[name]) > 0, name
        for step, (x, y) in enumerate(zip(steps, hooks.reads[name])):
            assert torch.equal(torch.as_tensor(x), torch.as_tensor(y)), (name, step)  # bit for bit
    assert (kernel.activations is None) == (hooks.activations is None)
    for key, value in (kernel.activations or {}).items():
        other = hooks.activations[key]
        if isinstance(value, list):
            assert len(value) == len(other) and all(np.array_equal(x, y) for x, y in zip(value, other)), key
        else:
            assert np.array_equal(value, other), key


def both(handle, edits, **kw):
    kernel, hooks = run(handle, "kernel", edits, **kw), run(handle, "transformers", edits, **kw)
    assert_same(kernel, hooks)
    return kernel


def donor_states(handle, layer: int, rows: str, **kw) -> list:
    """Per-step (rows, 1, H) states of other prompts at ``layer``: a patching source."""
    donor = wb.generate(handle, ["techno", "folk guitar", "choir"], edits=[Edit("read", layer=layer, rows=rows,
                                                                                name="src")],
                        **dict(dict(duration_s=0.3, seeds=[7, 8, 9], guidance_scale=3.0), **kw))
    return donor.reads["src"]


def op_edits(handle, op: str, sampling: dict) -> list:
    """One list of edits per operation (a read after it, so each compares a state as well as codes)."""
    v, u = unit(handle, 0), unit(handle, 1)
    after = Edit("read", layer=1, rows="both", name="after")
    per_clip = torch.stack([unit(handle, 2), -unit(handle, 3), unit(handle, 4)]) * 2.0
    edits = {
        "add": [Edit("add", layer=1, vector=v * 3.0, strength=2.0, rows="cond")],
        "norm_relative": [Edit("norm_relative", site="mlp", layer=1, vector=v, strength=4.0, rows="both",
                               schedule=wb.Schedule("pulse", every=3, width=2))],
        "per_clip_add": [Edit("add", layer=1, vector=per_clip, strength=3.0, rows="cond",
                              schedule=wb.Schedule("decay", decay_rate=0.1))],
        "replace": [Edit("replace", layer=1, rows="cond", window=(2, 8),
                         source=donor_states(handle, 1, "cond", **sampling))],
        "replace_along": [Edit("replace", layer=1, rows="both", vector=u,
                               source=donor_states(handle, 1, "both", **sampling))],
        "project_out": [Edit("project_out", site="attn", layer=1, vector=u, rows="both")],
        "clamp": [Edit("clamp", layer=1, vector=u, value=4.0, rows="cond", window=(0, 6))],
        "read": [Edit("read", site="attn", layer=0, rows="uncond", name="attn0"),
                 Edit("read", layer=2, rows="cond", fn=lambda h, step: h.norm(dim=-1))],
        "splice": [Edit("splice", layer=1, rows="cond", fn=lambda h: h - 0.5 * (h @ u)[..., None] * u)],
        "call": [Edit("call", site="mlp", layer=0, fn=lambda h, step: h * 1.5 if step % 2 else None)],
    }[op]
    return [*edits, after]


OPS = ["add", "norm_relative", "per_clip_add", "replace", "replace_along", "project_out", "clamp", "read", "splice",
       "call"]


@pytest.mark.parametrize("sampling", sorted(SAMPLING))
@pytest.mark.parametrize("op", OPS)
def test_tiny_every_op_same_codes_and_reads(tiny, one_torch_thread, op, sampling):
    edits = op_edits(tiny, op, SAMPLING[sampling])
    edited = both(tiny, edits, **SAMPLING[sampling])
    plain = run(tiny, "kernel", [edits[-1]], **SAMPLING[sampling])
    moved = not all(torch.equal(a, b) for a, b in zip(edited.reads["after"], plain.reads["after"]))
    assert moved == (op != "read")  # the edit does change the state the runners compare
    if op == "read":
        assert edited.reads[1][0].shape == (3, 1)  # the reducer's value, rows 'cond', the prefill's one position
        assert edited.reads["attn0"][3].shape == (3, 1, tiny.hidden_size)
        edited.reads["attn0"][3].mul_(1.0)  # an ordinary tensor, though the kernel runs under inference_mode


def test_per_clip_vectors_are_cut_per_batch(tiny, one_torch_thread):
    """Three prompts in batches of two: each batch gets its own rows of the (3, H) vectors."""
    per_clip = torch.stack([unit(tiny, 2), -unit(tiny, 3), unit(tiny, 4)]) * 6.0
    edit = Edit("add", layer=1, vector=per_clip, strength=1.0, rows="cond")
    batched = both(tiny, [edit], batch_size=2, **SAMPLING["seeded"])
    # the third clip ran alone in the second batch, with the third row: as if steered alone along it
    third = wb.generate(tiny, PROMPTS[2], edits=[Edit("add", layer=1, vector=per_clip[2], strength=1.0, rows="cond")],
                        duration_s=0.3, seeds=3, **SAMPLING["seeded"])
    np.testing.assert_array_equal(batched.clips[2].codes, third.clips[0].codes)


@pytest.mark.parametrize("op", ["add", "per_clip_add", "project_out", "read", "call"])
def test_tiny_without_guidance_same_codes_and_reads(tiny, one_torch_thread, op):
    edits = [e if e.rows != "uncond" else Edit("read", site="attn", layer=0, name="attn0")
             for e in op_edits(tiny, op, SAMPLING["seeded"])]
    edits = [e if e.rows != "both" else Edit(e.op, site=e.site, layer=e.layer, vector=e.vector, strength=e.strength,
                                             value=e.value, fn=e.fn, name=e.name) for e in edits]
    both(tiny, edits, guidance_scale=1.0, **SAMPLING["seeded"])


@pytest.mark.parametrize("rows", ["cond", "uncond", "both"])
@pytest.mark.parametrize("pooling", ["none", "last", "mean", "max", "mean_std"])
def test_capture_in_every_pooling_and_rows_same_activations(tiny, one_torch_thread, pooling, rows):
    capture = wb.CaptureSpec(layers=(0, 2), sites=("resid", "attn", "mlp"), pooling=pooling, rows=rows)
    steer = [Edit("add", layer=1, vector=unit(tiny, 0) * 5.0, rows="cond")]
    kernel = both(tiny, steer, capture=capture, batch_size=2, **SAMPLING["seeded"])
    first = kernel.activations[("mlp", 2)][0]
    width = 2 * tiny.hidden_size if pooling == "mean_std" else tiny.hidden_size
    assert len(kernel.activations[("mlp", 2)]) == (6 if rows == "both" else 3)
    assert first.shape == ((15 + 3, tiny.hidden_size) if pooling == "none" else (width,))


@pytest.mark.parametrize("loop", ["kernel", "transformers"])
@pytest.mark.parametrize("pooling", ["none", "last", "mean", "max", "mean_std"])
def test_capture_pools_each_layer_as_its_own_accumulator_would(tiny, one_torch_thread, pooling, loop):
    """Capture stacks every (site, layer)'s rows into one accumulator a step: bit for bit what one
    `PooledAccumulator` per (site, layer) gives, fed the same per-step states (an audio prompt: a long prefill)."""
    audio = wb.generate(tiny, "rock", duration_s=0.2, seeds=1).clips[0].mono
    keys = [(site, layer) for site in ("resid", "attn", "mlp") for layer in range(tiny.n_layers)]
    reads = [Edit("read", site=site, layer=layer, rows="both", name=(site, layer)) for site, layer in keys]
    capture = wb.CaptureSpec(sites=("resid", "attn", "mlp"), pooling=pooling, rows="both")
    result = run(tiny, loop, reads, capture=capture, audio_prompt=audio,
                 audio_prompt_sample_rate_hz=tiny.sample_rate_hz, **SAMPLING["seeded"])
    assert result.reads[keys[0]][0].shape[1] == 1 + 10  # the prefill: the start token and the prompt's frames
    for key in keys:
        own = PooledAccumulator(pooling)
        for state in result.reads[key]:
            own.offer(state, replace=False)
        expected = own.result().numpy()
        got = result.activations[key]
        if pooling == "none":
            assert all(np.array_equal(row, state) for row, state in zip(got, expected, strict=True)), key
        else:
            assert np.array_equal(got, expected), key


def test_teaching_model_add_and_read_same_codes_and_reads(teaching, one_torch_thread):
    v = unit(teaching, 0) * 4.0
    edits = [Edit("add", layer=3, vector=v, rows="cond"), Edit("read", layer=3, rows="both", name="l3"),
             Edit("read", site="mlp", layer=5, rows="cond", fn=lambda h, step: h.mean(dim=-1))]
    for sampling in SAMPLING.values():
        edited = both(teaching, edits, duration_s=1.0, **sampling)
        plain = run(teaching, "kernel", [], duration_s=1.0, **sampling)
        assert not all(np.array_equal(a.codes, b.codes) for a, b in zip(edited.clips, plain.clips))
        assert len(edited.reads["l3"]) == 50 + teaching.delay_steps


@pytest.mark.parametrize("loop", ["kernel", "transformers"])
def test_stop_keeps_finished_batches_and_progress_counts_them(tiny, loop):
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] > 16  # the first batch's 13 steps finish, the second batch stops at its 4th

    capture = wb.CaptureSpec(layers=(0,))
    with pytest.raises(StoppedError) as info:
        wb.generate(tiny, PROMPTS + PROMPTS[:1], GenerationSettings(decoder_loop=loop), duration_s=0.2,
                    batch_size=2, stop=stop, capture=capture)
    partial = info.value.partial_result
    assert partial.decoder_loop == loop and len(partial.clips) == 2
    assert partial.activations[("resid", 0)].shape == (2, tiny.hidden_size)
    assert calls["n"] == 17  # polled once a step, before it runs


def test_reads_and_sources_over_several_batches_are_refused(tiny):
    with pytest.raises(BadInputError, match="batch_size >= 3"):
        wb.generate(tiny, PROMPTS, duration_s=0.2, batch_size=2, edits=[Edit("read", layer=0)])
    with pytest.raises(BadInputError, match="needs classifier-free guidance"):
        wb.generate(tiny, PROMPTS, duration_s=0.2, guidance_scale=1.0, edits=[Edit("read", layer=0, rows="uncond")])
    with pytest.raises(BadInputError, match="hidden size"):
        wb.generate(tiny, PROMPTS, duration_s=0.2, edits=[Edit("add", layer=0, vector=torch.ones(7))])
