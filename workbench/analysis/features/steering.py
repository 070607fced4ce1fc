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

__all__ = ["STRENGTHS", "feature_steering", "parse_genre", "steer_summary", "FLIP_BEST_BAR", "FLIP_ZERO_BAR"]

STRENGTHS = (0.0, 0.25, 0.5, 1.0, 2.0)  # x mean activation norm, as in workbench.toy.evaluate
FLIP_BEST_BAR, FLIP_ZERO_BAR = 0.5, 0.15
GENRE_COLUMNS = ("label", "genre")


def parse_genre(label: str | None) -> str | None:
    """The genre of an automatic label such as "label=rock" (None for other kinds of label)."""
    if not label or "=" not in label:
        return None
    column, value = label.split("=", 1)
    return value if column in GENRE_COLUMNS else None


def feature_steering(handle, labels, features, strengths=STRENGTHS, seeds=(100, 101), duration_s: float = 4.0,
                     guidance_scale: float = 3.0, mean_norm: float | None = None, judge=None,
                     progress: bool = False) -> list[dict]:
    """One dict per genre-labelled feature: target, flip rate by strength, best strength, best and zero rates,
    and ``steers``. labels: a `FeatureLabels`; features: the feature ids to try."""
    import workbench as wb
    from workbench.toy import GENRES
    from workbench.toy.judge import load_judge
    from workbench.toy.prompts import EVAL_PROMPTS

    judge = judge or load_judge()
    layer, site = int(labels.stream.layer), labels.stream.site
    if mean_norm is None:
        pooled = labels.stream.store.array(site, layer)
        mean_norm = float(np.linalg.norm(np.asarray(pooled, np.float32), axis=1).mean())
    zero_cache: dict = {}

    def flips(target, steering):
        src = [(EVAL_PROMPTS[g][0], s) for g in GENRES if g != target for s in seeds]
        out = wb.generate(handle, [p for p, _ in src], duration_s=duration_s, seeds=[s for _, s in src],
                          guidance_scale=guidance_scale, steering=steering, progress=progress)
        pred = judge.predict([c.waveform.mean(0) for c in out.clips], out.clips[0].sample_rate_hz)
        return float(np.mean([p == target for p in pred]))

    results = []
    for feature in features:
        row = labels.table.rows[int(feature)]
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
    if not results:
        return dict(feature_steer_flip_best=None, feature_steer_flip_zero=None, feature_steer_share=None,
                    feature_steer_best_feature=None, feature_steer_n_tried=0)
    best = max(results, key=lambda r: (r["steers"], r["flip_rate_best"] - r["flip_rate_zero"]))
    return dict(feature_steer_flip_best=best["flip_rate_best"], feature_steer_flip_zero=best["flip_rate_zero"],
                feature_steer_best_feature=best["feature"], feature_steer_best_target=best["target"],
                feature_steer_share=float(np.mean([r["steers"] for r in results])),
                feature_steer_n_tried=len(results))
