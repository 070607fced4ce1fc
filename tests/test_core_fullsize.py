"""Random-weight models built from the official configs: paths, shapes, dtypes, CFG rows and steering
at full size (weights are never downloaded)."""
import numpy as np
import pytest
import torch

import workbench as wb
from workbench.runtime.configs import musicgen_config
from workbench.runtime.steering import steer_tensor

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def small():
    return wb.random_model("musicgen-small", seed=0)


def test_small_paths_shapes_and_facts(small):
    assert (small.n_layers, small.hidden_size, small.n_codebooks) == (24, 1024, 4)
    assert small.sample_rate_hz == 32000 and small.frame_rate_hz == 50
    assert small.site_path("resid", 23) == "decoder.model.decoder.layers.23"
    assert isinstance(small.module("mlp", 0), torch.nn.Linear)
    assert small.max_duration_s > 30


def test_small_generate_with_cfg_steering_and_capture(small):
    rng = np.random.RandomState(0)
    steer = wb.SteeringSpec.single(rng.randn(1024), (12,), 4.0, mode="norm_relative", rows="cond")
    pooled = wb.CaptureSpec(layers=(0, 12, 23), sites=("resid", "attn", "mlp"), pooling="mean", rows="both")
    res = wb.generate(small, ["lofi hip hop", "metal"], duration_s=0.1, seeds=[1, 2], capture=pooled, steering=steer)
    assert res.clips[0].codes.shape == (4, 5)
    assert res.activations[("resid", 23)].shape == (4, 1024)  # 2 cond rows, then 2 uncond rows
    assert res.activations[("mlp", 0)].dtype == np.float32
    per_step = wb.CaptureSpec(layers=(0, 12), pooling="none", rows="both")
    p = wb.generate(small, ["lofi hip hop", "metal"], duration_s=0.1, seeds=[1, 2], capture=per_step).activations
    s = wb.generate(small, ["lofi hip hop", "metal"], duration_s=0.1, seeds=[1, 2], capture=per_step,
                    steering=steer).activations
    # at the prefill step (before steering can change any sampled token): layer 0 is untouched,
    # layer 12 moves in the 2 conditional rows only
    assert all(np.array_equal(p[("resid", 0)][r][0], s[("resid", 0)][r][0]) for r in range(4))
    assert all(not np.allclose(p[("resid", 12)][r][0], s[("resid", 12)][r][0]) for r in range(2))
    assert all(np.array_equal(p[("resid", 12)][r][0], s[("resid", 12)][r][0]) for r in range(2, 4))


def test_small_zero_strength_identical_and_bf16_runs(small):
    v = np.random.RandomState(1).randn(1024)
    plain = wb.generate(small, "ambient", duration_s=0.1, seeds=3)
    zero = wb.generate(small, "ambient", duration_s=0.1, seeds=3, steering=wb.SteeringSpec.single(v, (5, 6), 0.0))
    assert np.array_equal(plain.clips[0].codes, zero.clips[0].codes)
    small.model.to(torch.bfloat16)
    try:
        res = wb.generate(small, "ambient", duration_s=0.1, seeds=3, steering=wb.SteeringSpec.single(v, (5,), 2.0),
                          capture=wb.CaptureSpec(layers=(5,)))
        assert small.dtype == torch.bfloat16 and res.clips[0].waveform.dtype == np.float32
        assert np.isfinite(res.activations[("resid", 5)]).all()
    finally:
        small.model.to(torch.float32)


@pytest.mark.parametrize("name,layers,hidden,codebooks", [
    ("musicgen-medium", 48, 1536, 4), ("musicgen-large", 48, 2048, 4), ("musicgen-stereo-small", 24, 1024, 8)])
def test_bigger_configs_paths_on_meta_and_one_real_layer(name, layers, hidden, codebooks):
    from transformers import MusicgenForConditionalGeneration
    from transformers.models.musicgen.modeling_musicgen import MusicgenDecoderLayer

    config = musicgen_config(name)
    with torch.device("meta"):
        model = MusicgenForConditionalGeneration(config)
    handle = wb.MusicGenHandle(model=model, processor=None, model_id=f"random/{name}")
    assert (handle.n_layers, handle.hidden_size, handle.n_codebooks) == (layers, hidden, codebooks)
    assert handle.module("resid", layers - 1).__class__.__name__ == "MusicgenDecoderLayer"
    assert handle.module("attn", layers - 1).__class__.__name__ == "MusicgenAttention"
    with pytest.raises(wb.errors.LayerOutOfRangeError, match=f"{layers} decoder layers"):
        handle.site_path("resid", layers)
    # one real block at full width: a steering hook on its plain-tensor output changes exactly the cond rows
    layer = MusicgenDecoderLayer(config.decoder, layer_idx=0).eval()
    x = torch.randn(4, 3, hidden)
    v = torch.randn(hidden)
    hook = layer.register_forward_hook(
        lambda m, a, out: torch.cat([steer_tensor(out[:2], v, 0.5, "norm_relative"), out[2:]]))
    try:
        with torch.no_grad():
            out = layer(x, use_cache=False)
    finally:
        hook.remove()
    with torch.no_grad():
        ref = layer(x, use_cache=False)
    assert isinstance(ref, torch.Tensor) and ref.shape == (4, 3, hidden)  # 5.x blocks return a plain tensor
    assert torch.equal(out[2:], ref[2:]) and not torch.allclose(out[:2], ref[:2])
