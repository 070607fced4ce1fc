"""The teaching model's patching and ablation findings next to its probe sweep (issue 11's closing note).

    python scripts/patching_findings.py --json docs/figures/patching-findings.json   # 162 s on v3, one thread

Probe sweep (48 generated clips of 2 s); teacher-forced patching (8 windows) and generated patching
judged by the genre judge (4 windows) for four genre pairs x 2 seeds; mean ablation of each genre's
class-mean direction at each layer (clamped to the other genres' mean projection), 2 seeds.
"""
from __future__ import annotations

import argparse
import collections
import json
import time

import numpy as np
import torch

import workbench as wb
from workbench.analysis import patching as P
from workbench.analysis.directions import from_class_means
from workbench.analysis.probes import SweepConfig, sweep
from workbench.runtime.settings import GenerationSettings
from workbench.toy import GENRES

PAIRS = [("jazz", "rock"), ("classical", "electronic"), ("rock", "classical"), ("electronic", "jazz")]


def main(path: str, duration_s: float = 2.0, seeds=(0, 1)) -> dict:
    torch.set_num_threads(1)
    h = wb.load_model()

    def settings(seed: int) -> GenerationSettings:  # the findings were measured at temperature 1
        return GenerationSettings(duration_s=duration_s, seeds=seed, temperature=1.0)
    began = time.perf_counter()
    prompts = [f"{g} music" for g in GENRES for _ in range(12)]
    labels = np.array([p.split()[0] for p in prompts])
    res = wb.generate(h, prompts, duration_s=duration_s, seeds=list(range(len(prompts))),
                      capture=wb.CaptureSpec(pooling="mean"))
    probe = sweep(res.activations, list(labels), config=SweepConfig(folds=4, seed=0))
    out: dict = {"probe": {int(r["layer"]): float(r["accuracy_mean"]) for r in probe.rows if r.get("site") == "resid"}}
    forced, generated = [], []
    for src, tgt in PAIRS:
        for seed in seeds:
            a, b = wb.generate(h, [f"{src} music", f"{tgt} music"], duration_s=duration_s, seeds=[seed, seed]).clips
            df = P.patching_sweep(h, P.ForcedInput.of(h, a), P.ForcedInput.of(h, b), P.PatchSweep(windows=8))
            forced.append(df.pivot(index="layer", columns="window", values="recovered").values)
            g = P.patching_sweep(h, f"{src} music", f"{tgt} music",
                                 P.PatchSweep("generate", windows=4, metric="judge", label=src), settings(seed))
            generated.append(dict(pair=f"{src}->{tgt}", seed=seed, source=float(g.source_value[0]),
                                  target=float(g.target_value[0]),
                                  grid=g.pivot(index="layer", columns="window", values="value").values.tolist()))
    ablation = collections.defaultdict(list)
    for genre in GENRES:
        for layer in range(h.n_layers):
            X = res.activations[("resid", layer)]
            d = from_class_means(X, labels, genre, model_id=h.model_id, layer=layer)
            rest = float((X[labels != genre] @ d.vector).mean())
            for seed in seeds:
                a = P.ablation_sweep(h, f"{genre} music", d, P.AblationSweep("generate", layers=[layer], windows=1,
                                                                             value=rest, metric="judge", label=genre),
                                     settings(seed))
                ablation[genre].append(dict(layer=layer, seed=seed, base=float(a.base_value[0]),
                                            value=float(a.value[0])))
    out["forward_recovered_mean"] = np.mean(forced, axis=0).round(3).tolist()  # layers x windows
    out["generate_judge_mean"] = np.mean([g["grid"] for g in generated], axis=0).round(3).tolist()
    out["generate"] = generated
    out["ablation_mean"] = {g: [float(np.mean([r["value"] for r in rows if r["layer"] == layer]))
                                for layer in range(h.n_layers)] for g, rows in ablation.items()}
    out["ablation"] = dict(ablation)
    out["seconds"] = time.perf_counter() - began
    with open(path, "w") as f:
        json.dump(out, f, indent=1)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", required=True,
                        help="where to write the findings (the tracked ones: docs/figures/patching-findings.json)")
    args = parser.parse_args()
    result = main(args.json)
    print(json.dumps({k: result[k] for k in ("probe", "forward_recovered_mean", "generate_judge_mean",
                                             "ablation_mean", "seconds")}, indent=1))
