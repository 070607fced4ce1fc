"""Where each concept lives in teaching model v2: probe profiles with the input baseline and controls.

For a model trained on `workbench.toy.synth_v2` (teaching model v2); `python -m workbench.toy
evaluate` runs it on such models, for every concept of `workbench.toy.synth_v2.FACTORS` (genre,
tempo, mode, lead, contour, dynamics, brightness), with the workbench's own tools (`collect` into an
`ActivationStore`, `sweep`):

- `probe_profile`: fresh synthetic clips teacher-forced with a neutral (null) prompt, mean-pooled
  residuals of every layer; a cross-validated logistic probe per layer, the same probe on the
  *input baseline* (mean-pooled decoder input embeddings: what a bag of codes gives), chance
  (the majority class share) and the shuffled-label control. Folds are grouped by synthesiser seed
  (no seed in both a training and a test fold) and accuracy is also given as a margin over the
  stronger of chance and the control.

Whether pushing on a concept changes what readers hear is `workbench.analysis.teaching.evaluate.steering_verdicts`
(against random directions of equal norm, +v against -v, and collapse).

Example (a rough check in a few minutes; `python -m workbench.toy evaluate` runs the full protocol):
    >>> import workbench as wb
    >>> from workbench.analysis.teaching.concepts import probe_profile
    >>> profile, store = probe_profile(wb.load_model(), n_per_genre=4)  # doctest: +SKIP
"""
from __future__ import annotations

import tempfile

import workbench as wb
from workbench.data.datasets import SynthSet
from workbench.toy import synth_module
from workbench.toy.synth_v2 import FACTORS

CONCEPTS: tuple[str, ...] = tuple(FACTORS)  # synth_v2's; `toy evaluate` adds synth_v3's "bass"


def _best_layer(by_layer: dict[int, float], n_layers: int) -> int:
    return max(by_layer, key=lambda layer: (round(by_layer[layer], 6), -abs(layer - n_layers / 2)))


PROFILE_FOLDS = 5  # cross-validation folds of every probe (grouped by synthesiser seed)


def probe_profile(handle, n_per_genre: int = 40, seed: int = 20_011, store_dir=None, concepts=None,
                  progress: bool = False, groups="seed", synth_version: int = 2):
    """({concept: {"by_layer", "input_baseline", "best", "best_layer", "chance", "margin", ...}}, the store).

    Clips: `SynthSet(n_per_genre=..., version=synth_version)` (2 or 3) with seeds from `seed` (unseen in training),
    teacher-forced with null text into an activation store at `store_dir` (a temporary folder by default).
    concepts: which factors to profile (None: every factor of that synthesiser).
    groups: what `sweep` keeps on one side of every split ("seed": a synthesiser seed's clips, one per
    genre, never in both training and test folds; None: row-wise folds, as before issue 26). Beside the
    accuracies: "by_layer_margin" and "margin" (the best layer's accuracy over the stronger of chance and
    the shuffled-label control), "control" (the best layer's control), "input_margin" (the input
    baseline's margin), "grouping" and "folds" (what ran).
    """
    from workbench.analysis.baselines import input_embeddings
    from workbench.analysis.probes import SweepConfig, sweep
    from workbench.data.collect import collect

    if synth_version not in (2, 3):
        raise ValueError(f"synth_version={synth_version!r}: concept profiles need factors, use 2 or 3")
    concepts = tuple(synth_module(synth_version).FACTORS) if concepts is None else tuple(concepts)
    synth_set = SynthSet(n_per_genre=n_per_genre, seed=seed, version=synth_version)
    store_dir = store_dir or tempfile.mkdtemp(prefix="toy-concepts-")
    spec = wb.CaptureSpec(layers=None, sites=("resid",), pooling="mean", rows="cond")
    store = collect(handle, synth_set, spec, store_dir, progress=progress)
    by_id = {r["id"]: i for i, r in enumerate(synth_set.rows)}
    order = [by_id[r["id"]] for r in store.table]
    baseline_X = input_embeddings(handle, [synth_set.audio(i) for i in order], synth_set.sample_rate_hz)
    profile = {}
    for concept in concepts:
        result = sweep(store, config=SweepConfig(folds=PROFILE_FOLDS, seed=0), label=concept, groups=groups,
                       baselines={"input": baseline_X})
        by_layer = {int(r["layer"]): float(r["accuracy_mean"]) for r in result.layer_rows}
        margins = {int(r["layer"]): float(r["margin"]) for r in result.layer_rows}
        control = {int(r["layer"]): float(r["control_accuracy_mean"]) for r in result.layer_rows}
        best_layer = _best_layer(by_layer, handle.n_layers)
        base = result.baseline("input")
        profile[concept] = dict(by_layer=by_layer, input_baseline=float(base["accuracy_mean"]),
                                best=by_layer[best_layer], best_layer=best_layer, chance=float(base["chance"]),
                                by_layer_margin=margins, margin=margins[best_layer], control=control[best_layer],
                                input_margin=float(base["margin"]), grouping=result.grouping, folds=result.folds)
    return profile, store




PROFILE_BARS = dict(best=0.85, depth=0.20, margin=0.20)


def concept_bars(metrics: dict) -> dict:
    """Which concepts meet the depth bar (best >= 0.85, >= 0.20 over the input baseline and a margin >= 0.20
    over the stronger of chance and the shuffled-label control), and whether two of them do."""
    profile = metrics.get("probe_profile", {})
    deep = [c for c, p in profile.items()
            if p["best"] >= PROFILE_BARS["best"] and p["best"] - p["input_baseline"] >= PROFILE_BARS["depth"]
            and p.get("margin", p["best"] - p["chance"]) >= PROFILE_BARS["margin"]]  # older profiles: over chance
    return dict(deep_concepts=deep, depth_bar_met=len(deep) >= 2)
