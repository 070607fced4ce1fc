"""The workbench's one strength unit: the layer's mean residual norm.

**Definition.** The mean L2 norm of the hidden state at a site and layer, over every decoder step of
the conditional CFG rows of *unsteered* generation (`ResidualNormMeter` measures it with read edits
while the clips are generated). Every steering strength the workbench shows or reports for an
added direction is a multiple of it: the direction is scaled to unit length and ``strength x norm``
is added, whatever made it (lasso, class means, probe, PCA, SAE feature). Mode ``norm_relative``
strengths are already relative to each row's own norm and carry no unit.

Why per step and not pooled: a clip-mean (pooled) activation averages away the per-step variation,
so its norm is smaller (on teaching model v2 about half), and a push of "1 x the pooled norm" is a
different push from what steering adds at every step.

**One value per model.** `mean_residual_norm(handle, layer)` returns the value measured first for
that model object and site in this process: by a `SteeringBench`'s twins (which record theirs), by a
`widgets.backend.Collection` generation, or else by generating `DEFAULT_PROMPTS` x `DEFAULT_SEEDS`
unsteered with `UNIT_SETTINGS` (2 s, guidance 3: a few seconds on the teaching model). Later
measurements do not replace it, so a strength shown in a notebook keeps meaning the same push for the
whole session; a bench still reports the norm of its own twins (`SteeringBench.mean_residual_norm`,
measured in the same run).

Generation settings travel whole (a `GenerationSettings`: length, guidance, sampling, batch size, threads,
device, loop); the seeds are the (prompt, seed) pairs', so ``settings.seeds`` stays 0.

    >>> import workbench as wb
    >>> h = wb.random_model("tiny")
    >>> known_mean_residual_norm(h, 1) is None
    True
    >>> short = GenerationSettings(duration_s=0.5)
    >>> unit = mean_residual_norm(h, 1, settings=short, prompts=("jazz music",), seeds=(0,))  # measured once
    >>> unit > 0 and mean_residual_norm(h, 1) == known_mean_residual_norm(h, 1) == unit     # then recorded
    True
    >>> unit_text(unit, "resid", 1).startswith("x the mean residual norm at resid L1 (")
    True
"""
from __future__ import annotations

import weakref
from dataclasses import dataclass, field

from workbench import validation
from workbench.errors import BadInputError
from workbench.runtime.settings import GenerationSettings, settings_of

__all__ = ["DEFAULT_PROMPTS", "DEFAULT_SEEDS", "NormRecord", "ResidualNormMeter", "UNIT_SETTINGS", "forget",
           "known_mean_residual_norm", "mean_residual_norm", "measure_unsteered", "record", "recorded", "unit_text"]

# What `mean_residual_norm` generates when nothing measured the unit yet: one prompt per genre of the
# teaching model (plain words, so any MusicGen reads them), two seeds, 2 s (a few seconds of CPU).
DEFAULT_PROMPTS = ("classical music", "electronic music", "rock music", "jazz music")
DEFAULT_SEEDS = (0, 1)
UNIT_SETTINGS = GenerationSettings(duration_s=2.0, guidance_scale=3.0, batch_size=16)  # the unit's default settings


class ResidualNormMeter:
    """Read edits that add up the L2 norm of every conditional row at `site` and `layers`, once a step.

    Pass ``edits=meter.edits()`` to ``workbench.generate`` (any number of calls and batches); `norms()` then
    gives {layer: mean norm}. The reads run in whichever decoder loop generates (the kernel or transformers'),
    so measuring never slows generation down. A step is counted once: transformers runs the prefill forward
    twice, and the repeat replaces the first.

    Do not steer in the same call (the unit is the *unsteered* norm).
    """

    def __init__(self, handle, site: str = "resid", layers=None):
        self.handle, self.site = handle, validation.site(site)
        n_layers = handle.n_layers
        self.layers = tuple(range(n_layers)) if layers is None else tuple(
            validation.layer_index(layer, n_layers) for layer in layers)
        self._sums = {layer: [0.0, 0] for layer in self.layers}
        self._last = {layer: (None, 0.0, 0) for layer in self.layers}  # (step, total, count) of the last read

    def _reader(self, layer):
        def read(hidden, step):
            norms = hidden.detach().float().norm(dim=-1)  # the conditional rows (the edit's rows="cond")
            total, count = float(norms.sum()), int(norms.numel())
            sums, (last_step, last_total, last_count) = self._sums[layer], self._last[layer]
            if step is not None and step == last_step:  # the same step again (the duplicate prefill): replace it
                sums[0] -= last_total
                sums[1] -= last_count
            sums[0] += total
            sums[1] += count
            self._last[layer] = (step, total, count)
            return None  # kept here, not in the generation's reads
        return read

    def edits(self) -> list:
        """The read edits to pass as ``generate(..., edits=meter.edits())``."""
        from workbench.runtime.edits import Edit  # torch: only when something is measured

        return [Edit("read", site=self.site, layer=layer, rows="cond", fn=self._reader(layer),
                     name=f"residual norm {self.site} L{layer}") for layer in self.layers]

    def norms(self) -> dict[int, float]:
        """{layer: mean L2 norm} over every counted row and step (NaN where nothing ran)."""
        return {layer: total / count if count else float("nan") for layer, (total, count) in self._sums.items()}


def _unit_settings(settings: GenerationSettings | None) -> GenerationSettings:
    """`settings` (default `UNIT_SETTINGS`), checked: a unit's clips take their seeds from the (prompt, seed) pairs,
    so ``settings.seeds`` must be left at 0."""
    settings = settings_of(UNIT_SETTINGS if settings is None else settings)
    if settings.seeds not in (0, None):
        raise BadInputError(f"settings.seeds={settings.seeds!r}: the unit's clips take their seeds from the (prompt, "
                            "seed) pairs: leave settings.seeds at 0 and pass the seeds with the prompts")
    return settings


def measure_unsteered(handle, pairs, settings: GenerationSettings | None = None, *, site: str = "resid",
                      on_batch=None) -> tuple[list, dict]:
    """(unsteered clips of the (prompt, seed) `pairs`, {layer: mean residual norm}) at every layer.

    settings: how the clips are generated (default `UNIT_SETTINGS`; its batch size cuts the pairs into batches,
    its seeds stay 0). on_batch: called with the number of clips after each batch (a progress bar).
    """
    from workbench.runtime.generation import generate  # torch: loaded only when something is measured

    settings = _unit_settings(settings)
    pairs = list(pairs)
    if not pairs:
        raise BadInputError("no (prompt, seed) pairs to measure the mean residual norm on: pass at least one")
    clips = []
    meter = ResidualNormMeter(handle, site)
    for start in range(0, len(pairs), settings.batch_size):
        chunk = pairs[start:start + settings.batch_size]
        batch = settings.replace(seeds=tuple(s for _, s in chunk), batch_size=len(chunk))
        clips += generate(handle, [p for p, _ in chunk], batch, edits=meter.edits()).clips
        if on_batch is not None:
            on_batch(len(chunk))
    return clips, meter.norms()


# ------------------------------------------------------------------------------------------ the cache
@dataclass(frozen=True)
class NormRecord:
    """The unit as measured for one model object and site: {layer: norm} and what it was measured on."""

    norms: dict
    site: str
    n_clips: int
    duration_s: float
    source: str = ""
    prompts: tuple = field(default=(), repr=False)


_RECORDS: dict[int, tuple] = {}  # id(handle) -> (weakref to the handle, {site: NormRecord})


def _entry(handle, create: bool = False) -> dict | None:
    key = id(handle)
    found = _RECORDS.get(key)
    if found is not None and found[0]() is handle:
        return found[1]
    if not create:
        return None
    try:
        ref = weakref.ref(handle, lambda _, key=key: _RECORDS.pop(key, None))
    except TypeError:  # an object that takes no weak reference: kept for the process
        ref = (lambda obj: (lambda: obj))(handle)
    _RECORDS[key] = (ref, {})
    return _RECORDS[key][1]


def record(handle, norms: dict, *, site: str = "resid", n_clips: int = 0, duration_s: float = 0.0,
           source: str = "", prompts=(), replace: bool = False) -> NormRecord:
    """Remember the unit measured for `handle` at `site`; the first record stays unless `replace`.

    Returns the record in force (the earlier one when there was one).
    """
    site = validation.site(site)
    entry = _entry(handle, create=True)
    if site in entry and not replace:
        return entry[site]
    clean = {int(k): float(v) for k, v in norms.items() if v == v and float(v) > 0}  # drops NaN and zero
    if not clean:
        raise BadInputError(f"no usable mean residual norm in {norms!r}: measure on at least one unsteered clip")
    entry[site] = NormRecord(clean, site, int(n_clips), float(duration_s), source, tuple(prompts))
    return entry[site]


def recorded(handle, site: str = "resid") -> NormRecord | None:
    """The record in force for `handle` at `site`, or None when nothing measured it yet."""
    entry = _entry(handle)
    return None if entry is None else entry.get(validation.site(site))


def forget(handle, site: str | None = None) -> None:
    """Drop the recorded unit of `handle` (one site, or all): the next call measures again."""
    entry = _entry(handle)
    if entry is not None:
        entry.clear() if site is None else entry.pop(validation.site(site), None)


def known_mean_residual_norm(handle, layer: int, site: str = "resid") -> float | None:
    """The recorded unit at `layer`, or None (never generates: for labels that must stay cheap)."""
    rec = recorded(handle, site)
    return None if rec is None else rec.norms.get(int(layer))


def mean_residual_norm(handle, layer: int, site: str = "resid", settings: GenerationSettings | None = None, *,
                       prompts=DEFAULT_PROMPTS, seeds=DEFAULT_SEEDS, progress: bool = False) -> float:
    """The strength unit at `layer` (module doc): recorded, or measured now on `prompts` x `seeds`.

    settings (default `UNIT_SETTINGS`), prompts and seeds only matter when nothing measured the unit for this
    model and site yet.
    """
    layer = validation.layer_index(layer, handle.n_layers)
    site = validation.site(site)
    settings = _unit_settings(settings)
    rec = recorded(handle, site)
    if rec is None or layer not in rec.norms:
        pairs = [(p, s) for p in validation.str_list(prompts, "prompts") for s in validation.seeds(seeds)]
        bar = None
        if progress:
            from tqdm.auto import tqdm
            bar = tqdm(total=len(pairs), desc="measuring the strength unit", unit="clip")
        clips, norms = measure_unsteered(handle, pairs, settings, site=site, on_batch=bar.update if bar else None)
        rec = record(handle, norms, site=site, n_clips=len(clips), duration_s=settings.duration_s,
                     source="mean_residual_norm", prompts=tuple(p for p, _ in pairs),
                     replace=rec is not None)  # a record that lacks this layer is completed, not kept
    return float(rec.norms[layer])


def unit_text(norm: float | None, site: str, layer: int) -> str:
    """How a strength's unit reads in a label: "x the mean residual norm at resid L3 (5.63)"."""
    value = f" ({norm:.3g})" if norm is not None else " (measured at the first steered generation)"
    return f"x the mean residual norm at {site} L{layer}{value}"
