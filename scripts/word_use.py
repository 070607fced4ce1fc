"""How much does the teaching model's decoder use each factor word? Teacher-forced loss, right word against wrong.

For fresh synthesiser clips (`synth_v2`, seed 31_337: 24 per genre) encoded by the model's own codec, each clip
is scored by the decoder's cross-entropy (nats, summed over its codes) under a prompt that names its true value
of a concept ("fast jazz music") and under one that names another value ("slow jazz music"), both with the
clip's genre. The mean of wrong minus right is what naming the value is worth to the model: a decoder that
ignores the word scores 0. Genre ("jazz music" against "rock music") is the reference.

    python scripts/word_use.py                 # the shipped teaching model
    python scripts/word_use.py WEIGHTS_DIR ...  # others, one line per concept each
"""
from __future__ import annotations

import sys


def word_use(weights=None, n_per_genre: int = 24, seed: int = 31_337) -> dict:
    """{concept: {"gain_nats_per_clip", "sd", "n_clips"}} for a teaching model folder (None: the shipped one)."""
    import numpy as np
    import torch
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    from workbench.toy import WEIGHTS_DIR
    from workbench.toy.prompts import FACTOR_WORDS, GENRE_WORDS, factor_phrase
    from workbench.toy.synth_v2 import FACTORS
    from workbench.toy.synth_v2 import synth_dataset as synth_v2
    from workbench.toy.training.codec_training import encode_codes
    from workbench.toy.training.decoder_training import condition, decoder_loss, delay_sequences

    model = MusicgenForConditionalGeneration.from_pretrained(WEIGHTS_DIR if weights is None else weights).eval()
    tokenizer = AutoProcessor.from_pretrained(WEIGHTS_DIR if weights is None else weights).tokenizer
    special = model.decoder.config.pad_token_id
    audio, _, factors = synth_v2(n_per_genre, seed=seed, with_factors=True)
    with torch.no_grad():
        codes = encode_codes(model.audio_encoder, audio, progress=False)

    def loss(i: int, prompt: str) -> float:  # the training loss (a mean per code) x the clip's codes: nats a clip
        seq = delay_sequences(torch.from_numpy(codes[i:i + 1]), special)
        hidden, mask = condition(model, tokenizer, [prompt], np.zeros(1, bool))
        return float(decoder_loss(model, seq, hidden, mask, special)) * int((seq[:, :, 1:] != special).sum())

    rng = np.random.default_rng(seed)
    out = {}
    for concept in FACTORS:
        words = {g: [g] for g in GENRE_WORDS} if concept == "genre" else FACTOR_WORDS[concept]
        names = list(words)
        gains = []
        with torch.no_grad():
            for i, f in enumerate(factors):
                true = f[concept]
                wrong = names[(names.index(true) + 1 + int(rng.integers(len(names) - 1))) % len(names)]
                gains.append(loss(i, factor_phrase(concept, words[wrong][0], f["genre"]))
                             - loss(i, factor_phrase(concept, words[true][0], f["genre"])))
        out[concept] = dict(gain_nats_per_clip=float(np.mean(gains)), sd=float(np.std(gains)), n_clips=len(gains))
    return out


def main(argv=None) -> int:
    import torch

    torch.set_num_threads(1)
    argv = list(sys.argv[1:] if argv is None else argv)
    for weights in argv or [None]:
        for concept, r in word_use(weights).items():
            print(f"{weights or 'shipped'}  {concept:10} wrong - right word: "
                  f"{r['gain_nats_per_clip']:+7.2f} nats a clip (sd {r['sd']:.2f}, {r['n_clips']} clips)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
