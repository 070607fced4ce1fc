"""Blind listening tests from an evaluation grid: randomised A/B and A/B/X trials, answers on disk.

- `build_trials(pairs, kind="ab" | "abx", seed=...)`: each pair is (steered clip, twin clip, info);
  the order of A and B (and which one X repeats) is drawn from the seed. A trial shows only its
  number, the question and the players: the key (which one is steered) stays in `Trial.key`, never
  in what a page shows.
- `AnswerLog(path)`: every answer is appended as it is given (a JSON line for ``.json``/``.jsonl``,
  a CSV row for ``.csv``; flushed and fsynced), so a crash loses nothing.
- `summarize(answers)`: hits, rate, a one-sided exact binomial test against chance (1/2) and response times.

A/B asks "which sounds more like <target>?": a hit is choosing the steered clip. A/B/X asks "is X
A or B?": a hit is naming X, i.e. telling the steered clip from its twin at all.

    >>> import tempfile, os
    >>> trials = build_trials([("s1", "t1", dict(target="rock")), ("s2", "t2", dict(target="jazz"))], seed=0)
    >>> [t.question for t in trials][0]
    'Which sounds more like rock?'
    >>> log = AnswerLog(os.path.join(tempfile.mkdtemp(), "answers.csv"))
    >>> row = log.append(trials[0], trials[0].key["steered"], response_s=1.5, participant="p1")
    >>> row["hit"], summarize(log.read())["n"]
    (True, 1)
"""
from __future__ import annotations

import csv
import dataclasses
import json
import os
import time
from pathlib import Path

import numpy as np

from workbench.errors import BadInputError

__all__ = ["Trial", "build_trials", "trials_from_result", "AnswerLog", "summarize", "KINDS"]

KINDS = ("ab", "abx")
FIELDS = ("time_unix", "participant", "trial", "kind", "question", "choice", "hit", "response_s", "steered", "x",
          "target", "method", "layer", "strength", "item")


@dataclasses.dataclass(frozen=True, eq=False)
class Trial:
    """clips: {"A": clip, "B": clip} (and "X" for A/B/X); key: {"steered": "A" | "B", "x": ...} (never shown)."""

    index: int
    kind: str
    question: str
    clips: dict
    key: dict
    info: dict

    @property
    def correct(self) -> str:
        """The answer that counts as a hit."""
        return self.key["x"] if self.kind == "abx" else self.key["steered"]


def build_trials(pairs, *, kind: str = "ab", seed: int = 0, n: int | None = None) -> list[Trial]:
    """Trials from (steered, twin, info) pairs, shuffled and with A/B (and X) drawn from `seed`."""
    if kind not in KINDS:
        raise BadInputError(f"kind={kind!r}: use 'ab' (which is more like the target) or 'abx' (is X A or B)")
    pairs = list(pairs)
    if not pairs:
        raise BadInputError("no clip pairs: run an evaluation grid first (trials_from_result)")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))[: n if n is not None else len(pairs)]
    trials = []
    for index, p in enumerate(order):
        steered, twin, info = pairs[int(p)]
        steered_is = "A" if rng.random() < 0.5 else "B"
        clips = {"A": steered, "B": twin} if steered_is == "A" else {"A": twin, "B": steered}
        key = {"steered": steered_is}
        if kind == "abx":
            key["x"] = "A" if rng.random() < 0.5 else "B"
            clips["X"] = clips[key["x"]]
            question = "Is X the same clip as A or as B?"
        else:
            question = f"Which sounds more like {info.get('target', 'the target')}?"
        trials.append(Trial(index, kind, question, clips, key, dict(info)))
    return trials


def trials_from_result(result, *, method: str, strength: float, layer: int | None = None, kind: str = "ab",
                       seed: int = 0, n: int | None = None) -> list[Trial]:
    """Trials pairing every clip of one grid cell with its twin (clips decoded through result.handle)."""
    table = result.table
    mask = (table["kind"] == "steered") & (table["method"] == method) & (table["strength"] == float(strength))
    if layer is not None:
        mask &= table["layer"] == int(layer)
    if not mask.any():
        cells = sorted(set(zip(table["method"], table["layer"], table["strength"])))
        raise BadInputError(f"no steered clips for method {method!r} at strength {strength} (layer {layer}); the "
                            f"grid has (method, layer, strength) {cells}")
    pairs = []
    for i in np.flatnonzero(mask.to_numpy()):
        row = table.iloc[int(i)]
        info = dict(target=row["target"], method=method, layer=int(row["layer"]), strength=float(strength),
                    item=int(row["item"]))
        pairs.append((result.clip(int(i)), result.twin(int(i)), info))
    return build_trials(pairs, kind=kind, seed=seed, n=n)


class AnswerLog:
    """Answers appended to a ``.csv``, ``.json`` or ``.jsonl`` file as they are given."""

    def __init__(self, path):
        self.path = Path(path)
        if self.path.suffix not in (".csv", ".json", ".jsonl"):
            raise BadInputError(f"answers go to a .csv, .json or .jsonl file, not {self.path.name!r}")
        self.path.parent.mkdir(parents=True, exist_ok=True)

    def append(self, trial: Trial, choice: str, *, response_s: float, participant: str = "") -> dict:
        """Record one answer (flushed and fsynced before returning); returns the row written."""
        options = ("A", "B")
        if choice not in options:
            raise BadInputError(f"choice={choice!r}: answer 'A' or 'B'")
        info = trial.info
        row = dict(time_unix=round(time.time(), 3), participant=participant, trial=trial.index, kind=trial.kind,
                   question=trial.question, choice=choice, hit=choice == trial.correct,
                   response_s=round(float(response_s), 3), steered=trial.key["steered"], x=trial.key.get("x", ""),
                   target=info.get("target", ""),
                   method=info.get("method", ""), layer=info.get("layer", ""), strength=info.get("strength", ""),
                   item=info.get("item", ""))
        new = not self.path.exists() or self.path.stat().st_size == 0
        with open(self.path, "a", encoding="utf-8", newline="") as f:
            if self.path.suffix == ".csv":
                writer = csv.DictWriter(f, fieldnames=FIELDS)
                if new:
                    writer.writeheader()
                writer.writerow(row)
            else:
                f.write(json.dumps(row) + "\n")
            f.flush()
            os.fsync(f.fileno())
        return row

    def read(self) -> list[dict]:
        """Every answer recorded so far (a torn last line from a crash is skipped)."""
        if not self.path.exists():
            return []
        text = self.path.read_text(encoding="utf-8")
        if self.path.suffix == ".csv":
            rows = list(csv.DictReader(text.splitlines()))
            return [dict(r, hit=r["hit"] == "True", response_s=float(r["response_s"]), trial=int(r["trial"]))
                    for r in rows if r.get("response_s") not in (None, "")]
        rows = []
        for line in text.splitlines():
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
        return rows


def summarize(answers) -> dict:
    """n, hits, hit_rate, p_value (one-sided exact binomial test against 1/2) and median response time."""
    from scipy.stats import binomtest
    answers = list(answers)
    n = len(answers)
    hits = int(sum(bool(a["hit"]) for a in answers))
    p = float(binomtest(hits, n, 0.5, alternative="greater").pvalue) if n else float("nan")
    times = [float(a["response_s"]) for a in answers]
    return dict(n=n, hits=hits, hit_rate=hits / n if n else float("nan"), p_value=p,
                median_response_s=float(np.median(times)) if times else float("nan"))
