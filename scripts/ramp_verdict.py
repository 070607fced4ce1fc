"""A steering verdict for an order concept: a push ramped over the clip along a direction with a sign in time.

Dynamics (crescendo / diminuendo) and brightness (brightening / darkening) are orders: the same levels or spectra
soft-then-loud or loud-then-soft. A class mean over whole clips has no sign in time (teacher-forced and generated
class means ramp opposite ways: `scripts/ramp_push_check.py`), so here the direction toward value t is taken from
the clips' own course: per-frame teacher-forced activations (null text) of 20 clean clips per genre at `layer`,
the late half's mean minus the early half's for the clips of value t, minus the same for all clips (what every
clip does over time). `VerdictPlan(push="ramp")` pushes from -s to +s along it (the clip ends at the target's late
state), against random directions ramped alike; `SteeringBench.measure` gives the verdict with every rule of the
evaluation (p against random, +v against -v, collapse with the codec's level curve, the level alone), on the
evaluation's pairs (genre prompts x 8 seeds).

    python scripts/ramp_verdict.py dynamics 1                # the shipped model, seeds 100-107, random pool 0
    python scripts/ramp_verdict.py brightness 3 --seed 1     # another set of seeds and random pool
"""
from __future__ import annotations

import argparse
import time


def main(argv=None) -> int:
    import numpy as np
    import torch

    import workbench as wb
    from workbench.analysis.evaluation.verdicts import SteeringBench, VerdictPlan
    from workbench.analysis.teaching.evaluate import verdict_readers
    from workbench.toy.prompts import EVAL_PROMPTS
    from workbench.toy.synth_v2 import FACTORS, GENRES, synth_dataset

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("concept", choices=("dynamics", "brightness", "contour"))
    parser.add_argument("layer", type=int)
    parser.add_argument("--strengths", type=float, nargs="+", default=[0.03125, 0.0625, 0.125])
    parser.add_argument("--seed", type=int, default=0, help="pairs' seeds 100 + 100 x seed + i, random pool seed")
    parser.add_argument("--weights", default=None, help="model folder (default: the shipped teaching model)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    handle = wb.load_model(args.weights, device="cpu")
    audio, _, factors = synth_dataset(20, seed=20_011, with_factors=True)
    acts = wb.teacher_force(handle, list(audio), 32000, prompts=None,
                            capture=wb.CaptureSpec(layers=(args.layer,), sites=("resid",), pooling="none"))
    rows = [np.asarray(a) for a in acts[("resid", args.layer)]]

    def course(r):  # late half minus early half
        return r[r.shape[0] // 2:].mean(0) - r[: r.shape[0] // 2].mean(0)

    drift = np.mean([course(r) for r in rows], 0)
    directions = {t: (np.mean([course(r) for r, f in zip(rows, factors) if f[args.concept] == t], 0) - drift)
                  .astype(np.float32) for t in FACTORS[args.concept]}
    plan = VerdictPlan(prompts=tuple(EVAL_PROMPTS[g][0] for g in GENRES),
                       seeds=tuple(100 + 100 * args.seed + i for i in range(8)), strengths=tuple(args.strengths),
                       random_seed=args.seed, push="ramp")
    effect = SteeringBench(handle, plan).measure(verdict_readers()[args.concept], directions, args.layer)
    print(f"{args.concept} at layer {args.layer}, ramp push, seed {args.seed}: 32 pairs")
    for _, r in effect.summary.iterrows():
        print(f"  {r.target:11s} {r.strength:7.5f} x  effect {r.effect:+.3f}  random95 {r.random_p95:+.3f}  "
              f"p {r.p_value:.1e}  order {r.order_rate:.2f}  collapsed {r.collapsed_share:.2f} "
              f"(random {r.random_collapsed_share:.2f})  level {r.level_change_db_median:+.1f} dB  "
              f"level only {r.level_only_effect:+.3f}  {'beyond random' if r.beyond_random else ''}")
    print(f"beyond_random_all {effect.beyond_random_all} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
