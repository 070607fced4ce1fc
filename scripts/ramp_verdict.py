"""The order concepts' steering verdicts alone (a push ramped over the clip along each concept's course), as
`python -m workbench.toy evaluate` measures them, at one evaluation seed: for the held-out replication of the
committed evaluation (seed 0) without rerunning all of it.

Dynamics (crescendo / diminuendo), brightness (brightening / darkening) and contour (rising / falling) are orders:
the same levels, spectra or notes in the opposite order. `workbench.analysis.teaching.evaluate.order_verdicts`
pushes them from -s to +s along `workbench.analysis.directions.from_course` directions (late half minus early
half of the target's clean clips, teacher-forced, minus what every clip does over time), against random
directions ramped alike, with every rule of the evaluation. Layers: the committed evaluation's best probe layers
(`weights/evaluation.json`) unless given.

    python scripts/ramp_verdict.py --seed 1                       # all three, pairs' seeds 200-215, random pool 1
    python scripts/ramp_verdict.py --concepts dynamics --layers 1 --strengths 0.03125 0.0625 0.125
"""
from __future__ import annotations

import argparse
import json
import time


def main(argv=None) -> int:
    import torch

    import workbench as wb
    from workbench.analysis.teaching.evaluate import format_table, order_verdicts, weights_sha256
    from workbench.toy import WEIGHTS_DIR
    from workbench.toy.synth_v2 import ORDER_FACTORS

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--concepts", nargs="+", choices=ORDER_FACTORS, default=list(ORDER_FACTORS))
    parser.add_argument("--layers", type=int, nargs="+", help="one per concept (default: the committed evaluation's)")
    parser.add_argument("--strengths", type=float, nargs="+", help="x mean residual norm (default: the protocol's)")
    parser.add_argument("--seed", type=int, default=1, help="evaluation seed: pairs' seeds 100 (seed + 1) + i")
    parser.add_argument("--json", help="write the verdicts here")
    args = parser.parse_args(argv)
    if args.layers is None:
        profile = json.loads((WEIGHTS_DIR / "evaluation.json").read_text())["probe_profile"]
        args.layers = [profile[c]["best_layer"] for c in args.concepts]
    if len(args.layers) != len(args.concepts):
        parser.error(f"{len(args.layers)} layers for {len(args.concepts)} concepts: give one layer per concept")
    torch.set_num_threads(1)
    t0 = time.time()
    handle = wb.load_model(device="cpu")
    out = order_verdicts(handle, dict(zip(args.concepts, args.layers)), seed=args.seed,
                         strengths=tuple(args.strengths) if args.strengths else None)
    metrics = dict(steer=out["steer"], seed=args.seed, order_verdict_pairs=out["pairs"], verdict_n_clips=out["n_clips"],
                   weights_sha256=weights_sha256(), seconds=round(time.time() - t0, 1),
                   beyond_random_concepts=[c for c, v in out["steer"].items() if v["beyond_random_all"]])
    print(format_table(metrics))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(metrics, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
