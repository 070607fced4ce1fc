"""Notebook 04's questions, their answer keys computed from the run, and the steered/twin player.

Each `add_*` function adds questions to a `widgets.teaching.Lab`; each key is a function of results the
notebook computed (a `SweepResult`, a confusion matrix, a `SteeringEffect`), evaluated when an answer is
checked, never typed. `TwinPlayer` plays a steered clip next to its unsteered twin (same prompt and
seed), labelled with the direction and its strength in the workbench's one unit.

    >>> import numpy as np
    >>> most_confused(np.array([[5, 1, 0], [3, 4, 0], [0, 0, 6]]), ["a", "b", "c"])
    'a & b'
"""
from __future__ import annotations

import html
from itertools import combinations

import ipywidgets as w
import numpy as np

from ._base import View, guarded
from .clip_compare import ClipComparer
from .teaching import Lab, Number

__all__ = ["TwinPlayer", "add_confusion_question", "add_reading_questions", "add_steering_questions",
           "best_layers", "gain_over_input", "minus_shift", "more_gain", "most_confused", "pair_name", "steered_pairs"]

NEAR_TIE_LAYERS = 0.02   # a layer within this of the best accuracy counts as best too
NEAR_TIE_GAINS = 0.05    # two concepts' gains this close: either answer counts


# ---------------------------------------------------------------------------------------- the keys
def best_layers(result, within: float = NEAR_TIE_LAYERS) -> list[int]:
    """The best layer first, then every other layer within `within` of its accuracy (a near tie)."""
    top = result.best()
    return [top["layer"], *(r["layer"] for r in result.layer_rows
                            if r["layer"] != top["layer"] and r["accuracy_mean"] >= top["accuracy_mean"] - within)]


def gain_over_input(result) -> float:
    """Best layer's accuracy minus the input baseline's (what the layers read beyond a bag of codes)."""
    return float(result.best()["accuracy_mean"] - result.baseline("input")["accuracy_mean"])


def more_gain(by_concept: dict, within: float = NEAR_TIE_GAINS) -> list[str]:
    """The concept(s) whose layers add most over the input baseline (both when within `within`)."""
    gains = {c: gain_over_input(r) for c, r in by_concept.items()}
    top = max(gains.values())
    return sorted((c for c, g in gains.items() if g >= top - within), key=lambda c: -gains[c])


def pair_name(a: str, b: str) -> str:
    return " & ".join(sorted((str(a), str(b))))


def most_confused(confusion: np.ndarray, classes) -> str:
    """The pair of classes most often mistaken for each other (both directions added), as "a & b"."""
    both = np.asarray(confusion, dtype=float) + np.asarray(confusion, dtype=float).T
    np.fill_diagonal(both, -1)
    i, j = np.unravel_index(both.argmax(), both.shape)
    return pair_name(classes[i], classes[j])


def minus_shift(effect, target: str) -> float:
    """Mean shift of the -v clips' reading from their twins' at the verdict's strength (< 0: -v lowers it)."""
    clips = effect.clips
    strength = effect.verdict[target]["strength"]
    minus = clips[(clips.arm == "minus") & (clips.target == target) & (clips.strength == strength)]
    return float(minus["shift"].mean())


# ---------------------------------------------------------------------------------------- questions
def add_reading_questions(lab: Lab, by_concept: dict, concept: str) -> None:
    """Q1-Q4 of Part 1: best layer, shuffled-label control, gain over the input baseline, which concept gains more."""
    result = by_concept[concept]
    layers = [r["layer"] for r in result.layer_rows]
    lab.choice("q1", f"Which layer's probe reads {concept} best?", [str(x) for x in layers],
               lambda: [str(x) for x in best_layers(result)],
               hint="the highest solid point of the plot",
               explain=lambda: (f"accepted: layer {', '.join(map(str, best_layers(result)))} "
                                f"(within {NEAR_TIE_LAYERS} of the best)"))
    lab.number("q2", "What accuracy does the shuffled-label control reach at that layer, roughly?",
               Number(lambda: result.best()["control_accuracy_mean"], tolerance=0.15, low=0, high=1),
               hint="with shuffled labels the probe can only guess: how many classes does the concept have?",
               explain=lambda: f"this run: {result.best()['control_accuracy_mean']:.2f} (within 0.15 counts)")
    lab.number("q3", "Best layer's accuracy minus the input baseline's (a number between -1 and 1)?",
               Number(lambda: gain_over_input(result), tolerance=0.1, low=-1, high=1),
               hint="read the highest solid point and the 'input baseline (bag of codes)' line, and subtract",
               explain=lambda: f"this run: {gain_over_input(result):+.2f} (within 0.1 counts)")
    names = list(by_concept)
    lab.choice("q4", "For which concept do the layers add more over the input baseline?", names,
               lambda: more_gain(by_concept),
               hint="for each concept (the menu above the plot), compare the best solid point with the input "
                    "baseline line",
               explain=lambda: "gains this run: " + ", ".join(f"{c} {gain_over_input(r):+.2f}"
                                                              for c, r in by_concept.items()))


def add_confusion_question(lab: Lab, confusion: np.ndarray, classes) -> None:
    """Q5: the pair of genres the best layer's probe confuses most often."""
    classes = [str(c) for c in classes]
    lab.choice("q5", "Which two genres does the probe confuse most often?",
               [pair_name(a, b) for a, b in combinations(classes, 2)], lambda: [most_confused(confusion, classes)],
               hint="for each pair, add the two off-diagonal cells (row a column b, row b column a)")


def add_steering_questions(lab: Lab, effect, target: str, verdict_text: str = "") -> None:
    """Q6 (is the push beyond random?) and Q7 (does -v lower the reading?) from a `SteeringEffect`."""
    verdict = effect.verdict[target]
    lab.choice("q6", f"Is the push toward {target} beyond random at strength {verdict['strength']:g}?",
               ["beyond random", "not beyond random"],
               lambda: ["beyond random" if verdict["beyond_random"] else "not beyond random"],
               hint="all four rules must hold: p_value, order_rate, collapsed_share and level_only_effect against "
                    "their limits",
               explain=lambda: verdict_text)
    lab.choice("q7", f"On average over the pairs, does -v (away from {target}) lower P({target}) below the twin's?",
               ["yes", "no"], lambda: ["yes" if minus_shift(effect, target) < 0 else "no"],
               hint="pick each pair in the player's menu and compare the two clips' readings",
               explain=lambda: (f"mean shift of the -v clips from their twins: {minus_shift(effect, target):+.3f}"))


# ---------------------------------------------------------------------------------------- the player
def _bench_unit(direction) -> np.ndarray:
    # the unit vector exactly as `SteeringBench` makes it from a direction, so its cached clips are found
    v = np.asarray(getattr(direction, "vector", direction), dtype=np.float64).reshape(-1)
    return (v / np.linalg.norm(v)).astype(np.float32)


def steered_pairs(bench, effect, direction, target: str, sign: int = +1) -> list[dict]:
    """The measured pairs of `effect` toward `target`: their twin and the +v (sign=+1) or -v clip, cached
    by `bench` (no generation), with the reader's values. One dict per pair: label, twin, steered,
    twin_reading, reading, strength."""
    arm = "plus" if sign > 0 else "minus"
    rows = effect.clips[(effect.clips.arm == arm) & (effect.clips.target == target)]
    strength = float(effect.verdict[target]["strength"])
    rows = rows[rows.strength == strength]
    unit = _bench_unit(direction) * (1 if sign > 0 else -1)
    steered = bench.steered(effect.layer, strength, unit)
    twins = bench.twins()
    return [dict(label=f"“{r.prompt}”, seed {r.seed}", twin=twins[r.pair], steered=steered[r.pair],
                 twin_reading=float(r.twin_reading), reading=float(r.reading), strength=sign * strength)
            for r in rows.itertuples()]


class TwinPlayer(View):
    """A menu of (prompt, seed) pairs; the chosen pair's unsteered twin and steered clip side by side, each
    with the reader's value, and a caption naming the direction, layer and strength (x mean residual norm)."""

    def __init__(self, pairs: list[dict], direction, unit_norm: float, reading_name: str, title: str = ""):
        super().__init__()
        if not pairs:
            raise ValueError("no measured pairs to play: measure the direction with a SteeringBench first")
        self.pairs, self.reading_name = pairs, reading_name
        strength = pairs[0]["strength"]
        self.info = dict(steered=True, name=getattr(direction, "name", "direction"),
                         method=getattr(direction, "method", "?"), site=getattr(direction, "site", "resid"),
                         layers=[int(direction.layer)], strength=strength, mode="add",
                         unit_by_layer={int(direction.layer): float(unit_norm)})
        self.menu = w.Dropdown(options=[(p["label"], i) for i, p in enumerate(pairs)], value=0, description="pair:",
                               layout=w.Layout(width="auto"))
        self.comparer = ClipComparer(score_fn=self._reading, titles=(
            "unsteered twin", f"{strength:+g} x mean residual norm along “{self.info['name']}”"), describe_fn=dict)
        self._values: dict[int, float] = {}
        self.menu.observe(lambda _: self.show(), names="value")
        head = f"<b>{html.escape(title)}</b>" if title else ""
        self.children = [w.HTML(head), self.menu, self.comparer, self.errors]
        self.add_class("wb-twin-player")
        self.show()

    def _reading(self, clip) -> dict:
        return {self.reading_name: self._values[id(clip)]}

    @guarded
    def show(self) -> None:
        pair = self.pairs[self.menu.value]
        self._values = {id(pair["twin"]): pair["twin_reading"], id(pair["steered"]): pair["reading"]}
        self.comparer.compare(pair["twin"], pair["steered"], request=self.info)

    def static_html(self) -> str:
        return self.comparer.static_html()
