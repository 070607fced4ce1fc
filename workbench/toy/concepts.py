"""Where each concept lives in teaching model v2, and whether pushing on it changes what the readers hear.

For a model trained on `workbench.toy.synth_v2` (teaching model v2); `python -m workbench.toy
evaluate` runs both on such models. Two measurements per concept of `workbench.toy.synth_v2.FACTORS`
(genre, tempo, mode, lead, contour, dynamics, brightness),
both made with the workbench's own tools (`collect` into an `ActivationStore`, `sweep`,
`from_class_means`, `SteeringSpec`):

- `probe_profile`: fresh synthetic clips teacher-forced with a neutral (null) prompt, mean-pooled
  residuals of every layer; a cross-validated logistic probe per layer, the same probe on the
  *input baseline* (mean-pooled decoder input embeddings: what a bag of codes gives), chance
  (the majority class share) and the shuffled-label control. Folds are grouped by synthesiser seed
  (no seed in both a training and a test fold) and accuracy is also given as a margin over the
  stronger of chance and the control.
- `concept_steering`: for every value of a concept, a unit class-mean direction from that store
  at the concept's best probe layer, added at strengths 0, 0.25, ... x the mean residual norm while
  generating from genre-only prompts (no word of the concept). The concept's reader
  (`workbench.toy.readers`, never the model) reads each steered clip and its unsteered twin (same
  prompt and seed). A *flip* is a clip read as the target whose twin was not: clips whose twin
  already reads as the target are left out of that target's rate. Strength 0 runs the steering path
  with nothing added, so its rate measures that path (it is bit-identical to unsteered generation).

Example (a rough check in a few minutes; `python -m workbench.toy evaluate` runs the full protocol):
    >>> import workbench as wb
    >>> from workbench.toy.concepts import probe_profile
    >>> profile, store = probe_profile(wb.load_model(), n_per_genre=4)  # doctest: +SKIP
"""
from __future__ import annotations

import tempfile

import numpy as np

from workbench.toy.prompts import EVAL_PROMPTS
from workbench.toy.synth_v2 import FACTORS, GENRES

CONCEPTS: tuple[str, ...] = tuple(FACTORS)
STEER_STRENGTHS = (0.0, 0.25, 0.5, 1.0, 2.0)  # x the mean residual norm at the steered layer


def _best_layer(by_layer: dict[int, float], n_layers: int) -> int:
    return max(by_layer, key=lambda layer: (round(by_layer[layer], 6), -abs(layer - n_layers / 2)))


def probe_profile(handle, n_per_genre: int = 40, seed: int = 20_011, folds: int = 5, store_dir=None,
                  concepts=CONCEPTS, progress: bool = False, groups="seed"):
    """({concept: {"by_layer", "input_baseline", "best", "best_layer", "chance", "margin", ...}}, the store).

    Clips: `SynthSet(n_per_genre=..., version=2)` with seeds from `seed` (unseen in training), teacher-forced
    with null text into an activation store at `store_dir` (a temporary folder by default).
    groups: what `sweep` keeps on one side of every split ("seed": a synthesiser seed's clips, one per
    genre, never in both training and test folds; None: row-wise folds, as before issue 26). Beside the
    accuracies: "by_layer_margin" and "margin" (the best layer's accuracy over the stronger of chance and
    the shuffled-label control), "control" (the best layer's control), "input_margin" (the input
    baseline's margin), "grouping" and "folds" (what ran).
    """
    import workbench as wb
    from workbench.analysis.baselines import input_embeddings
    from workbench.analysis.probes import sweep
    from workbench.data.collect import collect
    from workbench.data.datasets import SynthSet

    synth_set = SynthSet(n_per_genre=n_per_genre, seed=seed, version=2)
    store_dir = store_dir or tempfile.mkdtemp(prefix="toy-concepts-")
    spec = wb.CaptureSpec(layers=None, sites=("resid",), pooling="mean", rows="cond")
    store = collect(handle, synth_set, spec, store_dir, batch_size=8, progress=progress)
    by_id = {r["id"]: i for i, r in enumerate(synth_set.rows)}
    order = [by_id[r["id"]] for r in store.table]
    baseline_X = input_embeddings(handle, [synth_set.audio(i) for i in order], synth_set.sample_rate_hz)
    profile = {}
    for concept in concepts:
        result = sweep(store, label=concept, folds=folds, seed=0, groups=groups, baselines={"input": baseline_X})
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


def concept_steering(handle, store, profile: dict, concept: str, seeds=(100, 101, 102, 103),
                     strengths=STEER_STRENGTHS, layer: int | None = None, progress: bool = False) -> dict:
    """{"reader", "layer", "flip_rate_best", "flip_rate_zero", "best_strength", "by_strength", ...} for one concept."""
    import workbench as wb
    from workbench.analysis.directions import from_class_means
    from workbench.toy.readers import READERS, read_concept

    if concept == "genre":
        raise ValueError("genre is steered by evaluate()'s own protocol (prompts of the other genres)")
    layer = profile[concept]["best_layer"] if layer is None else int(layer)
    X = store.array("resid", layer)
    labels = np.asarray(store.column(concept))
    mean_norm = float(np.linalg.norm(X, axis=1).mean())
    prompts = [EVAL_PROMPTS[g][0] for g in GENRES for _ in seeds]  # "jazz music": no word of the concept
    clip_seeds = [s for _ in GENRES for s in seeds]
    twins = wb.generate(handle, prompts, duration_s=4.0, seeds=clip_seeds, guidance_scale=3.0, progress=progress)
    sr = twins.clips[0].sample_rate_hz
    twin_read = read_concept(concept, [c.waveform.mean(0) for c in twins.clips], sr)
    flips = {s: [] for s in strengths}
    by_target = {}
    for target in FACTORS[concept]:
        eligible = [i for i, r in enumerate(twin_read) if r != target]
        if not eligible:
            continue
        direction = from_class_means(X, labels, target, model_id=handle.model_id, layer=layer, normalize="unit")
        by_target[target] = {}
        for strength in strengths:
            steering = wb.SteeringSpec.single(direction, layers=(layer,), strength=strength * mean_norm,
                                              mode="add", rows="cond")
            out = wb.generate(handle, [prompts[i] for i in eligible], duration_s=4.0,
                              seeds=[clip_seeds[i] for i in eligible], guidance_scale=3.0, steering=steering)
            read = read_concept(concept, [c.waveform.mean(0) for c in out.clips], sr)
            hits = [r == target for r in read]
            flips[strength] += hits
            by_target[target][f"{strength:g}"] = float(np.mean(hits))
    rates = {s: float(np.mean(v)) if v else 0.0 for s, v in flips.items()}
    positive = [s for s in strengths if s > 0]
    best = max(positive, key=lambda s: rates[s])
    return dict(reader=READERS[concept].name, layer=layer, mean_activation_norm=mean_norm,
                flip_rate_best=rates[best], flip_rate_zero=rates.get(0.0, 0.0), best_strength=best,
                by_strength={f"{s:g}": r for s, r in rates.items()}, by_target=by_target,
                twin_readings={v: int(sum(r == v for r in twin_read)) for v in FACTORS[concept]},
                n_clips_per_strength=len(flips[strengths[0]]))


# best >= 0.85, best - input_baseline >= 0.20, and the best layer's margin over the stronger of chance and
# the shuffled-label control >= 0.20 (0.85 means little for a concept whose majority class is 0.8)
PROFILE_BARS = dict(best=0.85, depth=0.20, margin=0.20)
STEER_BARS = dict(flip_rate_best=0.60, flip_rate_zero=0.15)


def concept_bars(metrics: dict) -> dict:
    """Which concepts meet the depth and steering bars, and whether the issue's counts are met."""
    profile, steer = metrics.get("probe_profile", {}), metrics.get("steer", {})
    deep = [c for c, p in profile.items()
            if p["best"] >= PROFILE_BARS["best"] and p["best"] - p["input_baseline"] >= PROFILE_BARS["depth"]
            and p.get("margin", p["best"] - p["chance"]) >= PROFILE_BARS["margin"]]  # older profiles: over chance
    steerable = [c for c, s in steer.items() if c != "genre" and s["flip_rate_best"] >= STEER_BARS["flip_rate_best"]
                 and s["flip_rate_zero"] <= STEER_BARS["flip_rate_zero"]]
    return dict(deep_concepts=deep, steerable_concepts=steerable, depth_bar_met=len(deep) >= 2,
                steer_bar_met=len(steerable) >= 2)
