"""Did steering work? Three independent readings of a clip's label.

- `probe_reading`: teacher-force the clip through the *unsteered* model and apply a probe
  (fit the probe on teacher-forced audio with the same site, layer and pooling: `collect` over an
  AudioSet/SynthSet does exactly that).
- `judge_reading`: the teaching model's genre judge (hand-made audio features + logistic regression),
  blind to the model's activations.
- `clap_reading`: CLAP zero-shot against text labels, only when CLAP weights are on this machine.

`steering_success` puts them in one tidy table, one row per clip.

    >>> import numpy as np, workbench as wb
    >>> from workbench.analysis.probes import LinearProbe
    >>> h = wb.random_model("tiny")
    >>> clips = wb.generate(h, ["jazz", "rock"], duration_s=0.2, seeds=[0, 1]).clips
    >>> X = np.random.default_rng(0).normal(size=(8, h.hidden_size)); probe = LinearProbe().fit(X, ["jazz", "rock"] * 4)
    >>> rows = steering_success(h, clips, "rock", Readers(judge=False, probe=probe, probe_layer=1, clap=False))
    >>> sorted(rows[0]), 0 <= rows[0]["probe_p_target"] <= 1
    (['clip', 'probe_p_target', 'probe_pred', 'target'], True)
"""
from __future__ import annotations

import dataclasses
import os
import warnings

import numpy as np

import workbench as wb
from workbench import validation
from workbench.data.datasets import resample
from workbench.enums import POOLINGS
from workbench.errors import BadInputError, ModelNotAvailableError, WrongTypeError

__all__ = ["Readers", "probe_reading", "judge_reading", "clap_reading", "readers_of", "steering_success", "summarize",
           "CLAP_ENV"]

CLAP_ENV = "WORKBENCH_CLAP"  # a local folder with a transformers CLAP checkpoint
CLAP_DEFAULT = "laion/clap-htsat-unfused"


def _waves(clips):
    """(mono 1-D float32 arrays, sample rate) from Clips or (array, rate) pairs."""
    waves, rates = [], set()
    for c in clips:
        if hasattr(c, "mono"):
            waves.append(np.asarray(c.mono, dtype=np.float32))
            rates.add(int(c.sample_rate_hz))
        else:
            wave, rate = c
            waves.append(np.asarray(wave, dtype=np.float32).reshape(-1))
            rates.add(int(rate))
    if not waves:
        raise BadInputError("no clips to score")
    if len(rates) != 1:
        raise BadInputError(f"clips have different sample rates {sorted(rates)}: resample them to one first")
    return waves, rates.pop()


def probe_reading(handle, clips, probe, *, layer: int, site: str = "resid", pooling: str = "mean",
                  prompts=None, batch_size: int = 8) -> np.ndarray:
    """(N, n_classes) probe probabilities of clips teacher-forced through the unsteered `handle`.

    prompts: None reads with null text (the reading reflects the audio, not the prompt). Clips this
    model generated are read from their own codes; other audio is encoded (resampled if needed)."""
    clips = list(clips)
    waves, rate = _waves(clips)
    items = []
    for clip, wave in zip(clips, waves):
        if getattr(clip, "codes", None) is not None and getattr(clip, "model_id", None) == handle.model_id:
            items.append(clip)  # made by this model: read its exact codes, no codec round trip
        else:
            items.append(resample(wave, rate, handle.sample_rate_hz))
    acts = wb.teacher_force(handle, items, handle.sample_rate_hz, prompts=prompts, batch_size=batch_size,
                            capture=wb.CaptureSpec(layers=(layer,), sites=(site,), pooling=pooling))
    return probe.predict_proba(acts[(site, layer)])


def judge_reading(clips, judge=None):
    """(classes, (N, n_classes) probabilities) from the teaching model's genre judge, or None if absent."""
    if judge is None:
        try:
            from workbench.toy.judge import load_judge
            judge = load_judge()
        except (ImportError, FileNotFoundError):
            return None
        except ValueError as error:  # parameters out of date with the judge's features
            warnings.warn(f"genre judge skipped: {error}", stacklevel=2)
            return None
    waves, rate = _waves(clips)
    return list(judge.classes), np.asarray(judge.predict_proba(waves, sr=rate))


def _clap_source(model_path):
    if model_path is not None:
        return str(model_path)
    return os.environ.get(CLAP_ENV) or CLAP_DEFAULT


def clap_reading(clips, labels, *, template: str = "{label} music", model_path=None, strict: bool = False):
    """(N, len(labels)) CLAP zero-shot probabilities, or None when no CLAP weights are available
    locally (never downloads; strict=True raises ModelNotAvailableError instead)."""
    source = _clap_source(model_path)
    try:
        from transformers import ClapModel, ClapProcessor
        model = ClapModel.from_pretrained(source, local_files_only=True).eval()
        processor = ClapProcessor.from_pretrained(source, local_files_only=True)
    except (OSError, ValueError, ImportError) as error:
        if strict:
            raise ModelNotAvailableError(f"no CLAP weights at {source!r} on this machine: download a CLAP "
                                         f"checkpoint and set {CLAP_ENV}=/path/to/it") from error
        return None
    import torch

    waves, rate = _waves(clips)
    target = processor.feature_extractor.sampling_rate
    waves = [resample(w, rate, target) for w in waves]
    inputs = processor(text=[template.format(label=name) for name in labels], audio=waves, sampling_rate=target,
                       return_tensors="pt", padding=True)
    with torch.no_grad():
        logits = model(**inputs).logits_per_audio
    return logits.softmax(-1).numpy()


@dataclasses.dataclass(frozen=True, eq=False)
class Readers:
    """Which readers score a clip's label, checked when made (the model-dependent checks come at use).

    judge: True (the teaching model's genre judge), False, or an object with ``classes`` and
    ``predict_proba(waves, sr=...)``. probe: a fitted probe re-read on the clips teacher-forced through the
    unsteered model at ``probe_layer`` (and ``probe_site``, ``probe_pooling``: as it was fitted). clap: read with
    CLAP when its weights are local (skipped silently otherwise), against ``clap_labels`` (default: the probe's
    classes, else the targets).

        >>> Readers(judge=False, clap=False).probe is None
        True
        >>> Readers(probe=object())  # doctest: +ELLIPSIS
        Traceback (most recent call last):
        ...
        workbench.errors.WrongTypeError: probe=<object ...>: pass a fitted probe (with .classes_ and ...), or None
    """

    judge: object = True
    probe: object = None
    probe_layer: int | None = None
    probe_site: str = "resid"
    probe_pooling: str = "mean"
    clap: bool = True
    clap_labels: tuple | None = None

    def __post_init__(self):
        judge = self.judge
        if judge is not True and judge is not None and judge is not False and (
                isinstance(judge, (str, bytes, int, float)) or not (
                    hasattr(judge, "classes") and callable(getattr(judge, "predict_proba", None)))):
            raise WrongTypeError(f"judge={judge!r:.60}: pass True (the teaching model's judge), False, or an object "
                                 "with .classes and .predict_proba(waves, sr=...)")
        if judge is None:
            object.__setattr__(self, "judge", False)
        probe = self.probe
        if probe is not None and not (hasattr(probe, "classes_") and callable(getattr(probe, "predict_proba", None))):
            raise WrongTypeError(f"probe={probe!r:.60}: pass a fitted probe (with .classes_ and .predict_proba), or "
                                 "None")
        if probe is not None and self.probe_layer is None:
            raise BadInputError("a probe re-read needs probe_layer=... (the layer the probe was fitted on)")
        if self.probe_layer is not None:
            object.__setattr__(self, "probe_layer", validation.non_negative_int(self.probe_layer, "probe_layer"))
        object.__setattr__(self, "probe_site", validation.site(self.probe_site))
        validation.choice(self.probe_pooling, "probe_pooling", POOLINGS[1:])
        if not isinstance(self.clap, (bool, np.bool_)):
            raise WrongTypeError(f"clap={self.clap!r:.60}: pass True (read with CLAP when its weights are local) or "
                                 "False")
        object.__setattr__(self, "clap", bool(self.clap))
        if self.clap_labels is not None:
            object.__setattr__(self, "clap_labels", tuple(validation.str_list(self.clap_labels, "clap_labels",
                                                                             example="['rock', 'jazz']")))


def readers_of(readers: Readers | None) -> Readers:
    """``readers`` (default `Readers()`); anything else is refused naming the fix."""
    return validation.config_object(readers, Readers, "readers", "Readers(judge=False, probe=probe, probe_layer=6)")


def steering_success(handle, clips, target, readers: Readers | None = None) -> list[dict]:
    """One row per clip: the probability each available reader gives `target`, and its top label.

    readers: which readers score the clips (`Readers`; default the judge and CLAP, each when available).
    Columns: clip, probe_p_target/probe_pred (if a probe), judge_p_target/judge_pred (if the judge is
    available), clap_p_target/clap_pred (if CLAP weights are local)."""
    readers = readers_of(readers)
    clips = list(clips)
    rows = [dict(clip=i, target=target) for i in range(len(clips))]

    def fill(prefix, classes, probs):
        classes = [c.item() if hasattr(c, "item") else c for c in classes]
        if target not in classes:
            raise BadInputError(f"target {target!r} is not one of the {prefix}'s classes {classes}")
        for row, p in zip(rows, probs):
            row[f"{prefix}_p_target"] = float(p[classes.index(target)])
            row[f"{prefix}_pred"] = classes[int(np.argmax(p))]

    probe = readers.probe
    if probe is not None:
        fill("probe", probe.classes_, probe_reading(handle, clips, probe, layer=readers.probe_layer,
                                                    site=readers.probe_site, pooling=readers.probe_pooling))
    if readers.judge is not False:
        try:
            reading = judge_reading(clips, None if readers.judge is True else readers.judge)
        except ValueError as error:  # e.g. clips shorter than the judge's window: keep the other readings
            warnings.warn(f"genre judge skipped: {error}", stacklevel=2)
            reading = None
        if reading is not None:
            fill("judge", *reading)
    if readers.clap:
        labels = list(readers.clap_labels) if readers.clap_labels is not None else (
            [c.item() if hasattr(c, "item") else c for c in probe.classes_] if probe is not None else [target])
        probs = clap_reading(clips, labels)
        if probs is not None:
            fill("clap", labels, probs)
    return rows


def summarize(rows: list[dict]) -> dict:
    """Mean of every *_p_target column and the share of clips each reader labels as the target."""
    out = {}
    for key in rows[0] if rows else ():
        if key.endswith("_p_target"):
            prefix = key[: -len("_p_target")]
            out[key + "_mean"] = float(np.mean([r[key] for r in rows]))
            out[prefix + "_hit_rate"] = float(np.mean([r[prefix + "_pred"] == r["target"] for r in rows]))
    return out
