"""musicgen-workbench core: load MusicGen, capture its residual stream, steer it while it generates.

The package face is lazy: ``import workbench`` loads no torch; each name below is imported on
first use. The code is laid out by layer, following the data path:

- ``workbench.runtime``: the model and what runs inside it (model, capture, steering, hooks,
  generation, teacher forcing, tracing through nnsight, clips);
- ``workbench.data``: labelled inputs and the on-disk activation store (datasets, store, collect);
- ``workbench.analysis``: probes, directions, projections, scores;
- ``workbench.toy``: the embedded teaching model (weights, synthesiser, judge) and, apart, its
  training recipe (``workbench.toy.training``);
- ``workbench.errors`` / ``workbench.enums`` / ``workbench.validation``: torch-free, for every layer
  and for the widgets.

The modules of wave one keep their old addresses (``workbench.probes`` is
``workbench.analysis.probes``, the same module object).

Example:
    >>> import workbench as wb
    >>> h = wb.random_model("tiny")
    >>> clip = wb.generate(h, "calm jazz piano", duration_s=0.2).clips[0]
    >>> clip.codes.shape
    (4, 10)
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys

# public name -> module that defines it (imported on first use)
_NAMES = {
    "CaptureSpec": "workbench.runtime.capture",
    "Clip": "workbench.runtime.clip",
    "GenerationResult": "workbench.runtime.generation",
    "generate": "workbench.runtime.generation",
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

# wave-one module addresses -> where the module lives now
_MOVED = {
    "model": "runtime.model", "configs": "runtime.configs", "capture": "runtime.capture",
    "steering": "runtime.steering", "hooks": "runtime.hooks", "generation": "runtime.generation",
    "teacher_forcing": "runtime.teacher_forcing", "tracing": "runtime.tracing", "clip": "runtime.clip",
    "datasets": "data.datasets", "store": "data.store", "collect": "data.collect",
    "probes": "analysis.probes", "directions": "analysis.directions", "projections": "analysis.projections",
    "scores": "analysis.scores",
}

__all__ = sorted(_NAMES)


class _MovedModuleFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Makes ``import workbench.probes`` give the module object of ``workbench.analysis.probes``."""

    def find_spec(self, fullname, path=None, target=None):
        prefix, _, name = fullname.rpartition(".")
        if prefix == __name__ and name in _MOVED:
            return importlib.util.spec_from_loader(fullname, self)
        return None

    def create_module(self, spec):
        module = importlib.import_module(f"{__name__}.{_MOVED[spec.name.rpartition('.')[2]]}")
        self._real_spec = module.__spec__
        return module

    def exec_module(self, module):
        module.__spec__ = self._real_spec  # the import system stamped the alias's spec on it


if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
    sys.meta_path.append(_MovedModuleFinder())


def __getattr__(name: str):
    if name in _NAMES:
        value = getattr(importlib.import_module(_NAMES[name]), name)
    elif name in _MOVED:
        value = importlib.import_module(f"{__name__}.{name}")
    else:
        raise AttributeError(f"module 'workbench' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_NAMES) | set(_MOVED))
