"""What an evaluation measures on a steered clip and its unsteered twin (same prompt and seed).

- preservation (distance to the twin): `code_edit_rate` (share of EnCodec codes that differ),
  `mel_distance` (multi-resolution log-mel L1), and the Euclidean distance between `codec_embedding`s;
- quality: `frechet_distance` between two sets of `codec_embedding`s (an FAD on the model's own codec);
- descriptors: `descriptors` (tempo, spectral centroid, loudness, key), read with librosa.

`codec_embedding` is the model's own EnCodec encoder output *before quantisation* (``audio_encoder.
encoder``: (latent, frames), 64 x 50 per second on the teaching model), averaged over time: one vector per
clip. With fewer clips than latent dimensions the covariances are rank-deficient, so a Fréchet distance
is only comparable between sets of the same size (the report compares 16 against 16).

    >>> import numpy as np
    >>> a = np.zeros((4, 10), np.int64); b = a.copy(); b[0, :5] = 1
    >>> code_edit_rate(a, b)
    0.125
    >>> rng = np.random.default_rng(0); x = rng.normal(size=(200, 3))
    >>> frechet_distance(x, x) < 1e-9, frechet_distance(x, x + 2.0) > 11.9
    (True, True)
    >>> tone = np.sin(np.arange(16000) * 2 * np.pi * 440 / 16000).astype(np.float32)
    >>> mel_distance(tone, tone, 16000), round(descriptors(tone, 16000)["centroid_hz"] / 440, 1)
    (0.0, 1.0)
"""
from __future__ import annotations

import functools

import numpy as np

from workbench.errors import BadInputError

__all__ = ["code_edit_rate", "mel_distance", "codec_embedding", "embedding_distance", "frechet_distance",
           "descriptors", "KEY_NAMES", "MEL_RESOLUTIONS"]

MEL_RESOLUTIONS = (512, 1024, 2048)  # FFT sizes; hop = n_fft / 4, 64 mel bands each
_N_MELS = 64
_EPS = 1e-5
KEY_NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")
# Krumhansl-Kessler key profiles (major, minor), tonic first
_KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
_KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])


def code_edit_rate(codes, twin_codes) -> float:
    """Share of (codebook, frame) positions whose code differs from the twin's (over the shorter clip)."""
    a, b = np.asarray(codes), np.asarray(twin_codes)
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] != b.shape[0]:
        raise BadInputError(f"codes must be (n_codebooks, frames) with the same codebooks: got {a.shape} and "
                            f"{b.shape}; pass clip.codes of two clips from the same model")
    frames = min(a.shape[1], b.shape[1])
    if frames == 0:
        raise BadInputError("codes have no frames: generate clips of at least a few frames")
    return float(np.mean(a[:, :frames] != b[:, :frames]))


@functools.lru_cache(maxsize=16)
def _mel_basis(sample_rate_hz: int, n_fft: int) -> np.ndarray:
    import librosa
    return librosa.filters.mel(sr=sample_rate_hz, n_fft=n_fft, n_mels=_N_MELS).astype(np.float32)


def _log_mel(samples: np.ndarray, sample_rate_hz: int, n_fft: int) -> np.ndarray:
    hop = n_fft // 4
    if len(samples) < n_fft:
        samples = np.pad(samples, (0, n_fft - len(samples)))
    frames = np.lib.stride_tricks.sliding_window_view(samples, n_fft)[::hop] * np.hanning(n_fft).astype(np.float32)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    return np.log(power @ _mel_basis(sample_rate_hz, n_fft).T + _EPS)


def _mono(samples) -> np.ndarray:
    x = np.asarray(getattr(samples, "mono", samples), dtype=np.float32)
    if x.ndim != 1:
        raise BadInputError(f"audio must be 1-D mono samples, got shape {x.shape}: pass clip.mono")
    if not np.isfinite(x).all():
        raise BadInputError("audio contains NaN or inf: check the clip that made it")
    return x


def mel_distance(samples, twin_samples, sample_rate_hz: int) -> float:
    """Mean |log-mel difference| over FFT sizes 512/1024/2048 (64 bands each), over the shorter clip."""
    a, b = _mono(samples), _mono(twin_samples)
    n = min(len(a), len(b))
    if n == 0:
        raise BadInputError("a clip has no samples")
    return float(np.mean([np.abs(_log_mel(a[:n], sample_rate_hz, f) - _log_mel(b[:n], sample_rate_hz, f)).mean()
                          for f in MEL_RESOLUTIONS]))


def codec_embedding(handle, waves, batch_size: int = 16) -> np.ndarray:
    """(N, latent) time-averaged pre-quantisation EnCodec encoder output of equal-rate mono waves."""
    import torch
    waves = [_mono(w) for w in waves]
    out = []
    encoder = handle.model.audio_encoder.encoder
    with torch.no_grad():
        for i in range(0, len(waves), batch_size):
            chunk = waves[i:i + batch_size]
            n = min(len(w) for w in chunk)
            x = torch.as_tensor(np.stack([w[:n] for w in chunk]), dtype=handle.dtype, device=handle.device)
            latents = encoder(x[:, None, :].expand(-1, handle.audio_channels, -1))  # (B, latent, frames)
            out.append(latents.float().mean(-1).cpu().numpy())
    return np.concatenate(out).astype(np.float64)


def embedding_distance(embedding, twin_embedding) -> float:
    """Euclidean distance between two clip embeddings."""
    return float(np.linalg.norm(np.asarray(embedding, np.float64) - np.asarray(twin_embedding, np.float64)))


def _psd_sqrt(cov: np.ndarray) -> np.ndarray:
    values, vectors = np.linalg.eigh((cov + cov.T) / 2)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance(a, b) -> float:
    """|mu_a - mu_b|^2 + Tr(S_a + S_b - 2 (S_a^1/2 S_b S_a^1/2)^1/2) between two sets of embeddings (N, D).

    The matrix square root goes through symmetric eigendecompositions, so rank-deficient covariances
    (fewer clips than dimensions) stay real and non-negative."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1]:
        raise BadInputError(f"embeddings must be (N, D) with the same D: got {a.shape} and {b.shape}")
    if len(a) < 2 or len(b) < 2:
        raise BadInputError(f"a Fréchet distance needs at least 2 clips a set (got {len(a)} and {len(b)})")
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root_a = _psd_sqrt(cov_a)
    cross = np.clip(np.linalg.eigvalsh(root_a @ cov_b @ root_a), 0, None)
    value = float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * np.sqrt(cross).sum())
    return max(value, 0.0)


def _key(samples: np.ndarray, sample_rate_hz: int) -> tuple[str, float]:
    """(key name, correlation) from the chroma correlated with Krumhansl-Kessler profiles in 24 keys."""
    import warnings

    import librosa
    with warnings.catch_warnings():  # near-silent clips: librosa warns it cannot estimate the tuning
        warnings.simplefilter("ignore", UserWarning)
        chroma = librosa.feature.chroma_stft(y=samples, sr=sample_rate_hz, n_fft=4096, hop_length=2048,
                                            tuning=0.0).mean(1)
    if not np.isfinite(chroma).all() or chroma.std() < 1e-9:
        return "none", 0.0
    best = ("none", -2.0)
    for mode, profile in (("major", _KK_MAJOR), ("minor", _KK_MINOR)):
        for tonic in range(12):
            r = float(np.corrcoef(chroma, np.roll(profile, tonic))[0, 1])
            if r > best[1]:
                best = (f"{KEY_NAMES[tonic]} {mode}", r)
    return best


def descriptors(samples, sample_rate_hz: int) -> dict:
    """tempo_bpm (librosa onset autocorrelation), centroid_hz (mean spectral centroid), loudness_db (RMS
    in dBFS, not LUFS) and key (Krumhansl-Kessler profile of the mean chroma, e.g. "A minor")."""
    import librosa
    x = _mono(samples)
    if len(x) < sample_rate_hz // 4:
        raise BadInputError(f"clip is {len(x) / sample_rate_hz:.2f} s: descriptors need at least 0.25 s")
    tempo = float(np.atleast_1d(librosa.feature.tempo(y=x, sr=sample_rate_hz, hop_length=512))[0])
    centroid = float(librosa.feature.spectral_centroid(y=x, sr=sample_rate_hz, n_fft=2048, hop_length=512).mean())
    rms = float(np.sqrt(np.mean(x.astype(np.float64) ** 2)))
    key, _ = _key(x, sample_rate_hz)
    return dict(tempo_bpm=tempo, centroid_hz=centroid, loudness_db=20 * np.log10(max(rms, 1e-10)), key=key)
