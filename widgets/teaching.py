"""Checkable questions for class exercises (notebook 04): students answer, `check` grades and explains.

Each question grades an answer against the data the student just computed (not a hard-coded key),
so the exercise stays right when the model or the parameters change.

    >>> lab = Exercise()
    >>> lab.add("q1", "Which layer is best?", exact(lambda: 2), hint="look at the sweep plot")
    >>> lab.check("q1", 3, show=False), lab.check("q1", 2, show=False), lab.solution("q1")
    (False, True, 2)
    >>> lab.add("q2", "Which gains more?", one_of(lambda: ["mode", "genre"]))  # a near tie: both count
    >>> lab.check("q2", "genre", show=False), lab.check("q2", "tempo", show=False), lab.solution("q2")
    (True, False, 'mode')
"""
from __future__ import annotations

import dataclasses
import html
from collections.abc import Callable
from typing import Any


def exact(truth: Callable[[], Any]) -> Callable:
    """Grader: the answer equals truth()."""
    def grade(answer):
        expected = truth()
        return answer == expected, expected
    return grade


def close_to(truth: Callable[[], float], tolerance: float) -> Callable:
    """Grader: |answer − truth()| <= tolerance."""
    def grade(answer):
        expected = float(truth())
        return answer is not None and abs(float(answer) - expected) <= tolerance, round(expected, 3)
    return grade


def same_set(truth: Callable[[], set]) -> Callable:
    """Grader: the answer has the same elements as truth(), in any order."""
    def grade(answer):
        expected = set(truth())
        return answer is not None and set(answer) == expected, sorted(expected)
    return grade


def one_of(truth: Callable[[], list]) -> Callable:
    """Grader: the answer is one of those truth() accepts (e.g. both sides of a near tie); the
    solution is the first of them."""
    def grade(answer):
        accepted = list(truth())
        return answer is not None and answer in accepted, accepted[0] if accepted else None
    return grade


@dataclasses.dataclass
class Question:
    key: str
    prompt: str
    grade: Callable  # answer -> (ok, solution)
    hint: str = ""
    result: bool | None = None


class Exercise:
    """An ordered set of questions; `check` shows a green/red verdict, `summary()` a score table."""

    def __init__(self, title: str = "exercise"):
        self.title = title
        self.questions: dict[str, Question] = {}

    def add(self, key: str, prompt: str, grade: Callable, hint: str = "") -> None:
        self.questions[key] = Question(key, prompt, grade, hint)

    def check(self, key: str, answer, show: bool = True) -> bool:
        """Grade `answer`; None counts as not answered yet (shown, never an error)."""
        q = self.questions[key]
        if answer is None:
            ok, text, color = False, "not answered yet", "#888"
        else:
            ok, _ = q.grade(answer)
            text, color = ("correct" if ok else f"not quite. Hint: {q.hint}" if q.hint else "not quite"), \
                ("#2ca02c" if ok else "#d62728")
        q.result = ok if answer is not None else None
        if show:
            from IPython.display import HTML, display
            display(HTML(f"<div style='color:{color}'><b>{html.escape(key)}</b>: {html.escape(text)}</div>"))
        return ok

    def solution(self, key: str):
        """The expected answer, computed from the current data (for the teacher)."""
        return self.questions[key].grade(None)[1]

    def summary(self) -> str:
        rows = "".join(f"<tr><td>{html.escape(q.key)}</td><td>{html.escape(q.prompt)}</td><td>"
                       f"{'✔' if q.result else '·' if q.result is None else '✘'}</td></tr>"
                       for q in self.questions.values())
        done = sum(bool(q.result) for q in self.questions.values())
        return (f"<table><caption>{html.escape(self.title)}: {done}/{len(self.questions)} correct</caption>"
                f"{rows}</table>")
