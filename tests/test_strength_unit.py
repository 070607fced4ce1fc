"""One strength unit (issue 26, item 5): the layer's mean residual norm, defined once in
`workbench.analysis.strength`, is the unit of every path that steers: the verdict bench, the
evaluation presets and the widgets' Backend, whatever made the direction."""
from __future__ import annotations

import numpy as np
import pytest

import workbench as wb
from widgets import Backend, Collection, SteerRequest
from widgets.backend import unit_vector
from workbench.analysis import strength
from workbench.analysis.directions import from_class_means, from_pca
from workbench.analysis.evaluation.presets import logistic_probe, workbench_default
from workbench.analysis.evaluation.verdicts import SteeringBench, VerdictPlan
from workbench.errors import BadInputError
from workbench.runtime.settings import GenerationSettings

PLAN = VerdictPlan(prompts=("jazz music", "rock music"), seeds=(0, 1), settings=GenerationSettings(duration_s=0.5),
                   strengths=(1.0,))


@pytest.fixture
def tiny():
    return wb.random_model("tiny")


def pooled_data(handle, layer, n=8, seed=0):
    rng = np.random.default_rng(seed)
    labels = np.repeat(["jazz", "rock"], n // 2)
    X = rng.normal(size=(n, handle.hidden_size)) * 3 + 5 * np.where(labels == "rock", 1, -1)[:, None]
    return {layer: X}, labels


def test_the_meter_is_the_definition(tiny):
    """Golden: the mean L2 norm of every captured per-step conditional row equals the meter's value."""
    pairs = [("jazz music", 0), ("rock music", 1)]
    _, norms = strength.measure_unsteered(tiny, pairs, GenerationSettings(duration_s=0.5))
    res = wb.generate(tiny, [p for p, _ in pairs], seeds=[s for _, s in pairs], duration_s=0.5, guidance_scale=3.0,
                      capture=wb.CaptureSpec(sites=("resid",), pooling="none", rows="cond"))
    for layer in range(tiny.n_layers):
        steps = np.concatenate([np.asarray(a) for a in res.activations[("resid", layer)]])
        assert norms[layer] == pytest.approx(float(np.linalg.norm(steps, axis=1).mean()), rel=1e-4)
        pooled = np.stack([np.asarray(a).mean(0) for a in res.activations[("resid", layer)]])
        assert float(np.linalg.norm(pooled, axis=1).mean()) < norms[layer]  # pooled is another, smaller number


def test_the_meter_reads_the_same_in_both_loops_and_over_batches(tiny):
    """The meter's read edits count each step once in the transformers loop too (its prefill runs twice),
    and keep counting over several batches of one call, without pushing generate off the kernel."""
    prompts, seeds = ["jazz music", "rock music", "jazz music"], (0, 1, 2)
    by_loop = {}
    for loop, batch_size in (("kernel", 1), ("kernel", 3), ("transformers", 2)):
        meter = strength.ResidualNormMeter(tiny, "resid")
        settings = GenerationSettings(duration_s=0.3, seeds=seeds, batch_size=batch_size, decoder_loop=loop)
        res = wb.generate(tiny, prompts, settings, edits=meter.edits())
        assert res.decoder_loop == loop and res.fallback_reason is None
        by_loop[(loop, batch_size)] = meter.norms()
    reference = by_loop[("kernel", 3)]
    for norms in by_loop.values():
        assert norms == pytest.approx(reference, rel=1e-5)


def test_every_path_gives_the_same_unit(tiny):
    layer = 1
    unit = SteeringBench(tiny, PLAN).mean_residual_norm(layer)  # the bench measures first: it is recorded
    assert strength.recorded(tiny).source == "SteeringBench twins"
    assert strength.mean_residual_norm(tiny, layer) == unit
    mean_by_layer, labels = pooled_data(tiny, layer)
    for preset in (workbench_default, logistic_probe):
        method = preset(mean_by_layer, labels, layers=(layer,), handle=tiny)
        assert method.strength_unit[layer] == unit and method.absolute_strength(layer, 0.5) == 0.5 * unit
    col = Collection(acts={("resid", layer): mean_by_layer[layer]}, labels=list(labels), texts=[""] * 8, clips=[])
    be = Backend(tiny, col)
    assert be.strength_unit(layer) == be.known_strength_unit(layer) == unit
    # whatever made the direction, and whatever its length, strength 2 adds 2 x unit along a unit vector
    X = mean_by_layer[layer]
    makers = [from_class_means(X, labels, "rock", model_id=tiny.model_id, layer=layer, normalize="none"),
              from_class_means(X, labels, "rock", model_id=tiny.model_id, layer=layer, normalize="mean_norm"),
              from_pca(X, labels, "rock", model_id=tiny.model_id, layer=layer),
              np.arange(tiny.hidden_size, dtype=np.float32) * 7.0]
    for direction in makers:
        spec = be.steering_spec(SteerRequest("jazz music", layers=(layer,), strength=2.0, direction=direction))
        (term,) = spec.terms
        assert term.strength == pytest.approx(2.0 * unit)
        assert float(term.vector.norm()) == pytest.approx(1.0, abs=1e-5)
    # two layers: each its own unit
    spec = be.steering_spec(SteerRequest("jazz music", layers=(0, layer), strength=1.0, direction=makers[3]))
    assert [t.strength for t in spec.terms] == [strength.mean_residual_norm(tiny, 0), unit]
    # mode norm_relative: the strength is already relative, no unit
    spec = be.steering_spec(SteerRequest("jazz music", layers=(layer,), strength=0.5, mode="norm_relative",
                                         direction=makers[3]))
    assert spec.terms[0].strength == 0.5


def test_the_first_measurement_stays_the_unit(tiny):
    col = Collection.generate(tiny, {"jazz": ["jazz music"], "rock": ["rock music"]}, n_per_label=2,
                              settings=GenerationSettings(duration_s=0.5))
    first = strength.recorded(tiny)
    assert first.source == "Collection.generate" and first.n_clips == 4 and len(col.labels) == 4
    # the collection's clips are measured as any unsteered clips are
    _, norms = strength.measure_unsteered(tiny, [("jazz music", 0), ("jazz music", 1), ("rock music", 2),
                                                 ("rock music", 3)], GenerationSettings(duration_s=0.5))
    assert first.norms == pytest.approx(norms, rel=1e-4)
    bench = SteeringBench(tiny, PLAN)  # other prompts: the bench reports its own twins' norm ...
    bench.twins()
    assert strength.recorded(tiny) is first  # ... but the session's unit does not move
    assert strength.mean_residual_norm(tiny, 1) == first.norms[1]


def test_measured_once_when_nothing_measured_it(tiny):
    assert strength.known_mean_residual_norm(tiny, 0) is None
    value = strength.mean_residual_norm(tiny, 0, settings=GenerationSettings(duration_s=0.5), prompts=("jazz music",),
                                        seeds=(0,))
    assert value > 0 and strength.known_mean_residual_norm(tiny, 0) == value
    assert strength.recorded(tiny).source == "mean_residual_norm"
    strength.forget(tiny)
    assert strength.known_mean_residual_norm(tiny, 0) is None
    other = wb.random_model("tiny")  # another model object: another record
    assert strength.recorded(other) is None


def test_the_unit_is_measured_with_the_settings_whole(tiny):
    """The twins and the unit's clips once took only duration and guidance (sampling at the defaults, so a
    verdict plan's temperature was refused): the settings now travel whole, greedy decoding included."""
    greedy = GenerationSettings(duration_s=0.5, temperature=0.0, batch_size=1)
    clips, _ = strength.measure_unsteered(tiny, [("jazz music", 0), ("jazz music", 1)], greedy)
    assert len(clips) == 2 and np.array_equal(clips[0].codes, clips[1].codes)  # greedy: the seed does not matter
    sampled, _ = strength.measure_unsteered(tiny, [("jazz music", 0), ("jazz music", 1)],
                                            GenerationSettings(duration_s=0.5))
    assert not np.array_equal(sampled[0].codes, sampled[1].codes)
    plan = VerdictPlan(prompts=("jazz music",), seeds=(0, 1), settings=greedy, strengths=(1.0,))
    twins = SteeringBench(tiny, plan).twins()
    reference = wb.generate(tiny, ["jazz music"] * 2, greedy.replace(seeds=(0, 1), batch_size=2)).clips
    assert all(np.array_equal(t.codes, r.codes) for t, r in zip(twins, reference))
    assert np.array_equal(twins[0].codes, twins[1].codes)
    with pytest.raises(BadInputError, match="leave settings.seeds at 0"):
        strength.measure_unsteered(tiny, [("jazz music", 0)], GenerationSettings(seeds=3))
    with pytest.raises(BadInputError, match="leave settings.seeds at 0"):
        strength.mean_residual_norm(tiny, 0, settings=GenerationSettings(seeds=(1,)))


def test_a_preset_without_a_model_warns(tiny):
    mean_by_layer, labels = pooled_data(tiny, 1)
    with pytest.warns(FutureWarning, match="pass handle=the model"):
        method = workbench_default(mean_by_layer, labels, layers=(1,))
    assert method.strength_unit[1] > 0


def test_unit_records_refuse_nothing_measured(tiny):
    with pytest.raises(BadInputError, match="no usable"):
        strength.record(tiny, {0: float("nan")})
    assert strength.unit_text(5.634, "resid", 3) == "x the mean residual norm at resid L3 (5.63)"
    assert unit_vector([3.0, 4.0]).tolist() == pytest.approx([0.6, 0.8])
