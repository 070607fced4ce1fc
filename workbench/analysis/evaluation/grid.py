"""Run an evaluation grid: methods x layers x strengths x items (prompt, seed, target), resumable.

Every steered clip has an unsteered *twin* (same prompt and seed, generated once per item), and a
*reference* set (the same prompts, other seeds, unsteered) gives the floor of every distance and of
the Fréchet distance. Strength 0 is not generated: ``add`` and ``norm_relative`` at 0 leave every
activation unchanged, so those rows are the twins' (tested bit for bit). Each cell (one method, layer
and strength over all items) is generated as one batched call, read, and committed to the folder
(`workbench.analysis.evaluation.results`); a rerun with the same plan skips committed cells.

Per clip: alignment (``judge_p_target`` from the genre judge, ``probe_p_target`` from a probe re-read
through the unsteered model when a probe is given, ``clap_p_target`` when CLAP weights are local),
preservation against the twin (``code_edit_rate``, ``mel_distance``, ``embedding_distance``), collapse
and quality (`workbench.analysis.evaluation.collapse`: ``distinct_codes`` and ``repeat_rate`` next to the
twin's, ``collapsed``, ``comb_share``, ``peak``, ``rms``) and descriptors (``tempo_bpm``, ``centroid_hz``,
``loudness_db``, ``key``). The judge is fitted partly on codec round trips: its alignment describes, it
does not decide whether steering works (`workbench.analysis.evaluation.verdicts` does).

    >>> import tempfile, numpy as np, workbench as wb
    >>> from workbench.analysis.evaluation import GridPlan, Method, items_for, run_grid
    >>> h = wb.random_model("tiny")
    >>> m = Method("m", {("rock", 1): np.ones(h.hidden_size)}, strengths=(0.0, 8.0))
    >>> from workbench.analysis.scores import Readers
    >>> from workbench.runtime.settings import GenerationSettings
    >>> plan = GridPlan((m,), layers=(1,), items=items_for(["jazz"], seeds=[0, 1], targets="rock"))
    >>> res = run_grid(h, plan, tempfile.mkdtemp(), GenerationSettings(duration_s=0.3), readers=Readers(judge=False))
    >>> sorted(res.table["kind"].value_counts().items())
    [('reference', 2), ('steered', 4), ('twin', 2)]
"""
from __future__ import annotations

import dataclasses
import hashlib
import os
import warnings
from collections.abc import Callable

import numpy as np

import workbench as wb
from workbench import validation
from workbench.analysis import scores
from workbench.analysis.evaluation import metrics
from workbench.analysis.evaluation.collapse import clip_quality, code_stats, is_collapsed
from workbench.analysis.evaluation.methods import Method, strength_list
from workbench.analysis.evaluation.results import (
    FORMAT,
    EvaluationResult,
    GridMismatchError,
    ResultsLog,
    plan_hash,
)
from workbench.analysis.scores import Readers, readers_of
from workbench.data.store_io import store_lock
from workbench.errors import BadInputError, EmptyInputError, StoppedError, WrongTypeError
from workbench.runtime.settings import GenerationSettings, settings_of
from workbench.toy.judge import load_judge
from workbench.validation import (
    finite_float,
    int_sequence,
    integer,
    layer_index,
    model_handle,
    prompt_list,
    str_list,
)

__all__ = ["Item", "GridPlan", "GRID_SETTINGS", "items_for", "run_grid"]

MIN_DURATION_S = 0.25  # the shortest clip `metrics.descriptors` reads (tempo, key)
GRID_SETTINGS = GenerationSettings(duration_s=2.0, batch_size=16)  # run_grid's default settings


@dataclasses.dataclass(frozen=True)
class Item:
    """One prompt and seed, and the label steering should move it toward."""

    prompt: str
    seed: int
    target: str
    source: str = ""  # what the prompt asks for (e.g. its genre), for tables

    def __post_init__(self):
        prompt_list([self.prompt], "Item prompt")
        seed = validation.seeds(self.seed, "Item seed")
        if len(seed) != 1:
            raise WrongTypeError(f"Item seed={self.seed!r:.60}: pass one int (items_for makes one Item per seed)")
        object.__setattr__(self, "seed", seed[0])
        for name in ("target", "source"):
            if not isinstance(getattr(self, name), str):
                raise WrongTypeError(f"Item {name}={getattr(self, name)!r} is a {type(getattr(self, name)).__name__}: "
                                     "pass a label as text, e.g. 'rock'")
        if not self.target:
            raise BadInputError("Item target is empty: pass the label steering should move the clip toward")


def items_for(prompts, *, seeds, targets, sources=None) -> tuple[Item, ...]:
    """Every prompt x seed; `targets` (and `sources`) one per prompt, or one for all.

    seeds: one int or a list of ints (a string such as "12" is refused, not read as seeds 1 and 2)."""
    prompts = prompt_list(prompts)
    seed_values = validation.seeds(seeds)
    if not seed_values:
        raise EmptyInputError("seeds is empty: pass at least one seed, e.g. seeds=[0, 1]")
    targets = str_list(targets, "targets", example="'rock' or ['rock', 'jazz']")
    targets = targets * len(prompts) if len(targets) == 1 else targets
    sources = [""] * len(prompts) if sources is None else str_list(sources, "sources", example="['jazz', 'rock']")
    if len(targets) != len(prompts) or len(sources) != len(prompts):
        raise BadInputError(f"{len(prompts)} prompts but {len(targets)} targets and {len(sources)} sources: pass "
                            "one of each per prompt (or one target for all)")
    return tuple(Item(p, s, t, src) for p, t, src in zip(prompts, targets, sources) for s in seed_values)


@dataclasses.dataclass(frozen=True, eq=False)
class GridPlan:
    """What to generate: methods x layers x strengths x items. strengths: None = each method's own sweep;
    reference_seed_offset: the reference set's seeds are the items' seeds plus this (None: no reference set).
    How the clips are generated (duration, guidance, batch size, ...) is `run_grid`'s settings."""

    methods: tuple
    layers: tuple
    items: tuple
    strengths: tuple | None = None
    reference_seed_offset: int | None = 10_000

    def __post_init__(self):
        methods = (self.methods,) if isinstance(self.methods, Method) else self.methods
        if isinstance(methods, (str, bytes, dict)) or not hasattr(methods, "__iter__"):
            raise WrongTypeError(f"methods={methods!r:.60}: pass Method objects (see "
                                 "workbench.analysis.evaluation.presets)")
        methods = tuple(methods)
        if not methods or not all(isinstance(m, Method) for m in methods):
            raise WrongTypeError("methods must be Method objects (see workbench.analysis.evaluation.presets)")
        names = [m.name for m in methods]
        if len(set(names)) != len(names):
            raise BadInputError(f"method names must be unique, got {names}: rename one (Method(name=...))")
        layers = int_sequence(self.layers, "layers", example="(6,) or [4, 8]")
        if len(set(layers)) != len(layers):
            raise BadInputError(f"layers={list(layers)} names a layer twice: pass each layer once")
        items = (self.items,) if isinstance(self.items, Item) else self.items
        if isinstance(items, (str, bytes)) or not hasattr(items, "__iter__"):
            raise WrongTypeError(f"items={items!r:.60}: use items_for(prompts, seeds=..., targets=...)")
        items = tuple(items)
        if not items or not all(isinstance(i, Item) for i in items):
            raise WrongTypeError("items must be Item objects: use items_for(prompts, seeds=..., targets=...)")
        for m in methods:
            for item in items:
                for layer in layers:
                    m.direction(item.target, layer)  # raises naming what is missing
        object.__setattr__(self, "methods", methods)
        object.__setattr__(self, "layers", layers)
        object.__setattr__(self, "items", items)
        if self.strengths is not None:
            object.__setattr__(self, "strengths", strength_list(self.strengths, "strengths"))
        if self.reference_seed_offset is not None:
            object.__setattr__(self, "reference_seed_offset", integer(self.reference_seed_offset,
                                                                      "reference_seed_offset"))
            validation.seeds([i.seed + self.reference_seed_offset for i in items], "reference seeds (seed + offset)")

    def strengths_of(self, method: Method) -> tuple:
        return self.strengths if self.strengths is not None else method.strengths

    def cells(self) -> list[tuple]:
        """[(kind, method or None, layer or None, strength)] in run order: twins, reference, then the grid."""
        out = [("twin", None, None, 0.0)]
        if self.reference_seed_offset is not None:
            out.append(("reference", None, None, 0.0))
        out += [("steered", m, layer, s) for m in self.methods for layer in self.layers for s in self.strengths_of(m)]
        return out

    def shared(self, handle, settings: GenerationSettings) -> dict:
        """What every cell depends on (checked when a folder is resumed): the model, the items, and the
        settings that change the clips (temperature and top-k only where they are not the defaults, so a
        folder made before they could be set resumes)."""
        out = dict(model_id=handle.model_id, duration_s=float(settings.duration_s),
                   guidance_scale=settings.guidance_scale, reference_seed_offset=self.reference_seed_offset,
                   items=[dataclasses.asdict(i) for i in self.items], format=FORMAT)
        defaults = GenerationSettings()
        out.update({name: getattr(settings, name) for name in ("temperature", "top_k")
                    if getattr(settings, name) != getattr(defaults, name)})
        return out


def cell_id(kind: str, method: Method | None, layer, strength: float) -> str:
    return kind if method is None else f"{method.name}|L{layer}|s{strength:g}"


def _clips_needed(plan: GridPlan, done: dict) -> int:
    n = len(plan.items)
    return sum(n for kind, m, layer, s in plan.cells() if cell_id(kind, m, layer, s) not in done
               and not (kind == "steered" and s == 0.0))


def _object_id(obj) -> dict:
    """What identifies a judge or probe across runs: its class, classes and a hash of its array attributes."""
    sha = hashlib.sha256(f"{type(obj).__module__}.{type(obj).__qualname__}".encode())
    for key, value in sorted(getattr(obj, "__dict__", {}).items()):
        if isinstance(value, np.ndarray):
            sha.update(key.encode())
            sha.update(np.ascontiguousarray(value).tobytes())
        elif isinstance(value, (str, int, float, tuple, list)) and not key.startswith("_"):
            sha.update(f"{key}={value!r}".encode())
    classes = getattr(obj, "classes", getattr(obj, "classes_", None))
    return dict(name=type(obj).__qualname__, classes=[str(c) for c in (classes if classes is not None else [])],
                sha=sha.hexdigest()[:16])


class _Readers:
    """The alignment readers of one run (`scores.Readers`, the judge loaded, the probe's layer checked against
    the model) before any work."""

    def __init__(self, handle, readers: Readers):
        self.handle, self.scores = handle, scores
        judge = readers.judge
        if judge is True:
            try:
                judge = load_judge()
            except (OSError, ValueError, KeyError) as error:
                raise BadInputError(f"judge=True needs the teaching model's genre judge, which cannot be loaded "
                                    f"({error}): pass Readers(judge=False), or a judge object") from None
        self.judge = judge if judge is not False else None
        self.probe, self.probe_site, self.probe_pooling = readers.probe, readers.probe_site, readers.probe_pooling
        self.probe_layer = None if readers.probe is None else layer_index(readers.probe_layer, handle.n_layers)
        self.clap, self.clap_labels, self.clap_available = readers.clap, readers.clap_labels, None

    def check_targets(self, targets) -> None:
        """Every target must be one of each reader's classes (checked before any clip is made)."""
        for prefix, reader, attr in (("judge", self.judge, "classes"), ("probe", self.probe, "classes_")):
            if reader is None:
                continue
            classes = [c.item() if hasattr(c, "item") else c for c in getattr(reader, attr)]
            missing = [t for t in dict.fromkeys(targets) if t not in classes]
            if missing:
                raise BadInputError(f"targets {missing} are not among the {prefix}'s classes {classes}: steer toward "
                                    f"classes the {prefix} reads, or pass another {prefix}")

    def describe(self) -> dict:
        """The readers as the grid records them: a resume must read with the same ones."""
        out = dict(judge=None if self.judge is None else _object_id(self.judge), probe=None, clap=None)
        if self.probe is not None:
            out["probe"] = dict(_object_id(self.probe), layer=self.probe_layer, pooling=self.probe_pooling)
            if self.probe_site != "resid":  # recorded where it is not the default: older folders resume
                out["probe"]["site"] = self.probe_site
        if self.clap:
            source = os.environ.get(self.scores.CLAP_ENV) or self.scores.CLAP_DEFAULT
            labels = None if self.clap_labels is None else list(self.clap_labels)
            out["clap"] = dict(name="clap", labels=labels, source=source)
        return out

    def read(self, clips, targets) -> dict:
        out: dict = {}

        def fill(prefix, classes, probs):
            classes = [c.item() if hasattr(c, "item") else c for c in classes]
            for t in set(targets) - set(classes):
                raise BadInputError(f"target {t!r} is not one of the {prefix}'s classes {classes}")
            probs = np.asarray(probs)
            out[f"{prefix}_p_target"] = [float(p[classes.index(t)]) for p, t in zip(probs, targets)]
            out[f"{prefix}_pred"] = [classes[int(np.argmax(p))] for p in probs]

        if self.judge is not None:
            waves = [c.mono for c in clips]
            fill("judge", self.judge.classes, self.judge.predict_proba(waves, sr=clips[0].sample_rate_hz))
        if self.probe is not None:
            fill("probe", self.probe.classes_, self.scores.probe_reading(
                self.handle, clips, self.probe, layer=self.probe_layer, site=self.probe_site,
                pooling=self.probe_pooling))
        if self.clap and self.clap_available is not False:
            labels = list(self.clap_labels or sorted(set(targets)))
            probs = self.scores.clap_reading(clips, labels)
            self.clap_available = probs is not None
            if probs is not None:
                fill("clap", labels, probs)
        return out


def _generate(handle, plan: GridPlan, settings: GenerationSettings, cell: tuple, stop):
    """The clips of one cell: each item steered toward its own target, batch by batch (a per-clip `Edit`)."""
    from workbench.runtime.edits import Edit
    from workbench.runtime.steering import Schedule
    kind, method, layer, strength = cell
    items = plan.items
    seeds = [i.seed + (plan.reference_seed_offset if kind == "reference" else 0) for i in items]
    clips = []
    for start in range(0, len(items), settings.batch_size):
        chunk = items[start:start + settings.batch_size]
        batch = settings.replace(seeds=tuple(seeds[start:start + len(chunk)]), batch_size=len(chunk))
        if kind != "steered":
            clips += wb.generate(handle, [i.prompt for i in chunk], batch, stop=stop).clips
            continue
        method.spec(chunk[0].target, layer, strength)  # the checks a SteeringSpec makes (bounds, mode)
        vectors = np.stack([method.direction(i.target, layer) for i in chunk])
        push = Edit(method.mode, layer=layer, vector=vectors, strength=method.absolute_strength(layer, strength),
                    schedule=Schedule(**method.schedule), rows=method.rows)
        clips += wb.generate(handle, [i.prompt for i in chunk], batch, edits=[push], stop=stop).clips
    return clips


def _rows(plan, kind, method, layer, strength, clips, embeddings, readings, twins, frame_period: int) -> list[dict]:
    rows = []
    for k, (item, clip) in enumerate(zip(plan.items, clips)):
        row = dict(cell=cell_id(kind, method, layer, strength), kind=kind,
                   method=method.name if method is not None else kind, layer=-1 if layer is None else int(layer),
                   strength=float(strength), item=k, prompt=item.prompt, seed=int(clip.seed), target=item.target,
                   source=item.source)
        if method is not None:
            row.update(mode=method.mode, strength_abs=method.absolute_strength(layer, strength))
        row.update({key: values[k] for key, values in readings.items()})
        if twins is not None:
            twin_clip, twin_embedding = twins[0][k], twins[1][k]
            row.update(code_edit_rate=metrics.code_edit_rate(clip.codes, twin_clip.codes),
                       mel_distance=metrics.mel_distance(clip.mono, twin_clip.mono, clip.sample_rate_hz),
                       embedding_distance=metrics.embedding_distance(embeddings[k], twin_embedding))
        quality = clip_quality(clip.mono, clip.sample_rate_hz, frame_period, codes=clip.codes)
        row.update(quality)
        if twins is not None:
            twin_stats = code_stats(twins[0][k].codes)
            row.update(twin_distinct_codes=twin_stats["distinct_codes"], twin_repeat_rate=twin_stats["repeat_rate"],
                       collapsed=is_collapsed(quality, twin_stats))
        row.update(metrics.descriptors(clip.mono, clip.sample_rate_hz))
        rows.append(row)
    return rows


def run_grid(handle, plan: GridPlan, folder, settings: GenerationSettings | None = None, *,
             readers: Readers | None = None, progress: bool = False,
             stop: Callable[[], bool] | None = None) -> EvaluationResult:
    """Generate and score every cell of `plan` not yet committed in `folder`; returns the whole result.

    settings: how every clip is generated (`GenerationSettings`; default `GRID_SETTINGS`: 2 s clips in batches
    of 16, guidance 3); its seeds are the items' (leave them at 0). readers: which readers score the clips
    (`workbench.analysis.scores.Readers`: the genre judge, a probe re-read through the unsteered model, CLAP when
    its weights are local; default all three where available, the judge required). stop: polled every decoder
    step and between cells (True raises `StoppedError`; committed cells stay on disk).
    """
    handle = model_handle(handle)
    if not isinstance(plan, GridPlan):
        raise WrongTypeError(f"plan is a {type(plan).__name__}: pass a GridPlan(methods, layers=..., items=...)")
    settings = settings_of(GRID_SETTINGS if settings is None else settings)
    if settings.seeds not in (0, None):
        raise BadInputError(f"settings.seeds={settings.seeds!r}: a grid's seeds are its items' "
                            "(items_for(..., seeds=...)): leave settings.seeds at 0")
    finite_float(settings.duration_s, "duration_s", low=MIN_DURATION_S,
                 hint=f"descriptors (tempo, key) need at least {MIN_DURATION_S} s of audio")
    for name, flag in (("progress", progress),):
        if not isinstance(flag, (bool, np.bool_)):
            raise WrongTypeError(f"{name}={flag!r:.60}: pass True or False")
    if stop is not None and not callable(stop):
        raise WrongTypeError(f"stop={stop!r:.60}: pass a function returning True to stop, or None")
    log = ResultsLog(folder)
    readers = _Readers(handle, readers_of(readers))
    for kind, method, layer, strength in plan.cells():  # every cell's settings checked before any work
        if kind == "steered":
            for target in dict.fromkeys(i.target for i in plan.items):
                method.spec(target, layer, strength).validate_for(handle.n_layers, handle.hidden_size,
                                                                 handle.model_id)
    readers.check_targets([i.target for i in plan.items])
    from workbench.runtime.inputs import generation_args  # torch: the widgets import this module torch-free

    # prompt length, duration vs the model's positions, the device
    generation_args(handle, [i.prompt for i in plan.items], settings.replace(seeds=tuple(i.seed for i in plan.items)))
    shared = plan.shared(handle, settings)
    with store_lock(log.folder):
        log.check_plan(shared, readers.describe())
        damaged = log.verify()
        if damaged.corrupt:  # never kept as done: moved aside (nothing deleted), then made again below
            report = log.repair()
            warnings.warn(f"{log.folder}: {len(damaged.corrupt)} damaged cells or lines moved to quarantine/ and made "
                          f"again ({'; '.join(report.actions[:3])})", stacklevel=2)
        done = log.done()
        for kind, method, layer, strength in plan.cells():
            if kind == "steered" and cell_id(kind, method, layer, strength) in done \
                    and done[cell_id(kind, method, layer, strength)] != method.fingerprint(layer):
                raise GridMismatchError(
                    f"{log.folder} already holds cell {cell_id(kind, method, layer, strength)!r} made with other "
                    f"directions or settings for method {method.name!r}: use a new folder, or rename the method")
        key = plan_hash(shared)
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=_clips_needed(plan, done), unit="clip", desc="evaluation grid")
        try:
            twins = None
            for kind, method, layer, strength in plan.cells():
                cell = cell_id(kind, method, layer, strength)
                if stop is not None and stop():
                    raise StoppedError(f"evaluation stopped before cell {cell!r}; committed cells are in {log.folder}"
                                       ": run the same call again to resume")
                if kind != "twin" and twins is None:
                    twins = _twins(handle, log, plan)
                if cell in done:
                    continue
                if kind == "steered" and strength == 0.0:
                    rows = [dict(r, cell=cell, kind="steered", method=method.name, layer=int(layer), strength=0.0,
                                 mode=method.mode, strength_abs=0.0, generated=False, code_edit_rate=0.0,
                                 mel_distance=0.0, embedding_distance=0.0, twin_distinct_codes=r["distinct_codes"],
                                 twin_repeat_rate=r["repeat_rate"], collapsed=False) for r in twins[2]]
                    log.commit(cell, method.fingerprint(layer), rows, codes=twins[3], embeddings=twins[1], plan=key)
                    continue
                try:
                    clips = _generate(handle, plan, settings, (kind, method, layer, strength), stop)
                except StoppedError as error:
                    raise StoppedError(f"evaluation stopped in cell {cell!r}; committed cells are in {log.folder}: "
                                       "run the same call again to resume") from error
                embeddings = metrics.codec_embedding(handle, [c.mono for c in clips])
                readings = readers.read(clips, [i.target for i in plan.items])
                rows = _rows(plan, kind, method, layer, strength, clips, embeddings, readings,
                             None if kind == "twin" else twins[:2], int(round(handle.samples_per_frame)))
                if kind == "twin":
                    for row in rows:
                        row.update(code_edit_rate=0.0, mel_distance=0.0, embedding_distance=0.0)
                codes = np.stack([c.codes for c in clips]).astype(np.int16)
                log.commit(cell, "twin" if method is None else method.fingerprint(layer), rows, codes=codes,
                           embeddings=embeddings, plan=key)
                if kind == "twin":
                    twins = (clips, embeddings, rows, codes)
                if bar is not None:
                    bar.update(len(clips))
        finally:
            if bar is not None:
                bar.close()
    return EvaluationResult(log.folder, handle=handle)


def _twins(handle, log: ResultsLog, plan: GridPlan):
    """(twin clips, embeddings, rows, codes) of the twin cell committed by an earlier run (decoded)."""
    record = next(r for r in log.records() if r["cell"] == "twin")
    arrays = log.arrays("twin")
    result = EvaluationResult(log.folder, handle=handle)
    index = [int(i) for i in result.table.index[result.table["cell"] == "twin"]]
    clips = [result.clip(i) for i in index]
    for clip, row in zip(clips, record["rows"]):
        clip.seed = row["seed"]
    return clips, arrays["embeddings"], record["rows"], arrays["codes"]
