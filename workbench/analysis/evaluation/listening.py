"""Blind listening tests from an evaluation grid: randomised A/B and A/B/X trials, answers on disk.

- `build_trials(pairs, kind="ab" | "abx", seed=...)`: each pair is (steered clip, twin clip, info);
  the order of A and B (and which one X repeats) is drawn from the seed. A trial shows only its
  number, the question and the players: the key (which one is steered) stays in `Trial.key`, never
  in what a page shows.
- `AnswerLog(path)` (`workbench.analysis.evaluation.answers`): every answer is one SQLite transaction,
  so a crash loses at most the answer being written and several widgets may share one file (not on a
  network file system: one database per machine, then `merge_answers`); `to_frame()` / `to_csv()`.
- `summarize(answers)`: hits, rate, a one-sided exact binomial test against chance (1/2) and response times.

A/B asks "which sounds more like <target>?": a hit is choosing the steered clip. A/B/X asks "is X
A or B?": a hit is naming X, i.e. telling the steered clip from its twin at all.

    >>> import tempfile, os
    >>> trials = build_trials([("s1", "t1", dict(target="rock")), ("s2", "t2", dict(target="jazz"))], seed=0)
    >>> [t.question for t in trials][0]
    'Which sounds more like rock?'
    >>> log = AnswerLog(os.path.join(tempfile.mkdtemp(), "answers.sqlite"))
    >>> row = log.append(trials[0], trials[0].key["steered"], response_s=1.5, participant="p1")
    >>> row["hit"], summarize(log.read())["n"]
    (True, 1)
"""
from __future__ import annotations

import dataclasses

import numpy as np

from workbench.analysis.evaluation.answers import FIELDS, AnswerLog, merge_answers
from workbench.errors import BadInputError, WrongTypeError
from workbench.validation import choice, finite_float, integer, positive_int

__all__ = ["Trial", "build_trials", "trials_from_result", "AnswerLog", "merge_answers", "summarize", "KINDS",
           "FIELDS"]

KINDS = ("ab", "abx")


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
    choice(kind, "kind ('ab': which is more like the target, 'abx': is X A or B)", KINDS)
    if isinstance(pairs, (str, bytes, dict)) or not hasattr(pairs, "__iter__"):
        raise WrongTypeError(f"pairs={pairs!r:.60}: pass a list of (steered clip, twin clip, info dict) tuples")
    pairs = list(pairs)
    if not pairs:
        raise BadInputError("no clip pairs: run an evaluation grid first (trials_from_result)")
    for i, pair in enumerate(pairs):
        if not (isinstance(pair, (tuple, list)) and len(pair) == 3 and isinstance(pair[2], dict)):
            raise WrongTypeError(f"pairs[{i}] is not a (steered clip, twin clip, info dict) tuple")
    seed = integer(seed, "seed", low=0)
    n = len(pairs) if n is None else positive_int(n, "n")
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(pairs))[:n]
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
    if not hasattr(result, "table") or not hasattr(result, "twin"):
        raise WrongTypeError(f"result is a {type(result).__name__}: pass an EvaluationResult (run_grid's result)")
    if not isinstance(method, str):
        raise WrongTypeError(f"method={method!r:.60}: pass a method name, e.g. 'class_means'")
    strength = finite_float(strength, "strength")
    layer = None if layer is None else integer(layer, "layer")
    table = result.table
    if not len(table):
        raise BadInputError("this result holds no clips: run the grid first")
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


def summarize(answers) -> dict:
    """n, hits, hit_rate, p_value (one-sided exact binomial test against 1/2) and median response time."""
    from scipy.stats import binomtest
    if hasattr(answers, "to_dict"):  # a DataFrame (AnswerLog.to_frame())
        answers = answers.to_dict("records")
    if isinstance(answers, (str, bytes, dict)) or not hasattr(answers, "__iter__"):
        raise WrongTypeError(f"answers={answers!r:.60}: pass AnswerLog(path).read() or a list of answer dicts")
    answers = list(answers)
    for i, a in enumerate(answers):
        if not (isinstance(a, dict) and "hit" in a and "response_s" in a):
            raise WrongTypeError(f"answers[{i}] is not an answer (a dict with 'hit' and 'response_s')")
        finite_float(a["response_s"], f"answers[{i}]['response_s']", low=0.0)
    n = len(answers)
    hits = int(sum(bool(a["hit"]) for a in answers))
    p = float(binomtest(hits, n, 0.5, alternative="greater").pvalue) if n else float("nan")
    times = [float(a["response_s"]) for a in answers]
    return dict(n=n, hits=hits, hit_rate=hits / n if n else float("nan"), p_value=p,
                median_response_s=float(np.median(times)) if times else float("nan"))
