"""Summaries of an evaluation grid: alignment vs strength, the alignment-preservation trade-off and its
area, descriptor shifts, and Fréchet distances. Each takes the grid's tidy table and returns one.

Preservation of a clip is ``1 - d / d_ref`` clipped to [0, 1], where d is its distance to its twin
(``mel_distance`` by default) and d_ref the mean distance between a twin and its *reference* clip (the
same prompt, another seed): 1 keeps the original, 0 is as far from it as an unrelated clip of the
same prompt. The trade-off curve of a method at a layer has one point per strength (means over its
clips). Its AUC is the trapezoid area under the curve's upper frontier: points sorted from most to
least preserved, each point's alignment raised to the best alignment of any better-preserved point
(a point dominated by one that keeps more never lowers the curve), joined by straight lines, and
held flat from the least preserved point to preservation 0. With sampling, a clip that changes at
all soon diverges as far as another seed would, so most points sit near preservation 0 and the
area is decided by how much alignment the weakest strengths buy; a direction that only destroys
earns about the unsteered alignment.

    >>> import pandas as pd
    >>> rows = [dict(kind="twin", method="twin", layer=-1, strength=0.0, item=0, judge_p_target=0.2, mel_distance=0.0),
    ...         dict(kind="reference", method="reference", layer=-1, strength=0.0, item=0, judge_p_target=0.2,
    ...              mel_distance=2.0)]
    >>> rows += [dict(kind="steered", method="m", layer=1, strength=s, item=0, judge_p_target=a, mel_distance=d)
    ...          for s, a, d in ((0.0, 0.2, 0.0), (1.0, 0.6, 0.5), (2.0, 0.9, 1.5))]
    >>> auc_table(pd.DataFrame(rows))["auc"].round(3).tolist()
    [0.7]
"""
from __future__ import annotations

import numpy as np

from workbench.analysis.evaluation.metrics import frechet_distance
from workbench.errors import BadInputError

__all__ = ["reference_distance", "alignment_by_strength", "tradeoff", "frontier_auc", "auc_table", "bootstrap_aucs",
           "descriptor_shifts", "fad_table", "PRESERVATION"]

PRESERVATION = {"mel": "mel_distance", "codes": "code_edit_rate", "embedding": "embedding_distance"}
_KEYS = ["method", "layer", "strength"]


def _column(table, reader: str) -> str:
    column = f"{reader}_p_target"
    if column not in table:
        have = sorted(c[:-len("_p_target")] for c in table.columns if c.endswith("_p_target"))
        raise BadInputError(f"no {reader!r} alignment in this grid (readers present: {have}): pick one of them")
    return column


def _steered(table):
    steered = table[table["kind"] == "steered"]
    if not len(steered):
        raise BadInputError("the grid has no steered clips yet: run run_grid(...) first")
    return steered


def reference_distance(table, preservation: str = "mel") -> float:
    """Mean distance between a twin and its reference clip (same prompt, other seed)."""
    column = PRESERVATION[preservation]
    ref = table.loc[table["kind"] == "reference", column]
    if not len(ref):
        raise BadInputError("no reference clips: run the grid with GridPlan(reference_seed_offset=...) set")
    return float(ref.mean())


def alignment_by_strength(table, reader: str = "judge"):
    """Per method, layer and strength: mean alignment, its standard error, and the share of clips read as the target."""
    column = _column(table, reader)
    steered = _steered(table).assign(hit=lambda d: d[f"{reader}_pred"] == d["target"]
                                     if f"{reader}_pred" in d else np.nan)
    grouped = steered.groupby(_KEYS, sort=True)
    out = grouped[column].agg(["mean", "sem", "count"]).rename(
        columns={"mean": "alignment", "sem": "alignment_sem", "count": "n"})
    out["hit_rate"] = grouped["hit"].mean()
    return out.reset_index()


def tradeoff(table, reader: str = "judge", preservation: str = "mel"):
    """Per method, layer and strength: mean alignment and mean preservation (see the module docstring)."""
    column, distance = _column(table, reader), PRESERVATION[preservation]
    d_ref = reference_distance(table, preservation)
    steered = _steered(table)
    kept = np.clip(1.0 - steered[distance] / max(d_ref, 1e-12), 0.0, 1.0)
    out = steered.assign(preservation=kept, alignment=steered[column]).groupby(_KEYS, sort=True)[
        ["alignment", "preservation", distance]].mean().reset_index()
    return out


def frontier_auc(preservation, alignment) -> float:
    """Trapezoid area under the upper frontier of (preservation, alignment) points, flat to p = 0 and p = 1."""
    p = np.clip(np.asarray(preservation, np.float64), 0.0, 1.0)
    a = np.asarray(alignment, np.float64)
    if len(p) != len(a) or not len(p):
        raise BadInputError("frontier_auc needs as many alignments as preservations, at least one")
    order = np.lexsort((-a, -p))
    p, best = p[order], np.maximum.accumulate(a[order])
    inner = float(np.sum((p[:-1] - p[1:]) * (best[:-1] + best[1:]) / 2))
    return inner + float(best[-1] * p[-1] + best[0] * (1.0 - p[0]))


def auc_table(table, reader: str = "judge", preservation: str = "mel", *, bootstrap: int = 0, seed: int = 0):
    """One row per method and layer: the trade-off AUC, and alignment at strength 0 and at the strongest.

    bootstrap: with N > 0, also ``auc_lo`` / ``auc_hi``, the 2.5 and 97.5 percentiles of the AUC over N
    resamplings of the items (prompt and seed, with replacement; every cell and d_ref resampled alike)."""
    import pandas as pd
    curve = tradeoff(table, reader, preservation)
    rows = []
    for (method, layer), g in curve.groupby(["method", "layer"], sort=False):
        g = g.sort_values("strength")
        rows.append(dict(method=method, layer=int(layer), auc=frontier_auc(g["preservation"], g["alignment"]),
                         alignment_zero=float(g["alignment"].iloc[0]),
                         alignment_strongest=float(g["alignment"].iloc[-1]),
                         preservation_strongest=float(g["preservation"].iloc[-1]), n_strengths=len(g)))
    out = pd.DataFrame(rows)
    if bootstrap:
        draws = bootstrap_aucs(table, reader, preservation, n=bootstrap, seed=seed).groupby(["method", "layer"])["auc"]
        lo, hi = draws.quantile(0.025), draws.quantile(0.975)
        out["auc_lo"] = [float(lo[(m, la)]) for m, la in zip(out["method"], out["layer"])]
        out["auc_hi"] = [float(hi[(m, la)]) for m, la in zip(out["method"], out["layer"])]
    return out


def bootstrap_aucs(table, reader: str = "judge", preservation: str = "mel", *, n: int = 200, seed: int = 0):
    """The AUC of every method and layer over `n` resamplings of the items (with replacement, the same
    resample for every method: compare two methods draw by draw). Columns: draw, method, layer, auc."""
    import pandas as pd
    rng = np.random.default_rng(seed)
    items = np.unique(table["item"])
    by_item = {i: g for i, g in table.groupby("item")}
    frames = []
    for draw in range(int(n)):
        sample = pd.concat([by_item[i] for i in rng.choice(items, len(items), replace=True)], ignore_index=True)
        frames.append(auc_table(sample, reader, preservation)[["method", "layer", "auc"]].assign(draw=draw))
    return pd.concat(frames, ignore_index=True)


def _key_change(keys, twin_keys) -> float:
    return float(np.mean([a != b for a, b in zip(keys, twin_keys)]))


def descriptor_shifts(table):
    """Per method, layer and strength: mean change against the twin of tempo and centroid (%), loudness (dB),
    and the share of clips whose key changed."""
    twins = table[table["kind"] == "twin"].set_index("item")
    steered = _steered(table)
    t = twins.loc[steered["item"]]
    shifted = steered.assign(
        tempo_change_pct=100 * (steered["tempo_bpm"].to_numpy() / t["tempo_bpm"].to_numpy() - 1),
        centroid_change_pct=100 * (steered["centroid_hz"].to_numpy() / t["centroid_hz"].to_numpy() - 1),
        loudness_change_db=steered["loudness_db"].to_numpy() - t["loudness_db"].to_numpy(),
        key_changed=(steered["key"].to_numpy() != t["key"].to_numpy()).astype(float))
    return shifted.groupby(_KEYS, sort=True)[["tempo_change_pct", "centroid_change_pct", "loudness_change_db",
                                              "key_changed"]].mean().reset_index()


def fad_table(result):
    """Fréchet distance (codec embeddings) of every steered cell's clips, and the reference set's, to the twins.

    result: an `EvaluationResult`. The row with method "reference" is the floor: two unsteered sets of
    the same prompts with different seeds; every row carries it as `reference_fad` (NaN without a
    reference set) and `fad_over_reference`, so a cell's FAD reads against the unsteered pair's."""
    import pandas as pd
    table = result.table
    twins = result.embeddings(table["kind"] == "twin")
    rows = []
    if (table["kind"] == "reference").any():
        rows.append(dict(method="reference", layer=-1, strength=0.0,
                         fad=frechet_distance(result.embeddings(table["kind"] == "reference"), twins)))
    for (method, layer, strength), g in _steered(table).groupby(_KEYS, sort=True):
        rows.append(dict(method=method, layer=int(layer), strength=float(strength),
                         fad=frechet_distance(result.embeddings(list(table.index.get_indexer(g.index))), twins)))
    frame = pd.DataFrame(rows, columns=["method", "layer", "strength", "fad"])
    reference = float(rows[0]["fad"]) if rows and rows[0]["method"] == "reference" else float("nan")
    with np.errstate(divide="ignore", invalid="ignore"):
        return frame.assign(reference_fad=reference, fad_over_reference=frame["fad"] / reference)
