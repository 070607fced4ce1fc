"""Activation patching and directional ablation (workbench.analysis.patching): the sanity properties."""
from __future__ import annotations

import numpy as np
import pytest
import torch

import workbench as wb
from workbench.analysis import patching as P
from workbench.errors import BadInputError, OutOfRangeError, WrongTypeError, ZeroNormError
from workbench.runtime.edits import Edit
from workbench.runtime.settings import GenerationSettings
from workbench.runtime.tracing import generate_traced

GEN = GenerationSettings(duration_s=0.3, seeds=3, guidance_scale=3.0)


@pytest.fixture(scope="module")
def h():
    return wb.random_model("tiny", seed=1)


@pytest.fixture(scope="module")
def teach():
    """The teaching model: its text conditioning matters (a random tiny model's barely does)."""
    return wb.load_model()


@pytest.fixture(scope="module")
def pair(h):
    a, b = wb.generate(h, ["calm jazz piano", "loud rock guitar"], duration_s=0.4, seeds=[1, 2]).clips
    return P.ForcedInput.of(h, a), P.ForcedInput.of(h, b)


def _read(site, layer):
    return Edit("read", site=site, layer=layer, name="read")


def test_plain_traced_forward_equals_the_model(h, pair):
    from workbench.runtime.teacher_forcing import delayed_decoder_inputs, text_states
    src, _ = pair
    states, mask = text_states(h, [src.prompt], 1)
    with torch.no_grad():
        plain = h.model(encoder_outputs=(states,), attention_mask=mask,
                        decoder_input_ids=delayed_decoder_inputs(h, src.codes[None]), use_cache=False).logits
    assert torch.equal(P.forward(h, src).logits, plain)


@pytest.mark.parametrize("guidance_scale", [None, 3.0])
def test_patching_the_last_layer_everywhere_gives_the_source_logits(h, pair, guidance_scale):
    src, tgt = pair
    rows = "both" if guidance_scale else "cond"
    patched = P.patch_forward(h, src, tgt, P.PatchSpec(h.n_layers - 1, rows=rows), guidance_scale=guidance_scale).logits
    source = P.forward(h, src, guidance_scale=guidance_scale).logits
    target = P.forward(h, tgt, guidance_scale=guidance_scale).logits
    assert not torch.allclose(source, target, atol=1e-3)  # the two inputs really differ
    torch.testing.assert_close(patched, source, rtol=1e-5, atol=1e-5)


def test_a_window_outside_the_run_and_a_zero_direction_are_refused_not_patched_as_nothing(h, pair):
    # patched, they would change nothing and the table would read "recovered 0", which looks like a finding
    src, tgt = pair
    n = tgt.frames + h.delay_steps
    with pytest.raises(OutOfRangeError, match=f"beyond the run's {n} positions"):
        P.patch_forward(h, src, tgt, P.PatchSpec(1, window=(10_000, 20_000)))
    with pytest.raises(ZeroNormError, match="ablating it would change nothing"):
        P.ablate_forward(h, tgt, P.AblationSpec(np.zeros(h.hidden_size, np.float32), layers=[0, 1, 2]))
    # the last position is in the run, and the edits do change the run when they apply
    plain = P.forward(h, tgt).logits
    assert not torch.equal(P.patch_forward(h, src, tgt, P.PatchSpec(1, window=(n - 1, n))).logits, plain)
    assert not torch.equal(P.patch_forward(h, src, tgt, P.PatchSpec(1)).logits, plain)


def test_patching_with_the_targets_own_activations_changes_nothing(h, pair):
    _, tgt = pair
    for layer in range(h.n_layers):
        assert torch.equal(P.patch_forward(h, tgt, tgt, P.PatchSpec(layer)).logits, P.forward(h, tgt).logits)


def test_direction_patching_moves_only_that_component(h, pair):
    src, tgt = pair
    v = torch.randn(h.hidden_size, generator=torch.Generator().manual_seed(0))
    u = v / v.norm()
    layer = 1
    out = P.patch_forward(h, src, tgt, P.PatchSpec(layer, direction=v.numpy(), window=(2, 8)),
                          edits=[_read("resid", layer)])
    patched = out.reads["read"][0]
    source = P.forward(h, src, [_read("resid", layer)]).reads["read"][0]
    target = P.forward(h, tgt, [_read("resid", layer)]).reads["read"][0]
    torch.testing.assert_close(patched[2:8] @ u, source[2:8] @ u, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(patched - (patched @ u)[:, None] * u, target - (target @ u)[:, None] * u,
                               rtol=1e-4, atol=1e-5)
    assert torch.equal(patched[:2], target[:2]) and torch.equal(patched[8:], target[8:])


@pytest.mark.parametrize("value", [None, 2.5])
def test_ablation_sets_the_projection(h, pair, value):
    _, tgt = pair
    v = np.random.default_rng(1).normal(size=h.hidden_size).astype(np.float32)
    u = torch.as_tensor(v / np.linalg.norm(v))
    out = P.ablate_forward(h, tgt, P.AblationSpec(v, layers=[1], value=value), edits=[_read("resid", 1)])
    torch.testing.assert_close(out.reads["read"][0] @ u, torch.full((tgt.frames + h.delay_steps,), value or 0.0),
                               rtol=1e-4, atol=1e-4)


def test_generation_sanity(teach):
    h = teach
    plain = generate_traced(h, ["loud rock guitar"], GEN).clips[0]
    _, own = P.generate_patched(h, "loud rock guitar", "loud rock guitar", P.PatchSpec(1), GEN)
    assert np.array_equal(own.codes, plain.codes)
    source, patched = P.generate_patched(h, "calm jazz piano", "loud rock guitar", P.PatchSpec(h.n_layers - 1), GEN)
    assert not np.array_equal(source.codes, plain.codes)
    assert np.array_equal(patched.codes, source.codes)  # the last layer at every step, every row: the source


def test_sweep_table(h, pair):
    src, tgt = pair
    df = P.patching_sweep(h, src, tgt, P.PatchSweep(windows=4, sites=("resid", "mlp")))
    assert len(df) == 2 * h.n_layers * 4
    assert {"site", "layer", "window", "start", "stop", "value", "recovered", "source_value",
            "target_value", "seconds"} <= set(df.columns)
    last = df[(df.site == "resid") & (df.layer == h.n_layers - 1)]
    assert abs(last.recovered.sum() - 1.0) < 1e-4  # per-position metric: the windows add up
    assert df.value.between(df.target_value.min() - 5, 0).all()
    # (not the all-ones direction: the layer norms remove it, so ablating it changes nothing)
    v = np.random.default_rng(2).normal(size=h.hidden_size).astype(np.float32)
    abl = P.ablation_sweep(h, tgt, v, P.AblationSweep(windows=2, layers=[0, 2]))
    assert len(abl) == 4 and (abl.change != 0).any()


def test_generate_sweep_with_a_clip_metric(teach):
    h = teach
    settings = GenerationSettings(duration_s=0.3, seeds=3)
    source = generate_traced(h, ["calm jazz piano"], settings).clips[0]
    target = generate_traced(h, ["loud rock guitar"], settings).clips[0]
    assert not np.array_equal(source.codes, target.codes)

    def same_codes_as_source(clip):
        return float((clip.codes == source.codes).mean())
    df = P.patching_sweep(h, "calm jazz piano", "loud rock guitar",
                          P.PatchSweep("generate", layers=[h.n_layers - 1], windows=1, metric=same_codes_as_source),
                          settings)
    assert np.array_equal(df.attrs["source_clip"].codes, source.codes)  # the sweep's settings are the clips'
    assert df.metric.iloc[0] == "same_codes_as_source"
    assert len(df) == 1 and abs(df.recovered.iloc[0] - 1.0) < 1e-6 and df["clip"].iloc[0].codes is not None


def test_probe_metric_in_forward_mode(h, pair):
    src, tgt = pair
    rng = np.random.default_rng(0)
    from workbench.analysis.probes import LinearProbe
    probe = LinearProbe().fit(rng.normal(size=(20, h.hidden_size)), ["a", "b"] * 10)
    df = P.patching_sweep(h, src, tgt, P.PatchSweep(layers=[0, 2], windows=1,
                                                    metric=P.ProbeMetric(probe, layer=2, label="a")))
    assert df.value.between(0, 1).all()
    assert abs(df[df.layer == 2].recovered.iloc[0] - 1.0) < 1e-4  # patching the probed layer itself


def test_errors_name_the_fix(h, pair):
    src, tgt = pair
    short = P.ForcedInput(src.codes[:, :10], src.prompt)
    with pytest.raises(BadInputError, match="crop"):
        P.patch_forward(h, short, tgt, P.PatchSpec(0))
    with pytest.raises(BadInputError, match="guidance"):
        P.patch_forward(h, src, tgt, P.PatchSpec(0, rows="uncond"))
    with pytest.raises(BadInputError, match="ForcedInput.of"):
        P.patching_sweep(h, "jazz", tgt)
    with pytest.raises(BadInputError, match="label"):
        P.patching_sweep(h, "jazz", "rock", P.PatchSweep("generate", metric="judge"))
    with pytest.raises(BadInputError, match="hidden size"):
        P.ablate_forward(h, tgt, P.AblationSpec(np.ones(7), layers=[0]))
    with pytest.raises(BadInputError, match="logprob"):
        P.patching_sweep(h, src, tgt, P.PatchSweep(metric="judge"))
    with pytest.raises(wb.WorkbenchError):
        P.patch_forward(h, src, tgt, P.PatchSpec(99))
    with pytest.raises(wb.WorkbenchError, match="PatchSpec"):
        P.patch_forward(h, src, tgt, 1)
    with pytest.raises(BadInputError, match="one int"):
        P.generate_patched(h, "jazz", "rock", P.PatchSpec(1), GenerationSettings(seeds=(1, 2)))


def test_an_edit_names_a_bad_site_or_layer(h):
    with pytest.raises(wb.WorkbenchError, match="site"):
        Edit("read", site="residual")
    with pytest.raises(wb.WorkbenchError, match="layer"):
        generate_traced(h, ["jazz"], GenerationSettings(duration_s=0.2), edits=[Edit("read", layer=7)])
    with pytest.raises(wb.WorkbenchError, match="Edit"):
        generate_traced(h, ["jazz"], GenerationSettings(duration_s=0.2), edits="read")


def test_sweeps_report_progress_per_cell(h, pair):
    src, tgt = pair
    calls = []

    def record(done, total):
        calls.append((done, total))
    df = P.patching_sweep(h, src, tgt, P.PatchSweep(windows=2, layers=[0, 1]), progress=record)
    assert calls == [(0, 4), (1, 4), (2, 4), (3, 4), (4, 4)] and len(df) == 4
    v = np.random.default_rng(2).normal(size=h.hidden_size).astype(np.float32)
    calls.clear()
    P.ablation_sweep(h, tgt, v, P.AblationSweep(windows=2, layers=[1]), progress=record)
    assert calls == [(0, 2), (1, 2), (2, 2)]
    with pytest.raises(WrongTypeError, match="fn\\(done, total\\)"):
        P.patching_sweep(h, src, tgt, P.PatchSweep(windows=2), progress="yes")


def test_ablation_progress_bar_counts_the_cells(h, pair, monkeypatch):
    import tqdm.auto
    bars = []

    class CountingBar:
        def __init__(self, total, **kwargs):
            self.total, self.n = total, 0
            bars.append(self)

        def update(self, n):
            self.n += n

        def close(self):
            pass
    monkeypatch.setattr(tqdm.auto, "tqdm", CountingBar)
    v = np.random.default_rng(2).normal(size=h.hidden_size).astype(np.float32)
    P.ablation_sweep(h, pair[1], v, P.AblationSweep(windows=3, layers=[0]), progress=True)
    assert [(b.total, b.n) for b in bars] == [(3, 3)]
