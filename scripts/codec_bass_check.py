"""Does a codec keep an empty bass band empty? Round trips of clean synth_v3 clips, with and without their bass
line, through one or more codecs.

The bass-line concept (`workbench.toy.synth_v3`) asks the codec for something v2's clips never held: a clip with
nothing below the bass register. A codec that fills that band with its frame-rate buzz makes a push toward *no
bass* sound like a drone. Per genre and bass state (medians over the clips):

- comb share (`workbench.frame_comb.comb_share`) of the clean clip and of its round trip;
- the bass reading (`workbench.toy.clean_readers.read_values("bass")`: dB over its threshold) clean and round trip;
- the low band: power in 20-90 Hz against 130-4000 Hz, in dB (the clip high-passed at 20 Hz, then
  Hann-windowed 4096-point frames, their mean power), clean and round trip;
- infrasound: the share of the clip's RMS under 20 Hz (a zero-phase 4th-order Butterworth split), clean and
  round trip: the teaching codecs add a slow wander there (session 26: 0.06-0.54 of the round trips' RMS,
  clean clips 0.00-0.04), which an unwindowed spectrum smears into the low band;
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


INFRA_HZ = 20.0
EDGE_S = 0.25  # left out at each end after the high-pass: its start-up transients sit in the low band


def _high_passed(clip: np.ndarray, sr: int) -> tuple[np.ndarray, np.ndarray]:
    """(the clip, mean removed, and that through a zero-phase 4th-order Butterworth high-pass at `INFRA_HZ`), both
    without `EDGE_S` at each end."""
    from scipy.signal import butter, sosfiltfilt

    x = np.asarray(clip, dtype=np.float64)
    x = x - x.mean()
    high = sosfiltfilt(butter(4, INFRA_HZ, "highpass", fs=sr, output="sos"), x)
    edge = int(EDGE_S * sr) if len(x) > 4 * int(EDGE_S * sr) else 0
    return x[edge:len(x) - edge], high[edge:len(x) - edge]


def low_band_db(clip: np.ndarray, sr: int = 32000) -> float:
    """Power in `LOW_BAND_HZ` over power in `REFERENCE_BAND_HZ`, in dB (floored at -120), of the clip without its
    infrasound (`_high_passed`), from Hann-windowed 4096-point frames (7.8 Hz bins, as the bass reader's). A
    strong wander under 20 Hz leaks into the band of any spectrum taken with it (session 25's figures came from one
    unwindowed spectrum of the whole clip; on the three codecs measured again in session 26 they moved by under
    1 dB, so the band is filled, not leaked into)."""
    from scipy.signal import stft

    f, _, z = stft(_high_passed(clip, sr)[1], fs=sr, nperseg=4096, noverlap=3072, boundary=None, padded=False)
    power = (np.abs(z) ** 2).mean(axis=-1)
    low = power[(f >= LOW_BAND_HZ[0]) & (f < LOW_BAND_HZ[1])].sum()
    ref = power[(f >= REFERENCE_BAND_HZ[0]) & (f < REFERENCE_BAND_HZ[1])].sum()
    return float(10 * np.log10(low / ref + 1e-12)) if ref > 0 else float("nan")


def infrasound_share(clip: np.ndarray, sr: int = 32000) -> float:
    """Share of the clip's RMS (mean removed) under `INFRA_HZ`: the RMS of what `_high_passed` removes, over the
    clip's RMS."""
    x, high = _high_passed(clip, sr)
    total = float(np.sqrt(np.mean(x ** 2)))
    return float(np.sqrt(np.mean((x - high) ** 2))) / total if total > 0 else 0.0


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
                 low=np.array([low_band_db(a) for a in audio]), infra=np.array([infrasound_share(a) for a in audio]))
    print(f"clean clips: bass reader {np.mean((clean['bass'] > 0) == (bass == 'present')):.3f} "
          f"({len(audio)} clips, seed {args.seed})")
    out = {}
    for source in args.codecs:
        rt, _ = codec_round_trip(load_codec(source), audio)
        got = dict(comb=comb_shares(rt), bass=read_values("bass", list(rt)), low=np.array([low_band_db(r) for r in rt]),
                   infra=np.array([infrasound_share(r) for r in rt]),
                   stft=np.array([stft_distance(r, a) for r, a in zip(rt, audio)]))
        accuracy = float(np.mean((got["bass"] > 0) == (bass == "present")))
        print(f"\ncodec {source}: bass reader on round trips {accuracy:.3f}")
        print(f"{'genre':11} {'bass':8} {'n':>3} {'comb clean':>10} {'comb rt':>8} {'bass dB clean':>13} "
              f"{'bass dB rt':>10} {'low dB clean':>12} {'low dB rt':>9} {'infra clean':>11} {'infra rt':>8} "
              f"{'stft':>6}")
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
                      f"{row['low_rt']:9.1f} {row['infra_clean']:11.2f} {row['infra_rt']:8.2f} {row['stft_rt']:6.3f}")
        out[source] = dict(bass_reader_round_trips=accuracy, by_genre_and_bass=rows)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
