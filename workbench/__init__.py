"""musicgen-workbench core: load MusicGen, capture its residual stream, steer it while it generates.

The package face is lazy: ``import workbench`` loads no torch; each name below is imported on
first use. The code is laid out by layer, following the data path:

- ``workbench.runtime``: the model and what runs inside it (model, generation settings, edits, capture,
  steering, hooks, the decode kernel, generation, teacher forcing, tracing through nnsight, clips);
- ``workbench.data``: labelled inputs and the on-disk activation store (datasets, store, collect);
- ``workbench.analysis``: probes, directions, projections, scores;
- ``workbench.toy``: the embedded teaching model (weights, synthesiser, judge) and, apart, its
  training recipe (``workbench.toy.training``);
- ``workbench.errors`` / ``workbench.enums`` / ``workbench.validation``: torch-free, for every layer
  and for the widgets.

Each module has one import path (CHANGELOG.md lists the wave-one addresses and where each module
lives now); the names below are the package's face, not module paths. ``python -m
workbench.evaluation`` and ``python -m workbench.features`` are commands, not modules to import.

Example:
    >>> import workbench as wb
    >>> h = wb.random_model("tiny")
    >>> clip = wb.generate(h, "calm jazz piano", duration_s=0.2).clips[0]
    >>> clip.codes.shape
    (4, 10)
    >>> settings = wb.GenerationSettings(duration_s=0.2, seeds=(1, 2), temperature=0.0)  # checked, passed whole
    >>> len(wb.generate(h, ["jazz", "rock"], settings).clips)
    2
"""
from __future__ import annotations

import importlib

# public name -> module that defines it (imported on first use)
_NAMES = {
    "CaptureSpec": "workbench.runtime.capture",
    "Clip": "workbench.runtime.clip",
    "GenerationResult": "workbench.runtime.generation",
    "generate": "workbench.runtime.generation",
    "GenerationSettings": "workbench.runtime.settings",
    "Edit": "workbench.runtime.edits",
    "MusicGenHandle": "workbench.runtime.model",
    "load_model": "workbench.runtime.model",
    "random_model": "workbench.runtime.model",
    "Schedule": "workbench.runtime.steering",
    "SteeringSpec": "workbench.runtime.steering",
    "SteeringTerm": "workbench.runtime.steering",
    "teacher_force": "workbench.runtime.teacher_forcing",
    "WorkbenchError": "workbench.errors",
    "PromptSet": "workbench.data.datasets",
    "AudioSet": "workbench.data.datasets",
    "SynthSet": "workbench.data.datasets",
    "ActivationStore": "workbench.data.store",
    "LinearProbe": "workbench.analysis.probes",
    "sweep": "workbench.analysis.probes",
    "Direction": "workbench.analysis.directions",
}

__all__ = sorted(_NAMES)


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    else:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_NAMES))
