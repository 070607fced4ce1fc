"""Steering verdicts: a random push cannot pass, a real effect does, collapse is flagged."""
import hashlib

import numpy as np
import pytest

from workbench.analysis.evaluation.collapse import (
    LevelCurve,
    clip_quality,
    code_stats,
    cross_clip_similarity,
    is_collapsed,
    measure_level_curve,
)
from workbench.analysis.evaluation.verdicts import (
    Reader,
    SteeringBench,
    VerdictPlan,
    summarise,
    verdict_sentence,
)
from workbench.errors import BadInputError, DirectionMismatchError
from workbench.frame_comb import comb_share
from workbench.runtime.clip import Clip
from workbench.runtime.settings import GenerationSettings

SR = 8000
HIDDEN = 64
PERIOD = 160


def _seed_of(*parts) -> int:
    return int.from_bytes(hashlib.sha1(repr(parts).encode()).digest()[:4], "little")


class _Handle:
    """What a bench reads of a model handle."""

    hidden_size, n_layers, samples_per_frame, model_id = HIDDEN, 2, PERIOD, "constructed"


class ConstructedSource:
    """A tiny world where the level slope (dB over the clip) of a clip pushed along v moves by
    `gain` x strength x <v, u>: the concept u provably moves a DSP reading, other directions move it
    by their projection on u. Every push also changes the clip's own "sampling" (a chaos term), as
    steering a real model changes the codes it samples."""

    def __init__(self, u, gain_db=3.0, chaos_db=1.0):
        self.u = np.asarray(u, np.float64) / np.linalg.norm(u)
        self.gain_db, self.chaos_db = gain_db, chaos_db

    def _clip(self, prompt, seed, slope_db, codes_seed):
        rng = np.random.default_rng(_seed_of(prompt, seed))
        noise = rng.normal(size=SR * 2)
        t = np.linspace(0, 1, noise.size)
        audio = noise * 10 ** ((slope_db * t) / 20)
        codes = np.random.default_rng(codes_seed).integers(0, 256, size=(4, 100))
        return Clip(audio.astype(np.float32), SR, codes=codes, prompt=prompt, seed=seed)

    def _base(self, prompt, seed):
        return np.random.default_rng(_seed_of("base", prompt, seed)).normal(0, 2.0)

    def twins(self, pairs):
        clips = [self._clip(p, s, self._base(p, s), _seed_of("codes", p, s)) for p, s in pairs]
        return clips, {0: 1.0, 1: 1.0}

    def steered(self, pairs, layer, absolute_strength, units):
        out = []
        for (p, s), v in zip(pairs, units):
            key = hashlib.sha1(np.asarray(v, np.float32).tobytes()).hexdigest()
            chaos = np.random.default_rng(_seed_of("chaos", p, s, key, absolute_strength)).normal(0, self.chaos_db)
            slope = self._base(p, s) + self.gain_db * absolute_strength * float(v @ self.u) + chaos
            out.append(self._clip(p, s, slope, _seed_of("codes", p, s, key)))
        return out


def _level_slope(audios, sr):
    out = []
    for a in audios:
        blocks = np.asarray(a, np.float64)[: len(a) // 400 * 400].reshape(-1, 400)
        level = 10 * np.log10((blocks ** 2).mean(1) + 1e-12)
        x = np.linspace(0, 1, len(level))
        out.append(np.polyfit(x, level, 1)[0])
    return np.array(out)


LOUDER = Reader("dynamics", "level_slope", ("crescendo", "diminuendo"), _level_slope,
                lambda v, t: v if t == "crescendo" else -v, unit="dB")
PLAN = VerdictPlan(prompts=("a", "b", "c"), seeds=(0, 1, 2, 3), strengths=(1.0,), n_random=16, random_seed=7)


def _bench(u):
    return SteeringBench(_Handle(), PLAN, source=ConstructedSource(u))


def test_a_direction_that_provably_moves_the_reading_is_beyond_random():
    u = np.random.default_rng(0).normal(size=HIDDEN)
    effect = _bench(u).measure(LOUDER, {"crescendo": u, "diminuendo": -u}, layer=0)
    for target in ("crescendo", "diminuendo"):
        v = effect.verdict[target]
        assert v["beyond_random"], v
        assert v["effect"] > v["random_p95"] and v["order_rate"] == 1.0 and v["collapsed_share"] == 0.0
        lo, hi = v["effect_ci"]
        assert lo <= v["effect"] <= hi
    assert effect.beyond_random_all
    assert "beyond random." in verdict_sentence("dynamics", "crescendo", effect.verdict["crescendo"], "dB")


def test_random_directions_posing_as_the_concept_are_not_beyond_random():
    u = np.random.default_rng(0).normal(size=HIDDEN)
    bench = _bench(u)  # one bench: the random clips are shared, as for concepts at one layer
    passed = []
    for i in range(20):
        fake = np.random.default_rng(1000 + i).normal(size=HIDDEN)
        passed.append(bench.measure(LOUDER, {"crescendo": fake}, layer=0).verdict["crescendo"]["beyond_random"])
    assert sum(passed) <= 1, f"{sum(passed)} of 20 random directions passed as concepts"


def test_random_clips_are_shared_and_each_has_its_own_direction():
    u = np.random.default_rng(0).normal(size=HIDDEN)
    bench = _bench(u)
    effect = bench.measure(LOUDER, {"crescendo": u}, layer=0)
    n_pairs = len(PLAN.pairs)
    assert bench.n_generated == n_pairs * 4  # twins, +v, -v, random
    rand = effect.clips[effect.clips.arm == "random"]
    assert rand["random_direction"].nunique() == min(n_pairs, PLAN.n_random)
    bench.measure(LOUDER, {"diminuendo": -u}, layer=0)  # -u's +v and -v clips, and the random ones, exist
    assert bench.n_generated == n_pairs * 4


def test_collapsed_steered_clips_fail_the_verdict():
    u = np.random.default_rng(0).normal(size=HIDDEN)

    class Collapsing(ConstructedSource):
        def steered(self, pairs, layer, absolute_strength, units):
            clips = super().steered(pairs, layer, absolute_strength, units)
            for c in clips:
                c.codes = np.zeros_like(c.codes)  # a drone: one code, repeated
            return clips

    effect = SteeringBench(_Handle(), PLAN, source=Collapsing(u)).measure(LOUDER, {"crescendo": u}, layer=0)
    v = effect.verdict["crescendo"]
    assert v["collapsed_share"] == 1.0 and not v["beyond_random"]
    assert "collapsed" in verdict_sentence("dynamics", "crescendo", v)


class Buzzing(ConstructedSource):
    """Pushes along u add a buzz at the frame rate (a tone of period `PERIOD` under the clip's own envelope, so the
    level slope the reader hears is untouched) and keep their codes as varied as their twin's: a drone of varied
    codes, which the code rule cannot see."""

    def steered(self, pairs, layer, absolute_strength, units):
        clips = super().steered(pairs, layer, absolute_strength, units)
        tone = np.sin(2 * np.pi * np.arange(SR * 2) / PERIOD)
        for c, v in zip(clips, units):
            if float(v @ self.u) > 0.5 * np.linalg.norm(v):  # toward the concept, not a random or opposite push
                noise = np.random.default_rng(_seed_of(c.prompt, c.seed)).normal(size=c.waveform.size)
                envelope = c.waveform / noise  # the clip is its pair's noise under this envelope
                c.waveform = (c.waveform + envelope * tone).astype(np.float32)
        return clips


def test_steered_clips_that_buzz_at_the_frame_rate_fail_the_verdict():
    u = np.random.default_rng(0).normal(size=HIDDEN)
    effect = SteeringBench(_Handle(), PLAN, source=Buzzing(u)).measure(LOUDER, {"crescendo": u}, layer=0)
    v, row = effect.verdict["crescendo"], effect.summary.iloc[0]
    assert v["p_value"] < 0.01 and v["order_rate"] == 1.0 and v["collapsed_share"] == 0.0  # it would pass ...
    assert v["buzzing_share"] == 1.0 and row["random_buzzing_share"] == 0.0  # ... but every pushed clip buzzes
    assert effect.clips[effect.clips.arm == "plus"]["comb_share"].min() > 0.15
    assert not v["beyond_random"]
    assert "buzz" in verdict_sentence("dynamics", "crescendo", v, "dB")
    plain = _bench(u).measure(LOUDER, {"crescendo": u}, layer=0).verdict["crescendo"]
    assert plain["buzzing_share"] == 0.0 and plain["beyond_random"]  # the same world without the buzz passes


def test_a_constant_code_clip_is_collapsed_and_a_twin_against_itself_is_not():
    rng = np.random.default_rng(3)
    twin = rng.integers(0, 256, size=(4, 200))
    assert is_collapsed(code_stats(np.full((4, 200), 7)), code_stats(twin)) is True
    assert is_collapsed(code_stats(twin), code_stats(twin)) is False
    assert is_collapsed(code_stats(twin), None) is None


CURVE = LevelCurve(gains_db=(0.0, -6.0, -12.0, -20.0), distinct_ratio=(1.0, 0.67, 0.34, 0.11),
                   repeat_ratio=(1.0, 1.67, 3.08, 5.2), n_clips=20)


def test_the_level_curve_excuses_what_the_level_does_and_no_more():
    twin = dict(distinct_codes=80.0, repeat_rate=0.13)
    quiet_music = dict(distinct_codes=27.0, repeat_rate=0.42)  # clean music 12 dB down through the codec
    assert is_collapsed(quiet_music, twin) is True  # the plain rule's false positive
    assert is_collapsed(quiet_music, twin, -12.0, CURVE) is False
    assert is_collapsed(dict(distinct_codes=8.0, repeat_rate=0.7), twin, -12.0, CURVE) is True  # a quiet drone
    assert is_collapsed(dict(distinct_codes=15.0, repeat_rate=0.6), twin, -0.2, CURVE) is True  # a drone at level
    # louder than the twin, or an unknown level: the plain rule; below the quietest gain: the quietest's figures
    assert CURVE.expected(3.0) == (1.0, 1.0) and CURVE.expected(None) == (1.0, 1.0)
    assert CURVE.expected(-60.0) == CURVE.expected(-20.0) == (0.11, 5.2)
    assert CURVE.expected(-9.0) == pytest.approx((0.505, 2.375))
    with pytest.raises(BadInputError, match="start at 0"):
        LevelCurve(gains_db=(-3.0, 0.0), distinct_ratio=(1, 1), repeat_ratio=(1, 1), n_clips=1)
    with pytest.raises(BadInputError, match="one distinct and one repeat ratio"):
        LevelCurve(gains_db=(0.0, -3.0), distinct_ratio=(1,), repeat_ratio=(1, 1), n_clips=1)


def test_measure_level_curve_reads_a_codec_that_loses_codes_when_quiet():
    def encode(audios):  # a "codec" that quantises in 1/64 steps: quieter audio lands on fewer codes
        return np.stack([np.clip(np.round(np.asarray(a) * 64), -128, 127).astype(int).reshape(2, -1)
                         for a in audios])

    rng = np.random.default_rng(0)
    curve = measure_level_curve(encode, [rng.uniform(-1, 1, size=400) for _ in range(4)])
    assert curve.distinct_ratio[0] == 1.0 and curve.repeat_ratio[0] == 1.0 and curve.n_clips == 4
    assert all(b < a for a, b in zip(curve.distinct_ratio, curve.distinct_ratio[1:]))
    assert curve.repeat_ratio[-1] > 2.0
    with pytest.raises(BadInputError, match="at least one clip"):
        measure_level_curve(encode, [])


class QuieterMusic(ConstructedSource):
    """The push makes every clip 12 dB quieter and leaves it music: its codes lose what `CURVE` says the codec
    loses at -12 dB, no more. `level_curve` is the codec's measured curve."""

    def steered(self, pairs, layer, absolute_strength, units):
        clips = super().steered(pairs, layer, absolute_strength, units)
        for c in clips:
            c.waveform = (c.waveform * 10 ** (-12 / 20)).astype(np.float32)
            c.codes = c.codes % 28  # ~0.34 of the twin's distinct codes (about 83 of 100 frames)
        return clips

    def level_curve(self, twins):
        return CURVE


def test_a_push_that_only_makes_music_quieter_is_not_called_collapsed():
    u = np.random.default_rng(0).normal(size=HIDDEN)
    effect = SteeringBench(_Handle(), PLAN, source=QuieterMusic(u)).measure(LOUDER, {"crescendo": u}, layer=0)
    row = effect.summary.iloc[0]
    assert row["plain_collapsed_share"] == 1.0 and row["collapsed_share"] == 0.0
    assert row["level_change_db_median"] < -9.0  # 12 dB down, give or take the slope the push adds
    assert effect.verdict["crescendo"]["beyond_random"]  # a level slope does not move with the level
    assert abs(effect.verdict["crescendo"]["level_only_effect"]) < 0.01
    assert effect.to_dict()["level_curve"]["gains_db"] == list(CURVE.gains_db)


def _mean_level(audios, sr):
    return np.array([10 * np.log10(np.mean(np.asarray(a, np.float64) ** 2)) for a in audios])


class LevelOnly(ConstructedSource):
    """The push along u changes nothing but the level: 3 dB x strength x <v, u> (a level reader must notice)."""

    def steered(self, pairs, layer, absolute_strength, units):
        twins, _ = self.twins(pairs)
        for c, v in zip(twins, units):
            c.waveform = (c.waveform * 10 ** (3.0 * absolute_strength * float(v @ self.u) / 20)).astype(np.float32)
        return twins


def test_an_effect_the_level_alone_explains_is_not_beyond_random():
    u = np.random.default_rng(0).normal(size=HIDDEN)
    loud = Reader("loudness", "mean_level", ("loud", "soft"), _mean_level, lambda v, t: v if t == "loud" else -v,
                  unit="dB")
    effect = SteeringBench(_Handle(), PLAN, source=LevelOnly(u)).measure(loud, {"loud": u}, layer=0)
    v = effect.verdict["loud"]
    assert v["p_value"] < 0.01 and v["order_rate"] == 1.0 and v["collapsed_share"] == 0.0  # it would pass ...
    assert v["level_only_effect"] == pytest.approx(v["effect"], rel=1e-3)  # ... but the level alone does it
    assert not v["beyond_random"]
    assert "level change alone" in verdict_sentence("loudness", "loud", v, "dB")


def test_the_teaching_codec_level_curve_passes_both_controls():
    """On the shipped teaching model: clean music 12 dB quieter is not collapsed against its louder copy, and
    clips pushed 1x the mean residual norm along random directions (the drones; level about unchanged) are."""
    import workbench as wb
    from workbench.analysis.evaluation.verdicts import ModelClips
    from workbench.runtime.teacher_forcing import encode_audio
    from workbench.toy import synth_v2

    handle = wb.load_model()
    audio = [np.asarray(a, np.float32) for a in synth_v2.synth_dataset(2, seed=4242)[0][:6]]
    plan = VerdictPlan(prompts=("rock music", "jazz music"), seeds=(0, 1), strengths=(1.0,),
                       settings=GenerationSettings(duration_s=2.0, batch_size=4))
    bench = SteeringBench(handle, plan)
    twins = bench.twins()
    curve = bench.level_curve()
    assert curve == ModelClips(handle, plan).level_curve(twins) and curve.n_clips == len(twins)
    assert curve.distinct_ratio[curve.gains_db.index(-12.0)] < 0.6  # the codec does lose codes when quiet

    def stats(clips):
        return [code_stats(c) for c in encode_audio(handle, clips, handle.sample_rate_hz).numpy()]

    loud, quiet = stats(audio), stats([a * np.float32(10 ** (-12 / 20)) for a in audio])
    assert sum(is_collapsed(q, t) for q, t in zip(quiet, loud)) >= 4  # the plain rule calls quiet music a drone
    assert not any(is_collapsed(q, t, -12.0, curve) for q, t in zip(quiet, loud))
    pushed = bench.random(0, 1.0)
    flags = []
    for clip, twin in zip(pushed, twins):
        q, t = bench.quality(clip), bench.quality(twin)
        flags.append(is_collapsed(q, t, 20 * np.log10(q["rms"] / t["rms"]), curve))
    assert sum(flags) >= 3, flags


def test_comb_share_separates_a_frame_rate_buzz_from_music():
    from workbench.toy.synth_v2 import synth_clip

    sr, period = 32000, 640
    clean = [comb_share(synth_clip(g, seed=5), sr, period) for g in ("rock", "jazz", "classical", "electronic")]
    assert max(clean) <= 0.12, clean
    frame = np.random.default_rng(0).normal(size=period)
    buzz = np.tile(frame, 100)  # every frame decodes to the same waveform
    assert comb_share(buzz, sr, period) > 0.99
    q = clip_quality(buzz, sr, period, codes=np.zeros((4, 100), int))
    assert q["distinct_codes"] == 1 and q["repeat_rate"] == 1.0 and q["peak"] > 0


def test_cross_clip_similarity_is_high_for_one_drone_and_low_for_varied_clips():
    rng = np.random.default_rng(0)
    varied = rng.normal(size=(6, 10))
    drone = np.tile(rng.normal(size=10), (6, 1)) + 1e-3 * rng.normal(size=(6, 10))
    prompts, seeds = list("aabbcc"), [0, 1] * 3
    center = varied.mean(0)
    assert cross_clip_similarity(drone, prompts, seeds, center=center) > 0.95
    assert abs(cross_clip_similarity(varied, prompts, seeds, center=center)) < 0.5


@pytest.mark.parametrize("bad", [dict(strengths=(0.0,)), dict(strengths="1"), dict(strengths=(float("nan"),)),
                                 dict(n_random=8), dict(prompts=[]), dict(seeds="12"), dict(settings={"batch_size": 0}),
                                 dict(settings=GenerationSettings(seeds=3)), dict(push="sine")])
def test_a_bad_plan_is_refused_with_a_workbench_error(bad):
    args = dict(prompts=("a",), seeds=(0,)) | bad
    with pytest.raises(BadInputError):
        VerdictPlan(**args)


def test_directions_of_another_model_layer_or_size_are_refused():
    from workbench.analysis.directions import Direction

    u = np.random.default_rng(0).normal(size=HIDDEN)
    bench = _bench(u)
    with pytest.raises(DirectionMismatchError):
        bench.measure(LOUDER, {"crescendo": np.ones(HIDDEN + 1)}, layer=0)
    with pytest.raises(BadInputError):
        bench.measure(LOUDER, {"crescendo": np.full(HIDDEN, np.nan)}, layer=0)
    other = Direction(vector=u.astype(np.float32), model_id="another", layer=0, site="resid", method="test")
    with pytest.raises(DirectionMismatchError):
        bench.measure(LOUDER, {"crescendo": other}, layer=0)


def test_summarise_corrects_for_the_strengths_tried():
    import pandas as pd

    rows = [dict(target="t", strength=s, arm=arm, pair=i, shift=sh, reading=sh, collapsed=False)
            for s in (1.0, 2.0) for i in range(10)
            for arm, sh in (("plus", 1.0 + i * 0.01), ("minus", -1.0), ("random", (i - 5) * 0.1))]
    one = summarise(pd.DataFrame(rows), n_strengths=1)
    two = summarise(pd.DataFrame(rows), n_strengths=2)
    assert np.allclose(two["p_value"], np.minimum(1.0, 2 * one["p_value"]))


def test_the_summary_says_how_much_quieter_the_pushed_clips_are():
    """Codes are not gain-invariant (quiet music uses few codes and counts as collapsed), so the summary gives
    the median level change of the +v and the random clips against their twins."""
    import pandas as pd

    rows = [dict(target="t", strength=1.0, arm=arm, pair=i, shift=sh, reading=sh, collapsed=arm == "plus",
                 rms=0.1 * 10 ** (db / 20), twin_rms=0.1)
            for i in range(9)
            for arm, sh, db in (("plus", 1.0, -12.0 + i), ("minus", -1.0, 0.0), ("random", 0.0, -2.0))]
    row = summarise(pd.DataFrame(rows), n_strengths=1).iloc[0]
    assert row["level_change_db_median"] == pytest.approx(-8.0)
    assert row["random_level_change_db_median"] == pytest.approx(-2.0)
    bare = summarise(pd.DataFrame([{k: v for k, v in r.items() if k not in ("rms", "twin_rms")} for r in rows]), 1)
    assert "level_change_db_median" not in bare  # rows without levels (a custom source) are summarised as before

    effect = _bench(np.eye(HIDDEN)[0]).measure(LOUDER, {"crescendo": np.eye(HIDDEN)[0]}, layer=0)
    plus = effect.clips[effect.clips.arm == "plus"]
    expected = np.median(20 * np.log10(plus.rms / plus.twin_rms))
    assert effect.summary.iloc[0]["level_change_db_median"] == pytest.approx(expected) and expected != 0


@pytest.mark.slow
def test_the_evaluation_report_gives_every_method_a_verdict_per_target():
    import workbench as wb
    from workbench.analysis.evaluation.methods import Method
    from workbench.analysis.evaluation.report import method_verdicts
    from workbench.toy.synth_v2 import GENRES

    h = wb.random_model("tiny")
    rng = np.random.default_rng(0)
    methods = {name: Method(name, {(g, 1): rng.normal(size=h.hidden_size) for g in GENRES}) for name in ("a", "b")}
    out = method_verdicts(h, methods, 1, fast=True)
    assert set(out["verdict"]) == {"a", "b"} and out["verdict_reader"] == "clean_genre"
    for by_target in out["verdict"].values():
        assert set(by_target) == set(GENRES)
        for v in by_target.values():
            assert {"effect", "effect_ci", "random_p95", "p_value", "order_rate", "collapsed_share", "off_target",
                    "beyond_random", "strength"} <= set(v)
    # twins and random clips are shared: 8 pairs x (twin + random + 2 methods x 4 targets x 2 signs)
    assert out["verdict_n_clips"] == 8 * (2 + 2 * 4 * 2)


def test_a_ramp_plan_pushes_from_minus_to_plus_over_the_clip_and_ramps_the_random_clips_too(monkeypatch):
    """VerdictPlan(push="ramp"): for order concepts (a crescendo is soft then loud), every steered and random
    clip is pushed with a strength going from -s to +s over the clip's frames (it ends pushed along +v)."""
    import workbench as wb
    from workbench.analysis.evaluation import verdicts as verdicts_module
    from workbench.analysis.evaluation.verdicts import SteeringEffect

    h = wb.load_model()  # the teaching model: a tiny random model's codes do not move under any push
    settings = GenerationSettings(duration_s=0.5)
    ramp = SteeringBench(h, VerdictPlan(["jazz"], [0, 1], strengths=(0.5,), push="ramp", settings=settings))
    constant = SteeringBench(h, VerdictPlan(["jazz"], [0, 1], strengths=(0.5,), settings=settings))
    seen = []
    real = verdicts_module.generate

    def spy(handle, prompts, batch, edits=()):
        seen.extend(edits)
        return real(handle, prompts, batch, edits=edits)

    monkeypatch.setattr(verdicts_module, "generate", spy)
    unit = np.random.default_rng(0).normal(size=h.hidden_size).astype(np.float32)
    unit /= np.linalg.norm(unit)
    ramped = ramp.steered(0, 0.5, unit)
    absolute = 0.5 * ramp.mean_residual_norm(0)
    (push,) = seen
    steps = round(0.5 * h.frame_rate_hz)
    assert push.strength == pytest.approx(-absolute) and push.schedule.kind == "ramp"
    assert push.schedule.ramp_steps == steps
    assert push.strength_at(0) == pytest.approx(-absolute)  # what the runtime applies at each step
    assert push.strength_at(steps - 1) == pytest.approx(absolute)
    ramp.random(0, 0.5)
    assert seen[-1].schedule is not None and seen[-1].schedule.ramp_to == pytest.approx(absolute)
    flat = constant.steered(0, 0.5, unit)
    assert seen[-1].schedule is None  # the constant plan: the paper's push
    assert any(not np.array_equal(a.mono, b.mono) for a, b in zip(ramped, flat))
    assert SteeringEffect("c", "r", 0, 1.0, None, None, push="ramp").to_dict()["push"] == "ramp"
