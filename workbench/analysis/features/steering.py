"""Does steering with a feature move its label's reader beyond what a random push does?

For a feature labelled with a genre (``label=<genre>`` or ``genre=<genre>``), its unit decoder row is
measured at the SAE's layer by the one steering-effect measurement
(`workbench.analysis.evaluation.verdicts.SteeringBench`): every genre's first prompt
(`workbench.toy.prompts.EVAL_PROMPTS`; the pairs of the feature's own genre left out) x seeds, the
unsteered twin, the clip pushed along +v and along -v, and clips pushed along random directions of the
same norm (shared by every feature tried), at strengths in multiples of the layer's mean residual norm.
The reader is the genre reader fitted on clean synthesiser audio only (`workbench.toy.clean_readers`),
never the judge fitted on codec round trips and never the model. A feature *steers* when its verdict is
beyond random (``p_value < 0.01``, ``order_rate >= 0.75``, ``collapsed_share <= 0.2``,
``buzzing_share <= 0.2``, the level alone explaining at most half the effect).

    >>> parse_genre("label=rock"), parse_genre("genre=jazz"), parse_genre("tempo_bpm (+)")
    ('rock', 'jazz', None)
"""
from __future__ import annotations

import numpy as np

from workbench import validation
from workbench.analysis.evaluation.verdicts import VERDICT_KEYS, VERDICT_SETTINGS, Reader, SteeringBench, VerdictPlan
from workbench.analysis.features.labelling import FeatureLabels
from workbench.analysis.features.sae import check_matches, require_sae
from workbench.analysis.teaching.evaluate import verdict_readers
from workbench.errors import BadInputError, DirectionMismatchError, OutOfRangeError, WrongTypeError
from workbench.runtime.settings import GenerationSettings, settings_of
from workbench.toy import GENRES
from workbench.toy.prompts import EVAL_PROMPTS

__all__ = ["STRENGTHS", "feature_steering", "parse_genre", "steer_summary"]

STRENGTHS = (0.125, 0.25, 0.5)  # x the layer's mean residual norm (strength 0 is the twin: never measured)
GENRE_COLUMNS = ("label", "genre")


def parse_genre(label: str | None) -> str | None:
    """The genre of an automatic label such as "label=rock" (None for other kinds of label)."""
    if not isinstance(label, str) or "=" not in label:
        return None
    column, value = label.split("=", 1)
    return value if column in GENRE_COLUMNS else None


def feature_steering(handle, labels, features, strengths=STRENGTHS, seeds=(100, 101),
                     settings: GenerationSettings | None = None, reader=None, progress: bool = False) -> list[dict]:
    """One dict per genre-labelled feature: ``target``, ``verdict`` (effect, effect_ci, random_p95, p_value,
    order_rate, collapsed_share, off_target, beyond_random, strength), ``steers`` (= beyond random), the
    layer's ``mean_residual_norm`` and the per-strength ``summary``. labels: a `FeatureLabels`; features: the
    feature ids to try; reader: a verdict `Reader` of genre (default: the clean-audio genre reader). An SAE
    trained on another model than `handle` is refused (DirectionMismatchError). seeds: each prompt runs with
    each of them; settings: its ``duration_s`` and ``guidance_scale`` (default `GenerationSettings()`: 4 s, 3.0)
    are the clips'; the bench samples as `SteeringBench` does."""

    validation.model_handle(handle)
    if not isinstance(labels, FeatureLabels):
        raise WrongTypeError(f"labels is a {type(labels).__name__}: pass label_features(sae, stream)")
    sae = require_sae(labels.sae)
    layer, site = validation.layer_index(labels.stream.layer, handle.n_layers), labels.stream.site
    check_matches(sae.meta, "this SAE", model_id=handle.model_id, layer=layer, site=site, d_in=handle.hidden_size,
                  sae_d_in=sae.d_in)
    if labels.stream.store.model_id != handle.model_id:
        raise DirectionMismatchError(f"the labels were measured on a store of {labels.stream.store.model_id!r}, not "
                                     f"{handle.model_id!r}: label the features on this model's activations")
    features = [labels.check_feature(f) for f in validation.int_sequence(features, "features", allow_empty=True,
                                                                 example="[3, 17]")]
    strengths = validation.float_sequence(strengths, "strengths", low=0.0, example="(0.125, 0.25, 0.5)")
    if not strengths or any(s <= 0 for s in strengths):
        raise OutOfRangeError(f"strengths={strengths}: pass strengths > 0 (multiples of the layer's mean residual "
                              f"norm; 0 is the twin itself, not a control), e.g. {STRENGTHS}")
    seeds = validation.seeds(seeds)
    if not seeds:
        raise BadInputError("seeds is empty: pass at least one seed per prompt, e.g. (100, 101)")
    settings = settings_of(settings)
    progress = validation.flag(progress, "progress")
    if reader is not None and not isinstance(reader, Reader):
        raise WrongTypeError(f"reader is a {type(reader).__name__}: pass a workbench.analysis.evaluation.verdicts"
                             ".Reader of genre (workbench.analysis.teaching.evaluate.verdict_readers()['genre'])"
                             " or None")
    tried = []
    for feature in features:
        target = parse_genre(labels.table.rows[feature].get("label"))
        if target is not None and target in GENRES:
            tried.append((int(feature), target))
    if not tried:
        return []
    if reader is None:

        reader = verdict_readers()["genre"]
    plan = VerdictPlan(prompts=tuple(EVAL_PROMPTS[g][0] for g in GENRES), seeds=tuple(seeds),
                       strengths=tuple(strengths), settings=VERDICT_SETTINGS.replace(
                           duration_s=settings.duration_s, guidance_scale=settings.guidance_scale))
    bench = SteeringBench(handle, plan, progress=progress)
    results = []
    for feature, target in tried:
        direction = labels.direction(feature, handle.model_id)
        eligible = {target: [p != EVAL_PROMPTS[target][0] for p, _ in plan.pairs]}
        effect = bench.measure(reader, {target: direction}, layer, eligible=eligible)
        verdict = effect.verdict[target]
        results.append(dict(feature=feature, target=target, label_score=labels.table.rows[feature].get("label_score"),
                            verdict={k: verdict[k] for k in VERDICT_KEYS}, steers=bool(verdict["beyond_random"]),
                            mean_residual_norm=effect.mean_residual_norm, reader=reader.name,
                            n_pairs=int(sum(eligible[target])),
                            summary=effect.summary.drop(columns=["off_target", "effect_ci"]).to_dict("records")))
    return results


def steer_summary(results: list[dict]) -> dict:
    """The report's figures: the share of tried features beyond random, and the best feature's verdict
    (the one furthest above its random band among those beyond random, else among all)."""
    if isinstance(results, (str, bytes, dict)) or not isinstance(results, (list, tuple)):
        raise WrongTypeError(f"results is a {type(results).__name__}: pass the list feature_steering returns")
    needed = ("feature", "target", "steers", "verdict")
    for i, r in enumerate(results):
        if not isinstance(r, dict) or any(k not in r for k in needed) or not isinstance(r["verdict"], dict) \
                or any(k not in r["verdict"] for k in ("effect", "random_p95")):
            raise BadInputError(f"results[{i}] is not a feature_steering row: each needs {needed} and a verdict")
    if not results:
        return dict(feature_steer_share=None, feature_steer_best_feature=None, feature_steer_best_target=None,
                    feature_steer_best_verdict=None, feature_steer_n_tried=0)
    best = max(results, key=lambda r: (r["steers"], r["verdict"]["effect"] - r["verdict"]["random_p95"]))
    return dict(feature_steer_share=float(np.mean([r["steers"] for r in results])),
                feature_steer_best_feature=best["feature"], feature_steer_best_target=best["target"],
                feature_steer_best_verdict=best["verdict"], feature_steer_n_tried=len(results))
