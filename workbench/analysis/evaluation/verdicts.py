"""Steering verdicts that a random push cannot fake: the one steering-effect measurement.

For a direction per target (a concept's classes or poles), a site and layer, strengths (multiples of
the layer's mean residual norm, `SteeringBench.mean_residual_norm`), prompts x seeds and a reader, it
generates, for every (prompt, seed) pair:

- the unsteered **twin**;
- the clip pushed along **+v** and the clip pushed along **-v** (same prompt and seed);
- a **random** clip: pushed along a random unit direction of the same norm, each pair with its own
  direction drawn from a seeded pool of `VerdictPlan.n_random` (>= 16), so the null has as many clips
  as the concept. Random clips at one site, layer, strength and prompt set are shared by every concept
  and target measured there (the bench caches them, and every clip by its direction).

A reader gives each clip a *reading toward the target* (`Reader.toward`: the probability of the target
class, or a signed continuous value such as BPM or a level slope); a clip's **shift** is its reading
minus its twin's. Per target and strength (`summarise`):

- ``effect``: the mean shift of the +v clips, ``effect_ci`` its bootstrap 95% interval over pairs;
- ``random_p95``: the 95th percentile of the random clips' shifts (the band a UI draws);
- ``p_value``: one-sided Mann-Whitney test of the +v shifts against the random shifts, Bonferroni-
  corrected over the strengths tried;
- ``order_rate``: share of pairs where +v reads further toward the target than -v (ties count half);
- ``collapsed_share``: share of +v clips whose codes collapsed against their twin's, once the twin's code
  figures are scaled by what the clip's level change alone does to them on this model's codec
  (`workbench.analysis.evaluation.collapse`: the same clean music 12 dB quieter is not a drone);
  ``plain_collapsed_share`` without that scaling;
- ``buzzing_share``: share of +v clips that buzz at the codec's frame rate against their twin
  (`workbench.analysis.evaluation.collapse.is_buzzing`: comb share at least 0.15 and twice the twin's), which a
  drone made of varied codes does without collapsing; ``random_buzzing_share`` the random clips';
- ``level_change_db_median`` / ``random_level_change_db_median``: the median level of the +v / random clips
  against their twins, in dB;
- ``level_only_effect``: the mean shift of each twin played at its +v clip's level (its audio scaled to
  that RMS). A push that only made the clips quieter or louder moves the reading this much, so it must
  explain at most `MAX_LEVEL_ONLY_FRACTION` of ``effect``;
- ``off_target``: how far every other reader's reading moved on the +v clips (mean absolute change of
  its reading: a probability's total variation for class readers, the unit's change otherwise);
- ``beyond_random``: ``p_value < ALPHA`` and ``order_rate >= MIN_ORDER_RATE`` and
  ``collapsed_share <= MAX_COLLAPSED_SHARE`` and ``buzzing_share <= MAX_BUZZING_SHARE`` and
  ``level_only_effect <= MAX_LEVEL_ONLY_FRACTION x effect``.

`verdicts` reports each target at the **lowest strength that is beyond random**, else at the strength
with the smallest ``p_value`` (``strength`` says which). Strength 0 is not a control (it is the twin,
bit for bit, by construction): it is never measured here.

    >>> import numpy as np
    >>> rows = [dict(target="up", strength=1.0, arm=arm, pair=i, shift=s, reading=r, collapsed=False)
    ...         for i in range(12) for arm, s, r in (("plus", 1.0 + i / 10, 2.0), ("minus", -1.0, -1.0),
    ...                                                ("random", (i % 5 - 2) / 10, 0.0))]
    >>> import pandas as pd
    >>> summary = summarise(pd.DataFrame(rows), n_strengths=1)
    >>> bool(summary.iloc[0]["beyond_random"]), float(summary.iloc[0]["order_rate"])
    (True, 1.0)
"""
from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from workbench import validation
from workbench.analysis.evaluation.collapse import (
    LevelCurve,
    clip_quality,
    cross_clip_similarity,
    is_buzzing,
    is_collapsed,
    level_change_db,
    logmel_profile,
    measure_level_curve,
)
from workbench.analysis.strength import measure_unsteered
from workbench.analysis.strength import record as record_norms
from workbench.errors import BadInputError, DirectionMismatchError
from workbench.runtime.edits import Edit
from workbench.runtime.generation import generate
from workbench.runtime.settings import GenerationSettings, settings_of
from workbench.runtime.steering import Schedule
from workbench.runtime.teacher_forcing import encode_audio

__all__ = ["ALPHA", "MAX_BUZZING_SHARE", "MAX_COLLAPSED_SHARE", "MAX_LEVEL_ONLY_FRACTION", "MIN_ORDER_RATE",
           "MIN_RANDOM_POOL", "ModelClips",
           "PUSHES", "Reader", "SteeringBench", "SteeringEffect", "VERDICT_SETTINGS", "VerdictPlan", "summarise",
           "verdict_sentence", "verdicts"]

ALPHA = 0.01               # beyond random: the +v shifts beat the random shifts at this (corrected) level,
MIN_ORDER_RATE = 0.75      # +v reads further toward the target than -v in at least 3 pairs of 4,
MAX_COLLAPSED_SHARE = 0.2  # and at most 1 steered clip in 5 collapsed into repeated codes,
MAX_BUZZING_SHARE = 0.2    # and at most 1 in 5 buzzing at the frame rate (`collapse.is_buzzing`),
MAX_LEVEL_ONLY_FRACTION = 0.5  # and the level change alone explains at most half the effect
LEVEL_CURVE_CLIPS = 16     # twins encoded at lower gains to measure the codec's `LevelCurve`
MIN_RANDOM_POOL = 16
PUSHES = ("constant", "ramp")  # VerdictPlan.push: the same strength at every step, or -s to +s over the clip
VERDICT_SETTINGS = GenerationSettings(batch_size=16)  # a VerdictPlan's default: 4 s clips, guidance 3
_POOL_STREAM = 0x7A4D0  # the random pool's own seed stream
VERDICT_KEYS = ("effect", "effect_ci", "random_p95", "p_value", "order_rate", "collapsed_share", "off_target",
                "beyond_random", "strength")


@dataclass(frozen=True)
class Reader:
    """A concept's reader for verdicts: ``read(audios, sample_rate_hz)`` gives one value (or a row of
    class probabilities) per clip; ``toward(values, target)`` how far each reads toward `target`.

    Fit it on clean audio or make it plain DSP: a reader fitted on the model's output hears the model's
    artefacts (see `workbench.toy.clean_readers`).
    """

    concept: str
    name: str
    targets: tuple[str, ...]
    read: Callable
    toward: Callable
    unit: str = ""


@dataclass(frozen=True)
class VerdictPlan:
    """What a verdict generates: every prompt with every seed is one pair.

    strengths: multiples of the layer's mean residual norm (> 0: strength 0 is the twin itself). push:
    ``"constant"`` (the paper's push: the same vector at every step) or ``"ramp"`` (the strength goes linearly
    from -s to +s over the clip, so the clip ends pushed along +v: for a concept that is an order in time, such
    as a crescendo, which a constant push asks for as a state; the random clips are ramped the same way). A
    ramp's direction must point from the target's start to its end (e.g. the target clips' late frames minus
    their early ones): a class mean over whole clips has no sign in time. settings: how
    every clip is generated, twins included (`GenerationSettings`, whole: `workbench.analysis.strength` measures
    the twins with it; default `VERDICT_SETTINGS`: 4 s, guidance 3, batches of 16); its seeds are the pairs'
    (leave them at 0).
    """

    prompts: tuple[str, ...]
    seeds: tuple[int, ...]
    strengths: tuple[float, ...] = (0.5, 1.0, 2.0)
    n_random: int = MIN_RANDOM_POOL
    random_seed: int = 0
    settings: GenerationSettings = VERDICT_SETTINGS
    site: str = "resid"
    n_boot: int = 2000
    push: str = "constant"

    def __post_init__(self):
        object.__setattr__(self, "prompts", tuple(validation.str_list(self.prompts, "prompts")))
        object.__setattr__(self, "seeds", tuple(validation.seeds(self.seeds)))
        if isinstance(self.strengths, (str, bytes)) or not hasattr(self.strengths, "__iter__"):
            raise BadInputError(f"strengths must be a list of numbers > 0, got {self.strengths!r}: "
                                f"e.g. strengths=(0.5, 1.0, 2.0)")
        strengths = [validation.finite_float(s, "strength", low=0.0) for s in self.strengths]
        if not strengths or any(s <= 0 for s in strengths):
            raise BadInputError(f"strengths must be one or more numbers > 0 (multiples of the layer's mean "
                                f"residual norm), got {self.strengths!r}: strength 0 is the twin itself")
        object.__setattr__(self, "strengths", tuple(sorted(set(float(s) for s in strengths))))
        n_random = validation.positive_int(self.n_random, "n_random")
        if n_random < MIN_RANDOM_POOL:
            raise BadInputError(f"n_random={n_random}: draw at least {MIN_RANDOM_POOL} random directions, so no "
                                f"single lucky direction decides the null")
        object.__setattr__(self, "n_random", n_random)
        object.__setattr__(self, "random_seed", validation.non_negative_int(self.random_seed, "random_seed"))
        settings = settings_of(self.settings)
        if settings.seeds not in (0, None):
            raise BadInputError(f"settings.seeds={settings.seeds!r}: a verdict's seeds are VerdictPlan.seeds (every "
                                "prompt with every seed): leave settings.seeds at 0")
        object.__setattr__(self, "settings", settings)
        object.__setattr__(self, "n_boot", validation.positive_int(self.n_boot, "n_boot"))
        object.__setattr__(self, "site", validation.site(self.site))
        object.__setattr__(self, "push", validation.choice(self.push, "push", PUSHES))

    @property
    def pairs(self) -> list[tuple[str, int]]:
        return [(p, s) for p in self.prompts for s in self.seeds]


def _key(vector: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(vector, dtype=np.float32).tobytes()).hexdigest()[:16]


@dataclass
class SteeringEffect:
    """A verdict's evidence: ``clips`` (a row per clip), ``summary`` (a row per target and strength),
    ``verdict`` ({target: the keys of `VERDICT_KEYS`}) and ``beyond_random_all``."""

    concept: str
    reader: str
    layer: int
    mean_residual_norm: float
    clips: pd.DataFrame
    summary: pd.DataFrame
    verdict: dict = field(default_factory=dict)
    level_curve: LevelCurve | None = None
    push: str = "constant"

    @property
    def beyond_random_all(self) -> bool:
        return bool(self.verdict) and all(v["beyond_random"] for v in self.verdict.values())

    def to_dict(self) -> dict:
        return dict(reader=self.reader, layer=self.layer, mean_residual_norm=self.mean_residual_norm,
                    verdict=self.verdict, beyond_random_all=self.beyond_random_all, push=self.push,
                    level_curve=self.level_curve.to_dict() if self.level_curve is not None else None)


class ModelClips:
    """Where a bench's clips come from: `workbench.generate` on a model, steered per row at one layer.

    A bench takes another source with the same two methods (tests build one whose effect is known).
    """

    def __init__(self, handle, plan: VerdictPlan, progress: bool = False):
        self.handle, self.plan, self.progress = handle, plan, progress
        self._bar = None

    def _tick(self, n: int) -> None:
        if self.progress:
            if self._bar is None:
                from tqdm.auto import tqdm

                self._bar = tqdm(desc="verdict clips", unit="clip")
            self._bar.update(n)

    def twins(self, pairs) -> tuple[list, dict]:
        """(unsteered clips, {layer: mean residual norm of the conditional rows over every step}).

        Measured by `workbench.analysis.strength` (the unit's one definition), which also records it for
        this model unless something measured it first.
        """
        settings = self.plan.settings
        clips, norms = measure_unsteered(self.handle, pairs, settings, site=self.plan.site, on_batch=self._tick)
        record_norms(self.handle, norms, site=self.plan.site, n_clips=len(clips), duration_s=settings.duration_s,
                     source="SteeringBench twins", prompts=tuple(p for p, _ in pairs))
        return clips, norms

    def schedule(self, absolute_strength: float) -> Schedule | None:
        """The plan's push over the steps: None (constant) or a ramp from -s to +s over the clip's frames (the
        edit's strength is -s, the schedule's ``ramp_to`` +s)."""
        if self.plan.push == "constant":
            return None
        steps = max(1, int(round(self.plan.settings.duration_s * self.handle.frame_rate_hz)))
        return Schedule(kind="ramp", ramp_to=float(absolute_strength), ramp_steps=steps)

    def level_curve(self, twins: list) -> LevelCurve | None:
        """What the level alone does to this model's codes: `measure_level_curve` on up to `LEVEL_CURVE_CLIPS`
        twins, encoded by the model's own codec. None when the clips carry no codes."""
        if not twins or twins[0].codes is None:
            return None
        handle = self.handle
        chosen = sorted(set(np.linspace(0, len(twins) - 1, min(len(twins), LEVEL_CURVE_CLIPS)).round().astype(int)))

        def encode(audios):
            if handle.audio_channels == 2:
                audios = [np.stack([a, a]) for a in audios]
            return encode_audio(handle, audios, twins[0].sample_rate_hz).cpu().numpy()

        return measure_level_curve(encode, [twins[i].mono for i in chosen])

    def steered(self, pairs, layer: int, absolute_strength: float, units: np.ndarray) -> list:
        """Pair i pushed along units[i] x absolute_strength at `layer` (conditional rows, every step; a
        ``ramp`` plan goes from -absolute_strength to +absolute_strength over the clip's steps)."""
        clips, size = [], self.plan.settings.batch_size
        schedule = self.schedule(absolute_strength)
        for start in range(0, len(pairs), size):
            chunk = pairs[start:start + size]
            strength = absolute_strength if schedule is None else -absolute_strength  # a ramp starts at -s
            push = Edit("add", layer=layer, vector=units[start:start + len(chunk)], strength=strength,
                        rows="cond", schedule=schedule)  # each clip along its own unit
            batch = self.plan.settings.replace(seeds=tuple(s for _, s in chunk), batch_size=len(chunk))
            clips += generate(self.handle, [p for p, _ in chunk], batch, edits=[push]).clips
            self._tick(len(chunk))
        return clips


class SteeringBench:
    """Generates and caches everything verdicts compare: twins, ±v clips, random clips, readings.

    One bench per model and plan: random clips and twins are shared by every concept measured on it.

        >>> import workbench as wb
        >>> plan = VerdictPlan(["jazz"], [0, 1], settings=GenerationSettings(duration_s=0.5))
        >>> bench = SteeringBench(wb.random_model("tiny"), plan)
        >>> bench.mean_residual_norm(0) > 0
        True
    """

    def __init__(self, handle, plan: VerdictPlan, progress: bool = False, source=None):
        if not isinstance(plan, VerdictPlan):
            raise BadInputError(f"plan must be a VerdictPlan, got {type(plan).__name__}: "
                                f"VerdictPlan(prompts=[...], seeds=[...])")
        self.handle, self.plan, self.progress = handle, plan, progress
        self.source = source if source is not None else ModelClips(handle, plan, progress=progress)
        self._twins = None
        self._norms: dict[int, float] = {}
        self._clips: dict[tuple, object] = {}
        self._readings: dict[tuple, object] = {}
        self._quality: dict[int, dict] = {}
        self._level_only: dict[tuple, np.ndarray] = {}  # a reader's reading of a twin at another level
        self._curve: LevelCurve | None = None
        self._curve_measured = False
        self._pool = self._random_pool()
        self.n_generated = 0

    # ------------------------------------------------------------------ generation
    def _random_pool(self) -> np.ndarray:
        # seeded apart from a plain default_rng(seed): a user's own "random" direction made with
        # default_rng(0) must not be the pool's first direction
        rng = np.random.default_rng([self.plan.random_seed, _POOL_STREAM])
        pool = rng.normal(size=(self.plan.n_random, self.handle.hidden_size))
        return (pool / np.linalg.norm(pool, axis=1, keepdims=True)).astype(np.float32)

    @property
    def frame_period(self) -> int:
        return int(round(self.handle.samples_per_frame))

    def twins(self) -> list:
        """The unsteered clip of every pair; also measures every layer's mean residual norm."""
        if self._twins is None:
            clips, self._norms = self.source.twins(self.plan.pairs)
            self.n_generated += len(clips)
            self._twins = clips
        return self._twins

    def level_curve(self) -> LevelCurve | None:
        """The codec's `LevelCurve`, measured once on the twins (None when the source cannot measure one:
        then collapse is judged by the plain rule)."""
        if not self._curve_measured:
            measure = getattr(self.source, "level_curve", None)
            self._curve = measure(self.twins()) if measure is not None else None
            self._curve_measured = True
        return self._curve

    def mean_residual_norm(self, layer: int) -> float:
        """The strength unit: the mean L2 norm of the residual at the plan's site and `layer` over every
        step of the unsteered twins' conditional rows (measured when the twins are generated)."""
        layer = validation.layer_index(layer, self.handle.n_layers)
        self.twins()
        return float(self._norms[layer])

    def _rows(self, layer: int, strength: float, vectors: list[np.ndarray]) -> list:
        """The pairs' clips pushed along unit `vectors` (one per pair) x strength x mean norm, cached."""
        pairs = self.plan.pairs
        keys = [(layer, strength, _key(v), p, s) for v, (p, s) in zip(vectors, pairs)]
        missing = [i for i, k in enumerate(keys) if k not in self._clips]
        if missing:
            absolute = strength * self.mean_residual_norm(layer)
            out = self.source.steered([pairs[i] for i in missing], layer, absolute,
                                      np.stack([vectors[i] for i in missing]))
            self.n_generated += len(out)
            for i, clip in zip(missing, out):
                self._clips[keys[i]] = clip
        return [self._clips[k] for k in keys]

    def steered(self, layer: int, strength: float, unit: np.ndarray) -> list:
        return self._rows(layer, strength, [unit] * len(self.plan.pairs))

    def random(self, layer: int, strength: float) -> list:
        """Pair i pushed along random direction i mod n_random (shared by every concept at this layer)."""
        return self._rows(layer, strength, [self._pool[i % len(self._pool)] for i in range(len(self.plan.pairs))])

    # ------------------------------------------------------------------ reading
    def reading(self, reader: Reader, clips: list) -> np.ndarray:
        out = []
        todo = [c for c in clips if (reader.name, id(c)) not in self._readings]
        if todo:
            values = np.asarray(reader.read([c.mono for c in todo], todo[0].sample_rate_hz))
            for c, v in zip(todo, values):
                self._readings[(reader.name, id(c))] = (c, v)  # the clip is kept so its id stays unique
        for c in clips:
            out.append(self._readings[(reader.name, id(c))][1])
        return np.stack(out)

    def level_only(self, reader: Reader, pairs: list[int], gains: list[float]) -> np.ndarray:
        """Readings of twins `pairs` with their audio scaled by `gains` (cached per reader, pair and gain)."""
        twins = self.twins()
        keys = [(reader.name, i, round(float(g), 6)) for i, g in zip(pairs, gains)]
        todo = [(k, i, g) for k, i, g in zip(keys, pairs, gains) if k not in self._level_only]
        if todo:
            audios = [(twins[i].mono * np.float32(g)).astype(np.float32) for _, i, g in todo]
            values = np.asarray(reader.read(audios, twins[0].sample_rate_hz))
            for (k, _, _), v in zip(todo, values):
                self._level_only[k] = v
        return np.stack([self._level_only[k] for k in keys])

    def quality(self, clip) -> dict:
        if id(clip) not in self._quality:
            q = clip_quality(clip.mono, clip.sample_rate_hz, self.frame_period, codes=clip.codes)
            q["profile"] = logmel_profile(clip.mono, clip.sample_rate_hz)
            self._quality[id(clip)] = (clip, q)
        return self._quality[id(clip)][1]

    # ------------------------------------------------------------------ the measurement
    def measure(self, reader: Reader, directions: dict, layer: int, *, others: tuple = (),
                eligible: dict | None = None, model_id: str | None = None) -> SteeringEffect:
        """Measure every target of `directions` ({target: vector or `Direction`}) at `layer`.

        others: readers of other concepts, for ``off_target``. eligible: {target: one bool per pair}
        to leave out pairs that already are the target (genre prompts of the target genre, say).
        """
        layer = validation.layer_index(layer, self.handle.n_layers)
        if not isinstance(directions, dict) or not directions:
            raise BadInputError("directions must be a non-empty {target: direction} dict")
        units = {t: self._unit(t, d, layer) for t, d in directions.items()}
        twins = self.twins()
        twin_q = [self.quality(c) for c in twins]
        twin_read = self.reading(reader, twins)
        other_twin = {o.concept: self.reading(o, twins) for o in others}
        center = np.mean([q["profile"] for q in twin_q], axis=0)
        curve = self.level_curve()
        rows = []
        pairs = self.plan.pairs
        for strength in self.plan.strengths:
            rand = self.random(layer, strength)
            rand_read = self.reading(reader, rand)
            for target, unit in units.items():
                mask = np.ones(len(pairs), bool) if eligible is None or target not in eligible else \
                    np.asarray(eligible[target], bool)
                plus = self.steered(layer, strength, unit)
                minus = self.steered(layer, strength, -unit)
                arms = {"plus": (plus, self.reading(reader, plus)), "minus": (minus, self.reading(reader, minus)),
                        "random": (rand, rand_read)}
                base = reader.toward(twin_read, target)
                for arm, (clips, read) in arms.items():
                    score = reader.toward(read, target)
                    other_shift = {o.concept: self._off(self.reading(o, clips), other_twin[o.concept])
                                   for o in others} if arm == "plus" else {}
                    level_only = self._level_only_shifts(reader, target, clips, twin_q, base, mask) \
                        if arm == "plus" else {}
                    for i, clip in enumerate(clips):
                        if not mask[i]:
                            continue
                        q = self.quality(clip)
                        change = level_change_db(q["rms"], twin_q[i]["rms"])
                        rows.append(dict(
                            concept=reader.concept, target=target, layer=layer, strength=strength,
                            strength_abs=strength * self.mean_residual_norm(layer), arm=arm, pair=i,
                            prompt=pairs[i][0], seed=pairs[i][1],
                            random_direction=(i % self.plan.n_random) if arm == "random" else None,
                            reading=float(score[i]), twin_reading=float(base[i]), shift=float(score[i] - base[i]),
                            distinct_codes=q.get("distinct_codes"), repeat_rate=q.get("repeat_rate"),
                            twin_distinct_codes=twin_q[i].get("distinct_codes"),
                            twin_repeat_rate=twin_q[i].get("repeat_rate"),
                            collapsed=is_collapsed(q, twin_q[i], change, curve) if clip.codes is not None else None,
                            plain_collapsed=is_collapsed(q, twin_q[i]) if clip.codes is not None else None,
                            level_change_db=change, level_only_shift=level_only.get(i),
                            comb_share=q["comb_share"], twin_comb_share=twin_q[i]["comb_share"],
                            buzzing=is_buzzing(q, twin_q[i]),
                            peak=q["peak"], rms=q["rms"], twin_rms=twin_q[i]["rms"],
                            **{f"off_{c}": float(v[i]) for c, v in other_shift.items()}))
        frame = pd.DataFrame(rows)
        summary = summarise(frame, n_strengths=len(self.plan.strengths), n_boot=self.plan.n_boot,
                            seed=self.plan.random_seed)
        sims = []
        for (target, strength), group in frame[frame.arm == "plus"].groupby(["target", "strength"], sort=False):
            profiles = [self.quality(self._clip_of(layer, strength, units[target], i))["profile"]
                        for i in group.pair]
            sims.append(dict(target=target, strength=strength, cross_clip_similarity=cross_clip_similarity(
                profiles, list(group.prompt), list(group.seed), center=center)))
        summary = summary.merge(pd.DataFrame(sims), on=["target", "strength"], how="left")
        summary["twin_cross_clip_similarity"] = cross_clip_similarity(
            [q["profile"] for q in twin_q], [p for p, _ in pairs], [s for _, s in pairs], center=center)
        summary.insert(0, "concept", reader.concept)
        summary.insert(2, "layer", layer)
        return SteeringEffect(reader.concept, reader.name, layer, self.mean_residual_norm(layer), frame, summary,
                              verdicts(summary), level_curve=curve, push=self.plan.push)

    def _level_only_shifts(self, reader, target, clips, twin_q, base, mask) -> dict:
        """{pair: shift of the twin played at the clip's level} for the pairs in `mask` with a level."""
        pairs, gains = [], []
        for i, clip in enumerate(clips):
            if mask[i] and twin_q[i]["rms"] > 0 and self.quality(clip)["rms"] > 0:
                pairs.append(i)
                gains.append(self.quality(clip)["rms"] / twin_q[i]["rms"])
        if not pairs:
            return {}
        score = reader.toward(self.level_only(reader, pairs, gains), target)
        return {i: float(s - base[i]) for i, s in zip(pairs, score)}

    def _clip_of(self, layer, strength, unit, i):
        p, s = self.plan.pairs[i]
        return self._clips[(layer, strength, _key(unit), p, s)]

    def _unit(self, target, direction, layer: int) -> np.ndarray:
        vector = getattr(direction, "vector", direction)
        d_model = getattr(direction, "model_id", None)
        d_layer = getattr(direction, "layer", None)
        if d_model is not None and d_model != self.handle.model_id:
            raise DirectionMismatchError(f"the direction toward {target!r} was made on {d_model!r}, not on "
                                         f"{self.handle.model_id!r}: make it on this model")
        if d_layer is not None and int(d_layer) != layer:
            raise DirectionMismatchError(f"the direction toward {target!r} was made at layer {d_layer}, not "
                                         f"{layer}: measure it at its own layer")
        v = np.asarray(vector, dtype=np.float64).reshape(-1)
        if v.shape != (self.handle.hidden_size,):
            raise DirectionMismatchError(f"the direction toward {target!r} has {v.size} values; this model's "
                                         f"residual has {self.handle.hidden_size}")
        if not np.all(np.isfinite(v)):
            raise BadInputError(f"the direction toward {target!r} holds NaN or inf: rebuild it")
        norm = np.linalg.norm(v)
        if norm == 0:
            raise BadInputError(f"the direction toward {target!r} has zero length")
        return (v / norm).astype(np.float32)

    @staticmethod
    def _off(values: np.ndarray, twin_values: np.ndarray) -> np.ndarray:
        v, t = np.asarray(values, np.float64), np.asarray(twin_values, np.float64)
        if v.ndim == 2:  # class probabilities: total variation distance
            return 0.5 * np.abs(v - t).sum(1)
        return np.abs(v - t)


# ---------------------------------------------------------------------------------- statistics
def _bootstrap_ci(values: np.ndarray, n_boot: int, rng: np.random.Generator) -> list[float]:
    if len(values) < 2:
        return [float("nan"), float("nan")]
    idx = rng.integers(0, len(values), size=(n_boot, len(values)))
    means = values[idx].mean(1)
    return [float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))]


def summarise(frame: pd.DataFrame, n_strengths: int | None = None, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """A row per target and strength from a clip table with columns target, strength, arm
    (plus / minus / random), pair, shift, reading, collapsed (and optional ``off_<concept>`` columns)."""
    from scipy.stats import mannwhitneyu

    need = {"target", "strength", "arm", "pair", "shift", "reading", "collapsed"}
    if not need <= set(frame.columns):
        raise BadInputError(f"the clip table lacks columns {sorted(need - set(frame.columns))}")
    n_strengths = n_strengths or frame["strength"].nunique()
    rng = np.random.default_rng(seed)
    out = []
    off_cols = [c for c in frame.columns if c.startswith("off_")]
    for (target, strength), g in frame.groupby(["target", "strength"], sort=False):
        plus = g[g.arm == "plus"].sort_values("pair")
        minus = g[g.arm == "minus"].set_index("pair")
        rand = g[g.arm == "random"]
        shifts = plus["shift"].to_numpy(float)
        rshifts = rand["shift"].to_numpy(float)
        if len(shifts) and len(rshifts):
            p = float(mannwhitneyu(shifts, rshifts, alternative="greater").pvalue)
        else:
            p = 1.0
        p_corrected = min(1.0, p * n_strengths)
        paired = [(r, minus.loc[i, "reading"]) for i, r in zip(plus.pair, plus.reading) if i in minus.index]
        order = float(np.mean([1.0 if a > b else 0.5 if a == b else 0.0 for a, b in paired])) if paired else 0.0
        collapsed = _share(plus["collapsed"])
        effect = float(shifts.mean()) if len(shifts) else float("nan")
        row = dict(target=target, strength=float(strength), n_pairs=int(len(plus)),
                   effect=effect,
                   effect_ci=_bootstrap_ci(shifts, n_boot, rng),
                   random_mean=float(rshifts.mean()) if len(rshifts) else float("nan"),
                   random_p95=float(np.percentile(rshifts, 95)) if len(rshifts) else float("nan"),
                   minus_effect=float(g[g.arm == "minus"]["shift"].mean()) if len(minus) else float("nan"),
                   p_value=p_corrected, order_rate=order, collapsed_share=collapsed,
                   random_collapsed_share=_share(rand["collapsed"]),
                   off_target={c[4:]: float(plus[c].mean()) for c in off_cols if plus[c].notna().any()})
        for col in ("comb_share", "distinct_codes", "repeat_rate"):
            if col in plus:
                row[f"{col}_median"] = float(plus[col].median())
        if "plain_collapsed" in plus:
            row["plain_collapsed_share"] = _share(plus["plain_collapsed"])
        level_only = (plus["level_only_shift"].dropna().to_numpy(float) if "level_only_shift" in plus
                      else np.array([]))
        row["level_only_effect"] = float(level_only.mean()) if len(level_only) else float("nan")
        level_ok = not len(level_only) or row["level_only_effect"] <= MAX_LEVEL_ONLY_FRACTION * effect
        buzzing_ok = True
        if "buzzing" in plus:
            row["buzzing_share"] = _share(plus["buzzing"])
            row["random_buzzing_share"] = _share(rand["buzzing"])
            buzzing_ok = row["buzzing_share"] <= MAX_BUZZING_SHARE
        if "rms" in plus and "twin_rms" in plus:  # quieter clips use fewer codes: read collapse next to this
            row["level_change_db_median"] = _median_level_change(plus)
            row["random_level_change_db_median"] = _median_level_change(rand)
        row["beyond_random"] = bool(p_corrected < ALPHA and order >= MIN_ORDER_RATE
                                    and collapsed <= MAX_COLLAPSED_SHARE and buzzing_ok and level_ok)
        out.append(row)
    return pd.DataFrame(out)


def _share(flags: pd.Series) -> float:
    """Share of True among the flags that are set (None / nan: no twin), 0.0 when none is."""
    set_flags = [bool(x) for x in flags if x is not None and not pd.isna(x)]
    return float(np.mean(set_flags)) if set_flags else 0.0


def _median_level_change(rows: pd.DataFrame) -> float:
    """Median of 20 log10(rms / twin's rms) over `rows`, in dB (nan when none has both levels).

    A codec's codes are not gain-invariant (the same clean music 12 dB quieter uses about a third of the
    distinct codes): the collapse rule allows for it (`workbench.analysis.evaluation.collapse.LevelCurve`),
    and ``level_only_effect`` asks whether the level alone moved the reading."""
    rms, twin = rows["rms"].to_numpy(dtype=float), rows["twin_rms"].to_numpy(dtype=float)
    ok = np.isfinite(rms) & np.isfinite(twin) & (rms > 0) & (twin > 0)
    return float(np.median(20 * np.log10(rms[ok] / twin[ok]))) if ok.any() else float("nan")


def verdicts(summary: pd.DataFrame) -> dict:
    """{target: the `VERDICT_KEYS`} at the lowest strength beyond random, else at the smallest p-value."""
    out = {}
    for target, g in summary.groupby("target", sort=False):
        g = g.sort_values("strength")
        beyond = g[g.beyond_random]
        row = beyond.iloc[0] if len(beyond) else g.loc[g["p_value"].idxmin()]
        out[str(target)] = dict(
            effect=float(row["effect"]), effect_ci=[float(x) for x in row["effect_ci"]],
            random_p95=float(row["random_p95"]), p_value=float(row["p_value"]), order_rate=float(row["order_rate"]),
            collapsed_share=float(row["collapsed_share"]), off_target=dict(row["off_target"]),
            beyond_random=bool(row["beyond_random"]), strength=float(row["strength"]))
        if "buzzing_share" in row and np.isfinite(row["buzzing_share"]):
            out[str(target)]["buzzing_share"] = float(row["buzzing_share"])
        if "level_only_effect" in row and np.isfinite(row["level_only_effect"]):
            out[str(target)]["level_only_effect"] = float(row["level_only_effect"])
    return out


def verdict_sentence(concept: str, target: str, verdict: dict, unit: str = "") -> str:
    """One sentence a notebook prints, made from the verdict (so it cannot drift from the run)."""
    unit = f" {unit}" if unit else ""
    head = (f"Pushing toward {target!r} ({concept}) at {verdict['strength']:g}x the layer's mean residual norm "
            f"moves the reading by {verdict['effect']:+.3g}{unit}; random directions, 95%: "
            f"{verdict['random_p95']:+.3g}{unit}")
    if verdict["beyond_random"]:
        return head + ": beyond random."
    why = []
    if verdict["p_value"] >= ALPHA:
        why.append(f"a random push does as much (p = {verdict['p_value']:.2g})")
    if verdict["order_rate"] < MIN_ORDER_RATE:
        why.append(f"+v beats -v in only {verdict['order_rate']:.0%} of pairs")
    if verdict["collapsed_share"] > MAX_COLLAPSED_SHARE:
        why.append(f"{verdict['collapsed_share']:.0%} of the steered clips collapsed")
    if verdict.get("buzzing_share", 0.0) > MAX_BUZZING_SHARE:
        why.append(f"{verdict['buzzing_share']:.0%} of the steered clips buzz at the codec's frame rate")
    level_only = verdict.get("level_only_effect")
    if level_only is not None and level_only > MAX_LEVEL_ONLY_FRACTION * verdict["effect"]:
        why.append(f"the level change alone moves the reading by {level_only:+.3g}{unit}")
    return head + ": not beyond random (" + "; ".join(why) + ")."
