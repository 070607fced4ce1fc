"""One autoencoder-only trial of teaching codec v3 (issue 27): does a setting keep pitch?

Trains codec v3's encoder and decoder (no quantiser: the model card found pitch lost there) on the
first N clips per genre of the recipe's data, then measures their output on 40 held-out clips
(synth_v2, 10 per genre, seed 2025): chroma frame correlation with the clean clip (as
`scripts/codec_pitch_check.py`), tonic-and-mode agreement with the clean clip (the project's key
reader and the clean-fitted one, each with its accuracy on the clean clips), comb share, a genre
reader fitted on clean clips only, and seconds per step next to v2's codec step timed in the same
run (same batch, same crops, same thread count).

    nice -n 10 python scripts/codec_ae_trial.py --steps 400 --filters 32 --pitch-weight 1 \\
        --json /tmp/trial.json [--save DIR]

One thread (`torch.set_num_threads(1)`); the data is cached in --cache-dir.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch


def _data(n_per_genre: int, cache_dir: Path) -> np.ndarray:
    from workbench.toy.synth_v2 import synth_dataset

    path = cache_dir / f"synth_v2_{n_per_genre}_seed0.npy"
    if not path.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        np.save(path, synth_dataset(n_per_genre, seed=0)[0])
    return np.load(path)


def _seconds_per_step(sizes, audio, training, steps: int, crop: int) -> float:
    """Wall seconds of one training step (batch 8 of `crop` samples), median of `steps` after one warm-up."""
    from workbench.toy.architecture import build_codec
    from workbench.toy.training.codec_training import _crops

    codec = build_codec(sizes)
    params = [p for p in codec.parameters() if p.requires_grad]
    opt = torch.optim.Adam(params, lr=1e-4)
    rng = np.random.default_rng(1)
    times = []
    for _ in range(steps + 1):
        x = _crops(audio, 8, crop, rng)
        t = time.perf_counter()
        loss = training.loss(codec.decoder(codec.encoder(x)), x)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return float(np.median(times[1:]))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--steps", type=int, default=400)
    ap.add_argument("--filters", type=int, default=None, help="codec_filters (v3: 16)")
    ap.add_argument("--hidden", type=int, default=None, help="codec_hidden: the latent's width (v3: 64)")
    ap.add_argument("--residual-layers", type=int, default=None,
                    help="codec_residual_layers: dilated residual units per resolution (v3: 1)")
    ap.add_argument("--pitch-weight", type=float, default=None, help="codec_pitch_weight (v3's if omitted)")
    ap.add_argument("--floor-db", type=float, default=None, help="codec_floor_db (v3's if omitted; 0: v2's floor)")
    ap.add_argument("--balance-weight", type=float, default=None, help="codec_balance_weight (v3's if omitted)")
    ap.add_argument("--phase-weight", type=float, default=None, help="codec_phase_weight (v3's if omitted)")
    ap.add_argument("--seed", type=int, default=None, help="the recipe's seed (init, crops; v3: 0)")
    ap.add_argument("--clips-per-genre", type=int, default=100)
    ap.add_argument("--timing-steps", type=int, default=8)
    ap.add_argument("--json", default=None)
    ap.add_argument("--save", dest="save_dir", default=None,
                    help="save the codec (k-means on 16 clips) for the check scripts")
    ap.add_argument("--cache-dir", default="/tmp/codec-trials")
    args = ap.parse_args(argv)
    torch.set_num_threads(1)

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from codec_pitch_check import _chroma_corr

    from workbench.toy.architecture import build_codec
    from workbench.toy.audio_checks import comb_shares, fit_clean_genre_reader, read_keys, read_keys_clean
    from workbench.toy.synth_v2 import synth_dataset
    from workbench.toy.training.codec_training import train_codec
    from workbench.toy.training.recipe import Recipe

    recipe = Recipe.v3()
    if args.filters is not None:
        recipe = replace(recipe, sizes=replace(recipe.sizes, codec_filters=args.filters))
    if args.seed is not None:
        recipe = replace(recipe, seed=args.seed)
    if args.hidden is not None:
        recipe = replace(recipe, sizes=replace(recipe.sizes, codec_hidden=args.hidden))
    if args.residual_layers is not None:
        recipe = replace(recipe, sizes=replace(recipe.sizes, codec_residual_layers=args.residual_layers))
    for flag, field in (("pitch_weight", "codec_pitch_weight"), ("floor_db", "codec_floor_db"),
                        ("balance_weight", "codec_balance_weight"), ("phase_weight", "codec_phase_weight")):
        if getattr(args, flag) is not None:
            recipe = replace(recipe, **{field: getattr(args, flag)})
    audio = _data(args.clips_per_genre, Path(args.cache_dir))
    hop = 640
    crop = int(recipe.codec_crop_s * 32000) // hop * hop

    config = recipe.codec_training(ae_steps=args.steps, vq_steps=0, kmeans_clips=16)
    step_v2 = _seconds_per_step(Recipe.v2().sizes, audio, Recipe.v2().codec_training(), args.timing_steps, crop)
    step_trial = _seconds_per_step(recipe.sizes, audio, config, args.timing_steps, crop)

    codec = build_codec(recipe.sizes, seed=recipe.seed)
    t = time.time()
    train_codec(codec, audio, config, progress=False)
    train_s = time.time() - t
    if args.save_dir:
        codec.save_pretrained(args.save_dir)

    clips, genres, factors = synth_dataset(10, seed=2025, with_factors=True)
    with torch.no_grad():
        out = np.concatenate([codec.decoder(codec.encoder(torch.from_numpy(clips[i:i + 8])[:, None]))[:, 0].numpy()
                              for i in range(0, len(clips), 8)])[:, :clips.shape[1]]
    truth = [(f["tonic"], f["mode"]) for f in factors]
    figures = dict(seed=recipe.seed, filters=recipe.sizes.codec_filters, hidden=recipe.sizes.codec_hidden,
                   residual_layers=recipe.sizes.codec_residual_layers,
                   pitch_weight=recipe.codec_pitch_weight, comb_weight=recipe.codec_comb_weight,
                   floor_db=recipe.codec_floor_db, balance_weight=recipe.codec_balance_weight,
                   phase_weight=recipe.codec_phase_weight, steps=args.steps, clips=len(clips),
                   train_s=round(train_s, 1), step_s_v2=step_v2, step_s=step_trial, step_ratio=step_trial / step_v2,
                   output_rms_ratio=float(np.median(out.std(1) / clips.std(1))),
                   comb_share=float(np.median(comb_shares(out))),
                   chroma_corr=float(np.mean([_chroma_corr(a, b) for a, b in zip(clips, out)])))
    reader = fit_clean_genre_reader()
    figures["genre_clean"] = reader.score(list(clips), genres)
    figures["genre_out"] = reader.score(list(out), genres)
    for name, read in (("keys", read_keys), ("keys_clean_fitted", read_keys_clean)):
        clean, back = read(clips), read(out)
        figures[f"{name}_reader_on_clean"] = float(np.mean([k == t for k, t in zip(clean, truth)]))
        figures[f"{name}_agreement"] = float(np.mean([c == r for c, r in zip(clean, back)]))
        figures[f"{name}_tonic_agreement"] = float(np.mean([c[0] == r[0] for c, r in zip(clean, back)]))
    print(json.dumps(figures, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
