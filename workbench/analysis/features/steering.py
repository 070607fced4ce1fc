"""Does steering with a feature move its label's reader? Measured like the teaching model's steering bars.

For a feature labelled with a genre (``label=<genre>`` or ``genre=<genre>``), its unit decoder row is
added at the SAE's layer (`workbench.SteeringSpec`, mode "add", conditional rows) with strength
s x the layer's mean activation norm (norm of the store's clip-mean activations), while generating
from the other genres' prompts (`workbench.toy.prompts.EVAL_PROMPTS`, first prompt of each, guidance
3, 4 s). The reader is the genre judge (`workbench.toy.judge`, never the model); the flip rate at s is
the share of those clips it calls the feature's genre. A feature *steers* when its best flip rate over
s > 0 is >= 0.5 and the rate at s = 0 is <= 0.15 (the issue's bar). Strength 0 is unsteered generation
bit for bit, so its clips are generated once per target genre.

    >>> parse_genre("label=rock"), parse_genre("genre=jazz"), parse_genre("tempo_bpm (+)")
    ('rock', 'jazz', None)
"""
from __future__ import annotations

import numpy as np

from workbench import validation
from workbench.analysis.features.labelling import FeatureLabels
from workbench.analysis.features.sae import check_matches, require_sae
from workbench.errors import BadInputError, DirectionMismatchError, OutOfRangeError, WrongTypeError

__all__ = ["STRENGTHS", "feature_steering", "parse_genre", "steer_summary", "FLIP_BEST_BAR", "FLIP_ZERO_BAR"]

STRENGTHS = (0.0, 0.25, 0.5, 1.0, 2.0)  # x mean activation norm, as in workbench.toy.evaluate
FLIP_BEST_BAR, FLIP_ZERO_BAR = 0.5, 0.15
GENRE_COLUMNS = ("label", "genre")


def parse_genre(label: str | None) -> str | None:
    """The genre of an automatic label such as "label=rock" (None for other kinds of label)."""
    if not isinstance(label, str) or "=" not in label:
        return None
    column, value = label.split("=", 1)
    return value if column in GENRE_COLUMNS else None


def feature_steering(handle, labels, features, strengths=STRENGTHS, seeds=(100, 101), duration_s: float = 4.0,
                     guidance_scale: float = 3.0, mean_norm: float | None = None, judge=None,
                     progress: bool = False) -> list[dict]:
    """One dict per genre-labelled feature: target, flip rate by strength, best strength, best and zero rates,
    and ``steers``. labels: a `FeatureLabels`; features: the feature ids to try. An SAE trained on another
    model than `handle` is refused (DirectionMismatchError)."""
    import workbench as wb
    from workbench.toy import GENRES
    from workbench.toy.judge import load_judge
    from workbench.toy.prompts import EVAL_PROMPTS

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
    strengths = validation.float_sequence(strengths, "strengths", low=0.0, example="(0.0, 0.5, 1.0)")
    if not any(s > 0 for s in strengths):
        raise OutOfRangeError(f"strengths={strengths}: pass at least one strength > 0 (0 is the unsteered baseline), "
                              f"e.g. {STRENGTHS}")
    seeds = validation.seeds(seeds)
    if not seeds:
        raise BadInputError("seeds is empty: pass at least one seed per prompt, e.g. (100, 101)")
    duration_s = validation.finite_float(duration_s, "duration_s", low=0.0, low_inclusive=False)
    progress = validation.flag(progress, "progress")
    guidance_scale = validation.guidance_scale(guidance_scale)
    if judge is not None and not callable(getattr(judge, "predict", None)):
        raise WrongTypeError(f"judge is a {type(judge).__name__}: pass a reader with .predict(waves, sample_rate_hz) "
                             "(workbench.toy.judge.load_judge()) or None")
    if mean_norm is not None:
        mean_norm = validation.finite_float(mean_norm, "mean_norm", low=0.0, low_inclusive=False,
                                            hint="the layer's mean activation norm, or None to measure it")
    judge = judge or load_judge()
    if mean_norm is None:
        pooled = labels.stream.store.array(site, layer)
        mean_norm = float(np.linalg.norm(np.asarray(pooled, np.float32), axis=1).mean())
        if not np.isfinite(mean_norm) or mean_norm <= 0:
            raise BadInputError(f"the store's mean activation norm at {site} layer {layer} is {mean_norm}: pass "
                                "mean_norm=..., or repair the store (store.verify())")
    zero_cache: dict = {}

    def flips(target, steering):
        src = [(EVAL_PROMPTS[g][0], s) for g in GENRES if g != target for s in seeds]
        out = wb.generate(handle, [p for p, _ in src], duration_s=duration_s, seeds=[s for _, s in src],
                          guidance_scale=guidance_scale, steering=steering, progress=progress)
        pred = judge.predict([c.waveform.mean(0) for c in out.clips], out.clips[0].sample_rate_hz)
        return float(np.mean([p == target for p in pred]))

    results = []
    for feature in features:
        row = labels.table.rows[feature]
        target = parse_genre(row.get("label"))
        if target is None or target not in GENRES:
            continue
        direction = labels.direction(int(feature), handle.model_id)
        rates = {}
        for s in strengths:
            if s == 0:
                if target not in zero_cache:
                    zero_cache[target] = flips(target, None)
                rates[s] = zero_cache[target]
                continue
            spec = wb.SteeringSpec.single(direction, layers=(layer,), strength=float(s) * mean_norm, mode="add",
                                          rows="cond")
            rates[s] = flips(target, spec)
        positive = [s for s in strengths if s > 0]
        best_s = max(positive, key=lambda s: rates[s])
        zero = rates.get(0.0, float("nan"))
        results.append(dict(feature=int(feature), target=target, label_score=row.get("label_score"),
                            flip_rate_by_strength={f"{s:g}": r for s, r in rates.items()},
                            best_strength=best_s, flip_rate_best=rates[best_s], flip_rate_zero=zero,
                            steers=bool(rates[best_s] >= FLIP_BEST_BAR and zero <= FLIP_ZERO_BAR),
                            mean_norm=mean_norm, n_clips_per_strength=(len(GENRES) - 1) * len(seeds)))
    return results


def steer_summary(results: list[dict]) -> dict:
    """The report's figures: the best feature's flip rates, and the share of tried features that steer."""
    if isinstance(results, (str, bytes, dict)) or not isinstance(results, (list, tuple)):
        raise WrongTypeError(f"results is a {type(results).__name__}: pass the list feature_steering returns")
    needed = ("feature", "target", "steers", "flip_rate_best", "flip_rate_zero")
    for i, r in enumerate(results):
        if not isinstance(r, dict) or any(k not in r for k in needed):
            raise BadInputError(f"results[{i}] is not a feature_steering row: each needs {needed}")
    if not results:
        return dict(feature_steer_flip_best=None, feature_steer_flip_zero=None, feature_steer_share=None,
                    feature_steer_best_feature=None, feature_steer_n_tried=0)
    best = max(results, key=lambda r: (r["steers"], r["flip_rate_best"] - r["flip_rate_zero"]))
    return dict(feature_steer_flip_best=best["flip_rate_best"], feature_steer_flip_zero=best["flip_rate_zero"],
                feature_steer_best_feature=best["feature"], feature_steer_best_target=best["target"],
                feature_steer_share=float(np.mean([r["steers"] for r in results])),
                feature_steer_n_tried=len(results))
