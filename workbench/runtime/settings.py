"""`GenerationSettings`: how to generate (length, seeds, guidance, sampling, batching, threads, device, loop),
checked once and passed whole to every generation-like entry point.

Not transformers' ``GenerationConfig``: the weights ship one of those (``generation_config.json``) and
transformers reads it; these are the workbench's own settings, frozen, so one object can be handed from a
widget to a sweep to a grid without being unpacked on the way.

Example:
    >>> settings = GenerationSettings(duration_s=2.0, seeds=(1, 2), guidance_scale=3.0)
    >>> settings.replace(temperature=0.0).temperature, settings.guided
    (0.0, True)
    >>> GenerationSettings(batch_size=0)
    Traceback (most recent call last):
    ...
    workbench.errors.OutOfRangeError: batch_size=0 must be at least 1: pass a positive int
"""
from __future__ import annotations

import dataclasses

from workbench import validation
from workbench.errors import BadInputError

DECODER_LOOPS = ("kernel", "transformers")


@dataclasses.dataclass(frozen=True)
class GenerationSettings:
    """How to generate; every field is checked when the object is made.

    duration_s: seconds of new audio per clip. seeds: None (all 0), one int for every clip, or one int per
    prompt (a tuple). guidance_scale: >= 1 (1 or None: no classifier-free guidance). temperature: > 0, 0 for
    greedy, or None for the model's own. top_k: None or >= 1. batch_size: clips per decoder batch. threads:
    torch intra-op threads while generating (``"auto"`` = 1 for small models, None = unchanged). device: None
    (the model's device) or the device the model is on (a check, not a move: load the model there).
    decoder_loop: ``"kernel"`` (the runtime's own loop, `workbench.runtime.kernel`) or ``"transformers"``
    (transformers' ``generate`` with hooks: the reference the kernel is tested against).
    """

    duration_s: float = 4.0
    seeds: int | tuple[int, ...] | None = 0
    guidance_scale: float | None = 3.0
    temperature: float | None = None
    top_k: int | None = 250
    batch_size: int = 8
    threads: int | str | None = "auto"
    device: str | None = None
    decoder_loop: str = "kernel"

    def __post_init__(self):
        duration = validation.finite_float(self.duration_s, "duration_s")
        if duration <= 0:
            raise BadInputError(f"duration_s={self.duration_s!r} must be positive: pass seconds of audio, e.g. 4.0")
        seeds = self.seeds
        if seeds is not None:
            if isinstance(seeds, (str, bytes)) or not hasattr(seeds, "__iter__"):
                validation.seed_list(seeds, 1)  # one seed: raises the specific error (a string, a bool, 1.5...)
                seeds = int(seeds)
            else:
                seeds = tuple(validation.seed_list(list(seeds), len(seeds)))
        guidance = validation.guidance_scale(self.guidance_scale)
        temperature = None if self.temperature is None else validation.temperature(self.temperature)
        top_k = validation.top_k(self.top_k)
        batch_size = validation.positive_int(self.batch_size, "batch_size")
        validation.threads(self.threads)
        if self.device is not None and not isinstance(self.device, str):
            device = str(self.device)  # a torch.device
        else:
            device = self.device
        validation.choice(self.decoder_loop, "decoder_loop", DECODER_LOOPS)
        for name, value in dict(duration_s=duration, seeds=seeds, guidance_scale=guidance, temperature=temperature,
                                top_k=top_k, batch_size=batch_size, device=device).items():
            object.__setattr__(self, name, value)

    @property
    def guided(self) -> bool:
        """True when classifier-free guidance runs (the decoder then sees a conditional and a null row per clip)."""
        return self.guidance_scale is not None and self.guidance_scale > 1

    def replace(self, **changes) -> GenerationSettings:
        """A copy with ``changes`` (checked again); an unknown name is refused with the known ones."""
        known = {field.name for field in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise BadInputError(f"GenerationSettings has no {', '.join(unknown)}: "
                                f"use one of {', '.join(sorted(known))}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        """The settings as plain values (JSON-ready), for provenance and result tables."""
        out = dataclasses.asdict(self)
        out["seeds"] = list(self.seeds) if isinstance(self.seeds, tuple) else self.seeds
        return out


def settings_of(settings: GenerationSettings | None, **shortcuts) -> GenerationSettings:
    """``settings`` (default `GenerationSettings()`) with the keyword ``shortcuts`` that are not None applied.

    The one helper for the entry points that keep keyword shortcuts (``generate``): a shortcut wins over the
    settings object's field, and a value that is not a `GenerationSettings` is refused with the fix.
    """
    settings = validation.config_object(settings, GenerationSettings, "settings",
                                        "GenerationSettings(duration_s=4.0, seeds=0)")
    changes = {name: value for name, value in shortcuts.items() if value is not _UNSET}
    return settings.replace(**changes) if changes else settings


class _Unset:
    def __repr__(self) -> str:
        return "UNSET"


_UNSET = _Unset()
UNSET = _UNSET  # a keyword shortcut's default: "not given" (None is a meaningful value for several fields)
