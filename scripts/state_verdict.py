"""State concepts' steering verdicts alone (the paper's constant push along unit class means), as
`python -m workbench.toy evaluate` measures them, at one evaluation seed: a held-out replication of the
committed evaluation (seed 0) without rerunning all of it.

For each concept: `probe_profile` on 80 fresh clips per genre (seed 20 011 + seed; the bass line on synth_v3's
clips, the others on synth_v2's), class means of that store at the concept's best probe layer, and
`workbench.analysis.teaching.evaluate.steering_verdicts` with every rule of the evaluation (32 pairs: the genre
prompts x 8 seeds 100 (seed + 1) + i, random directions of the same norm from pool `seed`, +v against -v,
collapse with the codec's level curve, the level alone). Genre is left out: its directions come from the
evaluation's own generations (run the evaluation).

    python scripts/state_verdict.py bass --seed 1      # pairs' seeds 200-207, random pool 1
    python scripts/state_verdict.py tempo mode lead bass --seed 2 --json out.json
    python scripts/state_verdict.py bass --seed 1 --strengths 0.03125 0.0625
    python scripts/state_verdict.py bass --seed 1 --weights /path/to/model   # another model folder
"""
from __future__ import annotations

import argparse
import json
import time

STATES = ("tempo", "mode", "lead", "bass")


def main(argv=None) -> int:
    import torch

    import workbench as wb
    from workbench.analysis.teaching.concepts import probe_profile
    from workbench.analysis.teaching.evaluate import (
        CONCEPT_PROBE_CLIPS_PER_GENRE,
        format_table,
        steering_verdicts,
        weights_sha256,
    )

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("concepts", nargs="+", choices=STATES)
    parser.add_argument("--seed", type=int, default=1, help="evaluation seed: pairs' seeds 100 (seed + 1) + i")
    parser.add_argument("--strengths", type=float, nargs="+", help="x mean residual norm (default: the protocol's)")
    parser.add_argument("--json", help="write the verdicts here")
    parser.add_argument("--weights", help="model folder (default: the shipped weights)")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    t0 = time.time()
    handle = wb.load_model(args.weights, device="cpu")
    profile, stores = {}, {}
    for version in (2, 3):
        wanted = tuple(c for c in args.concepts if (c == "bass") == (version == 3))
        if wanted:
            got, store = probe_profile(handle, n_per_genre=CONCEPT_PROBE_CLIPS_PER_GENRE, seed=20_011 + args.seed,
                                       concepts=wanted, synth_version=version)
            profile.update(got)
            stores.update(dict.fromkeys(got, store))
    out = steering_verdicts(handle, stores, profile, seed=args.seed,
                            strengths=tuple(args.strengths) if args.strengths else None)
    metrics = dict(steer=out["steer"], seed=args.seed, probe_profile=profile, verdict_pairs=out["verdict_pairs"],
                   verdict_n_clips=out["verdict_n_clips"], weights_sha256=weights_sha256(args.weights),
                   beyond_random_concepts=out["beyond_random_concepts"], seconds=round(time.time() - t0, 1))
    print("best probe layers:", {c: p["best_layer"] for c, p in profile.items()})
    print(format_table({k: v for k, v in metrics.items() if k != "probe_profile"}))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(metrics, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
