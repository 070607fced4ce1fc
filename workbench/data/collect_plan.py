"""What a collection runs, shared by the local `workbench.data.collect.collect` and the Ray one
(`workbench.data.distributed.collect`): the inputs normalised into rows, the store's identity (the effective
generation settings), and the per-batch job (`CaptureJob`, picklable, so a Ray worker runs exactly what a local
run runs).

    >>> import workbench as wb
    >>> plan = plan_collect(wb.random_model("tiny"), ["jazz", "rock", "pop"], wb.CaptureSpec(layers=(1,)),
    ...                     GenerationSettings(duration_s=0.2, seeds=(4, 5, 6)))
    >>> plan.job.keys, plan.spec["generation"]["duration_s"], [r["seed"] for r in plan.items.rows]
    ((('resid', 1),), 0.2, [4, 5, 6])
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

import numpy as np
import torch

from workbench import validation
from workbench.data.ray_pool import RayEngine
from workbench.data.store import ActivationStore, StoreIdentity, array_hash
from workbench.errors import BadInputError, EmptyInputError
from workbench.runtime.capture import CaptureSpec, PooledAccumulator
from workbench.runtime.generation import generate
from workbench.runtime.inputs import generation_args, seeds_for
from workbench.runtime.settings import GenerationSettings, settings_of
from workbench.runtime.teacher_forcing import teacher_force

__all__ = ["as_inputs", "pool_steps", "generation_settings", "plan_collect", "options_of", "CollectOptions",
           "CollectPlan", "CaptureJob", "CollectInputs"]

MODES = ("text", "audio", "continuation")


@dataclasses.dataclass(frozen=True)
class CollectOptions:
    """How a collection runs and what its store keeps, beyond the generation settings.

    mode: "text" (generate from the prompts), "audio" (teacher-force the inputs' audio) or "continuation"
    (continue each input's audio with its prompt); None: what the inputs hold. keep_audio: store each clip's
    audio. compact: merge the shards at the end (each layer one memory-mapped file). lock_timeout_s: how long to
    wait for another run writing into the store before StoreLockedError (0: refuse at once). engine: "local"
    (this process), "ray" or a `workbench.data.distributed.RayEngine` (one model replica per Ray worker); None:
    the function's own (`workbench.data.collect.collect`: local, `workbench.data.distributed.collect`: ray).

        >>> CollectOptions(keep_audio=False).compact
        True
        >>> CollectOptions(mode="video")
        Traceback (most recent call last):
        ...
        workbench.errors.BadInputError: mode='video': use one of ('text', 'audio', 'continuation')
    """

    mode: str | None = None
    keep_audio: bool = True
    compact: bool = True
    lock_timeout_s: float = 0.0
    engine: object = None

    def __post_init__(self):
        if self.mode is not None and self.mode not in MODES:
            raise BadInputError(f"mode={self.mode!r}: use one of {MODES}")
        object.__setattr__(self, "keep_audio", validation.flag(self.keep_audio, "keep_audio"))
        object.__setattr__(self, "compact", validation.flag(self.compact, "compact"))
        object.__setattr__(self, "lock_timeout_s", validation.finite_float(self.lock_timeout_s, "lock_timeout_s",
                                                                           low=0.0))
        if not (self.engine is None or isinstance(self.engine, RayEngine)
                or (isinstance(self.engine, str) and self.engine in ("local", "ray"))):
            raise BadInputError(f"engine={self.engine!r}: use 'local', 'ray' or "
                                "workbench.data.distributed.RayEngine(...)")


class CollectInputs:
    """Rows plus an audio loader: what collect needs from any input set."""

    def __init__(self, rows, audio=None, mode="text", sample_rate_hz=None):
        self.rows, self._audio, self.mode, self.sample_rate_hz = rows, audio, mode, sample_rate_hz

    def audio(self, i):
        if self._audio is None:
            raise BadInputError("these inputs have no audio: pass an AudioSet/SynthSet or dicts with 'audio'")
        return self._audio(i)


def _content_id(row: dict) -> str:
    blob = json.dumps({k: row.get(k) for k in ("prompt", "seed", "label", "path")}, sort_keys=True, default=str)
    return hashlib.sha1(blob.encode()).hexdigest()[:12]


def as_inputs(inputs, mode: str | None = None, seeds=0) -> CollectInputs:
    """Normalise a PromptSet/AudioSet/SynthSet, a list of prompt strings, or a list of dicts
    (keys: prompt, seed, label, id, audio + sample_rate_hz) into rows + audio loader.

    seeds: for a plain list, the rows' seeds (one int for all, or one per row: `GenerationSettings.seeds`); an
    input set or a dict that names its seed keeps its own, and other seeds than the default 0 are refused there.
    """
    if seeds not in (0, None) and hasattr(inputs, "rows"):
        raise BadInputError(f"seeds={seeds!r}: these inputs carry their own seeds (e.g. PromptSet(..., seeds=...)): "
                            "leave settings.seeds at 0, or pass the prompts as a list")
    if hasattr(inputs, "rows"):
        rows = [dict(r) for r in inputs.rows]
        audio = getattr(inputs, "audio", None)
        found_mode, sr = getattr(inputs, "mode", "text"), getattr(inputs, "sample_rate_hz", None)
    else:
        items = [dict(prompt=x) if isinstance(x, str) else dict(x) for x in inputs]
        waves = [it.pop("audio", None) for it in items]
        for it, wave in zip(items, waves):
            if wave is not None and "id" not in it:  # identify clips by content, so reruns resume
                it["id"] = "audio-" + array_hash(np.asarray(wave, dtype=np.float32))
        srs = {it.pop("sample_rate_hz", None) for it, w in zip(items, waves) if w is not None}
        if len(srs) > 1:
            raise BadInputError(f"audio inputs mix sample rates {sorted(srs)}: resample them to one "
                                "(workbench.data.datasets.resample)")
        rows, sr = items, (srs.pop() if srs else None)
        has_audio = any(w is not None for w in waves)
        audio = (lambda i: np.asarray(waves[i], dtype=np.float32)) if has_audio else None
        found_mode = "audio" if has_audio else "text"
        per_row = seeds_for(0 if seeds is None else seeds, len(rows))
        if seeds not in (0, None) and any("seed" in r for r in rows):
            raise BadInputError(f"seeds={seeds!r} but some inputs name their own 'seed': pass seeds in one place")
        for r, seed in zip(rows, per_row):
            r.setdefault("seed", seed)
            r.setdefault("label", None)
            r.setdefault("id", _content_id(r))
    if not rows:
        raise EmptyInputError("no inputs to collect: pass a non-empty set of prompts or clips")
    mode = mode or found_mode
    if mode not in MODES:
        raise BadInputError(f"mode={mode!r}: use one of {MODES}")
    ids = [str(r["id"]) for r in rows]
    if len(set(ids)) != len(ids):
        dup = next(i for i in ids if ids.count(i) > 1)
        raise BadInputError(f"input id {dup!r} appears more than once: give each row a unique 'id' "
                            "(identical prompt+seed rows would give identical clips)")
    return CollectInputs(rows, audio, mode, sr)


def pool_steps(steps: np.ndarray, pooling: str) -> np.ndarray:
    """Pool (T, H) per-step activations with the core's own accumulator (one pooling implementation)."""
    acc = PooledAccumulator(pooling)
    acc.offer(torch.from_numpy(np.ascontiguousarray(steps, dtype=np.float32))[None], replace=False)
    return acc.result()[0].numpy()


# the settings fields a store is keyed by (the clips depend on them); seeds come from the rows, batch size,
# threads, device and the decoder loop change how the clips are made, never what they are
KEYED = ("duration_s", "guidance_scale", "temperature", "top_k")


def generation_settings(settings: GenerationSettings, mode: str, default_temperature: float = 1.0) -> dict:
    """The settings a store's clips depend on, as its key records them: temperature=None is the model's own
    (`MusicGenHandle.default_temperature`); ``steering`` is None (a collection does not steer). Teacher forcing
    (mode="audio") uses none of them.

        >>> generation_settings(GenerationSettings(duration_s=0.2, guidance_scale=3), "text")["guidance_scale"]
        3.0
    """
    if mode == "audio":
        return {}
    out = {name: getattr(settings, name) for name in KEYED}
    if out["temperature"] is None:
        out["temperature"] = float(default_temperature)
    return dict(out, steering=None)


def _spec_key(capture_key: str, described: dict) -> str:
    blob = json.dumps(described, sort_keys=True, default=str)
    return capture_key + "-" + hashlib.sha256(blob.encode()).hexdigest()[:8]


def _store_spec(spec, mode, per_step_keys, settings: GenerationSettings,
                default_temperature=1.0) -> tuple[dict, str, str]:
    """(spec dict, key of the effective settings, key the earlier workbench gave the same settings passed as
    keywords: the fields that differ from the defaults)."""
    described = dict(capture=spec.to_dict(), capture_key=spec.key, mode=mode, per_step=[list(k) for k in per_step_keys],
                     generation=generation_settings(settings, mode, default_temperature))
    defaults = GenerationSettings()
    given = {name: getattr(settings, name) for name in KEYED if getattr(settings, name) != getattr(defaults, name)}
    legacy = _spec_key(spec.key, dict(described, generation=given))
    return described, _spec_key(spec.key, described), legacy


@dataclasses.dataclass(frozen=True)
class CaptureJob:
    """What every batch of one collection runs; picklable, so a Ray worker runs exactly what `collect` runs."""

    capture_spec: object
    run_spec: object
    keys: tuple
    step_keys: tuple
    settings: GenerationSettings
    mode: str
    sample_rate_hz: int | None
    keep_audio: bool

    def run(self, handle, rows: list[dict], waves: list | None = None) -> dict:
        """Capture one batch of rows (waves: their audio, for audio modes); returns `ActivationStore.append`'s
        arguments (pooled, rows, steps, audio)."""
        inputs = CollectInputs(rows, None if waves is None else waves.__getitem__, self.mode, self.sample_rate_hz)
        acts, audio = _run_batch(handle, inputs, list(range(len(rows))), self.run_spec, self.settings)
        pooled, steps = _split(acts, self.keys, self.step_keys, self.capture_spec, len(rows))
        return dict(pooled=pooled, rows=[_metadata(r) for r in rows], steps=steps,
                    audio=audio if self.keep_audio else None)


@dataclasses.dataclass(frozen=True)
class CollectPlan:
    """A checked collection: the inputs, the per-batch job and the store identity (local and Ray runs share it)."""

    items: CollectInputs
    job: CaptureJob
    spec: dict
    spec_key: str
    legacy_key: str

    def open_store(self, handle, store_dir, lock_timeout_s: float = 0.0) -> ActivationStore:
        """Create or reopen the store for this plan and sweep a killed writer's leftovers (hold its lock)."""
        identity = StoreIdentity(handle.model_id, self.spec_key, self.job.keys, spec=self.spec,
                                 per_step_keys=self.job.step_keys, sample_rate_hz=handle.sample_rate_hz)
        store = ActivationStore.create(store_dir, identity, accept_spec_keys=(self.legacy_key,),
                                       lock_timeout_s=lock_timeout_s)
        store.sweep_leftovers()
        return store

    def batches(self, store: ActivationStore) -> list[list[int]]:
        """Row indices still missing from the store, in input order, cut into batches."""
        done = store.ids()
        todo = [i for i, r in enumerate(self.items.rows) if str(r["id"]) not in done]
        size = self.job.settings.batch_size
        return [todo[s:s + size] for s in range(0, len(todo), size)]

    def batch_inputs(self, indices) -> tuple[list[dict], list | None]:
        """(rows, waves) of a batch; waves is None for text inputs."""
        rows = [self.items.rows[i] for i in indices]
        return rows, (None if self.items.mode == "text" else [self.items.audio(i) for i in indices])


def options_of(options: CollectOptions | None) -> CollectOptions:
    """``options`` (default `CollectOptions()`); anything else is refused naming the fix."""
    return validation.config_object(options, CollectOptions, "options", "options=CollectOptions(keep_audio=False)",
                                    error=BadInputError)


def plan_collect(handle, inputs, capture_spec, settings: GenerationSettings | None = None, *, per_step_layers=(),
                 mode: str | None = None, keep_audio: bool = True) -> CollectPlan:
    """Check `collect`'s arguments and work out its batches' job and store identity, before any work.

    settings: how the clips are generated (`GenerationSettings`; default its defaults); its batch_size is the rows
    per shard, its seeds apply to inputs given as a plain list (a `PromptSet` carries its own seeds).

        >>> import workbench as wb
        >>> plan = plan_collect(wb.random_model("tiny"), ["jazz", "rock", "pop"], wb.CaptureSpec(layers=(1,)),
        ...                     GenerationSettings(duration_s=0.2, batch_size=2))
        >>> plan.job.keys, plan.spec["generation"]["duration_s"], plan.job.settings.batch_size
        ((('resid', 1),), 0.2, 2)
    """
    settings = settings_of(settings)
    items = as_inputs(inputs, mode, settings.seeds)
    if capture_spec.pooling == "none":
        raise BadInputError("collect stores pooled rows: use pooling='mean' (or last/max/mean_std) and "
                            "per_step_layers=(...) for the layers whose per-step activations you want")
    layers = capture_spec.resolved_layers(handle.n_layers)
    per_step = tuple(sorted({int(x) for x in np.atleast_1d(per_step_layers)})) if len(per_step_layers or ()) else ()
    for layer in per_step:
        handle.check_layer(layer)
    keys = tuple((site, layer) for site in capture_spec.sites for layer in layers)
    step_keys = tuple((site, layer) for site in capture_spec.sites for layer in per_step)
    run_spec = capture_spec if not per_step else CaptureSpec(
        layers=tuple(sorted(set(layers) | set(per_step))), sites=capture_spec.sites, pooling="none",
        rows=capture_spec.rows)
    spec_dict, spec_key, legacy_key = _store_spec(capture_spec, items.mode, list(step_keys), settings,
                                                  handle.default_temperature)
    if items.mode != "audio":  # duration against the model, capture layers and rows, device: before any work
        row = items.rows[0]
        generation_args(handle, [row.get("prompt") or ""], settings.replace(seeds=int(row.get("seed") or 0)),
                        capture=run_spec)
    job = CaptureJob(capture_spec, run_spec, keys, step_keys, settings.replace(seeds=0), items.mode,
                     items.sample_rate_hz, keep_audio)
    return CollectPlan(items, job, spec_dict, spec_key, legacy_key)


def _run_batch(handle, inputs: CollectInputs, indices, run_spec, settings: GenerationSettings):
    """Capture one batch. Returns (activations dict, list of (channels, samples) audio)."""
    rows = [inputs.rows[i] for i in indices]
    # one batch, its rows' own seeds; threads unchanged (the run set them for all its batches)
    batch = settings.replace(seeds=tuple(int(r.get("seed") or 0) for r in rows), batch_size=len(rows), threads=None)
    prompts = [r.get("prompt") or "" for r in rows]
    if inputs.mode == "text":
        res = generate(handle, prompts, batch, capture=run_spec)
        return res.activations, [c.waveform for c in res.clips]
    waves = [inputs.audio(i) for i in indices]
    sr = inputs.sample_rate_hz or handle.sample_rate_hz
    if inputs.mode == "continuation":
        res = generate(handle, prompts, batch, capture=run_spec, audio_prompt=waves, audio_prompt_sample_rate_hz=sr)
        return res.activations, [c.waveform for c in res.clips]
    prompts = [r["prompt"] for r in rows] if all(r.get("prompt") for r in rows) else None
    acts = teacher_force(handle, waves, sr, prompts=prompts, capture=run_spec, batch_size=len(rows), threads=None)
    return acts, [w[None] for w in waves]


def _metadata(row: dict) -> dict:
    """The row's JSON-able fields (numpy scalars as plain numbers; arrays and objects left out)."""
    out = {}
    for key, value in row.items():
        if isinstance(value, np.generic):
            value = value.item()
        if isinstance(value, (str, int, float, bool, type(None), list, tuple, dict)):
            out[key] = value
    return out


def _split(acts, keys, step_keys, spec, n):
    """Pooled arrays per key ((n, W) or (n, 2, W) for rows='both') and per-step lists (cond rows)."""
    per_step_run = bool(step_keys)
    pooled, steps = {}, {}
    for key in keys:
        value = acts[key]
        if per_step_run:
            value = np.stack([pool_steps(s, spec.pooling) for s in value])
        value = np.asarray(value, dtype=np.float32)
        pooled[key] = np.stack([value[:n], value[n:]], axis=1) if spec.rows == "both" else value
    for key in step_keys:
        steps[key] = [np.asarray(s, dtype=np.float32) for s in acts[key][:n]]
    return pooled, steps
