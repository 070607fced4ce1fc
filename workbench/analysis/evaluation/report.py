"""``python -m workbench.evaluation report --json PATH``: the evaluation protocol on the teaching model.

1. Direction data: clips generated from every genre's `EVAL_PROMPTS` (conditional rows captured at
   every layer, no pooling: the mean over time for the workbench's methods, the last step for the
   paper's); a logistic probe sweep on the same clips teacher-forced with null text picks the best
   layer and is the probe re-read (alignment from the model's own reading of the audio).
2. Items: 16 clips, 4 per target genre, each from a prompt of another genre (new seeds).
3. The grid (timed as ``grid_s``): class means (the workbench default), a logistic probe and the paper's
   method at the best layer x 5 strengths each (strength 0 reuses the twins), plus twins and a
   reference set (same prompts, other seeds).
4. In the same folder (resumed, so the twins are shared): a random direction of the same norm steered
   like the default, and the paper's method with a logistic loss (regression vs classification).
5. Summaries: AUC of judge alignment vs mel preservation per method and layer, alignment by strength,
   descriptor shifts, and Fréchet distances on the codec embedding (reference vs twins: the floor).
6. Verdicts (`method_verdicts`): each compared method's direction per target genre against random
   directions of equal norm, +v against -v, and collapse, read by a genre reader fitted on clean audio
   only: ``verdict[method][target]`` with the keys of `workbench.analysis.evaluation.verdicts`.

``--fast`` shrinks everything (4 items, 3 strengths, 1 s clips) for tests and notebooks;
``--layers all`` runs the grid at every decoder layer (the AUC table methods x layers; ~6x longer).

    >>> from workbench.analysis.evaluation.report import build_parser
    >>> build_parser().parse_args(["report", "--json", "out.json", "--fast"]).fast
    True
"""
from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

import workbench as wb
from workbench.analysis.evaluation import presets, summaries
from workbench.analysis.evaluation.grid import GRID_SETTINGS, GridPlan, Item, run_grid
from workbench.analysis.evaluation.methods import random_like
from workbench.analysis.evaluation.presets import paper_layer_sweep
from workbench.analysis.scores import Readers
from workbench.analysis.teaching.evaluate import verdict_readers
from workbench.errors import BadInputError
from workbench.runtime.settings import GenerationSettings, settings_of
from workbench.toy.judge import load_judge
from workbench.toy.prompts import EVAL_PROMPTS
from workbench.toy.synth_v2 import GENRES

__all__ = ["DIRECTION_SETTINGS", "direction_data", "method_verdicts", "report_items", "report_methods",
           "report_summary", "run_report", "build_parser", "main"]

DIRECTION_SETTINGS = GenerationSettings(duration_s=2.0)  # direction_data's default: 2 s, guidance 3, batches of 8


def direction_data(handle, seeds=(0, 1, 2, 3), settings: GenerationSettings | None = None, *,
                   progress: bool = False) -> dict:
    """Mean and last-step conditional residuals per layer of clips generated from each genre's EVAL_PROMPTS.

    Every prompt with every seed of `seeds`, generated with `settings` (a `GenerationSettings`, whole; default
    `DIRECTION_SETTINGS`; its seeds are `seeds`: leave settings.seeds at 0).
    """
    settings = settings_of(DIRECTION_SETTINGS if settings is None else settings)
    if settings.seeds not in (0, None):
        raise BadInputError(f"settings.seeds={settings.seeds!r}: the direction data's seeds are seeds= (every prompt "
                            "with every seed): leave settings.seeds at 0")
    prompts, labels, seed_list = [], [], []
    for genre, texts in EVAL_PROMPTS.items():
        for text in texts:
            for s in seeds:
                prompts.append(text)
                labels.append(genre)
                seed_list.append(int(s))
    spec = wb.CaptureSpec(layers=None, sites=("resid",), pooling="none", rows="cond")
    res = wb.generate(handle, prompts, settings.replace(seeds=tuple(seed_list)), capture=spec, progress=progress)
    mean = {layer: np.stack([np.asarray(a).mean(0) for a in res.activations[("resid", layer)]])
            for layer in range(handle.n_layers)}
    last = {layer: np.stack([np.asarray(a)[-1] for a in res.activations[("resid", layer)]])
            for layer in range(handle.n_layers)}
    return dict(clips=res.clips, labels=np.asarray(labels), mean=mean, last=last)


def reading_probe(handle, clips, labels) -> tuple[int, object, dict]:
    """(best layer, its logistic probe, {layer: CV accuracy}) on the clips teacher-forced with null text."""
    from workbench.analysis.probes import SweepConfig, sweep
    acts = wb.teacher_force(handle, clips, handle.sample_rate_hz, prompts=None,
                            capture=wb.CaptureSpec(layers=None, sites=("resid",), pooling="mean"))
    result = sweep(acts, labels, config=SweepConfig(folds=4, seed=0))
    by_layer = {int(r["layer"]): float(r["accuracy_mean"]) for r in result.layer_rows}
    best = max(by_layer, key=lambda layer: (by_layer[layer], -abs(layer - handle.n_layers / 2)))
    return best, result.probes[("resid", best)], by_layer


def report_items(n_per_target: int, seed: int = 1000):
    """n_per_target items per genre, each from another genre's prompt (cycling genres and prompts)."""
    genres = list(EVAL_PROMPTS)
    items = []
    for target in genres:
        others = [g for g in genres if g != target]
        for k in range(n_per_target):
            source = others[k % len(others)]
            prompt = EVAL_PROMPTS[source][(k // len(others)) % len(EVAL_PROMPTS[source])]
            items.append(Item(prompt, seed + len(items), target, source))
    return tuple(items)


def report_methods(data: dict, layers, strengths_fast: bool = False, handle=None) -> dict:
    """{name: Method} of the protocol at `layers`: the three compared methods and the two controls.

    handle: the model, so the class-means and probe methods steer in multiples of the layer's mean residual
    norm (`workbench.analysis.strength`); without it the pooled activations' norm stands in (with a warning).
    """
    default_s = (0.0, 0.25, 1.0) if strengths_fast else presets.DEFAULT_STRENGTHS
    paper_s = (0.0, 1.0, 4.0) if strengths_fast else presets.PAPER_STRENGTHS
    labels = data["labels"]
    default = presets.workbench_default(data["mean"], labels, layers=layers, strengths=default_s, handle=handle)
    return {"class_means": default,
            "logistic_probe": presets.logistic_probe(data["mean"], labels, layers=layers, strengths=default_s,
                                                     handle=handle),
            "paper_2506_10225": presets.paper_2506_10225(data["last"], labels, layers=layers, strengths=paper_s),
            "random": random_like(default, seed=0),
            "paper_2506_10225_logistic": presets.paper_2506_10225(data["last"], labels, layers=layers,
                                                                  loss="logistic", strengths=paper_s)}


def run_report(settings: GenerationSettings | None = None, *, fast: bool = False, folder=None,
               all_layers: bool = False, items_per_target: int | None = None, progress: bool = True) -> dict:
    """Run the protocol (module docstring) and return the report as a JSON-friendly dict.

    settings: how every clip is generated (direction data, grid, verdicts; a `GenerationSettings`, whole, seeds
    left at 0). Default: each step's own (`DIRECTION_SETTINGS`, `GRID_SETTINGS`, the verdicts' settings), at 1 s
    clips with ``fast``, else 2 s.
    """

    t0 = time.perf_counter()
    duration_s = 1.0 if fast else 2.0
    direction_settings = DIRECTION_SETTINGS.replace(duration_s=duration_s) if settings is None else settings
    grid_settings = GRID_SETTINGS.replace(duration_s=duration_s) if settings is None else settings
    handle = wb.load_model()
    judge = load_judge()
    data = direction_data(handle, (0, 1) if fast else (0, 1, 2, 3), direction_settings, progress=progress)
    best, probe, probe_by_layer = reading_probe(handle, data["clips"], data["labels"])
    paper_by_layer = paper_layer_sweep(data["last"], data["labels"], folds=4)
    layers = tuple(range(handle.n_layers)) if all_layers else (best,)
    methods = report_methods(data, layers, strengths_fast=fast, handle=handle)
    items = report_items(items_per_target or (1 if fast else 4))
    folder = Path(folder) if folder is not None else Path(tempfile.mkdtemp(prefix="wb-evaluation-"))
    setup_s = time.perf_counter() - t0

    common = dict(layers=layers, items=items)
    run = dict(readers=Readers(judge=judge, probe=probe, probe_layer=best), progress=progress)
    compared = ("class_means", "logistic_probe", "paper_2506_10225")
    t1 = time.perf_counter()
    run_grid(handle, GridPlan(tuple(methods[m] for m in compared), **common), folder, grid_settings, **run)
    grid_s = time.perf_counter() - t1
    result = run_grid(handle, GridPlan(tuple(methods.values()), **common), folder, grid_settings, **run)
    controls_s = time.perf_counter() - t1 - grid_s

    report = dict(
        model_id=handle.model_id, fast=fast, folder=str(folder), best_layer=best, layers=list(layers),
        duration_s=grid_settings.duration_s, n_items=len(items), n_direction_clips=len(data["labels"]),
        probe_accuracy_by_layer=probe_by_layer, paper_probe_accuracy_by_layer=paper_by_layer,
        paper_best_layer=max(paper_by_layer, key=paper_by_layer.get),
        methods={name: m.describe() for name, m in methods.items()},
        setup_s=round(setup_s, 1), grid_s=round(grid_s, 1), controls_s=round(controls_s, 1),
        grid_clips=int(sum(len(items) * sum(s != 0 for s in methods[m].strengths) for m in compared)
                       * len(layers) + 2 * len(items)))
    report.update(report_summary(result, methods, best))
    t2 = time.perf_counter()
    report.update(method_verdicts(handle, {m: methods[m] for m in compared}, best, settings, fast=fast,
                                  progress=progress))
    report["verdict_s"] = round(time.perf_counter() - t2, 1)
    report["bars"] = dict(grid_under_4_min=report["grid_s"] < 240, **report["bars"])
    report["total_s"] = round(time.perf_counter() - t0, 1)
    return report


def method_verdicts(handle, methods: dict, layer: int, settings: GenerationSettings | None = None, *,
                    fast: bool = False, seed: int = 0, progress: bool = False) -> dict:
    """``verdict``: {method: {target genre: the verdict keys}} and ``beyond_random_all``: {method: bool}.

    Each method's unit direction per target at `layer`, measured by one `SteeringBench` (twins and random
    directions of equal norm shared by the methods) from every genre's first prompt (pairs of the target's
    own genre left out), strengths in multiples of the layer's mean residual norm, read by the genre
    reader fitted on clean synthesiser audio only (`workbench.toy.clean_readers`), never the judge. settings:
    how every clip is generated (a `GenerationSettings`, whole; default `VERDICT_SETTINGS` at 1 s with ``fast``,
    else 2 s).
    """
    from workbench.analysis.evaluation.verdicts import VERDICT_SETTINGS, SteeringBench, VerdictPlan

    prompts = tuple(EVAL_PROMPTS[g][0] for g in GENRES)
    plan = VerdictPlan(prompts=prompts, seeds=tuple(seed + 500 + i for i in range(2 if fast else 4)),
                       strengths=(0.25,) if fast else (0.125, 0.25, 0.5), random_seed=seed,
                       settings=VERDICT_SETTINGS.replace(duration_s=1.0 if fast else 2.0) if settings is None
                       else settings)
    bench = SteeringBench(handle, plan, progress=progress)
    readers = verdict_readers()
    verdict, summary = {}, {}
    for name, method in methods.items():
        targets = [t for t in method.targets if (t, layer) in method.directions]
        directions = {t: method.direction(t, layer) for t in targets}
        eligible = {t: [p != EVAL_PROMPTS[t][0] for p, _ in plan.pairs] for t in targets}
        effect = bench.measure(readers["genre"], directions, layer, eligible=eligible)
        verdict[name] = effect.verdict
        summary[name] = effect.beyond_random_all
    return dict(verdict=verdict, beyond_random_all=summary, verdict_reader=readers["genre"].name,
                verdict_strengths_x_mean_norm=list(plan.strengths), verdict_n_clips=bench.n_generated,
                verdict_mean_residual_norm=bench.mean_residual_norm(layer))


def report_summary(result, methods: dict, layer: int,
                   compared=("class_means", "logistic_probe", "paper_2506_10225"), bootstrap: int = 200) -> dict:
    """The report's figures from a grid holding `report_methods`: AUCs at `layer` (with bootstrap
    intervals over the items, and paired comparisons), FADs, tables, bars."""
    table = result.table
    aucs = summaries.auc_table(table)
    draws = summaries.bootstrap_aucs(table, n=bootstrap) if bootstrap else None
    at_layer = aucs[aucs["layer"] == layer].set_index("method")["auc"]
    fads = summaries.fad_table(result)
    strongest = fads[(fads["method"] == "class_means") & (fads["layer"] == layer)
                     & (fads["strength"] == max(methods["class_means"].strengths))]["fad"]
    other_aucs = {f"{reader}/{pres}": summaries.auc_table(table, reader, pres).to_dict("records")
                  for reader in ("judge", "probe") for pres in ("mel", "codes", "embedding")
                  if f"{reader}_p_target" in table}
    out = dict(
        auc={m: float(at_layer[m]) for m in compared}, auc_random=float(at_layer["random"]),
        auc_table=aucs.to_dict("records"), auc_by_reader_and_preservation=other_aucs,
        regression_vs_classification=dict(mse=float(at_layer["paper_2506_10225"]),
                                          logistic=float(at_layer["paper_2506_10225_logistic"]),
                                          mse_better=bool(at_layer["paper_2506_10225"]
                                                          > at_layer["paper_2506_10225_logistic"])),
        reference_mel_distance=summaries.reference_distance(table),
        fad_unsteered_pair=float(fads.loc[fads["method"] == "reference", "fad"].iloc[0]),
        fad_steered_strongest=float(strongest.iloc[0]), fad_table=fads.to_dict("records"),
        alignment_by_strength=summaries.alignment_by_strength(table).to_dict("records"),
        tradeoff=summaries.tradeoff(table).to_dict("records"),
        descriptor_shifts=summaries.descriptor_shifts(table).to_dict("records"),
        clap_available=bool("clap_p_target" in table))
    if draws is not None:
        wide = draws[draws["layer"] == layer].pivot(index="draw", columns="method", values="auc")
        out["auc_ci95"] = {m: [float(wide[m].quantile(0.025)), float(wide[m].quantile(0.975))] for m in wide}
        out["share_of_resamples"] = dict(
            class_means_above_random=float((wide["class_means"] > wide["random"]).mean()),
            mse_above_logistic=float((wide["paper_2506_10225"] > wide["paper_2506_10225_logistic"]).mean()),
            class_means_above_paper=float((wide["class_means"] > wide["paper_2506_10225"]).mean()))
    out["bars"] = dict(default_beats_random=out["auc"]["class_means"] > out["auc_random"],
                       fad_pair_below_steered=out["fad_unsteered_pair"] < out["fad_steered_strongest"])
    return out


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m workbench.evaluation",
                                     description="Evaluate steering methods on the teaching model.")
    sub = parser.add_subparsers(dest="command", required=True)
    rep = sub.add_parser("report", help="run the evaluation protocol and write a JSON report")
    rep.add_argument("--json", required=True, help="where to write the report (the tracked one: "
                     "docs/figures/evaluation.json; --layers all: docs/figures/evaluation-layers.json)")
    rep.add_argument("--fast", action="store_true", help="a small grid (tests, notebooks)")
    rep.add_argument("--folder", default=None, help="grid folder (default: a new temp folder); reuse to resume")
    rep.add_argument("--layers", choices=("best", "all"), default="best", help="grid layers")
    rep.add_argument("--duration", type=float, default=None,
                     help="every clip's length in seconds (direction data, grid, verdicts; default 2, fast 1)")
    rep.add_argument("--items-per-target", type=int, default=None, help="clips per target genre (default 4, fast 1)")
    rep.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _summary(report: dict) -> str:
    lines = [f"best layer {report['best_layer']}; grid {report['grid_s']} s ({report['grid_clips']} clips); "
             f"controls {report['controls_s']} s; total {report['total_s']} s"]
    lines += [f"  AUC {name:28} {value:.3f}" for name, value in report["auc"].items()]
    lines.append(f"  AUC {'random (like class_means)':28} {report['auc_random']:.3f}")
    rvc = report["regression_vs_classification"]
    lines.append(f"  paper's method AUC: MSE probe {rvc['mse']:.3f} vs logistic probe {rvc['logistic']:.3f}")
    lines.append(f"  FAD unsteered pair {report['fad_unsteered_pair']:.4f}; class_means strongest "
                 f"{report['fad_steered_strongest']:.4f}")
    lines.append(f"  bars: {report['bars']}")
    for method, by_target in report.get("verdict", {}).items():
        for target, v in by_target.items():
            said = "beyond random" if v["beyond_random"] else "not beyond random"
            lines.append(f"  verdict {method:18} toward {target:10} {v['strength']:g}x norm: effect "
                         f"{v['effect']:+.3f}, random 95% {v['random_p95']:+.3f}, order {v['order_rate']:.2f}, "
                         f"collapsed {v['collapsed_share']:.2f}"
                         + (f", buzzing {v['buzzing_share']:.2f}" if "buzzing_share" in v else "") + f": {said}")
    return "\n".join(lines)


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    settings = None if args.duration is None else GRID_SETTINGS.replace(duration_s=args.duration)
    report = run_report(settings, fast=args.fast, folder=args.folder, all_layers=args.layers == "all",
                        items_per_target=args.items_per_target, progress=not args.quiet)
    path = Path(args.json)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=1, default=float))
    print(_summary(report))
    print(f"report written to {path}")
    return 0
