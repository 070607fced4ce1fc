"""Is a steered clip still music, or a drone? Code diversity, repeats, the frame-rate comb, level.

A push that is strong enough makes any direction "work": the decoder falls into a few codes it
repeats, the codec turns a repeated code into a buzz at its frame rate, and a reader trained to hear
classes then hears *something* in every drone. So every steering verdict carries these per-clip
measures next to its twin's (same prompt and seed, unsteered):

- `distinct_codes`: distinct codes per codebook (mean over codebooks);
- `repeat_rate`: share of frames whose code equals the previous frame's (mean over codebooks);
- `comb_share`: power of the waveform that is periodic at the codec's frame period, over the clip's
  power (`workbench.frame_comb.comb_share`, the one measure of it). Clean synthesised music reads
  0.01-0.10; teaching model v2's generations 0.67-0.98 (its codec decodes each code to an almost fixed
  frame-long waveform, see the model card);
- `peak`, `rms`: the level, so silence and clipping show.

And per set of clips, `cross_clip_similarity`: the mean pairwise cosine between clips of different
prompts or seeds of their mean log-mel band energies, centred on the twins' mean (collapsed clips of
different prompts move to one place and read near 1; clips as varied as the twins near 0).

A steered clip is **collapsed** (`is_collapsed`) when its distinct codes fall below
`COLLAPSE_DISTINCT_RATIO` (half) of its twin's, or its repeat rate reaches `COLLAPSE_REPEAT_RATIO`
(twice) its twin's. Why these: an unsteered teaching-model clip uses about 87 codes per codebook and
repeats 15% of frames; the drones an independent check heard used 9-33 codes and repeated 34-51%:
both ratios separate them with room on either side, and twins of one prompt differ by far less
(seed to seed, distinct codes vary by about 10%). A repeat rate of zero in the twin is floored at
`MIN_TWIN_REPEAT` so one repeat does not count as "doubled". Clips without a twin get no flag.

**Level.** Codes are not gain-invariant: the same clean music 12 dB quieter uses about a third of the
distinct codes and three times the repeats through the teaching codec, so the plain rule calls quiet
music a drone. A `LevelCurve` measures that on the model's own codec (`measure_level_curve`: clips
encoded at lower gains against themselves at 0 dB, median ratios), and `is_collapsed` given the clip's
level change against its twin and the curve scales the twin's figures by what the level alone does
before applying the ratios: quiet music is not collapsed, a drone at any level still is. Clips louder
than their twin are judged by the plain rule, and clips quieter than the curve's quietest gain by the
quietest gain's figures (both err toward "collapsed"). A quieter clip can still move a reader by its
level alone: `workbench.analysis.evaluation.verdicts` measures that too (``level_only_effect``).

A steered clip **buzzes** (`is_buzzing`) when its comb share reaches `BUZZ_COMB_SHARE` (0.15: clean
synthesised music reads 0.01-0.10, and teaching model v3's bar for its generations is 0.15) and
`BUZZ_TWIN_RATIO` (twice) its twin's. Its codes need not collapse for that: a push toward "no bass" on
a codec that fills an empty bass band with its frame-rate buzz keeps 86 distinct codes per codebook and
buzzes at a median comb share of 0.18-0.26 (a trial teaching model, session 25, its codec trained on
clips with and without their bass line, at two evaluation seeds). Twice the twin's share is the floor,
so a push is not blamed for the buzz its twin already had.

    >>> import numpy as np
    >>> rng = np.random.default_rng(0)
    >>> twin = rng.integers(0, 256, size=(4, 200))
    >>> drone = np.zeros((4, 200), np.int64)
    >>> is_collapsed(code_stats(drone), code_stats(twin)), is_collapsed(code_stats(twin), code_stats(twin))
    (True, False)
    >>> curve = LevelCurve(gains_db=(0.0, -12.0), distinct_ratio=(1.0, 0.34), repeat_ratio=(1.0, 3.1), n_clips=20)
    >>> quiet = dict(distinct_codes=27.0, repeat_rate=0.4)  # the music 12 dB down, against its 0 dB copy
    >>> loud = dict(distinct_codes=80.0, repeat_rate=0.13)
    >>> is_collapsed(quiet, loud), is_collapsed(quiet, loud, level_change_db=-12.0, curve=curve)
    (True, False)
    >>> is_collapsed(dict(distinct_codes=8.0, repeat_rate=0.7), loud, level_change_db=-12.0, curve=curve)
    True
    >>> buzz = dict(comb_share=0.25)  # a quarter of the power at the frame rate
    >>> is_buzzing(buzz, dict(comb_share=0.03)), is_buzzing(buzz, dict(comb_share=0.2))  # the twin buzzed already
    (True, False)
"""
from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from workbench.errors import BadInputError
from workbench.frame_comb import comb_share

__all__ = ["COLLAPSE_DISTINCT_RATIO", "COLLAPSE_REPEAT_RATIO", "LEVEL_CURVE_GAINS_DB", "LevelCurve", "MIN_TWIN_REPEAT",
           "BUZZ_COMB_SHARE", "BUZZ_TWIN_RATIO", "clip_quality", "code_stats", "cross_clip_similarity",
           "is_buzzing", "is_collapsed", "level_change_db", "logmel_profile", "measure_level_curve"]

COLLAPSE_DISTINCT_RATIO = 0.5  # collapsed: fewer than half the twin's distinct codes per codebook ...
COLLAPSE_REPEAT_RATIO = 2.0    # ... or at least twice the twin's frame-to-frame repeat rate
MIN_TWIN_REPEAT = 0.05         # a twin that (almost) never repeats counts as repeating 5% of frames
BUZZ_COMB_SHARE = 0.15         # buzzes: at least this share of the clip's power at the frame rate ...
BUZZ_TWIN_RATIO = 2.0          # ... and at least twice its twin's
LEVEL_CURVE_GAINS_DB = (0.0, -3.0, -6.0, -9.0, -12.0, -15.0, -20.0, -30.0)  # where `measure_level_curve` encodes


def _codes(codes) -> np.ndarray:
    a = np.asarray(codes)
    if a.ndim != 2 or a.shape[1] < 2:
        raise BadInputError(f"codes must be (n_codebooks, frames) with at least 2 frames, got shape {a.shape}: "
                            f"pass clip.codes of a generated clip")
    return a


def code_stats(codes) -> dict:
    """{"distinct_codes", "repeat_rate"} of one clip's codes (n_codebooks, frames), means over codebooks."""
    a = _codes(codes)
    distinct = float(np.mean([len(np.unique(row)) for row in a]))
    repeat = float(np.mean(a[:, 1:] == a[:, :-1]))
    return dict(distinct_codes=distinct, repeat_rate=repeat)


@dataclass(frozen=True)
class LevelCurve:
    """What the level alone does to a codec's code statistics: at each gain (dB, 0 first, then lower),
    the median over clips of a clip's distinct codes and repeat rate there over its own at 0 dB."""

    gains_db: tuple
    distinct_ratio: tuple
    repeat_ratio: tuple
    n_clips: int

    def __post_init__(self):
        g = [float(x) for x in self.gains_db]
        if len(g) < 2 or len(self.distinct_ratio) != len(g) or len(self.repeat_ratio) != len(g):
            raise BadInputError(f"a LevelCurve needs two or more gains with one distinct and one repeat ratio each, "
                                f"got {len(g)} gains, {len(self.distinct_ratio)} and {len(self.repeat_ratio)} ratios")
        if g[0] != 0.0 or any(b >= a for a, b in zip(g, g[1:])):
            raise BadInputError(f"gains_db must start at 0 and fall, got {self.gains_db!r}")

    def expected(self, level_change_db: float | None) -> tuple[float, float]:
        """(distinct factor <= 1, repeat factor >= 1) the level alone predicts for a clip `level_change_db`
        against its twin; (1, 1) for a clip as loud or louder, or an unknown level."""
        if level_change_db is None or not math.isfinite(level_change_db) or level_change_db >= 0:
            return 1.0, 1.0
        gains = np.asarray(self.gains_db, np.float64)[::-1]  # rising, for np.interp
        g = max(float(level_change_db), float(gains[0]))
        distinct = float(np.interp(g, gains, np.asarray(self.distinct_ratio, np.float64)[::-1]))
        repeat = float(np.interp(g, gains, np.asarray(self.repeat_ratio, np.float64)[::-1]))
        return min(distinct, 1.0), max(repeat, 1.0)

    def to_dict(self) -> dict:
        return dict(gains_db=list(self.gains_db), distinct_ratio=list(self.distinct_ratio),
                    repeat_ratio=list(self.repeat_ratio), n_clips=self.n_clips)


def measure_level_curve(encode: Callable[[list], np.ndarray], audios: Sequence,
                        gains_db: Sequence[float] = LEVEL_CURVE_GAINS_DB) -> LevelCurve:
    """Encode each clip at every gain and take, per gain, the median ratio of its code statistics to its own at
    0 dB. encode: equal-length mono clips -> codes (n_clips, n_codebooks, frames), e.g. the model's codec."""
    audios = [np.asarray(a, np.float64) for a in audios]
    if not audios:
        raise BadInputError("measure_level_curve needs at least one clip: pass the unsteered twins' audio")
    gains = tuple(float(g) for g in gains_db)
    stats = {}
    for g in gains:
        codes = np.asarray(encode([(a * 10 ** (g / 20)).astype(np.float32) for a in audios]))
        stats[g] = [code_stats(c) for c in codes]
    base = stats[gains[0]]
    distinct = [float(np.median([s["distinct_codes"] / max(b["distinct_codes"], 1.0) for s, b in zip(stats[g], base)]))
                for g in gains]
    repeat = [float(np.median([max(s["repeat_rate"], MIN_TWIN_REPEAT) / max(b["repeat_rate"], MIN_TWIN_REPEAT)
                               for s, b in zip(stats[g], base)])) for g in gains]
    return LevelCurve(gains, tuple(distinct), tuple(repeat), len(audios))


def level_change_db(rms: float, twin_rms: float) -> float | None:
    """A clip's level against its twin's in dB (None when either is silent)."""
    if not (rms > 0 and twin_rms > 0):
        return None
    return float(20 * np.log10(rms / twin_rms))


def is_collapsed(stats: dict, twin_stats: dict | None, level_change_db: float | None = None,
                 curve: LevelCurve | None = None) -> bool | None:
    """True when a clip's codes collapsed against its twin's (see the module doc); None without a twin.

    With the clip's level change against its twin (dB) and the codec's `LevelCurve`, the twin's figures are
    first scaled by what that level change alone does to them."""
    if twin_stats is None:
        return None
    distinct_factor, repeat_factor = (1.0, 1.0) if curve is None else curve.expected(level_change_db)
    fewer = stats["distinct_codes"] < COLLAPSE_DISTINCT_RATIO * distinct_factor * twin_stats["distinct_codes"]
    repeats = stats["repeat_rate"] >= (COLLAPSE_REPEAT_RATIO * repeat_factor
                                       * max(twin_stats["repeat_rate"], MIN_TWIN_REPEAT))
    return bool(fewer or repeats)


def is_buzzing(quality: dict, twin_quality: dict | None) -> bool | None:
    """True when a clip's comb share reaches `BUZZ_COMB_SHARE` and `BUZZ_TWIN_RATIO` x its twin's (see the module
    doc); None without a twin or a comb share."""
    if twin_quality is None or quality.get("comb_share") is None or twin_quality.get("comb_share") is None:
        return None
    share = quality["comb_share"]
    return bool(share >= BUZZ_COMB_SHARE and share >= BUZZ_TWIN_RATIO * twin_quality["comb_share"])


def _mono(audio) -> np.ndarray:
    x = np.asarray(audio, dtype=np.float64)
    if x.ndim == 2:
        x = x.mean(axis=0)
    if x.ndim != 1:
        raise BadInputError(f"audio must be (samples,) or (channels, samples), got shape {x.shape}")
    return x


def clip_quality(audio, sample_rate_hz: int, frame_period: int, codes=None) -> dict:
    """Per-clip quality: comb share, peak, RMS, and (with codes) distinct codes and repeat rate."""
    x = _mono(audio)
    out = dict(comb_share=comb_share(x, sample_rate_hz, frame_period), peak=float(np.abs(x).max(initial=0.0)),
               rms=float(np.sqrt(np.mean(x ** 2))) if x.size else 0.0)
    if codes is not None:
        out.update(code_stats(codes))
    return out


@functools.lru_cache(maxsize=4)
def _mel_basis(sample_rate_hz: int, n_fft: int, n_mels: int) -> np.ndarray:
    import librosa

    return librosa.filters.mel(sr=sample_rate_hz, n_fft=n_fft, n_mels=n_mels)


def logmel_profile(audio, sample_rate_hz: int, n_fft: int = 2048, n_mels: int = 40) -> np.ndarray:
    """Mean log-mel band energies of a clip (dB, `n_mels` bands): the descriptor of `cross_clip_similarity`."""
    from scipy.signal import stft

    x = _mono(audio)
    _, _, spec = stft(x, nperseg=n_fft, noverlap=n_fft * 3 // 4)
    power = np.abs(spec) ** 2
    mel = _mel_basis(int(sample_rate_hz), n_fft, n_mels) @ power
    return 10.0 * np.log10(mel.mean(axis=1) + 1e-10)


def cross_clip_similarity(profiles, prompts, seeds, center=None) -> float:
    """Mean pairwise cosine between clips that differ in prompt or seed, of their descriptors.

    profiles: (n_clips, n_features), e.g. `logmel_profile` of each clip. center: a descriptor to
    subtract first, e.g. the mean profile of the unsteered twins, so that the spectral shape all music
    shares does not count as sameness: then 1.0 means every clip moved to the same place (a drone shared
    by every prompt), about 0 clips as varied as the twins. NaN with fewer than two such pairs.
    """
    P = np.asarray(profiles, dtype=np.float64)
    if P.ndim != 2 or len(P) != len(prompts) or len(P) != len(seeds):
        raise BadInputError(f"profiles must be (n_clips, n_features) with one prompt and seed per clip: got "
                            f"{P.shape}, {len(prompts)} prompts, {len(seeds)} seeds")
    if center is not None:
        P = P - np.asarray(center, dtype=np.float64)[None, :]
    norms = np.linalg.norm(P, axis=1)
    norms[norms == 0] = 1.0
    Z = P / norms[:, None]
    cos = Z @ Z.T
    keys = list(zip(prompts, seeds))
    values = [cos[i, j] for i in range(len(P)) for j in range(i + 1, len(P)) if keys[i] != keys[j]]
    return float(np.mean(values)) if values else float("nan")
