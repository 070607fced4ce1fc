"""Label every SAE feature: how often it fires, where (top clips and time spans), and what it goes with.

For each feature: firing frequency over all frames, an activation histogram, the clips where it peaks
highest (with the span around the peak where it stays above half the peak), and its association with
every label column of the store, measured on clip-level mean activations: AUROC of the feature against
each value of a categorical column (genre, mode, instrument...) and Pearson correlation with each
numeric one (tempo...). The best match (highest AUROC, or |r| for a numeric column) is the feature's
automatic label, with its score. `FeatureTable` holds one row per feature, searchable by label.

    >>> import numpy as np
    >>> t = FeatureTable([dict(feature=0, frequency=0.2, label="label=rock", label_score=0.97),
    ...                   dict(feature=1, frequency=0.0, label=None, label_score=0.5)])
    >>> [r["feature"] for r in t.search("rock")], len(t.filter(min_frequency=0.01))
    ([0], 1)
    >>> auroc(np.array([[0.1], [0.9], [0.8], [0.2]]), np.array([False, True, True, False])).tolist()
    [1.0]
"""
from __future__ import annotations

import dataclasses
import html
import numbers

import numpy as np
import torch

from workbench import validation
from workbench.analysis.directions import Direction
from workbench.analysis.features.sae import check_matches, require_sae
from workbench.data.frames import FrameStream
from workbench.errors import BadInputError, NotFiniteError, OutOfRangeError, WrongTypeError

__all__ = ["FeatureTable", "FeatureLabels", "label_features", "auroc", "label_columns"]

NOT_LABELS = {"id", "row", "path", "prompt", "seed", "template"}
MAX_BINS = 10_000


def _rows_of_dicts(value, name: str) -> list:
    if isinstance(value, (str, bytes, dict)) or value is None or not hasattr(value, "__iter__"):
        raise WrongTypeError(f"{name} is a {type(value).__name__}: pass a list of dicts, one per row")
    rows = list(value)
    for i, row in enumerate(rows):
        if not isinstance(row, dict):
            raise WrongTypeError(f"{name}[{i}] is a {type(row).__name__}: pass a list of dicts, one per row")
    return rows


def auroc(scores: np.ndarray, positive: np.ndarray) -> np.ndarray:
    """AUROC of each column of scores (n, F) for a boolean target (n,) (Mann-Whitney U, ties averaged)."""
    from scipy.stats import rankdata
    scores = validation.float_matrix(scores, "scores")
    if isinstance(positive, (str, bytes)) or np.ndim(positive) != 1 or len(positive) != len(scores):
        raise BadInputError(f"positive must be one bool per row of scores ({len(scores)}), got shape "
                            f"{np.shape(positive)}")
    positive = np.asarray(positive)
    if positive.dtype != bool and not np.isin(positive, (0, 1)).all():
        raise WrongTypeError("positive must hold bools (True for the class), not "
                             f"{positive.dtype} values other than 0 and 1")
    positive = positive.astype(bool)
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if n_pos == 0 or n_neg == 0:
        return np.full(scores.shape[1], np.nan)
    ranks = rankdata(scores, axis=0)
    return (ranks[positive].sum(0) - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _pearson(scores: np.ndarray, values: np.ndarray) -> np.ndarray:
    v = (values - values.mean()) / (values.std() or 1.0)
    s = scores - scores.mean(0)
    sd = s.std(0)
    return np.where(sd > 0, (s * v[:, None]).mean(0) / np.where(sd > 0, sd, 1.0), 0.0)


def label_columns(table: list[dict]) -> tuple[list[str], list[str]]:
    """(categorical, numeric) label columns of store rows: strings with 2+ values (fewer than half the rows
    distinct), numbers with 3+ distinct values; ids, paths, prompts and seeds are not labels. A string
    column that groups the rows exactly as an earlier one does ("label" and "genre") is one column (the
    named one), so its associations are not listed twice.

        >>> label_columns([dict(label="rock", genre="rock", mode="major"), dict(label="jazz", genre="jazz",
        ...                mode="minor"), dict(label="rock", genre="rock", mode="minor")] * 2)
        (['genre', 'mode'], [])
    """
    table = _rows_of_dicts(table, "table")
    categorical, numeric = [], []
    groupings: dict = {}  # how a kept column groups the rows -> its name
    names = list(dict.fromkeys(k for r in table for k in r))
    for name in names:
        if name in NOT_LABELS:
            continue
        values = [r.get(name) for r in table]
        if all(isinstance(v, str) for v in values):
            distinct = len(set(values))
            if 2 <= distinct <= max(2, len(values) // 2):
                first: dict = {}
                grouping = tuple(first.setdefault(v, len(first)) for v in values)
                if grouping in groupings:
                    if groupings[grouping] == "label":  # the named column replaces the generic one
                        categorical[categorical.index("label")] = groupings[grouping] = name
                    continue
                groupings[grouping] = name
                categorical.append(name)
        elif all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
            if len(set(values)) >= 3:
                numeric.append(name)
    return categorical, numeric


class FeatureTable:
    """One dict per feature (feature, frequency, label, label_score, auroc:<col>=<value>..., corr:<col>...).

    Search with `search(text)` (in the label), `filter(...)`, `sort(column)`; `to_pandas()` gives a
    DataFrame when pandas is installed."""

    def __init__(self, rows: list[dict]):
        self.rows = _rows_of_dicts(rows, "rows")

    def __len__(self) -> int:
        return len(self.rows)

    def __iter__(self):
        return iter(self.rows)

    def __getitem__(self, i) -> dict:
        return self.rows[i]

    @property
    def columns(self) -> list[str]:
        return list(dict.fromkeys(k for r in self.rows for k in r))

    @property
    def features(self) -> list[int]:
        return [int(r["feature"]) for r in self.rows]

    def search(self, text: str) -> FeatureTable:
        """Features whose label contains `text` (case-insensitive), best score first."""
        if not isinstance(text, str):
            raise WrongTypeError(f"text={text!r}: pass the text to look for in the labels, e.g. 'rock'")
        text = text.lower()
        hits = [r for r in self.rows if r.get("label") and text in str(r["label"]).lower()]
        return FeatureTable(sorted(hits, key=lambda r: -float(r.get("label_score") or 0)))

    def filter(self, min_frequency: float = 0.0, max_frequency: float = 1.0, min_score: float | None = None,
               label: str | None = None) -> FeatureTable:
        """Features firing on min_frequency..max_frequency of frames, labelled with score >= min_score,
        whose label contains `label`."""
        min_frequency = validation.finite_float(min_frequency, "min_frequency", low=0.0, high=1.0)
        max_frequency = validation.finite_float(max_frequency, "max_frequency", low=0.0, high=1.0)
        if min_score is not None:
            min_score = validation.finite_float(min_score, "min_score")
        if label is not None and not isinstance(label, str):
            raise WrongTypeError(f"label={label!r}: pass text to look for in the labels, or None")
        rows = [r for r in self.rows if min_frequency <= r["frequency"] <= max_frequency
                and (min_score is None or (r.get("label") and r["label_score"] >= min_score))]
        return FeatureTable(rows).search(label) if label else FeatureTable(rows)

    def sort(self, column: str = "label_score", descending: bool = True) -> FeatureTable:
        if not isinstance(column, str):
            raise WrongTypeError(f"column={column!r}: pass a column name, one of {self.columns}")
        descending = validation.flag(descending, "descending")
        if self.rows and column not in self.columns:
            raise BadInputError(f"no column {column!r}: the table has {self.columns}")
        key = lambda r: (r.get(column) is None, r.get(column) if r.get(column) is not None else 0)
        rows = sorted(self.rows, key=key, reverse=descending)
        if descending:  # keep missing values last
            rows = [r for r in rows if r.get(column) is not None] + [r for r in rows if r.get(column) is None]
        return FeatureTable(rows)

    def head(self, n: int = 10) -> FeatureTable:
        return FeatureTable(self.rows[:validation.non_negative_int(n, "n")])

    def to_pandas(self):
        """The table as a pandas DataFrame (needs pandas: pip install pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("to_pandas needs pandas: pip install pandas (or use .rows, a list of dicts)") from None
        return pd.DataFrame(self.rows)

    def _repr_html_(self, max_rows: int = 20) -> str:
        cols = [c for c in ("feature", "frequency", "label", "label_score", "max_activation") if c in self.columns]
        fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else html.escape(str(v))
        body = "".join("<tr>" + "".join(f"<td>{fmt(r.get(c))}</td>" for c in cols) + "</tr>"
                       for r in self.rows[:max_rows])
        more = f"<p>... {len(self) - max_rows} more</p>" if len(self) > max_rows else ""
        return (f"<table><tr>{''.join(f'<th>{c}</th>' for c in cols)}</tr>{body}</table>{more}")

    def __repr__(self) -> str:
        top = ", ".join(f"{r['feature']}: {r.get('label')} ({r.get('label_score', 0):.2f})" for r in self.rows[:4])
        return f"FeatureTable({len(self)} features; {top}{' ...' if len(self) > 4 else ''})"


@dataclasses.dataclass
class FeatureLabels:
    """Everything measured about an SAE's features on one store (see `label_features`)."""

    sae: object
    stream: object
    table: FeatureTable
    clip_mean: np.ndarray   # (clips, d_sae) mean activation over each clip's frames
    clip_max: np.ndarray    # (clips, d_sae)
    clip_peak_step: np.ndarray  # (clips, d_sae) decoder step of the peak
    clip_rows: np.ndarray   # the store rows of those clips
    frequency: np.ndarray   # (d_sae,) fraction of frames on which the feature fires
    histograms: np.ndarray  # (d_sae, bins) counts of non-zero activations
    histogram_max: np.ndarray  # (d_sae,) upper edge of each feature's histogram
    rows_meta: list         # store.table rows of clip_rows
    categorical: list
    numeric: list

    def check_feature(self, feature) -> int:
        """The feature id as an int, refused (OutOfRangeError) outside 0..d_sae - 1."""
        feature = validation.integer(feature, "feature")
        if not 0 <= feature < len(self.frequency):
            raise OutOfRangeError(f"feature {feature} is out of range: this SAE has {len(self.frequency)} features "
                                  f"(0-{len(self.frequency) - 1})")
        return feature

    def histogram(self, feature: int) -> tuple[np.ndarray, np.ndarray]:
        """(bin edges, counts) of the feature's non-zero activations."""
        feature = self.check_feature(feature)
        bins = self.histograms.shape[1]
        return np.linspace(0, self.histogram_max[feature], bins + 1), self.histograms[feature]

    def trace(self, row: int, feature: int) -> tuple[np.ndarray, np.ndarray]:
        """(times_s, activations) of one feature over one store row's frames."""
        feature = self.check_feature(feature)
        row = validation.integer(row, "row")
        with torch.no_grad():
            acts = self.sae.encode(torch.from_numpy(_finite_clip(self.stream, row)))[:, feature].numpy()
        return np.arange(len(acts)) / self.stream.frame_rate_hz, acts

    def top_clips(self, feature: int, n: int = 5, span_fraction: float = 0.5) -> list[dict]:
        """The n clips where the feature peaks highest: row, id, labels, peak, peak_s and the activating span
        (start_s, end_s: around the peak, where it stays >= span_fraction x peak)."""
        feature = self.check_feature(feature)
        n = validation.positive_int(n, "n")
        span_fraction = validation.finite_float(span_fraction, "span_fraction", low=0.0, high=1.0, low_inclusive=False,
                                                hint="0.5 keeps the span where the feature stays above half its peak")
        order = np.argsort(-self.clip_max[:, feature], kind="stable")[:n]
        out = []
        for i in order:
            peak = float(self.clip_max[i, feature])
            if peak <= 0:
                break
            row = int(self.clip_rows[i])
            times, acts = self.trace(row, feature)
            p = int(np.argmax(acts))
            lo = hi = p
            while lo > 0 and acts[lo - 1] >= span_fraction * peak:
                lo -= 1
            while hi < len(acts) - 1 and acts[hi + 1] >= span_fraction * peak:
                hi += 1
            meta = self.rows_meta[i]
            out.append(dict(row=row, id=meta.get("id"), label=meta.get("label"),
                            **{c: meta.get(c) for c in self.categorical if c != "label"}, peak=peak,
                            peak_s=float(times[p]), start_s=float(times[lo]),
                            end_s=float(times[hi] + 1 / self.stream.frame_rate_hz)))
        return out

    def associations(self, feature: int) -> dict:
        """{"auroc:<column>=<value>": AUROC, "corr:<column>": r} of one feature. A two-valued column is
        listed once, by the value the feature prefers (AUROC >= 0.5): the other value's AUROC is 1 minus it."""
        row = self.table.rows[self.check_feature(feature)]
        out = {k: v for k, v in row.items() if k.startswith(("auroc:", "corr:"))}
        for col in self.categorical:
            pair = [k for k in out if k.startswith(f"auroc:{col}=")]
            if len(pair) == 2:
                del out[min(pair, key=lambda k: (out[k], -pair.index(k)))]  # the mirror image (ties: keep the first)
        return out

    def direction(self, feature: int, model_id: str):
        """The feature's decoder row as a unit `workbench.analysis.directions.Direction` (for steering)."""
        feature = self.check_feature(feature)
        model_id = validation.text(model_id, "model_id")
        check_matches(self.sae.meta, "this SAE", model_id=model_id)
        vec = self.sae.decoder_row(feature)
        row = self.table.rows[feature]
        return Direction(vec / max(float(np.linalg.norm(vec)), 1e-12), model_id=model_id,
                         layer=int(self.stream.layer), site=self.stream.site, method="sae_feature",
                         provenance=dict(name=f"feature {feature}" + (f" ({row['label']})" if row.get("label") else ""),
                                         feature=feature, label=row.get("label"),
                                         label_score=row.get("label_score"), d_sae=self.sae.d_sae))


@torch.no_grad()
def label_features(sae, stream, rows=None, bins: int = 30, categorical=None, numeric=None) -> FeatureLabels:
    """Measure and label every feature of `sae` on the clips of `stream` (a `FrameStream` of its layer).

    rows: store rows to use (default: every row the stream holds). categorical / numeric: label columns
    (default: found by `label_columns` in the store's table). An SAE trained on another model, layer, site or
    width than the stream's is refused (DirectionMismatchError); NaN / inf frames are a NotFiniteError."""
    sae = require_sae(sae)
    if not isinstance(stream, FrameStream):
        raise WrongTypeError(f"stream is a {type(stream).__name__}: pass a FrameStream(store, site, layer)")
    check_matches(sae.meta, "this SAE", model_id=stream.store.model_id, layer=stream.layer, site=stream.site,
                  d_in=stream.hidden_size, sae_d_in=sae.d_in)
    bins = validation.integer(bins, "bins", low=1, high=MAX_BINS)
    store = stream.store
    streamed = np.unique(stream.rows)
    if rows is None:
        clip_rows = streamed
    else:
        clip_rows = np.asarray(validation.int_sequence(rows, "rows", example="[0, 1, 2]"), dtype=np.int64)
        outside = np.setdiff1d(clip_rows, streamed)
        if outside.size:
            raise OutOfRangeError(f"rows {outside[:5].tolist()} are not in this stream (it holds {len(streamed)} "
                                  "rows): pass rows of FrameStream(..., rows=...), or a stream of every row")
    table = store.table
    meta = [table[int(r)] for r in clip_rows]
    found_cat, found_num = label_columns(meta)
    categorical = found_cat if categorical is None else _columns(categorical, "categorical", meta)
    numeric = found_num if numeric is None else _columns(numeric, "numeric", meta)
    for col in numeric:
        bad = [m.get(col) for m in meta if isinstance(m.get(col), bool) or not isinstance(m.get(col), numbers.Real)
               or not np.isfinite(m.get(col))]
        if bad:
            raise BadInputError(f"numeric column {col!r} holds {bad[0]!r}: pass it as categorical, or only columns "
                                "of finite numbers as numeric")
    n, d = len(clip_rows), sae.d_sae
    clip_mean, clip_max = np.zeros((n, d), np.float32), np.zeros((n, d), np.float32)
    peak_step = np.zeros((n, d), np.int32)
    fires, n_frames = np.zeros(d, np.int64), 0
    sparse_values, sparse_features = [], []
    for i, row in enumerate(clip_rows):
        f = sae.encode(torch.from_numpy(_finite_clip(stream, int(row)))).numpy()
        clip_mean[i], clip_max[i], peak_step[i] = f.mean(0), f.max(0), f.argmax(0)
        active = f > 0
        fires += active.sum(0)
        n_frames += len(f)
        where = np.nonzero(active)
        sparse_values.append(f[where])
        sparse_features.append(where[1])
    values, feats = np.concatenate(sparse_values), np.concatenate(sparse_features)
    top = np.maximum(clip_max.max(0), 1e-12)
    histograms = np.zeros((d, bins), np.int64)
    np.add.at(histograms, (feats, np.minimum((values / top[feats] * bins).astype(np.int64), bins - 1)), 1)
    frequency = fires / max(n_frames, 1)
    assoc: dict = {}
    for col in categorical:
        labels = np.asarray([str(m.get(col)) for m in meta])
        for value in sorted(set(labels)):
            assoc[f"auroc:{col}={value}"] = auroc(clip_mean, labels == value)
    for col in numeric:
        assoc[f"corr:{col}"] = _pearson(clip_mean, np.asarray([float(m.get(col)) for m in meta]))
    rows_out = []
    for j in range(d):
        row = dict(feature=j, frequency=float(frequency[j]), max_activation=float(clip_max[:, j].max()),
                   mean_clip_activation=float(clip_mean[:, j].mean()))
        best, best_score = None, -np.inf
        for name, scores in assoc.items():
            value = float(scores[j])
            row[name] = value
            score = abs(value) if name.startswith("corr:") else value
            if frequency[j] > 0 and np.isfinite(score) and score > best_score:
                best = (name.split(":", 1)[1] + (f" ({'+' if value > 0 else '-'})" if name.startswith("corr:")
                                                  else ""))
                best_score = score
        row["label"], row["label_score"] = best, (float(best_score) if best is not None else None)
        rows_out.append(row)
    return FeatureLabels(sae, stream, FeatureTable(rows_out), clip_mean, clip_max, peak_step, clip_rows, frequency,
                         histograms, top, meta, categorical, numeric)


def _finite_clip(stream, row: int) -> np.ndarray:
    """(T, H) frames of one store row, refused (NotFiniteError naming the row and step) if any is NaN or inf."""
    x = stream.clip(row)
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        raise NotFiniteError(f"store row {row}, decoder step {int(np.argmin(finite))} of {stream.site} layer "
                             f"{stream.layer} holds NaN or inf: run store.verify() / store.repair(), or leave the row "
                             "out with FrameStream(store, site, layer, rows=[...])")
    return x


def _columns(value, name: str, meta: list) -> list:
    """Label columns asked for by name: a list of strings (may be empty), each a column of the rows."""
    columns = [] if isinstance(value, (list, tuple)) and not value else validation.str_list(value, name,
                                                                                          example="['label']")
    present = set(k for m in meta for k in m)
    missing = [c for c in columns if c not in present]
    if missing:
        raise BadInputError(f"{name} columns {missing} are not in the store's table: it has {sorted(present)}")
    return columns
