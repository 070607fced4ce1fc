"""Per-step traces (workbench.analysis.step_traces): the nnsight readings match the hook captures."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from workbench.analysis.step_traces import trace_steered, trace_steps
from workbench.errors import BadInputError
from workbench.runtime.settings import GenerationSettings

SHORT = GenerationSettings(duration_s=0.2)


@pytest.fixture(scope="module")
def h():
    return wb.random_model("tiny", seed=2)


def test_projections_equal_the_hook_capture(h):
    v = np.random.default_rng(0).normal(size=h.hidden_size).astype(np.float32)
    u = v / np.linalg.norm(v)
    prompts, seeds = ["calm jazz", "loud rock"], [4, 5]
    tr = trace_steps(h, prompts, v, GenerationSettings(duration_s=0.3, seeds=tuple(seeds)))
    ref = wb.generate(h, prompts, duration_s=0.3, seeds=seeds, capture=wb.CaptureSpec(pooling="none"))
    for clip_t, clip_r in zip(tr.clips, ref.clips):
        assert np.array_equal(clip_t.codes, clip_r.codes)
    for li, layer in enumerate(tr.layers):
        for c in range(2):
            steps = np.asarray(ref.activations[("resid", layer)][c])  # (steps, H)
            np.testing.assert_allclose(tr.projection[li, :, c], steps @ u, rtol=1e-4, atol=1e-5)
            np.testing.assert_allclose(tr.norm[li, :, c], np.linalg.norm(steps, axis=1), rtol=1e-4, atol=1e-5)
    assert tr.time_s[1] == pytest.approx(1 / h.frame_rate_hz)
    assert len(tr.to_frame()) == tr.projection.size
    batched = trace_steps(h, prompts, v, GenerationSettings(duration_s=0.3, seeds=tuple(seeds), batch_size=1))
    np.testing.assert_allclose(batched.projection, tr.projection, rtol=1e-4, atol=1e-5)  # batches of one


def test_steering_shows_at_the_steered_layer(h):
    v = np.random.default_rng(1).normal(size=h.hidden_size).astype(np.float32)
    u = v / np.linalg.norm(v)
    spec = wb.SteeringSpec.single(u, layers=[1], strength=4.0)
    original, steered = trace_steered(h, ["calm jazz"], u, spec,
                                      settings=GenerationSettings(duration_s=0.3, seeds=7, guidance_scale=None))
    # step 0 (prefill) sees the same input in both runs: the steered layer moves by exactly the strength
    assert steered.projection[1, 0, 0] - original.projection[1, 0, 0] == pytest.approx(4.0, abs=1e-4)
    assert steered.projection[0, 0, 0] == pytest.approx(original.projection[0, 0, 0], abs=1e-6)


def test_uncond_rows_and_errors(h):
    tr = trace_steps(h, ["jazz"], np.ones(h.hidden_size), SHORT, rows="uncond")
    assert tr.rows == "uncond" and np.isfinite(tr.projection).all()
    with pytest.raises(BadInputError, match="zero"):
        trace_steps(h, ["jazz"], np.zeros(h.hidden_size), SHORT)
    with pytest.raises(BadInputError, match="guidance"):
        trace_steps(h, ["jazz"], np.ones(h.hidden_size), SHORT.replace(guidance_scale=1.0), rows="uncond")
    with pytest.raises(BadInputError, match="hidden size"):
        trace_steps(h, ["jazz"], np.ones(3), SHORT)
    with pytest.raises(BadInputError, match="SteeringSpec"):
        trace_steered(h, ["jazz"], np.ones(h.hidden_size), None)
