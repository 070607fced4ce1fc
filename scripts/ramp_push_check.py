"""Can a push that changes over the clip steer an order concept where a constant push cannot?

Dynamics (crescendo / diminuendo) and brightness (brightening / darkening) are orders in time: the synthesiser
plays the same levels or spectra soft-then-loud or loud-then-soft. A constant push along their class-mean
direction changes the level, not the order (the model card). This check pushes along the same direction with a
**ramp**: the strength goes linearly from +a to -a over the clip (`Schedule(kind="ramp")`), and the other way.

- direction d: class mean of the generated activations (conditional rows, mean-pooled) at `layer`, prompts
  naming the first value ("jazz music, crescendo") minus prompts naming the second, 4 genres x 2 words x 4 seeds;
- pairs: the teaching evaluation's genre prompts x 8 seeds (32), each with its unsteered twin;
- arms: ``up`` ramps +a -> -a along d, ``down`` -a -> +a, ``random`` ramps +a -> -a along a random unit
  direction (a pool of 16, one per pair: the control, which could do as much), ``constant`` +a along d;
  a = strength x the layer's mean residual norm (`SteeringBench.mean_residual_norm`);
- reading: the clean reader's slope toward the first value (dB or octaves over the clip); shift = clip - twin;
  p: one-sided Mann-Whitney of the ``up`` shifts against the random ramps' (toward the first value), and of
  the ``down`` shifts (toward the second); order: share of pairs where ``up`` reads further toward the first
  value than ``down``; collapsed: `is_collapsed` with the codec's level curve, as the verdicts count it.

    python scripts/ramp_push_check.py                         # shipped model, dynamics at layer 1
    python scripts/ramp_push_check.py shipped brightness 3 0.125 0.25
    DIRECTION=teacher_forced python scripts/ramp_push_check.py    # d from 40 clean clips per genre, teacher-forced
                                                                   # with null text (the evaluation's kind)
"""
from __future__ import annotations

import os
import sys
import time


def main(argv=None) -> int:
    import dataclasses

    import numpy as np
    import torch
    from scipy.stats import mannwhitneyu

    import workbench as wb
    from workbench.analysis.directions import from_class_means
    from workbench.analysis.evaluation.collapse import is_collapsed, level_change_db
    from workbench.analysis.evaluation.verdicts import SteeringBench, VerdictPlan
    from workbench.runtime.settings import GenerationSettings
    from workbench.runtime.steering import Schedule, SteeringSpec
    from workbench.toy import clean_readers
    from workbench.toy.prompts import EVAL_PROMPTS, FACTOR_WORDS, factor_phrase
    from workbench.toy.synth_v2 import FACTORS, GENRES

    argv = list(sys.argv[1:] if argv is None else argv)
    weights = argv[0] if argv else "shipped"
    concept = argv[1] if len(argv) > 1 else "dynamics"
    layer = int(argv[2]) if len(argv) > 2 else 1
    strengths = [float(x) for x in argv[3:]] or [0.125]
    first, second = FACTORS[concept]
    torch.set_num_threads(1)
    t0 = time.time()
    handle = wb.load_model(None if weights == "shipped" else weights, device="cpu")
    settings = GenerationSettings(duration_s=4.0, guidance_scale=3.0)

    if os.environ.get("DIRECTION", "generated") == "teacher_forced":
        from workbench.toy.synth_v2 import synth_dataset

        audio, _, factors = synth_dataset(40, seed=20_011, with_factors=True)
        acts = wb.teacher_force(handle, list(audio), 32000, prompts=None,
                                capture=wb.CaptureSpec(layers=(layer,), sites=("resid",), pooling="mean"))
        X, labels = acts[("resid", layer)], [f[concept] for f in factors]
    else:
        X, labels = None, None
    prompts, seeds = [], []
    generated_labels = []
    for value, words in FACTOR_WORDS[concept].items():
        for genre in GENRES:
            for word in words[:2]:
                for s in range(4):
                    prompts.append(factor_phrase(concept, word, genre))
                    generated_labels.append(value)
                    seeds.append(1000 + s)
    if X is None:
        res = wb.generate(handle, prompts, GenerationSettings(duration_s=4.0, seeds=tuple(seeds), guidance_scale=3.0),
                          capture=wb.CaptureSpec(layers=(layer,), sites=("resid",), pooling="mean", rows="cond"))
        X, labels = res.activations[("resid", layer)], generated_labels
    d = np.asarray(from_class_means(X, np.asarray(labels), first, second, model_id=handle.model_id,
                                    layer=layer).vector, np.float32)
    d /= np.linalg.norm(d)

    plan = VerdictPlan(prompts=tuple(EVAL_PROMPTS[g][0] for g in GENRES), seeds=tuple(range(100, 108)),
                       strengths=tuple(strengths))
    bench = SteeringBench(handle, plan)
    twins, curve = bench.twins(), bench.level_curve()
    twin_q = [bench.quality(c) for c in twins]
    norm = bench.mean_residual_norm(layer)
    pool = np.random.default_rng(0).standard_normal((16, handle.hidden_size)).astype(np.float32)
    pool /= np.linalg.norm(pool, axis=1, keepdims=True)

    def read(clips):
        values = clean_readers.read_values(concept, [c.mono for c in clips], clips[0].sample_rate_hz)
        return clean_readers.toward(concept, values, first)

    def pushed(vector_of, start, end):
        clips = []
        for i, (prompt, seed) in enumerate(plan.pairs):
            spec = SteeringSpec.single(torch.from_numpy(vector_of(i)), layers=(layer,), strength=float(start),
                                       schedule=Schedule(kind="ramp", ramp_to=float(end), ramp_steps=200))
            clips.append(wb.generate(handle, [prompt], dataclasses.replace(settings, seeds=(seed,)),
                                     steering=spec).clips[0])
        return clips

    def collapsed(clips):
        flags = []
        for clip, tq in zip(clips, twin_q):
            q = bench.quality(clip)
            flags.append(is_collapsed(q, tq, level_change_db(q["rms"], tq["rms"]), curve))
        return float(np.mean(flags))

    base = read(twins)
    print(f"{weights} {concept} at layer {layer}, direction from {os.environ.get('DIRECTION', 'generated')} "
          f"activations: 32 pairs; shifts toward {first!r} "
          f"({clean_readers.READING_UNITS[concept]})", flush=True)
    for k in strengths:
        a = k * norm
        arms = {"up": pushed(lambda i: d, a, -a), "down": pushed(lambda i: d, -a, a),
                "random": pushed(lambda i: pool[i % 16], a, -a), "constant": pushed(lambda i: d, a, a)}
        shift = {arm: read(clips) - base for arm, clips in arms.items()}
        p_up = float(mannwhitneyu(shift["up"], shift["random"], alternative="greater").pvalue)
        p_down = float(mannwhitneyu(-shift["down"], -shift["random"], alternative="greater").pvalue)
        order = float(np.mean(shift["up"] > shift["down"]))
        print(f"  {k:g} x (a = {a:.2f}): up {shift['up'].mean():+.2f}, down {shift['down'].mean():+.2f}, "
              f"random ramps {shift['random'].mean():+.2f} (5-95% {np.percentile(shift['random'], 5):+.2f} .. "
              f"{np.percentile(shift['random'], 95):+.2f}), constant +d {shift['constant'].mean():+.2f}; "
              f"p(up toward {first} beyond random) {p_up:.2g}, p(down toward {second}) {p_down:.2g}; "
              f"order up > down {order:.2f}; collapsed up "
              f"{collapsed(arms['up']):.2f} down {collapsed(arms['down']):.2f} random {collapsed(arms['random']):.2f} "
              f"({time.time() - t0:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
