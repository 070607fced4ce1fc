"""Labelled inputs for collection: prompt sets, folders of audio, and the teaching model's synthesiser.

Every set has `rows` (one JSON-able dict per item, each with a unique "id" and a "label"),
`mode` ("text": generate from the prompt; "audio": teacher-force the item's audio) and, for audio
sets, `audio(i)` -> mono float32 at `sample_rate_hz`.

    >>> ps = PromptSet(["jazz", "rock"], templates=["{label} music", "a {label} song"], seeds=[0, 1])
    >>> len(ps), ps.rows[0]["prompt"], ps.rows[0]["label"]
    (8, 'jazz music', 'jazz')
    >>> import numpy as np
    >>> resample(np.ones(44100, np.float32), 44100, 32000).shape
    (32000,)
"""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from workbench import validation
from workbench.errors import BadInputError, EmptyInputError, WrongTypeError
from workbench.toy import SYNTH_VERSIONS, synth_version
from workbench.toy import synth_module as toy_synth_module

__all__ = ["PromptSet", "AudioSet", "SynthSet", "resample", "AUDIO_EXTENSIONS"]

AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif")


def resample(audio: np.ndarray, from_hz: int, to_hz: int, zero_crossings: int = 16) -> np.ndarray:
    """Band-limited resampling (Hann-windowed sinc) along the last axis; numpy only.

    Anti-aliased when downsampling (cutoff at 0.97 x the lower Nyquist).
    """
    audio = np.asarray(audio, dtype=np.float32)
    if int(from_hz) == int(to_hz):
        return audio
    if audio.ndim > 1:
        return np.stack([resample(ch, from_hz, to_hz, zero_crossings) for ch in audio])
    ratio = to_hz / from_hz
    n_out = int(round(len(audio) * ratio))
    cutoff = min(1.0, ratio) * 0.97
    half = int(np.ceil(zero_crossings / cutoff))
    padded = np.pad(audio.astype(np.float64), (half, half + 1))
    taps = np.arange(-half + 1, half + 1)
    out = np.empty(n_out, dtype=np.float32)
    for start in range(0, n_out, 4096):
        pos = np.arange(start, min(start + 4096, n_out)) / ratio  # output times in input samples
        idx = np.floor(pos).astype(np.int64)[:, None] + taps[None]
        x = pos[:, None] - idx
        kernel = cutoff * np.sinc(cutoff * x) * 0.5 * (1 + np.cos(np.pi * np.clip(x / half, -1, 1)))
        out[start:start + len(pos)] = (kernel * padded[np.clip(idx, -half, len(audio) + half) + half]).sum(1)
    return out


class _Rows:
    mode = "text"
    rows: list[dict]

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i) -> dict:
        return self.rows[i]

    def labels(self) -> list:
        return [r["label"] for r in self.rows]


class PromptSet(_Rows):
    """Labels x wording templates x seeds -> rows of (prompt, label, seed).

    label_text maps a label to the words put into "{label}" (default: the label itself).
    """

    mode = "text"

    def __init__(self, labels, templates=("{label}",), seeds=(0,), label_text: dict | None = None):
        labels = [labels] if isinstance(labels, str) else list(labels)
        templates = [templates] if isinstance(templates, str) else list(templates)
        seeds = validation.seeds(seeds)
        if not labels or not templates or not seeds:
            raise EmptyInputError("PromptSet needs at least one label, template and seed")
        templates = validation.str_list(templates, "templates", example="['a {label} song']")
        if label_text is not None and not isinstance(label_text, dict):
            raise WrongTypeError(f"label_text is a {type(label_text).__name__}: pass a dict from label to the words "
                                 "put into '{label}', e.g. {'hiphop': 'hip hop'}")
        for t in templates:
            if "{label}" not in t:
                raise BadInputError(f"template {t!r} has no '{{label}}' slot: e.g. 'a {{label}} song'")
        label_text = label_text or {}
        self.rows = [dict(id=f"{label}|t{ti}|s{seed}", label=label, template=ti, seed=seed,
                          prompt=template.format(label=label_text.get(label, label)))
                     for label in labels for ti, template in enumerate(templates) for seed in seeds]


class AudioSet(_Rows):
    """A folder of audio files; labels from the first subfolder name or from a CSV (path,label).

    Files are read with soundfile, mixed to mono and resampled to `sample_rate_hz` on access.
    duration_s: crop (or zero-pad) every clip to this length, so clips batch together.
    """

    mode = "audio"

    def __init__(self, folder, sample_rate_hz: int = 32000, labels_csv=None, duration_s: float | None = None,
                 extensions=AUDIO_EXTENSIONS):
        self.folder = Path(folder)
        self.sample_rate_hz = validation.positive_int(sample_rate_hz, "sample_rate_hz")
        self.duration_s = None if duration_s is None else validation.finite_float(
            duration_s, "duration_s", low=0.0, low_inclusive=False, hint="or None to keep each file's length")
        extensions = (extensions,) if isinstance(extensions, str) else tuple(extensions)
        if not self.folder.is_dir():
            raise BadInputError(f"{self.folder} is not a folder of audio files")
        if labels_csv is not None:
            with open(labels_csv, newline="") as f:
                table = list(csv.DictReader(f))
            if not table or not {"path", "label"} <= set(table[0]):
                raise BadInputError(f"{labels_csv} needs a header with columns 'path' and 'label'")
            pairs = [(r["path"], r["label"]) for r in table]
            missing = [p for p, _ in pairs if not (self.folder / p).is_file()]
            if missing:
                raise BadInputError(f"{len(missing)} files named in {labels_csv} are not under {self.folder}, "
                                    f"e.g. {missing[0]!r}: paths are relative to the folder")
        else:
            files = sorted(p for p in self.folder.rglob("*") if p.suffix.lower() in extensions)
            pairs = [(str(p.relative_to(self.folder)), p.relative_to(self.folder).parts[0]
                      if len(p.relative_to(self.folder).parts) > 1 else None) for p in files]
            unlabelled = [p for p, label in pairs if label is None]
            if unlabelled:
                raise BadInputError(f"{unlabelled[0]!r} sits directly in {self.folder}: put files in one "
                                    "subfolder per label (jazz/a.wav) or pass labels_csv=")
        if not pairs:
            raise EmptyInputError(f"no audio files ({', '.join(extensions)}) under {self.folder}")
        self.rows = [dict(id=path, label=label, path=path) for path, label in pairs]

    def audio(self, i: int) -> np.ndarray:
        import soundfile as sf
        data, sr = sf.read(str(self.folder / self.rows[i]["path"]), dtype="float32", always_2d=True)
        wave = resample(data.mean(axis=1), sr, self.sample_rate_hz)
        if self.duration_s is not None:
            n = int(round(self.duration_s * self.sample_rate_hz))
            wave = np.pad(wave[:n], (0, max(0, n - len(wave))))
        return wave


class SynthSet(_Rows):
    """Synthetic clips from the teaching model's synthesiser.

    version None (default): the synthesiser the shipped teaching model was trained on
    (`workbench.toy.synth_version`). version 1: `workbench.toy.synth` (teaching model v1); rows carry
    ``label`` (the genre) and ``seed``. version 2: `workbench.toy.synth_v2` (teaching model v2),
    whose clips vary in seven independent factors; every row then carries each factor as a label
    column: ``genre`` (= ``label``), ``tempo`` (slow/medium/fast) with ``tempo_bpm``, ``mode``,
    ``lead``, ``contour``, ``dynamics``, ``brightness`` and ``tonic``, so a store collected from it can
    be swept on any of them (``sweep(store, label="dynamics")``). version 3: `workbench.toy.synth_v3`, version 2's
    clips and factors with ``bass`` (present / absent) beside them.

        >>> sorted(SynthSet(["jazz"], n_per_genre=2, version=1).rows[0])
        ['id', 'label', 'seed']
        >>> sorted(SynthSet(["jazz"], n_per_genre=2, version=2).rows[0])  # doctest: +NORMALIZE_WHITESPACE
        ['brightness', 'contour', 'dynamics', 'genre', 'id', 'label', 'lead', 'mode', 'seed', 'tempo',
         'tempo_bpm', 'tonic']
    """

    mode = "audio"

    def __init__(self, genres=None, n_per_genre: int = 10, duration_s: float = 4.0,
                 sample_rate_hz: int = 32000, seed: int = 0, version: int | None = None):
        if version is None:
            version = synth_version()
        if version not in SYNTH_VERSIONS or isinstance(version, bool):
            raise BadInputError(f"version={version!r}: use 1 (teaching model v1's synthesiser), 2 (seven "
                                "factors), 3 (v2's and bass) or None (the shipped model's)")
        synth_module = toy_synth_module(version)
        self._synth, self.version = synth_module, version
        if genres is None:
            genres = list(synth_module.GENRES)
        genres = [genres] if isinstance(genres, str) else list(genres)
        if not genres:
            raise EmptyInputError(f"genres is empty: pass some of {synth_module.GENRES}, or None for all")
        n_per_genre = validation.positive_int(n_per_genre, "n_per_genre")
        duration_s = validation.finite_float(duration_s, "duration_s", low=0.0, low_inclusive=False)
        sample_rate_hz = validation.positive_int(sample_rate_hz, "sample_rate_hz")
        seed = validation.integer(seed, "seed")
        unknown = set(genres) - set(synth_module.GENRES)
        if unknown:
            raise BadInputError(f"unknown genres {sorted(unknown)}: the synthesiser makes {synth_module.GENRES}")
        self.duration_s, self.sample_rate_hz = duration_s, int(sample_rate_hz)
        prefix = "synth" if version == 1 else f"synth-v{version}"
        self.rows = [dict(id=f"{prefix}/{g}/{seed + k}", label=g, seed=seed + k,
                          **(synth_module.clip_factors(g, seed + k) if version >= 2 else {}))
                     for g in genres for k in range(n_per_genre)]

    def audio(self, i: int) -> np.ndarray:
        r = self.rows[i]
        return np.asarray(self._synth.synth_clip(r["label"], r["seed"], self.duration_s, self.sample_rate_hz),
                          dtype=np.float32)
