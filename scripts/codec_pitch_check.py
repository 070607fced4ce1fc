"""Does a codec keep pitch? Chroma and lead-band pitch of EnCodec round trips vs the originals.

Teaching model v2 needs a codec that keeps pitch (mode, lead and contour are pitch concepts). This
compares, on fresh synthetic clips, the original with the codec's autoencoder output (no
quantiser) and its full round trip (quantised codes), with the judge's codec-like degradation of
the original as the ceiling and another clip as the floor:

    python scripts/codec_pitch_check.py shipped v1        # the shipped codec on its own training data
    python scripts/codec_pitch_check.py /path/to/codec v2 # a save_pretrained EnCodec folder on synth_v2

Prints the mean per-frame chroma correlation (librosa chroma_cqt, 32 ms hops) and the share of
frames whose strongest lead-band (MIDI 64-100) CQT bin matches. On v2 clips it first prints the
pitch bar of issue 27: a DSP tonic-and-mode reader (`workbench.toy.readers`' key profiles, and
`workbench.toy.clean_readers`' profiles fitted on clean audio only) on the clean clips against
the synthesiser's truth, and how often it reads the round trip as the clean clip (25 clips per
genre, seed 2025; `workbench.toy.audio_checks.codec_figures`).
"""
from __future__ import annotations

import sys

import librosa
import numpy as np
import torch


def _chroma_corr(a: np.ndarray, b: np.ndarray) -> float:
    A = librosa.feature.chroma_cqt(y=a, sr=32000, hop_length=1024)
    B = librosa.feature.chroma_cqt(y=b, sr=32000, hop_length=1024)
    n = min(A.shape[1], B.shape[1])
    return float(np.nanmean([np.corrcoef(A[:, t], B[:, t])[0, 1] for t in range(n)]))


def _pitch_match(a: np.ndarray, b: np.ndarray) -> float:
    def cqt(y):
        return np.abs(librosa.cqt(y, sr=32000, hop_length=512, fmin=librosa.midi_to_hz(64), n_bins=36))
    A, B = cqt(a), cqt(b)
    n = min(A.shape[1], B.shape[1])
    return float(np.mean(A[:, :n].argmax(0) == B[:, :n].argmax(0)))


def _band_cut(clips: np.ndarray, lo_hz: float, hi_hz: float, db: float) -> np.ndarray:
    """The clips with one band's level changed by `db` (a zero-phase FFT gain)."""
    spectra = np.fft.rfft(clips, axis=-1)
    freqs = np.fft.rfftfreq(clips.shape[-1], 1 / 32000)
    spectra[:, (freqs >= lo_hz) & (freqs < hi_hz)] *= 10 ** (db / 20)
    return np.fft.irfft(spectra, n=clips.shape[-1], axis=-1).astype(np.float32)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    source, version = (argv + ["shipped", "v1"])[:2]
    n_per_genre = int(argv[2]) if len(argv) > 2 else 25
    from workbench.toy.audio_checks import (
        REGISTERS,
        codec_round_trip,
        load_codec,
        read_keys,
        read_keys_clean,
        where_pitch_goes,
    )

    torch.set_num_threads(1)
    codec = load_codec(source)
    if version == "v2":
        from workbench.toy.synth_v2 import synth_dataset as synth_v2

        clips, _, factors = synth_v2(n_per_genre, seed=2025, with_factors=True)
        trips = codec_round_trip(codec, clips)[0]
        truth = [(f["tonic"], f["mode"]) for f in factors]
        where = where_pitch_goes(clips, trips)
        print("where pitch goes (round trips against the clean clips; audio_checks.where_pitch_goes):")
        print("  register chroma correlation " + ", ".join(f"{r} {where[f'chroma_{r}']:.3f}" for r in REGISTERS))
        print("  register energy share clean -> round trip " + ", ".join(
            f"{r} {where[f'energy_{r}_clean']:.3f} -> {where[f'energy_{r}_out']:.3f}" for r in REGISTERS))
        print("  level, round trip - clean (dB) " + ", ".join(
            f"{k[9:].replace('_', '-')} Hz {v:+.1f}" for k, v in where.items() if k.startswith("level_db_")))
        print(f"  spectrum above 400 Hz vs clean's there {where['direct_400hz']:.3f}, "
              f"vs clean's mirrored about 400 Hz (images) {where['image_400hz']:.3f}")
        for db in (-8, -12):  # control: is a darker middle band alone what moves the readers?
            cut = _band_cut(clips, 400, 3000, db)
            agree = [np.mean([c == r for c, r in zip(read(clips), read(cut))]) for read in (read_keys, read_keys_clean)]
            print(f"  control: clean clips with 400-3000 Hz at {db} dB: tonic and mode = clean's {agree[0]:.3f} "
                  f"(clean-fitted {agree[1]:.3f})")
        for name, read in (("project's key reader", read_keys), ("clean-fitted key profiles", read_keys_clean)):
            clean, tripped = read(clips), read(trips)
            accuracy = np.mean([k == t for k, t in zip(clean, truth)])
            agreement = np.mean([c == r for c, r in zip(clean, tripped)])
            print(f"tonic and mode, {len(clips)} clips, {name}: reader on clean {accuracy:.3f} (bar >= 0.9), "
                  f"round trip = clean {agreement:.3f} (bar >= 0.8), round trip = truth "
                  f"{np.mean([k == t for k, t in zip(tripped, truth)]):.3f}")
    if version == "v1":
        from workbench.toy.synth import synth_dataset
    else:
        from workbench.toy.synth_v2 import synth_dataset
    audio = synth_dataset(5, seed=2025)[0]
    x = torch.from_numpy(audio)[:, None]
    with torch.no_grad():
        autoencoded = codec.decoder(codec.encoder(x))[:, 0, : audio.shape[1]].numpy()
        codes = codec.encode(x).audio_codes
        round_trip = codec.decode(codes, [None]).audio_values[:, 0, : audio.shape[1]].numpy()
    from workbench.toy.judge import degrade

    rng = np.random.default_rng(0)
    degraded = np.stack([degrade(a, rng) for a in audio]).astype(np.float32)
    rows = (("autoencoder (no quantiser)", autoencoded), ("round trip (codes)", round_trip),
            ("degraded copy (ceiling)", degraded), ("another clip (floor)", np.roll(audio, 1, axis=0)))
    for name, y in rows:
        chroma = np.mean([_chroma_corr(audio[i], y[i]) for i in range(len(audio))])
        pitch = np.mean([_pitch_match(audio[i], y[i]) for i in range(len(audio))])
        print(f"{name:28} chroma frame corr {chroma:6.3f}   lead-band pitch match {pitch:5.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
