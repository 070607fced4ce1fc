"""Seconds per codec training step of codec v3 settings next to v2's, interleaved on one machine.

A shared machine's speed drifts, so the settings take turns: each round times one step of every
setting (batch 8 of the recipe's 0.32 s crops, loss, backward, Adam), after one warm-up round; the
median over rounds is printed with its ratio to v2's. One thread.

    python scripts/codec_step_ratio.py [rounds] [filters:pitch_weight ...]
    python scripts/codec_step_ratio.py 9 16:0 16:2 32:0 32:2

Each setting is `Recipe.v3()` with those codec filters and pitch-loss weight; v2 is
`Recipe.v2()` (16 filters, one residual unit, v2's losses).
"""
from __future__ import annotations

import sys
import time
from dataclasses import replace

import numpy as np
import torch


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rounds = int(argv[0]) if argv else 9
    specs = argv[1:] or ["16:0", "16:2", "32:0", "32:2"]
    torch.set_num_threads(1)
    from workbench.toy.architecture import build_codec
    from workbench.toy.synth_v2 import synth_dataset
    from workbench.toy.training.codec_training import _crops
    from workbench.toy.training.recipe import Recipe

    settings = {"v2": Recipe.v2()}
    for spec in specs:
        filters, weight = spec.split(":")
        v3 = Recipe.v3()
        settings[f"v3 {filters} filters, pitch x {weight}"] = replace(
            v3, codec_pitch_weight=float(weight), sizes=replace(v3.sizes, codec_filters=int(filters)))
    audio = synth_dataset(2, seed=0)[0]
    crop = int(Recipe.v2().codec_crop_s * 32000) // 640 * 640
    states = {}
    for name, recipe in settings.items():
        codec = build_codec(recipe.sizes)
        params = [p for p in codec.parameters() if p.requires_grad]
        states[name] = (recipe, codec, params, torch.optim.Adam(params, lr=1e-4), np.random.default_rng(1))
    times = {name: [] for name in settings}
    for _ in range(rounds + 1):
        for name, (recipe, codec, params, opt, rng) in states.items():
            x = _crops(audio, recipe.codec_batch_size, crop, rng)
            t = time.perf_counter()
            loss = recipe.codec_training().loss(codec.decoder(codec.encoder(x)), x)
            opt.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            opt.step()
            times[name].append(time.perf_counter() - t)
    base = float(np.median(times["v2"][1:]))
    for name, ts in times.items():
        step = float(np.median(ts[1:]))
        print(f"{name:32} {step:6.3f} s/step   {step / base:5.2f}x v2")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
