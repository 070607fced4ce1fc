"""Everything the views ask of `workbench`, in one adapter (the views never import torch).

`Backend(handle, collection)` answers: generate a (steered) clip for a `widgets.requests.SteerRequest`,
make a direction for a `widgets.requests.DirectionRequest`, project the collected clips to 2-D, place
a new clip in that map, score a clip (judge + probe reading), and measure a direction's effect
against random directions (`random_band`). Tests swap in a fake with the same methods. torch loads
on the first call that needs the model, not on import.

Strength: every direction is scaled to unit length and, in mode ``add``, ``strength x the layer's
mean residual norm`` is added (`workbench.analysis.strength`: one unit, whatever made the direction:
class means, probe, PCA, a lasso selection, an SAE feature). Mode ``norm_relative`` strengths are
relative to each row's own norm already.

    >>> import workbench as wb                                   # doctest: +SKIP
    >>> h = wb.random_model("tiny")                              # doctest: +SKIP
    >>> col = Collection.generate(h, {"rock": ["rock music"], "jazz": ["jazz music"]}, n_per_label=4,
    ...                           settings=wb.GenerationSettings(duration_s=0.5))  # doctest: +SKIP
    >>> be = Backend(h, col); be.project("resid", 1).shape       # doctest: +SKIP
    (8, 2)
"""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import threading
from collections.abc import Callable

import numpy as np

import workbench as wb
from workbench import validation
from workbench.analysis import directions as d
from workbench.analysis import scores
from workbench.analysis import strength as unit
from workbench.analysis.evaluation.collapse import MIN_TWIN_REPEAT, code_stats, is_buzzing, is_collapsed
from workbench.analysis.projections import project
from workbench.analysis.teaching.evaluate import verdict_readers
from workbench.errors import BadInputError
from workbench.frame_comb import comb_share
from workbench.runtime.settings import GenerationSettings, settings_of
from workbench.toy.prompts import EVAL_PROMPTS

from .requests import DirectionRequest, SteerRequest
from .static import waveform_of

BAND_SEEDS = 8  # the random band: the panel's prompt x this many seeds (x 4 clips each: twin, +v, -v, random)
COLLECTION_SETTINGS = GenerationSettings(duration_s=2.0, guidance_scale=3.0, batch_size=8)  # Collection.generate's
PATCHING_SETTINGS = GenerationSettings(duration_s=2.0, seeds=0, guidance_scale=3.0)  # Backend.patching's


@dataclasses.dataclass
class Collection:
    """Collected clips with labels, hover texts and pooled activations dict[(site, layer)] -> (N, H);
    `columns` holds more per-clip fields (prompt, seed, the store's label columns) for the map."""

    acts: dict
    labels: list
    texts: list
    clips: list
    columns: dict = dataclasses.field(default_factory=dict)

    @classmethod
    def generate(cls, handle, prompts_by_label: dict, n_per_label: int = 8,
                 settings: GenerationSettings | None = None, *, seed: int = 0, sites=("resid",),
                 progress: bool = False) -> Collection:
        """Generate `n_per_label` clips per label (prompts cycled, seeds seed, seed+1, ...) and capture them.

        settings: how the clips are generated (`GenerationSettings`, whole; default `COLLECTION_SETTINGS`: 2 s,
        guidance 3, batches of 8); the seeds are ``seed``, ``seed + 1``, ... (leave ``settings.seeds`` at 0).
        """
        settings = settings_of(COLLECTION_SETTINGS if settings is None else settings)
        if settings.seeds not in (0, None):
            raise BadInputError(f"settings.seeds={settings.seeds!r}: a collection's clips get the seeds seed, "
                                "seed + 1, ...: leave settings.seeds at 0 and pass seed= (the first seed)")
        seed = validation.non_negative_int(seed, "seed")
        prompts, labels = [], []
        for label, options in prompts_by_label.items():
            options = [options] if isinstance(options, str) else list(options)
            prompts += [options[i % len(options)] for i in range(n_per_label)]
            labels += [label] * n_per_label
        seeds = [seed + i for i in range(len(prompts))]
        # These clips are unsteered: the strength unit is measured on them at no extra cost
        meter = unit.ResidualNormMeter(handle, "resid")
        res = wb.generate(handle, prompts, settings.replace(seeds=tuple(seeds)), edits=meter.edits(),
                          capture=wb.CaptureSpec(sites=tuple(sites), pooling="mean"), progress=progress)
        unit.record(handle, meter.norms(), site="resid", n_clips=len(prompts), duration_s=settings.duration_s,
                    source="Collection.generate", prompts=tuple(prompts))
        for clip, label in zip(res.clips, labels):
            clip.label = label
        texts = [f"“{p}” (seed {s})" for p, s in zip(prompts, seeds)]
        return cls(acts=res.activations, labels=labels, texts=texts, clips=res.clips,
                   columns=dict(prompt=prompts, seed=seeds))

    @classmethod
    def from_store(cls, store, label_column: str = "label") -> Collection:
        """A view of a `workbench.data.store.ActivationStore` (what `workbench.data.collect.collect` returns);
        clips are read from the store when clicked."""
        table = store.table
        texts = [str(r.get("prompt") or r.get("path") or r.get("id"))
                 + (f" (seed {r['seed']})" if r.get("seed") is not None else "") for r in table]
        has_audio = bool(store.sample_rate_hz)
        names = [k for k in dict.fromkeys(k for r in table for k in r) if k != label_column]
        return cls(acts=store.arrays(), labels=[str(r.get(label_column)) for r in table], texts=texts,
                   clips=store.clip if has_audio else None, columns={k: [r.get(k) for r in table] for k in names})

    @property
    def classes(self) -> list:
        return list(dict.fromkeys(self.labels))


def _holds_model(method):
    """Run a Backend method that puts hooks on the model under the backend's lock: the steering panel, the patching
    view's Run thread and the comparer's band thread may each call one while another runs, and two hook sets on
    one model at once would mix (a steered clip made while a sweep's hooks are on, or the other way round)."""
    @functools.wraps(method)
    def wrapper(self, *args, **kwargs):
        with self.model_lock:
            return method(self, *args, **kwargs)
    return wrapper


class Backend:
    """The workbench calls behind the views, for one model handle and one collection."""

    def __init__(self, handle, collection: Collection, sweep=None, projection_method: str = "pca"):
        self.handle, self.collection, self.sweep = handle, collection, sweep
        self.model_lock = threading.RLock()  # one model user at a time (see _holds_model)
        self.projection_method = projection_method
        # Directions are unit vectors; the strength unit is applied when steering (`steering_spec`)
        self.normalize = "unit"
        self.units: dict = {}  # {(site, layer): norm} set from code wins over the measured unit
        self._projection = None  # the current workbench.analysis.projections.Projection
        self.probe_key = None
        self._judge = None
        self._bands: dict = {}
        self._benches: dict = {}

    # -- generation ----------------------------------------------------------------------------
    def strength_unit(self, layer: int, site: str = "resid") -> float:
        """The layer's mean residual norm (`workbench.analysis.strength`), measured on first use.

        A stand-in handle that cannot generate (a test's) has no unit: strengths are absolute there.
        """
        if (site, int(layer)) in self.units:
            return float(self.units[(site, int(layer))])
        if not callable(getattr(self.handle, "module", None)):
            return 1.0
        return unit.mean_residual_norm(self.handle, int(layer), site)

    def known_strength_unit(self, layer: int, site: str = "resid") -> float | None:
        """The unit if it is known already (never generates: for labels)."""
        if (site, int(layer)) in self.units:
            return float(self.units[(site, int(layer))])
        if not callable(getattr(self.handle, "module", None)):
            return None
        return unit.known_mean_residual_norm(self.handle, int(layer), site)

    def steering_spec(self, request: SteerRequest):
        """The core's SteeringSpec for a request, or None when it does not steer.

        The direction is scaled to unit length; in mode ``add`` each layer gets strength x its unit.
        """
        request = SteerRequest.of(request)
        if not request.steered:
            return None
        vector, site = unit_vector(request.direction), getattr(request.direction, "site", "resid")
        where = dict(schedule=wb.Schedule(kind=request.schedule), site=site, label=direction_name(request.direction),
                     model_id=getattr(request.direction, "model_id", None))
        if request.mode == "add":
            terms = [wb.SteeringTerm(vector, (layer,), request.strength * self.strength_unit(layer, site), **where)
                     for layer in request.layers]
        else:
            terms = [wb.SteeringTerm(vector, request.layers, request.strength, **where)]
        return wb.SteeringSpec(tuple(terms), mode=request.mode, rows=request.rows)

    def describe_steering(self, request) -> dict:
        """What a request steers along, for captions: name, method, site, layers, strength and its unit."""
        request = SteerRequest.of(request)
        direction = request.direction
        site = getattr(direction, "site", "resid")
        out = dict(name=direction_name(direction), method=getattr(direction, "method", "vector"), site=site,
                   layers=list(request.layers), strength=float(request.strength), mode=request.mode,
                   steered=bool(request.steered))
        if request.mode == "add":
            out["unit_by_layer"] = {int(layer): self.known_strength_unit(layer, site) for layer in request.layers}
        return out

    @_holds_model
    def generate(self, request: SteerRequest, on_progress: Callable | None = None,
                 should_stop: Callable | None = None):
        """One clip for a SteeringPanel request; polls `should_stop` and reports progress each step."""
        request = SteerRequest.of(request)
        h = self.handle
        total = h.frames_for(request.duration_s) + h.delay_steps  # stop() is polled once a step
        steps = [0]

        def stop() -> bool:
            steps[0] += 1
            if on_progress is not None:
                on_progress(steps[0] / total)
            return bool(should_stop and should_stop())
        res = wb.generate(h, request.prompt or "music", duration_s=request.duration_s, seeds=request.seed,
                          guidance_scale=request.guidance_scale, steering=self.steering_spec(request), stop=stop)
        return res.clips[0]

    # -- directions ----------------------------------------------------------------------------
    def make_direction(self, request: DirectionRequest):
        """A `workbench.analysis.directions.Direction` at the request's (site, layer), by its method."""
        if not isinstance(request, DirectionRequest):
            raise TypeError(f"make_direction takes a widgets.requests.DirectionRequest, not {type(request).__name__}")
        site, layer, method = request.site, request.layer, request.method
        if (site, layer) not in self.collection.acts:
            raise ValueError(f"no collected activations at {site} layer {layer}: collect that site and layer")
        X = self.collection.acts[(site, layer)]
        labels = np.asarray(self.collection.labels)
        where = dict(model_id=self.handle.model_id, layer=layer, site=site, normalize=self.normalize)
        if method == "probe_class":
            return d.from_probe(self._probe(site, layer), request.class_a, activations=X, **where)
        if method == "class_pair":
            return d.from_class_means(X, labels, request.class_b, request.class_a, **where)
        if method == "class_vs_rest":
            return d.from_class_means(X, labels, request.class_a, **where)
        if method == "pca":
            return d.from_pca(X, labels, request.class_a, component=request.component, **where)
        away, toward = request.groups  # "selection": DirectionRequest checked that both are there
        return d.from_point_sets(X, away, toward, **where)

    def direction_from_groups(self, site: str, layer: int) -> Callable:
        return lambda a, b: self.make_direction(DirectionRequest("selection", site=site, layer=layer, groups=(a, b)))

    def _probe(self, site: str, layer: int):
        if self.sweep is None or (site, layer) not in getattr(self.sweep, "probes", {}):
            raise ValueError(f"no fitted probe at {site} layer {layer}: pass "
                             "sweep=workbench.analysis.probes.sweep(...)")
        return self.sweep.probes[(site, layer)]

    # -- projection ----------------------------------------------------------------------------
    def project(self, site: str, layer: int) -> np.ndarray:
        """2-D coordinates of the collected clips at (site, layer) (`projection_method`: "pca" or
        "umap", by `workbench.analysis.projections`); the map is remembered so `place` can add new clips."""
        self._projection = project(self.collection.acts[(site, layer)], self.projection_method, site=site,
                                   layer=layer)
        return self._projection.embedding

    def explained_variance(self) -> tuple[float, float] | None:
        """The share of the layer's variance along the current PCA map's two axes (None for UMAP)."""
        proj = self._projection
        if proj is None or proj.method != "pca":
            return None
        X = np.asarray(self.collection.acts[(proj.site, proj.layer)], dtype=np.float64)
        total = float(X.var(0).sum())
        return tuple(float(v) / total if total > 0 else 0.0 for v in np.asarray(proj.embedding, np.float64).var(0))

    def place(self, clip) -> np.ndarray:
        """Where a new clip lands in the current map (teacher-forced through the unsteered model)."""
        if self._projection is None:
            raise ValueError("no map yet: call project(site, layer) first")
        proj = self._projection
        return proj.transform(self.read(clip, proj.site, proj.layer))

    @_holds_model
    def read(self, clip, site: str, layer: int) -> np.ndarray:
        acts = wb.teacher_force(self.handle, [clip.mono], clip.sample_rate_hz, prompts=[clip.prompt or ""],
                                capture=wb.CaptureSpec(layers=(layer,), sites=(site,), pooling="mean"))
        return acts[(site, layer)]

    # -- scores --------------------------------------------------------------------------------
    def scores(self, clip) -> dict:
        """Judge probabilities (teaching model only: it knows the four synthetic genres) and the probe's
        reading at `probe_key` (the clip teacher-forced through the unsteered model, null text)."""
        out = {}
        if "teaching" in str(self.handle.model_id):
            judged = scores.judge_reading([clip])
            if judged is not None:
                classes, probs = judged
                out.update({f"judge: {c}": float(p) for c, p in zip(classes, probs[0])})
        if self.probe_key is not None and self.sweep is not None and self.probe_key in self.sweep.probes:
            site, layer = self.probe_key
            probe = self.sweep.probes[self.probe_key]
            probs = scores.probe_reading(self.handle, [clip], probe, layer=layer, site=site)[0]
            out.update({f"probe L{layer}: {c}": float(p) for c, p in zip(probe.classes_, probs)})
        return out

    # -- verdicts: the clip's direction against random directions ----------------------------------
    def band_reader(self, direction, reader=None, target=None):
        """(reader, target) for a band: `reader` if given, else the clean genre reader on the teaching
        model (target: the direction's class), else a plain-DSP brightness reader (target "brighter")."""
        if reader is None:
            if "teaching" in str(getattr(self.handle, "model_id", "")):
                reader = verdict_readers()["genre"]
            else:
                reader = centroid_reader()
        if target is None:
            target = direction_target(direction, reader.targets)
        if target not in reader.targets:
            raise ValueError(f"target {target!r} is not one the {reader.name} reader reads: pass target= one of "
                             f"{list(reader.targets)}")
        return reader, target

    def _band_key(self, request: SteerRequest, reader_name: str, target: str, seeds) -> tuple:
        v = unit_vector(request.direction) * np.sign(request.strength)
        # rounded: the same direction at another length (or float precision) is the same direction
        digest = hashlib.sha1(np.ascontiguousarray(np.round(v, 5) + 0.0, np.float32).tobytes()).hexdigest()[:16]
        return (digest, getattr(request.direction, "site", "resid"), tuple(request.layers), abs(request.strength),
                request.prompt or "music", tuple(seeds), request.duration_s, request.guidance_scale, reader_name,
                target)

    def _band_request(self, request) -> SteerRequest:
        request = SteerRequest.of(request)
        if not request.steered:
            raise ValueError("nothing to compare with random directions: this clip is not steered (pick a direction "
                             "and a strength other than 0)")
        if (request.mode, len(request.layers), request.schedule, request.rows) != ("add", 1, "constant", "cond"):
            raise ValueError("the random band is measured for one layer, mode 'add', a constant schedule and the "
                             "conditional rows (as the workbench's verdicts are): set the panel so, then compute it")
        return request

    def cached_band(self, request, *, reader=None, target=None, seeds=None) -> dict | None:
        """The band of `random_band` if it was computed already, else None (never generates)."""
        try:
            request = self._band_request(request)
            reader, target = self.band_reader(request.direction, reader, target)
        except ValueError:
            return None
        seeds = band_seeds(request) if seeds is None else tuple(seeds)
        return self._bands.get(self._band_key(request, reader.name, target, seeds))

    @_holds_model
    def random_band(self, request, *, reader=None, target=None, seeds=None, progress: bool = False) -> dict:
        """The request's direction measured against random directions of equal norm (one `SteeringBench`
        on the request's prompt x `BAND_SEEDS` seeds at its layer and strength: 4 clips a seed), cached
        per direction (its bytes), layer, strength, prompt, seeds and reader. Returns the verdict keys
        (`workbench.analysis.evaluation.verdicts`) plus target, reader, unit, n_clips and the unit's norm."""
        from workbench.analysis.evaluation.verdicts import SteeringBench, VerdictPlan
        request = self._band_request(request)
        reader, target = self.band_reader(request.direction, reader, target)
        seeds = band_seeds(request) if seeds is None else tuple(seeds)
        key = self._band_key(request, reader.name, target, seeds)
        if key in self._bands:
            return self._bands[key]
        layer, site = request.layers[0], getattr(request.direction, "site", "resid")
        norm = self.strength_unit(layer, site)
        settings = GenerationSettings(duration_s=request.duration_s, guidance_scale=request.guidance_scale,
                                      batch_size=len(seeds))
        plan = VerdictPlan(prompts=(request.prompt or "music",), seeds=seeds, strengths=(abs(request.strength),),
                           settings=settings, site=site)
        if (plan, layer, norm) not in self._benches:  # twins and random clips shared by every direction here
            self._benches[(plan, layer, norm)] = SteeringBench(self.handle, plan, progress=progress,
                                                               source=_unit_pinned(self.handle, plan, layer, norm))
        bench = self._benches[(plan, layer, norm)]
        direction = unit_vector(request.direction) * float(np.sign(request.strength))
        effect = bench.measure(reader, {target: direction}, layer)
        self._bands[key] = dict(effect.verdict[target], target=target, reader=reader.name, concept=reader.concept,
                                unit=reader.unit, layer=layer, site=site, steered_strength=float(request.strength),
                                mean_residual_norm=float(bench.mean_residual_norm(layer)),
                                n_pairs=len(plan.pairs), n_clips=bench.n_generated)
        return self._bands[key]

    # -- causal inspection (nnsight traces) ------------------------------------------------------
    @_holds_model
    def trace(self, request: SteerRequest, direction):
        """(original, steered) `StepTrace`s of a request's clip: every layer's projection on ``direction``
        at every step (steered is None when the request does not steer)."""
        from workbench.analysis.step_traces import trace_steps
        request = SteerRequest.of(request)
        settings = GenerationSettings(duration_s=request.duration_s, seeds=request.seed,
                                      guidance_scale=request.guidance_scale)
        prompt = [request.prompt or "music"]
        original = trace_steps(self.handle, prompt, direction, settings)
        spec = self.steering_spec(request)
        steered = trace_steps(self.handle, prompt, direction, settings, steering=spec) if spec is not None else None
        return original, steered

    @_holds_model
    def patching(self, source_prompt: str, target_prompt: str, settings: GenerationSettings | None = None, *,
                 windows: int = 8, on_progress: Callable | None = None):
        """(teacher-forced sweep, clip_fn) for a `PatchingView`: the two prompts' clips (same seed) are
        swept layer x window (log-probability of the source's codes, an unguided forward), and
        ``clip_fn(row)`` generates that cell's patched clip with its source and target. settings: how the
        clips are generated (`GenerationSettings`, whole; default `PATCHING_SETTINGS`: 2 s, seed 0, guidance
        3), one seed for both prompts. on_progress: ``fn(done, total)`` after each cell (0 once the two
        clips are made and measured)."""
        from workbench.analysis import patching as P
        settings = settings_of(PATCHING_SETTINGS if settings is None else settings)
        seeds = settings.seeds if isinstance(settings.seeds, tuple) else (settings.seeds or 0,)
        if len(seeds) != 1:
            raise BadInputError(f"settings.seeds={settings.seeds!r}: the source and the target share one seed; "
                                "pass one int, e.g. GenerationSettings(seeds=3)")
        settings = settings.replace(seeds=seeds[0])
        h = self.handle
        source, target = wb.generate(h, [source_prompt, target_prompt], settings.replace(seeds=seeds * 2)).clips
        sweep = P.patching_sweep(h, P.ForcedInput.of(h, source), P.ForcedInput.of(h, target),
                                 P.PatchSweep(windows=windows), progress=on_progress or False)

        def clip_fn(row) -> dict:
            spec = P.PatchSpec(int(row["layer"]), site=row["site"], window=(int(row["start"]), int(row["stop"])))
            _, patched = P.generate_patched(h, source_prompt, target_prompt, spec, settings)
            return {"source": source, "target": target, "patched": patched}
        return sweep, clip_fn


# -- helpers shared by the views ----------------------------------------------------------------------
def unit_vector(direction) -> np.ndarray:
    """The direction (a `Direction`, an object with `.vector`, or an array) at unit length, float32."""
    v = np.asarray(getattr(direction, "vector", direction), dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(v))
    if not np.isfinite(norm) or norm == 0:
        raise ValueError("the direction has zero length or holds NaN/inf: make it again from activations that differ")
    return (v / norm).astype(np.float32)


def direction_name(direction) -> str:
    name = getattr(direction, "name", None)
    return str(name) if name else "a custom vector"


def direction_target(direction, targets) -> str:
    """The class a direction points toward, from its provenance (positive class, PCA sign, SAE label)."""
    prov = getattr(direction, "provenance", None) or {}
    label = prov.get("label")
    candidates = [prov.get("positive"), prov.get("aligned_to"),
                  label.split("=", 1)[1] if isinstance(label, str) and "=" in label else label]
    for c in candidates:
        if c in targets:
            return c
    raise ValueError(f"which class does {direction_name(direction)!r} point toward? pass target= one of "
                     f"{list(targets)}")


def band_seeds(request: SteerRequest) -> tuple:
    return tuple(int(request.seed) + i for i in range(BAND_SEEDS))


def centroid_reader():
    """A plain-DSP reader for any model: the mean spectral centroid in octaves (above 1 Hz); "brighter"
    reads it up, "darker" down. Nothing fitted, so it hears no model's artefacts."""
    from workbench.analysis.evaluation.verdicts import Reader

    def read(audios, sample_rate_hz):
        out = []
        for x in audios:
            x = np.asarray(x, np.float64).reshape(-1)
            frames = np.lib.stride_tricks.sliding_window_view(x, 2048)[::512] if len(x) >= 2048 else x[None]
            spec = np.abs(np.fft.rfft(frames * np.hanning(frames.shape[1]), axis=1))
            freqs = np.fft.rfftfreq(frames.shape[1], 1.0 / sample_rate_hz)
            power = spec.sum(1)
            centroid = (spec @ freqs)[power > 0] / power[power > 0]
            out.append(float(np.log2(np.maximum(centroid, 1.0)).mean()) if centroid.size else 0.0)
        return np.asarray(out)

    return Reader("brightness", "mean_centroid_oct", ("brighter", "darker"), read,
                  lambda values, target: np.asarray(values, np.float64) * (1 if target == "brighter" else -1),
                  unit="octaves")


def _unit_pinned(handle, plan, layer: int, norm: float):
    """A bench's clip source whose unit at `layer` is the one the panel steered with (so the band is
    measured at the same push, whichever clips measured the unit first)."""
    from workbench.analysis.evaluation.verdicts import ModelClips

    class UnitPinnedClips(ModelClips):
        def twins(self, pairs):
            clips, norms = super().twins(pairs)
            return clips, {**norms, layer: float(norm)}

    return UnitPinnedClips(handle, plan)


def collapse_note(clip, twin, frame_period: int | None = None) -> dict:
    """Code statistics of a clip next to its twin's (`workbench.analysis.evaluation.collapse`): distinct
    codes and repeat rates, their ratios, and ``collapsed``; then the comb share of each at the codec's frame
    period and ``buzzing`` (`is_buzzing`: a push can make a drone that keeps its codes varied). {} when either
    has no codes.

    frame_period: samples per codec frame (default: the clip's samples over its frames, 640 for MusicGen's
    32 kHz codec at 50 Hz). The comb fields are left out when a clip holds fewer than two frame periods."""
    codes, twin_codes = getattr(clip, "codes", None), getattr(twin, "codes", None)
    if codes is None or twin_codes is None or clip is twin:
        return {}
    stats, twin_stats = code_stats(codes), code_stats(twin_codes)
    note = dict(distinct_codes=stats["distinct_codes"], twin_distinct_codes=twin_stats["distinct_codes"],
                repeat_rate=stats["repeat_rate"], twin_repeat_rate=twin_stats["repeat_rate"],
                repeat_ratio=stats["repeat_rate"] / max(twin_stats["repeat_rate"], MIN_TWIN_REPEAT),
                distinct_ratio=stats["distinct_codes"] / max(twin_stats["distinct_codes"], 1e-12),
                collapsed=bool(is_collapsed(stats, twin_stats)))
    samples, rate = waveform_of(clip)
    twin_samples, _ = waveform_of(twin)
    period = frame_period or int(round(samples.size / max(np.shape(codes)[-1], 1)))
    try:
        comb, twin_comb = comb_share(samples, rate, period), comb_share(twin_samples, rate, period)
    except BadInputError:  # too short to hold a comb
        return note
    return dict(note, comb_share=comb, twin_comb_share=twin_comb,
                buzzing=bool(is_buzzing(dict(comb_share=comb), dict(comb_share=twin_comb))))


def grid_band_fn(handle, methods: dict, settings: GenerationSettings | None = None, *, reader=None, prompts=None,
                 seeds=(0, 1, 2, 3), progress: bool = False) -> Callable:
    """``band_fn(method, layer) -> SteeringEffect`` for an `EvaluationView`: the grid's `Method`s
    ({name: Method}, mode ``add``) measured against random directions by one `SteeringBench` per layer
    (twins and random clips shared by the methods), at their strengths > 0 in the workbench's unit.

    settings: how every clip is generated (`GenerationSettings`, whole, as a `VerdictPlan` takes it; default
    `VERDICT_SETTINGS` at 2 s); the seeds are ``seeds`` (each prompt with each seed; settings.seeds stays 0).

    reader: default the clean genre reader on the teaching model (pairs whose prompt names the target
    genre left out), else the plain-DSP `centroid_reader` (then the methods' targets must be its
    "brighter"/"darker", or pass a reader of your concept). Results are cached per method direction
    (`Method.fingerprint`) and layer.
    """
    from workbench.analysis.evaluation.verdicts import VERDICT_SETTINGS, SteeringBench, VerdictPlan
    teaching = "teaching" in str(getattr(handle, "model_id", ""))
    own_prompt = {}
    if reader is None and teaching:
        reader = verdict_readers()["genre"]
        own_prompt = {genre: texts[0] for genre, texts in EVAL_PROMPTS.items()}
        prompts = prompts or tuple(own_prompt.values())
    reader = reader or centroid_reader()
    prompts = tuple(prompts or unit.DEFAULT_PROMPTS)
    base = VerdictPlan(prompts=prompts, seeds=tuple(seeds),  # checked now, not at the first band
                       settings=VERDICT_SETTINGS.replace(duration_s=2.0) if settings is None else settings)
    benches: dict = {}
    done: dict = {}

    def band_fn(name: str, layer: int):
        if name not in methods:
            raise ValueError(f"no method {name!r}: band_fn knows {sorted(methods)}")
        method = methods[name]
        if method.mode != "add" or method.rows != "cond" or method.schedule:
            raise ValueError(f"method {name!r} steers in mode {method.mode!r} (rows {method.rows}, schedule "
                             f"{method.schedule or 'constant'}): the random band is measured for constant 'add' "
                             "steering on the conditional rows")
        key = (method.fingerprint(layer), int(layer))
        if key in done:
            return done[key]
        targets = [t for t in method.targets if (t, int(layer)) in method.directions and t in reader.targets]
        if not targets:
            raise ValueError(f"method {name!r} has no direction at layer {layer} toward a target the {reader.name} "
                             f"reader reads ({list(reader.targets)}): pass band_fn a reader of its concept")
        strengths = tuple(s for s in method.strengths if s > 0)
        norm = unit.mean_residual_norm(handle, int(layer))
        plan = dataclasses.replace(base, strengths=strengths)
        if (plan, layer) not in benches:
            benches[(plan, layer)] = SteeringBench(handle, plan, progress=progress,
                                                   source=_unit_pinned(handle, plan, int(layer), norm))
        bench = benches[(plan, layer)]
        eligible = {t: [p != own_prompt.get(t) for p, _ in plan.pairs] for t in targets} if own_prompt else None
        done[key] = bench.measure(reader, {t: method.direction(t, layer) for t in targets}, int(layer),
                                  eligible=eligible)
        return done[key]

    return band_fn
