"""The genre judge: hand-crafted audio features + a logistic regression, numpy at inference.

A judge *fitted on codec round trips* (v2's, below): it describes generations and round trips, and is
never used for a steering verdict (`workbench.toy.clean_readers` has the genre reader fitted on clean
synthesiser audio only that verdicts use).

Trained on synthesised audio only (never on model activations), with degradations a codec makes
so it still judges reconstructions and generated clips fairly: for teaching model v1 random
low-pass, noise and smearing (`degrade`); for v2, round trips through a *reference codec*
(`reference_codec/`: teaching model v1's EnCodec in float16, a different network from the one the
v2 model carries), whose artifacts the hand-made degradations did not imitate well enough (see teaching model
v2's card, `git show c85904c:workbench/toy/MODEL_CARD.md`).
The fitted parameters ship as JSON next to this file, each named for what it was fitted
on (`JUDGE_V1_PATH`, `JUDGE_V2_PATH`; a model's own judge lies in its weights folder, `MODEL_JUDGE_FILE`):
loading is instant and nothing is unpickled.

Example:
    >>> from workbench.toy.judge import JUDGE_V1_PATH, load_judge
    >>> from workbench.toy.synth import synth_clip
    >>> judge = load_judge(JUDGE_V1_PATH)   # teaching model v1's judge, on v1 clips
    >>> judge.predict([synth_clip("rock", seed=11)], sr=32000)
    ['rock']
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.signal import lfilter

from workbench.toy import WEIGHTS_DIR, synth_module, synth_version
from workbench.toy.synth import GENRES, SAMPLE_RATE_HZ, synth_clip

# teaching model v1's judge: `workbench.toy.synth` clips, half of them through `degrade`
JUDGE_V1_PATH = Path(__file__).with_name("judge_fitted_on_degraded_synth_v1.json")
# the synth_v2 judge: `workbench.toy.synth_v2` clips, clean and through the reference codec; the context of
# the codec-robust readers (`workbench.toy.readers`), and the judge of a v2 model folder without its own
JUDGE_V2_PATH = Path(__file__).with_name("judge_fitted_on_synth_v2_reference_codec.json")
# teaching model v1's EnCodec (float16): the v2 judge's augmentation, never the evaluated model's codec
REFERENCE_CODEC_DIR = Path(__file__).with_name("reference_codec")


# a teaching model's own v2 judge, written next to its weights by its training (Recipe.judge_clips_per_genre):
# synth_v2 clips, clean, through the reference codec and through this model's own codec
MODEL_JUDGE_FILE = "judge_fitted_on_own_codec.json"


def v2_judge_path(weights=None) -> Path:
    """The v2 judge of a model folder (default: the shipped weights): the one its training fitted on
    its codec's round trips when there is one, else the reference-codec judge `JUDGE_V2_PATH`."""
    own = Path(weights if weights is not None else WEIGHTS_DIR) / MODEL_JUDGE_FILE
    return own if own.exists() else JUDGE_V2_PATH


def default_judge_path() -> Path:
    """The judge of the shipped teaching model's synthesiser (`workbench.toy.synth_version`)."""
    return v2_judge_path() if synth_version() >= 2 else JUDGE_V1_PATH
_N_FFT = 1024
_HOP = 512
_BANDS_HZ = (0, 150, 400, 1000, 3000, 6000, 16000)
_SMOOTH = np.array([0.25, 0.5, 0.25])


def _resample_linear(audio: np.ndarray, sr: int, target_sr: int) -> np.ndarray:
    if sr == target_sr:
        return audio
    n_out = int(round(len(audio) * target_sr / sr))
    return np.interp(np.arange(n_out) * sr / target_sr, np.arange(len(audio)), audio)


def _autocorr_peak(env: np.ndarray, frame_rate: float, lo_s: float, hi_s: float) -> tuple[float, float]:
    """(peak normalised autocorrelation, its lag in s) of an envelope within [lo_s, hi_s]."""
    env = env - env.mean()
    denom = float(env @ env) + 1e-12
    lo, hi = max(1, int(lo_s * frame_rate)), min(len(env) - 1, int(hi_s * frame_rate))
    if hi <= lo:
        return 0.0, 0.0
    ac = np.array([float(env[:-lag] @ env[lag:]) for lag in range(lo, hi + 1)]) / denom
    i = int(np.argmax(ac))
    return float(ac[i]), (lo + i) / frame_rate


FEATURE_NAMES: tuple[str, ...] = (
    *(f"band_{lo}_{hi}" for lo, hi in zip(_BANDS_HZ[:-1], _BANDS_HZ[1:])),
    "centroid_mean", "centroid_std", "rolloff_mean", "flatness_mean", "flatness_std",
    "rms_cv", "rms_p90_p10",
    "flux_mean", "flux_cv", "onset_rate", "low_flux_cv", "low_onset_rate", "high_flux_cv",
    "ac_onset_peak", "ac_onset_lag", "ac_low_peak", "ac_low_lag", "ac_high_peak",
    "low_high_flux_corr", "tonal_peakiness", "low_band_cv",
)


def audio_features(audio: np.ndarray, sr: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """The judge's feature vector (float64, len(FEATURE_NAMES)) for one mono clip.

    Example:
        >>> audio_features(synth_clip("jazz", 0)).shape == (len(FEATURE_NAMES),)
        True
    """
    x = np.asarray(audio, dtype=np.float64).reshape(-1)
    if x.size < sr // 2:
        raise ValueError(f"clip too short for the judge: {x.size} samples, need at least 0.5 s")
    x = _resample_linear(x, sr, SAMPLE_RATE_HZ)
    sr = SAMPLE_RATE_HZ
    x = x / (np.max(np.abs(x)) + 1e-9)
    n_frames = 1 + (len(x) - _N_FFT) // _HOP
    idx = np.arange(_N_FFT)[None, :] + _HOP * np.arange(n_frames)[:, None]
    frames = x[idx] * np.hanning(_N_FFT)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2 + 1e-12
    freqs = np.fft.rfftfreq(_N_FFT, 1 / sr)
    total = power.sum(1)
    frame_rate = sr / _HOP

    feats = []
    band_energy = []
    for lo, hi in zip(_BANDS_HZ[:-1], _BANDS_HZ[1:]):
        e = power[:, (freqs >= lo) & (freqs < hi)].sum(1)
        band_energy.append(e)
        feats.append(np.log(e.sum() / total.sum() + 1e-9))
    centroid = (power * freqs).sum(1) / total
    cum = np.cumsum(power, axis=1)
    rolloff = freqs[np.argmax(cum >= 0.85 * cum[:, -1:], axis=1)]
    flatness = np.exp(np.log(power).mean(1)) / power.mean(1)
    feats += [np.log(centroid.mean()), centroid.std() / centroid.mean(), np.log(rolloff.mean() + 1),
              np.log(flatness.mean()), flatness.std() / (flatness.mean() + 1e-9)]
    rms = np.sqrt(total / _N_FFT)
    # No crest factor or zero-crossing rate: they follow phase and hiss, not genre, and a codec
    # (which does not keep phase) moves them a lot.
    feats += [rms.std() / (rms.mean() + 1e-9),
              np.log((np.percentile(rms, 90) + 1e-6) / (np.percentile(rms, 10) + 1e-6))]

    def flux(mask: np.ndarray) -> np.ndarray:
        logmag = np.log(power[:, mask] + 1e-6)
        novelty = np.maximum(np.diff(logmag, axis=0), 0).mean(1)
        # Smooth over ~50 ms, as onset detectors do: notes are further apart than that, while
        # frame-level jitter (e.g. a codec's 50 Hz frames) is not.
        return np.convolve(novelty, _SMOOTH, mode="same")

    def onset_rate(env: np.ndarray) -> float:
        thr = env.mean() + env.std()
        local_max = np.lib.stride_tricks.sliding_window_view(np.pad(env, 2, mode="edge"), 5).max(1)
        peaks = (env >= local_max) & (env > thr)  # at most one onset per ~80 ms
        return peaks.sum() / (len(env) / frame_rate)

    flux_all = flux(freqs > 0)
    flux_low = flux(freqs < 200)
    flux_high = flux(freqs > 4000)
    feats += [np.log(flux_all.mean() + 1e-6), flux_all.std() / (flux_all.mean() + 1e-9),
              onset_rate(flux_all), flux_low.std() / (flux_low.mean() + 1e-9), onset_rate(flux_low),
              flux_high.std() / (flux_high.mean() + 1e-9)]
    feats += [*_autocorr_peak(flux_all, frame_rate, 0.25, 1.2),
              *_autocorr_peak(flux_low, frame_rate, 0.25, 1.2),
              _autocorr_peak(flux_high, frame_rate, 0.1, 0.6)[0]]
    feats.append(float(np.corrcoef(flux_low, flux_high)[0, 1]) if flux_low.std() > 0
                 and flux_high.std() > 0 else 0.0)
    mid = power[:, (freqs > 100) & (freqs < 2000)]
    feats.append(np.log((mid.max(1) / mid.mean(1)).mean()))
    low = band_energy[0]
    feats.append(low.std() / (low.mean() + 1e-9))
    return np.nan_to_num(np.asarray(feats, dtype=np.float64), nan=0.0, posinf=0.0, neginf=0.0)


def degrade(audio: np.ndarray, rng: np.random.Generator, sr: int = SAMPLE_RATE_HZ) -> np.ndarray:
    """A random codec-like degradation: phase change, low-pass, noise, smeared transients (augmentation)."""
    x = np.asarray(audio, dtype=np.float64)
    for _ in range(int(rng.integers(1, 4))):  # all-pass sections: new phase, same spectrum
        c = rng.uniform(-0.9, 0.9)
        x = lfilter([c, 1.0], [1.0, c], x)
    a = rng.uniform(0.0, 0.8)
    x = lfilter([1 - a], [1, -a], x)
    if rng.random() < 0.5:
        k = int(rng.integers(2, 24))
        x = np.convolve(x, np.ones(k) / k, mode="same")
    x = x + rng.normal(0, rng.uniform(0.0, 0.03) * (np.std(x) + 1e-9), size=x.shape)
    return x


@dataclass(frozen=True)
class GenreJudge:
    """Standardise features -> multinomial logistic regression (plain numpy)."""

    classes: tuple[str, ...]
    feature_mean: np.ndarray
    feature_scale: np.ndarray
    coef: np.ndarray  # (n_classes, n_features)
    intercept: np.ndarray  # (n_classes,)

    def _features(self, audio, sr: int) -> np.ndarray:
        if isinstance(audio, np.ndarray) and audio.ndim == 1:
            audio = [audio]
        clips = [np.asarray(a, dtype=np.float64) for a in audio]
        for c in clips:
            if c.ndim == 2 and 1 in c.shape:
                continue
            if c.ndim != 1:
                raise ValueError(f"the judge takes mono clips (1-D arrays); got shape {c.shape}: "
                                 "average the channels first, e.g. audio.mean(axis=0)")
        return np.stack([audio_features(c.reshape(-1), sr) for c in clips])

    def predict_proba(self, audio, sr: int = SAMPLE_RATE_HZ) -> np.ndarray:
        """(N, n_classes) probabilities, columns in `self.classes` order."""
        z = (self._features(audio, sr) - self.feature_mean) / self.feature_scale
        logits = z @ self.coef.T + self.intercept
        logits -= logits.max(1, keepdims=True)
        p = np.exp(logits)
        return p / p.sum(1, keepdims=True)

    def predict(self, audio, sr: int = SAMPLE_RATE_HZ) -> list[str]:
        """Genre name per clip. `audio`: one 1-D array or a list/2-D array of clips."""
        return [self.classes[i] for i in self.predict_proba(audio, sr).argmax(1)]

    def to_json(self, path: str | Path) -> None:
        payload = dict(classes=list(self.classes), feature_names=list(FEATURE_NAMES),
                       feature_mean=self.feature_mean.tolist(), feature_scale=self.feature_scale.tolist(),
                       coef=self.coef.tolist(), intercept=self.intercept.tolist())
        Path(path).write_text(json.dumps(payload, indent=1))


def load_judge(path: str | Path | None = None) -> GenreJudge:
    """The shipped model's judge (`default_judge_path`), or one saved with `GenreJudge.to_json`."""
    path = Path(path) if path is not None else default_judge_path()
    if not path.exists():
        raise FileNotFoundError(f"no judge parameters at {path}: fit them with "
                                "`python -m workbench.toy judge`")
    d = json.loads(path.read_text())
    if tuple(d["feature_names"]) != FEATURE_NAMES:
        raise ValueError(f"{path} was fitted on other features: refit with `python -m workbench.toy judge`")
    return GenreJudge(tuple(d["classes"]), np.array(d["feature_mean"]), np.array(d["feature_scale"]),
                      np.array(d["coef"]), np.array(d["intercept"]))


def reference_round_trips(audio: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Clips (N, samples) through the reference codec (`REFERENCE_CODEC_DIR`), float32 (needs torch)."""
    from transformers import EncodecModel

    if not (REFERENCE_CODEC_DIR / "config.json").exists():
        raise FileNotFoundError(f"no reference codec at {REFERENCE_CODEC_DIR}: reinstall the package")
    codec = EncodecModel.from_pretrained(REFERENCE_CODEC_DIR).float().eval()
    return codec_round_trips(codec, audio, batch_size=batch_size)


def codec_round_trips(codec, audio: np.ndarray, batch_size: int = 16) -> np.ndarray:
    """Clips (N, samples) through an EnCodec model `codec` (on its own device), float32 (needs torch)."""
    import torch

    from workbench.toy.training.codec_training import decode_codes, encode_codes

    with torch.no_grad():
        codes = encode_codes(codec, np.asarray(audio, dtype=np.float32), batch_size=batch_size, progress=False)
        return decode_codes(codec, codes, batch_size=batch_size)[:, :audio.shape[1]]


def random_eq(audio: np.ndarray, rng: np.random.Generator, sr: int = SAMPLE_RATE_HZ,
              max_cut_db: float = 8.0) -> np.ndarray:
    """A random smooth equaliser: gains drawn in -max_cut_db..+max_cut_db/2 at 50 Hz-16 kHz nodes,
    interpolated over log frequency (codecs differ in their band balance; the judge must not care)."""
    x = np.asarray(audio, dtype=np.float64)
    spectrum = np.fft.rfft(x)
    freqs = np.fft.rfftfreq(len(x), 1 / sr)
    nodes = np.log2(np.array([50, 150, 400, 1000, 2500, 6000, 16000]))
    gains_db = np.interp(np.log2(np.maximum(freqs, 20)), nodes,
                         rng.uniform(-max_cut_db, max_cut_db / 2, size=len(nodes)))
    return np.fft.irfft(spectrum * 10 ** (gains_db / 20), n=len(x))


def fit_judge(n_per_genre: int = 300, seed: int = 1234, degrade_fraction: float = 0.5,
              C: float | None = None, progress: bool = True, version: int = 1,
              codec=None) -> GenreJudge:
    """Fit a judge on fresh synthetic clips.

    version 1 (`workbench.toy.synth`, the v1 judge): a fraction `degrade_fraction` of the clips
    degraded (`degrade`), C = 1. version 2 (`workbench.toy.synth_v2`, `JUDGE_V2_PATH`): every
    clip clean, through the reference codec (`reference_round_trips`), and that round trip again
    through a `random_eq`; C = 0.01 (teaching model v2's card says how this was chosen:
    `git show c85904c:workbench/toy/MODEL_CARD.md`).

    version 3 (`workbench.toy.synth_v3`): as version 2, on v3 clips (half of them without their bass line).

    codec (versions 2 and 3): an EnCodec model whose round trips (and their `random_eq`) join the
    training clips, C = 1 unless given: the judge a teaching model's training writes next to its
    weights, so it reads that model's audio domain. The labels still come from the synthesiser; the
    judge never sees a decoder, a generation or an activation.

    Example:
        >>> judge = fit_judge(n_per_genre=10, progress=False)
    """
    from sklearn.linear_model import LogisticRegression
    from tqdm.auto import tqdm

    make_clip = synth_clip if version == 1 else synth_module(version).synth_clip
    if codec is not None and version < 2:
        raise ValueError("fit_judge(codec=...) is for version 2 and 3 (synth_v2, synth_v3) judges")
    C = (1.0 if version == 1 or codec is not None else 0.01) if C is None else C
    rng = np.random.default_rng(seed)
    X, y = [], []
    jobs = [(g, i) for i in range(n_per_genre) for g in GENRES]
    clips = []
    for g, i in tqdm(jobs, desc="judge: features", disable=not progress):
        audio = make_clip(g, seed=seed * 7_000_003 + i)
        if version >= 2:
            clips.append(audio)
        elif rng.random() < degrade_fraction:
            audio = degrade(audio, rng)
        X.append(audio_features(audio))
        y.append(GENRES.index(g))
    if version >= 2:
        coded, equalised = [], []
        for audio in tqdm(reference_round_trips(np.stack(clips)), desc="judge: reference codec",
                          disable=not progress):  # the codec loaded once
            coded.append(audio_features(audio))
            equalised.append(audio_features(random_eq(audio, rng)))
        X, y = X + coded + equalised, y * 3  # clean, round trips, equalised round trips (job order)
        if codec is not None:
            for audio in tqdm(codec_round_trips(codec, np.stack(clips)), desc="judge: model codec",
                              disable=not progress):
                X.append(audio_features(audio))
                X.append(audio_features(random_eq(audio, rng)))
            y = y + [GENRES.index(g) for g, _ in jobs for _ in range(2)]  # each clip: round trip, eq
    X = np.stack(X)
    mean, scale = X.mean(0), X.std(0) + 1e-9
    clf = LogisticRegression(C=C, max_iter=5000).fit((X - mean) / scale, np.array(y))
    return GenreJudge(GENRES, mean, scale, clf.coef_.astype(np.float64), clf.intercept_.astype(np.float64))
