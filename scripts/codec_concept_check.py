"""What a codec keeps of each teaching-model-v2 concept, before any decoder is trained on it.

For fresh `synth_v2` clips, two measurements per concept:
- *round trip*: the concept's reader (`workbench.toy.readers`) on the codec's decoded codes;
- *bag of codes*: a cross-validated logistic probe (standardised features, C = 1, 5 folds: the
  settings of `workbench.analysis.probes.sweep`) on each clip's quantised latents averaged over time (the
  sum of its codebook vectors, order thrown away). A decoder's input baseline is the same kind of
  average, of its own code embeddings. A concept of order (dynamics, brightness) that a bag of codes
  still reads is in the codes themselves, so no decoder layer can show depth for it.

    python scripts/codec_concept_check.py CODEC [clips_per_genre] [seed] [wave|ramp|velocity|hairpin] [wave|ramp]
    python scripts/codec_concept_check.py shipped
    python scripts/codec_concept_check.py /tmp/codec-v3 25 2025 --json figures.json

CODEC: an EnCodec `save_pretrained` folder, a MusicGen folder (its audio encoder) or "shipped".
First the figures of issue 27 (teaching codec v3) on the default clips, each with its bar
(`workbench.toy.audio_checks.codec_figures`: comb share, a genre reader fitted only on clean clips,
multi-resolution STFT distance, SI-SDR, bags of codes for dynamics and brightness, tonic-and-mode
agreement); then one line per concept: reader accuracy on the clips and on their round trips,
bag-of-codes accuracy, chance.
"""
from __future__ import annotations

import sys

import numpy as np
import torch


def main(argv=None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    json_path = None
    if "--json" in argv:
        i = argv.index("--json")
        json_path = argv[i + 1]
        del argv[i:i + 2]
    source = argv[0] if argv else "shipped"
    n_per_genre = int(argv[1]) if len(argv) > 1 else 25
    seed = int(argv[2]) if len(argv) > 2 else 2025
    style = argv[3] if len(argv) > 3 else "wave"  # synth_v2's dynamics_style (the default: "wave")
    brightness = argv[4] if len(argv) > 4 else ("ramp" if style == "ramp" else "wave")  # brightness_style
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from workbench.toy.audio_checks import codec_figures, format_figures, load_codec
    from workbench.toy.readers import read_concept
    from workbench.toy.synth_v2 import FACTORS, synth_dataset

    torch.set_num_threads(1)
    codec = load_codec(source)
    figures = codec_figures(codec, n_per_genre=n_per_genre, seed=seed)
    print(f"issue 27 figures, codec {source}:")
    print(format_figures(figures))
    if json_path:
        import json
        with open(json_path, "w") as f:
            json.dump(dict(codec=source, **figures), f, indent=1)
    audio, _, factors = synth_dataset(n_per_genre, seed=seed, with_factors=True, dynamics_style=style,
                                      brightness_style=brightness)
    bags, recon = [], []
    with torch.no_grad():
        for i in range(0, len(audio), 8):
            x = torch.from_numpy(audio[i:i + 8])[:, None]
            c = codec.encode(x).audio_codes  # (1, B, K, T)
            bags.append(codec.quantizer.decode(c[0].transpose(0, 1)).mean(-1).numpy())  # (B, latent)
            recon.append(codec.decode(c, [None]).audio_values[:, 0, : audio.shape[1]].numpy())
    X, recon = np.concatenate(bags), np.concatenate(recon)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    print(f"{len(audio)} clips (seed {seed}, dynamics {style}, brightness {brightness}), codec {source}")
    print(f"{'concept':11} {'clean':>6} {'round trip':>10} {'bag of codes':>12} {'chance':>7}")
    for concept in FACTORS:
        y = np.array([f[concept] for f in factors])
        clean = np.array(read_concept(concept, list(audio), 32000))
        read = np.array(read_concept(concept, list(recon), 32000))
        bag = cross_val_score(probe, X, y, cv=5).mean()
        chance = max(np.mean(y == v) for v in set(y))
        print(f"{concept:11} {np.mean(clean == y):6.3f} {np.mean(read == y):10.3f} {bag:12.3f} {chance:7.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
