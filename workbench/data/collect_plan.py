"""What a collection runs, shared by the local `workbench.data.collect.collect` and the Ray one
(`workbench.data.distributed.collect`): the inputs normalised into rows, the store's identity (the effective
generation settings), and the per-batch job (`CaptureJob`, picklable, so a Ray worker runs exactly what a local
run runs).

    >>> import workbench as wb
    >>> plan = plan_collect(wb.random_model("tiny"), ["jazz", "rock", "pop"], wb.CaptureSpec(layers=(1,)),
    ...                     batch_size=2, duration_s=0.2)
    >>> plan.job.keys, plan.spec["generation"]["duration_s"], len(plan.items.rows)
    ((('resid', 1),), 0.2, 3)
"""
from __future__ import annotations

import dataclasses
import hashlib
import inspect
import json

import numpy as np
import torch

import workbench as wb
from workbench.data.store import ActivationStore, StoreIdentity, array_hash
from workbench.errors import BadInputError, EmptyInputError
from workbench.runtime.capture import PooledAccumulator
from workbench.runtime.generation import generate
from workbench.validation import positive_int

__all__ = ["as_inputs", "pool_steps", "generation_settings", "plan_collect", "CollectPlan", "CaptureJob",
           "CollectInputs"]

MODES = ("text", "audio", "continuation")


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


def as_inputs(inputs, mode: str | None = None) -> CollectInputs:
    """Normalise a PromptSet/AudioSet/SynthSet, a list of prompt strings, or a list of dicts
    (keys: prompt, seed, label, id, audio + sample_rate_hz) into rows + audio loader."""
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
        for r in rows:
            r.setdefault("seed", 0)
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


# generate() arguments that collect sets itself per batch: not settings of the store
_SET_PER_BATCH = {"handle", "prompts", "seeds", "capture", "batch_size", "audio_prompt",
                  "audio_prompt_sample_rate_hz", "progress", "stop", "threads"}


def generation_settings(mode: str, gen_kwargs: dict, default_temperature: float = 1.0) -> dict:
    """The settings generation runs with: `workbench.generate`'s defaults filled in, so passing a default
    (guidance_scale=3.0) equals leaving it out; temperature=None is the model's own
    (`MusicGenHandle.default_temperature`). Teacher forcing (mode="audio") uses none of them.

        >>> generation_settings("text", {"duration_s": 0.2, "guidance_scale": 3})["guidance_scale"]
        3.0
    """
    if mode == "audio":
        return {}
    params = inspect.signature(generate).parameters
    settings = {}
    for name, p in params.items():
        if name in _SET_PER_BATCH or p.default is inspect.Parameter.empty:
            continue
        value = gen_kwargs.get(name, p.default)
        floats = isinstance(p.default, float) or name == "temperature"  # temperature's default is None
        if floats and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)  # 3 and 3.0 generate the same
        settings[name] = value
    if "temperature" in settings and settings["temperature"] is None:  # None: the model's own
        settings["temperature"] = float(default_temperature)
    settings.update({k: v for k, v in gen_kwargs.items() if k not in params})  # generate() will name these
    return settings


def _spec_key(capture_key: str, described: dict) -> str:
    blob = json.dumps(described, sort_keys=True, default=str)
    return capture_key + "-" + hashlib.sha256(blob.encode()).hexdigest()[:8]


def _store_spec(spec, mode, per_step_keys, gen_kwargs, default_temperature=1.0) -> tuple[dict, str, str]:
    """(spec dict, key of the effective settings, key the earlier workbench gave the same arguments)."""
    described = dict(capture=spec.to_dict(), capture_key=spec.key, mode=mode, per_step=[list(k) for k in per_step_keys],
                     generation=generation_settings(mode, gen_kwargs, default_temperature))
    legacy = _spec_key(spec.key, dict(described, generation=gen_kwargs))
    return described, _spec_key(spec.key, described), legacy


@dataclasses.dataclass(frozen=True)
class CaptureJob:
    """What every batch of one collection runs; picklable, so a Ray worker runs exactly what `collect` runs."""

    capture_spec: object
    run_spec: object
    keys: tuple
    step_keys: tuple
    gen_kwargs: dict
    mode: str
    sample_rate_hz: int | None
    keep_audio: bool

    def run(self, handle, rows: list[dict], waves: list | None = None) -> dict:
        """Capture one batch of rows (waves: their audio, for audio modes); returns `ActivationStore.append`'s
        arguments (pooled, rows, steps, audio)."""
        inputs = CollectInputs(rows, None if waves is None else waves.__getitem__, self.mode, self.sample_rate_hz)
        acts, audio = _run_batch(handle, inputs, list(range(len(rows))), self.run_spec, self.gen_kwargs)
        pooled, steps = _split(acts, self.keys, self.step_keys, self.capture_spec, len(rows))
        return dict(pooled=pooled, rows=[_metadata(r) for r in rows], steps=steps,
                    audio=audio if self.keep_audio else None)


@dataclasses.dataclass(frozen=True)
class CollectPlan:
    """A checked collection: the inputs, the per-batch job and the store identity (local and Ray runs share it)."""

    items: CollectInputs
    job: CaptureJob
    batch_size: int
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
        return [todo[s:s + self.batch_size] for s in range(0, len(todo), self.batch_size)]

    def batch_inputs(self, indices) -> tuple[list[dict], list | None]:
        """(rows, waves) of a batch; waves is None for text inputs."""
        rows = [self.items.rows[i] for i in indices]
        return rows, (None if self.items.mode == "text" else [self.items.audio(i) for i in indices])


def plan_collect(handle, inputs, capture_spec, batch_size: int = 8, *, per_step_layers=(), mode: str | None = None,
                 keep_audio: bool = True, **gen_kwargs) -> CollectPlan:
    """Check `collect`'s arguments and work out its batches' job and store identity, before any work.

        >>> import workbench as wb
        >>> plan = plan_collect(wb.random_model("tiny"), ["jazz", "rock", "pop"], wb.CaptureSpec(layers=(1,)),
        ...                     batch_size=2, duration_s=0.2)
        >>> plan.job.keys, plan.spec["generation"]["duration_s"]
        ((('resid', 1),), 0.2)
    """
    batch_size = positive_int(batch_size, "batch_size")  # a batch size < 1 would silently collect nothing
    items = as_inputs(inputs, mode)
    if capture_spec.pooling == "none":
        raise BadInputError("collect stores pooled rows: use pooling='mean' (or last/max/mean_std) and "
                            "per_step_layers=(...) for the layers whose per-step activations you want")
    layers = capture_spec.resolved_layers(handle.n_layers)
    per_step = tuple(sorted({int(x) for x in np.atleast_1d(per_step_layers)})) if len(per_step_layers or ()) else ()
    for layer in per_step:
        handle.check_layer(layer)
    keys = tuple((site, layer) for site in capture_spec.sites for layer in layers)
    step_keys = tuple((site, layer) for site in capture_spec.sites for layer in per_step)
    run_spec = capture_spec if not per_step else wb.CaptureSpec(
        layers=tuple(sorted(set(layers) | set(per_step))), sites=capture_spec.sites, pooling="none",
        rows=capture_spec.rows)
    spec_dict, spec_key, legacy_key = _store_spec(capture_spec, items.mode, list(step_keys), gen_kwargs,
                                                  handle.default_temperature)
    job = CaptureJob(capture_spec, run_spec, keys, step_keys, dict(gen_kwargs), items.mode, items.sample_rate_hz,
                     keep_audio)
    return CollectPlan(items, job, batch_size, spec_dict, spec_key, legacy_key)


def _run_batch(handle, inputs: CollectInputs, indices, run_spec, gen_kwargs):
    """Capture one batch. Returns (activations dict, list of (channels, samples) audio)."""
    rows = [inputs.rows[i] for i in indices]
    if inputs.mode == "text":
        res = wb.generate(handle, [r.get("prompt") or "" for r in rows], seeds=[int(r.get("seed") or 0) for r in rows],
                          capture=run_spec, batch_size=len(rows), threads=None, **gen_kwargs)
        return res.activations, [c.waveform for c in res.clips]
    waves = [inputs.audio(i) for i in indices]
    sr = inputs.sample_rate_hz or handle.sample_rate_hz
    if inputs.mode == "continuation":
        res = wb.generate(handle, [r.get("prompt") or "" for r in rows], seeds=[int(r.get("seed") or 0) for r in rows],
                          capture=run_spec, batch_size=len(rows), audio_prompt=waves,
                          audio_prompt_sample_rate_hz=sr, threads=None, **gen_kwargs)
        return res.activations, [c.waveform for c in res.clips]
    prompts = [r["prompt"] for r in rows] if all(r.get("prompt") for r in rows) else None
    acts = wb.teacher_force(handle, waves, sr, prompts=prompts, capture=run_spec, batch_size=len(rows),
                             threads=None)
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
