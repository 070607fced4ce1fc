"""Does a codec keep an empty bass band empty? Round trips of clean synth_v3 clips, with and without their bass
line, through one or more codecs.

The bass-line concept (`workbench.toy.synth_v3`) asks the codec for something v2's clips never held: a clip with
nothing below the bass register. A codec that fills that band with its frame-rate buzz makes a push toward *no
bass* sound like a drone. Per genre and bass state (medians over the clips):

- comb share (`workbench.frame_comb.comb_share`) of the clean clip and of its round trip;
- the bass reading (`workbench.toy.clean_readers.read_values("bass")`: dB over its threshold) clean and round trip;
- the low band: power below 90 Hz against 130-4000 Hz, in dB, clean and round trip;
- the multi-resolution STFT distance of the round trip to the clean clip.

Then the bass reader's accuracy on the round trips (present when it reads above 0).

    python scripts/codec_bass_check.py shipped                      # the shipped teaching model's codec
    python scripts/codec_bass_check.py shipped /path/to/codec --clips-per-genre 20 --json out.json
"""
from __future__ import annotations

import argparse
import json

import numpy as np

LOW_BAND_HZ = (20.0, 90.0)
REFERENCE_BAND_HZ = (130.0, 4000.0)


def low_band_db(clip: np.ndarray, sr: int = 32000) -> float:
    """Power in `LOW_BAND_HZ` over power in `REFERENCE_BAND_HZ`, in dB (floored at -120)."""
    power = np.abs(np.fft.rfft(np.asarray(clip, dtype=np.float64))) ** 2
    freqs = np.fft.rfftfreq(len(clip), 1 / sr)
    low = power[(freqs >= LOW_BAND_HZ[0]) & (freqs < LOW_BAND_HZ[1])].sum()
    ref = power[(freqs >= REFERENCE_BAND_HZ[0]) & (freqs < REFERENCE_BAND_HZ[1])].sum()
    return float(10 * np.log10(low / ref + 1e-12)) if ref > 0 else float("nan")


def main(argv=None) -> int:
    import torch

    from workbench.toy.audio_checks import codec_round_trip, comb_shares, load_codec, stft_distance
    from workbench.toy.clean_readers import read_values
    from workbench.toy.synth_v3 import synth_dataset

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("codecs", nargs="+", help='"shipped", a MusicGen folder or a save_pretrained EnCodec folder')
    parser.add_argument("--clips-per-genre", type=int, default=20)
    parser.add_argument("--seed", type=int, default=3131)
    parser.add_argument("--json", help="write the table here")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    audio, _, factors = synth_dataset(args.clips_per_genre, seed=args.seed, with_factors=True)
    genre = np.array([f["genre"] for f in factors])
    bass = np.array([f["bass"] for f in factors])
    clean = dict(comb=comb_shares(audio), bass=read_values("bass", list(audio)),
                 low=np.array([low_band_db(a) for a in audio]))
    print(f"clean clips: bass reader {np.mean((clean['bass'] > 0) == (bass == 'present')):.3f} "
          f"({len(audio)} clips, seed {args.seed})")
    out = {}
    for source in args.codecs:
        rt, _ = codec_round_trip(load_codec(source), audio)
        got = dict(comb=comb_shares(rt), bass=read_values("bass", list(rt)), low=np.array([low_band_db(r) for r in rt]),
                   stft=np.array([stft_distance(r, a) for r, a in zip(rt, audio)]))
        accuracy = float(np.mean((got["bass"] > 0) == (bass == "present")))
        print(f"\ncodec {source}: bass reader on round trips {accuracy:.3f}")
        print(f"{'genre':11} {'bass':8} {'n':>3} {'comb clean':>10} {'comb rt':>8} {'bass dB clean':>13} "
              f"{'bass dB rt':>10} {'low dB clean':>12} {'low dB rt':>9} {'stft':>6}")
        rows = {}
        for g in sorted(set(genre)):
            for b in ("present", "absent"):
                m = (genre == g) & (bass == b)
                if not m.any():
                    continue
                row = dict(n=int(m.sum()), **{f"{k}_clean": float(np.median(v[m])) for k, v in clean.items()},
                           **{f"{k}_rt": float(np.median(v[m])) for k, v in got.items()})
                rows[f"{g}|{b}"] = row
                print(f"{g:11} {b:8} {row['n']:3d} {row['comb_clean']:10.3f} {row['comb_rt']:8.3f} "
                      f"{row['bass_clean']:13.1f} {row['bass_rt']:10.1f} {row['low_clean']:12.1f} "
                      f"{row['low_rt']:9.1f} {row['stft_rt']:6.3f}")
        out[source] = dict(bass_reader_round_trips=accuracy, by_genre_and_bass=rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
