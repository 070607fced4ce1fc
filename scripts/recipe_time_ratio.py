"""The teaching-model recipe's time, v3 against v2, by count of work, with unit costs measured side by side.

A full run of each recipe takes hours and a shared machine's speed drifts over hours, so this script
does what the recipes do in small units, taking turns (one round times one unit of every kind for v2,
then for v3, in alternating order), and multiplies each median unit time by the number of units the
full recipe runs:

- codec: an autoencoder step and a decoder-on-codes step (batch and crop of the recipe, its loss,
  backward, Adam), times `codec_ae_steps` and `codec_vq_steps`;
- codes: encoding 16 clips, times clips / 16 (every clip of the recipe is encoded once);
- judge: `fit_judge` on `JUDGE_CLIPS` clips per genre with this codec, scaled to the recipe's
  `judge_clips_per_genre` (synthesis, round trips and features grow with the clips);
- decoder: a decoder step (batch of the recipe, its loss, AdamW), times `decoder_steps`;
- data: synthesising one clip, times the recipe's clips.

It leaves out what both recipes do once and is small (the k-means fit, saving). Both recipes run at
the same thread count here (one), so the ratio is the work's; the shipped v2 ran with two threads.
Each round also gives its own ratio, and the spread of those is printed.

    python scripts/recipe_time_ratio.py [rounds]
"""
from __future__ import annotations

import sys
import time

import numpy as np
import torch

JUDGE_CLIPS = 4  # per genre, per timed judge fit


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    rounds = int(argv[0]) if argv else 5
    torch.set_num_threads(1)
    from workbench.toy.architecture import build_codec, build_musicgen
    from workbench.toy.judge import fit_judge
    from workbench.toy.prompts import factor_prompt
    from workbench.toy.synth_v2 import synth_dataset
    from workbench.toy.tokenizer import build_tokenizer
    from workbench.toy.training.codec_training import _crops, _quantise, encode_codes, optimizer_step, warmup_cosine
    from workbench.toy.training.decoder_training import condition, decoder_loss, delay_sequences
    from workbench.toy.training.recipe import Recipe

    recipes = {"v2": Recipe.v2(), "v3": Recipe.v3()}
    audio, _, labels = synth_dataset(4, seed=0, with_factors=True)
    audio = np.ascontiguousarray(audio, dtype=np.float32)
    tokenizer = build_tokenizer(vocab_size=Recipe.v3().vocab_size, seed=0, factors=True)
    state = {}
    for name, r in recipes.items():
        codec = build_codec(r.sizes, seed=0)
        config = r.codec_training()
        crop = int(r.codec_crop_s * 32000) // 640 * 640
        ae_params = [p for p in (*codec.encoder.parameters(), *codec.decoder.parameters()) if p.requires_grad]
        vq_params = [p for p in codec.decoder.parameters() if p.requires_grad]
        ae_opt = torch.optim.Adam(ae_params, lr=1e-4)
        vq_opt = torch.optim.Adam(vq_params, lr=1e-4)
        model = build_musicgen(r.sizes, codec, len(tokenizer), seed=0)
        dec_params = [p for p in model.decoder.parameters() if p.requires_grad]
        dec_opt = torch.optim.AdamW(dec_params, lr=1e-4)
        state[name] = dict(recipe=r, codec=codec, config=config, crop=crop, rng=np.random.default_rng(1),
                           ae=(ae_params, ae_opt, warmup_cosine(ae_opt, 10_000)),
                           vq=(vq_params, vq_opt, warmup_cosine(vq_opt, 10_000)),
                           model=model, dec=(dec_params, dec_opt, warmup_cosine(dec_opt, 10_000)))

    def codec_ae(s):
        codec, x = s["codec"], _crops(audio, s["recipe"].codec_batch_size, s["crop"], s["rng"])
        codec.train()
        optimizer_step(s["config"].loss(codec.decoder(codec.encoder(x)), x), *s["ae"][1:], s["ae"][0])

    def codec_vq(s):
        codec, x = s["codec"], _crops(audio, s["recipe"].codec_batch_size, s["crop"], s["rng"])
        codec.eval()
        codec.decoder.train()
        with torch.no_grad():
            zq = _quantise(codec, codec.encoder(x))
        optimizer_step(s["config"].loss(codec.decoder(zq), x), *s["vq"][1:], s["vq"][0])
        codec.eval()

    def encode16(s):
        encode_codes(s["codec"], audio[:16], progress=False)

    def judge(s):
        fit_judge(n_per_genre=JUDGE_CLIPS, version=2, codec=s["codec"], progress=False)

    def decoder_step(s):
        model, r, rng = s["model"], s["recipe"], s["rng"]
        model.decoder.train()
        codes = torch.from_numpy(rng.integers(0, r.sizes.codebook_size, size=(r.decoder_batch_size, 4, 200)))
        prompts = [factor_prompt(labels[i % len(labels)], rng) for i in range(r.decoder_batch_size)]
        hidden, mask = condition(model, tokenizer, prompts, rng.random(r.decoder_batch_size) < r.cond_dropout)
        special = model.decoder.config.pad_token_id
        optimizer_step(decoder_loss(model, delay_sequences(codes, special), hidden, mask, special),
                       *s["dec"][1:], s["dec"][0])

    def synth_one(s):
        synth_dataset(1, seed=int(s["rng"].integers(1 << 30)), with_factors=True)

    units = {"codec ae step": codec_ae, "codec vq step": codec_vq, "encode 16 clips": encode16,
             f"judge fit, {JUDGE_CLIPS} clips/genre": judge, "decoder step": decoder_step, "synth 4 clips": synth_one}

    def counts(r):
        n_clips = max(r.n_per_genre, r.decoder_clips_per_genre) * 4
        return {"codec ae step": r.codec_ae_steps, "codec vq step": r.codec_vq_steps,
                "encode 16 clips": n_clips / 16, f"judge fit, {JUDGE_CLIPS} clips/genre": r.judge_clips_per_genre
                / JUDGE_CLIPS, "decoder step": r.decoder_steps, "synth 4 clips": n_clips / 4}

    times = {n: {u: [] for u in units} for n in recipes}
    for k in range(rounds + 1):  # round 0 warms up
        order = list(recipes) if k % 2 == 0 else list(recipes)[::-1]
        for unit, fn in units.items():
            for name in order:
                t = time.perf_counter()
                fn(state[name])
                times[name][unit].append(time.perf_counter() - t)
        print(f"round {k} done", flush=True)

    def total(name, pick):
        c = counts(recipes[name])
        return {u: c[u] * pick(times[name][u][1:]) for u in units}

    med = {n: total(n, np.median) for n in recipes}
    print(f"{'unit':28} {'v2 s/unit':>10} {'v3 s/unit':>10} {'ratio':>6} {'v2 units':>9} {'v2 stage s':>10} "
          f"{'v3 stage s':>10}")
    for u in units:
        a, b = np.median(times["v2"][u][1:]), np.median(times["v3"][u][1:])
        print(f"{u:28} {a:10.4f} {b:10.4f} {b / a:6.2f} {counts(recipes['v2'])[u]:9.0f} {med['v2'][u]:10.0f} "
              f"{med['v3'][u]:10.0f}")
    t2, t3 = sum(med["v2"].values()), sum(med["v3"].values())
    per_round = []
    for k in range(1, rounds + 1):
        a = sum(counts(recipes["v2"])[u] * times["v2"][u][k] for u in units)
        b = sum(counts(recipes["v3"])[u] * times["v3"][u][k] for u in units)
        per_round.append(b / a)
    print(f"recipe total, one thread, by count of work: v2 {t2:.0f} s ({t2 / 60:.1f} min), v3 {t3:.0f} s "
          f"({t3 / 60:.1f} min): v3 = {t3 / t2:.2f}x v2 (per round: min {min(per_round):.2f}, "
          f"max {max(per_round):.2f}, {rounds} rounds)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
