"""What a teaching codec keeps: the 50 Hz comb, distances to the clean clip, and DSP readers fitted
only on clean synthesiser audio (genre; tonic and mode), plus a bag-of-codes probe.

These are the figures of issue 27 (teaching codec v3), measured by `scripts/codec_concept_check.py`
and `scripts/codec_pitch_check.py` for any codec folder.

Comb share: the power of the part of a clip that is periodic at the codec's frame period (640
samples at 32 kHz, 50 Hz), phase-locked within 0.5 s blocks, over the clip's power
(`workbench.frame_comb.comb_share`, the measure the steering verdicts use too; `comb_shares` here takes
the teaching codec's rate and period).

Example:
    >>> import numpy as np
    >>> t = np.arange(64000) / 32000
    >>> comb_shares([np.sin(2 * np.pi * 100 * t), np.sin(2 * np.pi * 441 * t)]).round(2).tolist()
    [1.0, 0.01]
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from workbench.frame_comb import comb_share
from workbench.toy import WEIGHTS_DIR
from workbench.toy.clean_readers import _params, analyse_clean
from workbench.toy.judge import audio_features
from workbench.toy.readers import MODES, READERS, _key_features, analyse
from workbench.toy.synth_v2 import synth_dataset

SAMPLE_RATE_HZ = 32000
FRAME_PERIOD = 640  # samples: one codec frame at 50 Hz



def comb_shares(clips, period: int = FRAME_PERIOD) -> np.ndarray:
    """`workbench.frame_comb.comb_share` of each clip (N,) at the teaching codec's 32 kHz and `period`."""
    return np.array([comb_share(c, SAMPLE_RATE_HZ, period) for c in clips])


def stft_distance(pred: np.ndarray, target: np.ndarray, fft_sizes=(512, 1024, 2048)) -> float:
    """Multi-resolution STFT distance: mean over sizes of spectral convergence + log-magnitude L1."""
    import torch

    p = torch.as_tensor(np.asarray(pred, dtype=np.float32)).reshape(1, -1)
    t = torch.as_tensor(np.asarray(target, dtype=np.float32)).reshape(1, -1)
    n = min(p.shape[-1], t.shape[-1])
    p, t = p[:, :n], t[:, :n]
    total = 0.0
    for n_fft in fft_sizes:
        window = torch.hann_window(n_fft)
        P = torch.stft(p, n_fft, n_fft // 4, window=window, return_complex=True).abs()
        T = torch.stft(t, n_fft, n_fft // 4, window=window, return_complex=True).abs()
        total += float(torch.linalg.norm(P - T) / (torch.linalg.norm(T) + 1e-7))
        total += float((torch.log(P + 1e-5) - torch.log(T + 1e-5)).abs().mean())
    return total / len(fft_sizes)


def si_sdr(pred: np.ndarray, target: np.ndarray) -> float:
    """Scale-invariant signal-to-distortion ratio in dB (means removed)."""
    n = min(len(pred), len(target))
    p = np.asarray(pred[:n], dtype=np.float64) - np.mean(pred[:n])
    t = np.asarray(target[:n], dtype=np.float64) - np.mean(target[:n])
    s = (p @ t) / (t @ t + 1e-12) * t
    return float(10 * np.log10((s @ s + 1e-12) / ((p - s) @ (p - s) + 1e-12)))


# ---- tonic and mode --------------------------------------------------------------------------------

def read_keys(clips) -> list[tuple[int, str]]:
    """(tonic pitch class 0-11 with C = 0, "major" | "minor") per clip: the project's DSP key reader
    (`workbench.toy.readers`, chroma of three registers against fitted key profiles)."""
    return [(int(t), str(m)) for t, m in READERS["mode"].predict_key(list(clips))]


def read_keys_clean(clips) -> list[tuple[int, str]]:
    """(tonic, mode) per clip from the key profiles fitted on clean synthesiser audio only
    (`workbench.toy.clean_readers`, the steering verdicts' reader): the argmax of its 24 keys."""
    scorer = _params().mode
    keys = [int(np.argmax(scorer.scores(_key_features(c)))) for c in analyse_clean(list(clips))]
    return [(k % 12, str(MODES[k // 12])) for k in keys]


# ---- where pitch goes: registers, bands, images --------------------------------------------------

REGISTERS = ("bass", "middle", "lead")  # the key reader's registers: MIDI < 51, 51-71, >= 72
LEVEL_BANDS_HZ = (0, 50, 150, 400, 1000, 3000, 8000, 16000)


def _band_powers(x: np.ndarray) -> np.ndarray:
    power = np.abs(np.fft.rfft(np.asarray(x, dtype=np.float64), axis=-1)) ** 2
    freqs = np.fft.rfftfreq(np.shape(x)[-1], 1 / SAMPLE_RATE_HZ)
    return np.stack([power[..., (freqs >= lo) & (freqs < hi)].sum(-1)
                     for lo, hi in zip(LEVEL_BANDS_HZ[:-1], LEVEL_BANDS_HZ[1:])], -1)


def _log_spectrum(x: np.ndarray) -> np.ndarray:
    """Whole-clip log power spectrum, smoothed over 4 Hz."""
    s = np.log(np.abs(np.fft.rfft(x)) ** 2 + 1e-3)
    k = max(1, int(4 * len(x) / SAMPLE_RATE_HZ))
    return np.convolve(s, np.ones(k) / k, "same")


def _spectrum_correlation(clean: np.ndarray, out: np.ndarray, centre_hz: float, mirrored: bool,
                          width_hz: float = 350.0) -> float:
    """Correlation of `out`'s log spectrum from 20 to `width_hz` above `centre_hz` with `clean`'s at the
    same frequencies, or (mirrored) at the frequencies as far below `centre_hz`: an upsampling stage's
    images of lower notes, played at pitches the clip lacks."""
    df = SAMPLE_RATE_HZ / len(clean)
    c, lo, hi = int(centre_hz / df), int(20 / df), int(width_hz / df)
    reference = _log_spectrum(clean)
    reference = reference[c - lo:c - hi:-1] if mirrored else reference[c + lo:c + hi]
    return float(np.corrcoef(_log_spectrum(out)[c + lo:c + hi], reference)[0, 1])


def where_pitch_goes(clean: np.ndarray, out: np.ndarray) -> dict:
    """Where a codec loses pitch, clip by clip against the clean clips (N, samples), means over clips:

    - `chroma_<register>`: correlation of the key reader's whole-clip chroma of each register
      (`readers.ClipAnalysis.chroma_parts`) between clean and codec clip;
    - `energy_<register>_clean` / `_out`: each register's share of the clip's CQT energy;
    - `level_db_<lo>_<hi>`: the codec's level minus the clean clip's in each band (median over clips);
    - `image_400hz`: the codec's spectrum just above 400 Hz against the clean one mirrored about 400 Hz
      (8 codec frames a period: the first upsampling stage's rate), and `direct_400hz` against the
      clean one at the same frequencies.
    """
    a, b = analyse(list(clean)), analyse(list(out))
    figures = {}
    for r, name in enumerate(REGISTERS):
        figures[f"chroma_{name}"] = float(np.nanmean([np.corrcoef(x.chroma_parts[2 * r], y.chroma_parts[2 * r])[0, 1]
                                                      for x, y in zip(a, b)]))
    for side, clips in (("clean", a), ("out", b)):
        shares = []
        for clip in clips:
            C = clip.semitone_cqt  # the CQT the chroma above came from
            e = np.array([C[:27].sum(), C[27:48].sum(), C[48:].sum()])
            shares.append(e / e.sum())
        for r, name in enumerate(REGISTERS):
            figures[f"energy_{name}_{side}"] = float(np.mean(shares, 0)[r])
    levels = 10 * np.log10((_band_powers(out) + 1e-12) / (_band_powers(clean) + 1e-12))
    for i, (lo, hi) in enumerate(zip(LEVEL_BANDS_HZ[:-1], LEVEL_BANDS_HZ[1:])):
        figures[f"level_db_{lo}_{hi}"] = float(np.median(levels[:, i]))
    for name, mirrored in (("direct_400hz", False), ("image_400hz", True)):
        figures[name] = float(np.mean([_spectrum_correlation(x, y, 400.0, mirrored) for x, y in zip(clean, out)]))
    return figures


# ---- genre from DSP features, fitted on clean clips only -------------------------------------------

@dataclass
class CleanGenreReader:
    """Logistic regression on the judge's DSP features (`workbench.toy.judge.audio_features`),
    fitted on clean synthesiser clips only: no codec imitation in its training data."""

    C: float = 1.0

    def fit(self, clips, genres) -> CleanGenreReader:
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline
        from sklearn.preprocessing import StandardScaler

        self.model_ = make_pipeline(StandardScaler(), LogisticRegression(C=self.C, max_iter=5000))
        self.model_.fit(_genre_features(clips), list(genres))
        return self

    def predict(self, clips) -> list[str]:
        return list(self.model_.predict(_genre_features(clips)))

    def score(self, clips, genres) -> float:
        return float(np.mean(np.array(self.predict(clips)) == np.array(genres)))


def _genre_features(clips) -> np.ndarray:
    return np.stack([audio_features(c) for c in clips])


# ---- order leaking into single codes ---------------------------------------------------------------

def bag_of_codes_accuracy(bags: np.ndarray, labels, folds: int = 5) -> tuple[float, float]:
    """(cross-validated accuracy, chance) of a logistic probe on per-clip averaged code vectors."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import cross_val_score
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    y = np.asarray(labels)
    probe = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=5000))
    accuracy = float(cross_val_score(probe, bags, y, cv=folds).mean())
    chance = float(max(np.mean(y == v) for v in set(y)))
    return accuracy, chance


def codec_round_trip(codec, audio: np.ndarray, batch_size: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """(round trips (N, samples) float32, bags of codes (N, latent)) of clips through an EnCodec."""
    import torch

    recon, bags = [], []
    with torch.no_grad():
        for i in range(0, len(audio), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(audio[i:i + batch_size], dtype=np.float32))[:, None]
            codes = codec.quantizer.encode(codec.encoder(x))  # (K, B, T)
            latents = codec.quantizer.decode(codes)
            bags.append(latents.mean(-1).numpy())
            recon.append(codec.decoder(latents)[:, 0, :audio.shape[1]].numpy())
    return np.concatenate(recon).astype(np.float32), np.concatenate(bags)


def load_codec(source: str):
    """An EnCodec from a folder: a `save_pretrained` EnCodec, a MusicGen folder (its audio encoder),
    or "shipped" (the shipped teaching model's codec)."""
    import json
    from pathlib import Path

    from transformers import EncodecModel, MusicgenForConditionalGeneration

    if source == "shipped":
        source = str(WEIGHTS_DIR)
    config = json.loads((Path(source) / "config.json").read_text())
    if config.get("model_type") == "musicgen":
        return MusicgenForConditionalGeneration.from_pretrained(source).audio_encoder.float().eval()
    return EncodecModel.from_pretrained(source).float().eval()


# ---- the figures of issue 27 for one codec ---------------------------------------------------------

def fit_clean_genre_reader(n_per_genre: int = 30, seed: int = 4242) -> CleanGenreReader:
    """A `CleanGenreReader` fitted on fresh clean `synth_v2` clips (seeds apart from the check's)."""
    audio, genres = synth_dataset(n_per_genre, seed=seed)
    return CleanGenreReader().fit(list(audio), genres)


def codec_figures(codec, n_per_genre: int = 25, seed: int = 2025, genre_reader: CleanGenreReader | None = None,
                  pitch: bool = True) -> dict:
    """Comb share, clean-fitted genre reading, STFT distance, SI-SDR, bags of codes (dynamics,
    brightness) and tonic-and-mode agreement of `codec`'s round trips of held-out `synth_v2` clips,
    read by the project's key reader and by the one fitted on clean audio (`read_keys_clean`).

    Medians for comb share, means elsewhere; accuracies against the synthesiser's labels.
    """
    audio, genres, factors = synth_dataset(n_per_genre, seed=seed, with_factors=True)
    round_trips, bags = codec_round_trip(codec, audio)
    reader = genre_reader or fit_clean_genre_reader()
    figures = dict(clips=len(audio), seed=seed,
                   comb_share_clean=float(np.median(comb_shares(audio))),
                   comb_share_round_trip=float(np.median(comb_shares(round_trips))),
                   genre_clean=reader.score(list(audio), genres),
                   genre_round_trip=reader.score(list(round_trips), genres),
                   stft_distance=float(np.mean([stft_distance(r, a) for r, a in zip(round_trips, audio)])),
                   si_sdr_db=float(np.mean([si_sdr(r, a) for r, a in zip(round_trips, audio)])))
    for concept in ("dynamics", "brightness"):
        accuracy, chance = bag_of_codes_accuracy(bags, [f[concept] for f in factors])
        figures[f"bag_{concept}"], figures[f"bag_{concept}_chance"] = accuracy, chance
    if pitch:
        truth = [(f["tonic"], f["mode"]) for f in factors]
        for suffix, read in (("", read_keys), ("_clean_fitted", read_keys_clean)):
            clean_keys, trip_keys = read(audio), read(round_trips)
            figures[f"key_reader_clean{suffix}"] = float(np.mean([k == t for k, t in zip(clean_keys, truth)]))
            figures[f"key_agreement{suffix}"] = float(np.mean([c == r for c, r in zip(clean_keys, trip_keys)]))
            figures[f"key_round_trip{suffix}"] = float(np.mean([k == t for k, t in zip(trip_keys, truth)]))
    return figures


BARS = dict(comb_share_round_trip=("<=", 0.10), genre_round_trip=(">=", 0.85), key_reader_clean=(">=", 0.9),
            key_agreement=(">=", 0.8), key_reader_clean_clean_fitted=(">=", 0.9),
            key_agreement_clean_fitted=(">=", 0.8))


def format_figures(figures: dict) -> str:
    """A table of `codec_figures`, each with its bar (issue 27) where it has one."""
    lines = []
    for name, value in figures.items():
        bar = BARS.get(name)
        note = ""
        if bar:
            ok = value <= bar[1] if bar[0] == "<=" else value >= bar[1]
            note = f"   bar {bar[0]} {bar[1]}: {'met' if ok else 'MISSED'}"
        elif name in ("bag_dynamics", "bag_brightness"):
            gap = value - figures[f"{name}_chance"]
            note = f"   bar within 0.15 of chance: {'met' if gap <= 0.15 else 'MISSED'} ({gap:+.3f})"
        lines.append(f"{name:24} {value:9.3f}{note}" if isinstance(value, float) else f"{name:24} {value:>9}")
    return "\n".join(lines)
