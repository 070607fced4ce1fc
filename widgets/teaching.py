"""A class exercise students can finish (notebook 04): answers picked in widgets, graded against this run.

Each question's answer key is computed from what the run just measured (a callable, evaluated when an
answer is checked), so the exercise stays right when the model or the sizes change, and no answer is
typed anywhere. The notebook shows no solution: the teacher's key is printed by a separate file,
``python -m widgets.teaching_key`` (it runs the notebook headless). Every check is kept with its time;
`Lab.export_csv` (or the "Export my answers" button of `Lab.scoreboard()`) writes one CSV per student.

A student's cell is one line, ``lab.ask("q1")``: the question, a dropdown or slider, a Check button and
the feedback. From code, ``lab.check("q1", "3")`` takes strings too; a typo gets the closest valid
answer suggested instead of an error.

    >>> lab = Lab("demo")
    >>> lab.choice("q1", "Which layer reads genre best?", ["0", "1", "2"], accepted=lambda: ["2"])
    >>> lab.number("q2", "Its accuracy?", Number(truth=lambda: 0.9, tolerance=0.05, low=0, high=1))
    >>> lab.check("q1", 2, show=False), lab.check("q2", "0.88", show=False), lab.check("q2", 0.5, show=False)
    (True, True, False)
    >>> lab.check("q1", "two", show=False) is None        # not a choice: a message, no grade, no error
    True
    >>> lab.feedback("q1", "two")
    "'two' is not one of the choices (0, 1, 2)"
    >>> [(a["question"], a["correct"]) for a in lab.attempts]
    [('q1', True), ('q2', True), ('q2', False)]
"""
from __future__ import annotations

import csv
import datetime as dt
import difflib
import html
import io
import re
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import ipywidgets as w

from workbench import validation
from workbench.analysis.evaluation.results import atomic_write
from workbench.errors import BadInputError, WrongTypeError

__all__ = ["AnswerError", "Choice", "Lab", "Number", "Question"]

CSV_COLUMNS = ("student", "question", "attempt", "answer", "correct", "time", "elapsed_s")
_GREEN, _RED, _GREY = "#1a7f37", "#c62828", "#666"
PICK_ONE = "pick one…"


class AnswerError(BadInputError):
    """An answer the question cannot grade (not a choice, not a number): the message says what to give."""


@dataclass(frozen=True)
class Choice:
    """Pick one of `options` (a dropdown); `accepted()` gives the options that count (computed from the run)."""

    options: tuple[str, ...]
    accepted: Callable[[], Iterable[str]]

    def parse(self, answer) -> str:
        text = _as_text(answer)
        by_folded = {_fold(o): o for o in self.options}
        if _fold(text) in by_folded:
            return by_folded[_fold(text)]
        close = difflib.get_close_matches(_fold(text), list(by_folded), n=1, cutoff=0.5)
        message = f"{text!r} is not one of the choices ({', '.join(self.options)})"
        raise AnswerError(message + (f": did you mean {by_folded[close[0]]!r}?" if close else ""))

    def grade(self, value: str) -> bool:
        return value in {str(a) for a in self.accepted()}

    def key(self) -> dict:
        """What counts (for the teacher's key): {"accepts": [...], "answer": one answer `check` takes}."""
        accepted = [str(a) for a in self.accepted()]
        return dict(accepts=accepted, answer=accepted[0] if accepted else None)

    def control(self) -> w.Widget:
        # a placeholder with a value: a Dropdown whose value is None shows an empty box
        return w.Dropdown(options=[(PICK_ONE, ""), *[(o, o) for o in self.options]], value="",
                          layout=w.Layout(width="auto"))


@dataclass(frozen=True)
class Number:
    """A number between `low` and `high` (a slider moving by `step`); it counts within `tolerance` of `truth()`.

    Checked when made: low < high, tolerance > 0 and step > 0, all finite.
    """

    truth: Callable[[], float]
    tolerance: float
    low: float
    high: float
    step: float = 0.01

    def __post_init__(self):
        if not callable(self.truth):
            raise WrongTypeError(f"truth is a {type(self.truth).__name__}: pass a callable that computes the answer "
                                 "from the run, e.g. truth=lambda: result.best()['accuracy_mean']")
        for name in ("tolerance", "low", "high", "step"):
            object.__setattr__(self, name, validation.finite_float(getattr(self, name), name))
        if not self.low < self.high or self.tolerance <= 0 or self.step <= 0:
            raise BadInputError(f"a number question needs low < high, tolerance > 0 and step > 0 (got "
                                f"low={self.low:g}, high={self.high:g}, tolerance={self.tolerance:g}, "
                                f"step={self.step:g}): e.g. "
                                "Number(truth, tolerance=0.1, low=0, high=1)")

    def parse(self, answer) -> float:
        if isinstance(answer, bool):
            raise AnswerError(f"give a number between {self.low:g} and {self.high:g}, not {answer}")
        try:
            value = float(_as_text(answer).replace(",", ".")) if isinstance(answer, str) else float(answer)
        except (TypeError, ValueError):
            raise AnswerError(f"{answer!r} is not a number: give one between {self.low:g} and {self.high:g}, "
                              f"e.g. {(self.low + self.high) / 2:g}") from None
        if not self.low <= value <= self.high:  # NaN fails too
            raise AnswerError(f"{value:g} is outside {self.low:g} to {self.high:g}: the answer lies in that range")
        return value

    def grade(self, value: float) -> bool:
        return abs(value - float(self.truth())) <= self.tolerance

    def key(self) -> dict:
        """What counts (for the teacher's key): {"accepts": ["0.531 ± 0.1"], "answer": 0.531}."""
        truth = float(self.truth())
        return dict(accepts=[f"{truth:.3f} ± {self.tolerance:g}"], answer=round(truth, 3))

    def control(self) -> w.Widget:
        # starts at `low`, not mid-range: a concept with two classes has its control near 0.5
        return w.FloatSlider(min=self.low, max=self.high, step=self.step, value=self.low,
                             readout_format=".2f", continuous_update=False, layout=w.Layout(width="420px"))


@dataclass
class Question:
    key: str
    prompt: str
    kind: Choice | Number
    hint: str = ""
    explain: Callable[[], str] | None = field(default=None, repr=False)  # shown once the answer is right


def _as_text(answer) -> str:
    if isinstance(answer, (tuple, list, set, frozenset)):  # ("rock", "jazz") -> "jazz & rock"
        return " & ".join(sorted(str(a).strip() for a in answer))
    return str(answer).strip().strip("\"'").strip()


def _fold(text: str) -> str:
    return re.sub(r"\s+", " ", str(text).lower()).strip()


class Lab:
    """The lab's questions, the student's attempts (with times) and the score export."""

    def __init__(self, title: str = "lab", student: str = ""):
        self.title, self.student = title, student
        self._questions: dict[str, Question] = {}
        self.attempts: list[dict] = []
        self._started = time.monotonic()
        self._cards: dict[str, QuestionCard] = {}
        self._board: Scoreboard | None = None

    # ------------------------------------------------------------------ questions
    def choice(self, key: str, prompt: str, options, accepted: Callable[[], Iterable], *, hint: str = "",
               explain: Callable[[], str] | None = None) -> None:
        """A question answered by picking one of `options`; `accepted()` (from the run) says which count."""
        options = tuple(str(o) for o in options)
        if len(options) < 2:
            raise BadInputError(f"question {key!r} needs at least two options, got {options}")
        self._add(Question(key, prompt, Choice(options, accepted), hint, explain))

    def number(self, key: str, prompt: str, answer: Number, *, hint: str = "",
               explain: Callable[[], str] | None = None) -> None:
        """A numeric question: `answer` (a `Number`) says what counts (within its tolerance of its `truth()`,
        computed from the run) and the slider's range."""
        if not isinstance(answer, Number):
            raise WrongTypeError(f"question {key!r}: answer is a {type(answer).__name__}, not a Number: pass e.g. "
                                 "Number(truth=lambda: 0.8, tolerance=0.1, low=0, high=1)")
        self._add(Question(key, prompt, answer, hint, explain))

    def _add(self, question: Question) -> None:
        if question.key in self._questions:
            raise BadInputError(f"question {question.key!r} exists already: give each question its own key")
        self._questions[question.key] = question
        if self._board is not None:
            self._board.refresh()

    @property
    def keys(self) -> list[str]:
        return list(self._questions)

    def question(self, key: str) -> Question:
        if key in self._questions:
            return self._questions[key]
        close = difflib.get_close_matches(str(key), self.keys, n=1, cutoff=0.3)
        raise AnswerError(f"there is no question {key!r}" + (f": did you mean {close[0]!r}?" if close else "")
                          + f" (the questions are {', '.join(self.keys)})")

    # ------------------------------------------------------------------ grading
    def feedback(self, key: str, answer) -> str:
        """What `check` would say about `answer`, as plain text (no attempt recorded)."""
        return self._verdict(key, answer)[1]

    def _verdict(self, key: str, answer) -> tuple[bool | None, str, object]:
        """(correct, or None when it cannot be graded; the message; the parsed answer)."""
        try:
            q = self.question(key)
            if answer is None or (isinstance(answer, str) and not answer.strip()):
                return None, "not answered yet: pick an answer, then press Check", None
            value = q.kind.parse(answer)
        except AnswerError as exc:
            return None, str(exc), None
        if q.kind.grade(value):
            extra = q.explain() if q.explain else ""
            return True, "correct" + (f". {extra}" if extra else ""), value
        return False, "not quite" + (f". Hint: {q.hint}" if q.hint else ""), value

    def check(self, key: str, answer, show: bool = True) -> bool | None:
        """Grade `answer` (a widget value, a number or a string); shows the verdict, records the attempt.

        Returns True / False, or None when the answer cannot be graded (the message says why): never an
        error, so a typo costs a message, not a traceback.
        """
        ok, message, value = self._verdict(key, answer)
        if ok is not None:
            self.attempts.append(dict(
                student=self.student, question=key,
                attempt=1 + sum(a["question"] == key for a in self.attempts),
                answer=value if isinstance(value, str) else f"{value:g}", correct=bool(ok),
                time=dt.datetime.now().astimezone().isoformat(timespec="seconds"),
                elapsed_s=round(time.monotonic() - self._started, 1)))
            if self._board is not None:
                self._board.refresh()
        if show:
            from IPython.display import HTML, display

            display(HTML(feedback_html(key, ok, message)))
        return ok

    def ask(self, key: str) -> QuestionCard:
        """The question as a widget: prompt, dropdown or slider, Check button, feedback (one per key)."""
        q = self.question(key)
        if key not in self._cards:
            self._cards[key] = QuestionCard(self, q)
        return self._cards[key]

    # ------------------------------------------------------------------ scores
    def latest(self) -> dict[str, dict]:
        """{question: its last graded attempt}."""
        return {a["question"]: a for a in self.attempts}

    def score_rows(self) -> list[dict]:
        """One row per question: its last answer, whether it was right, how many tries."""
        last = self.latest()
        return [dict(question=k, prompt=q.prompt, answer=last.get(k, {}).get("answer", ""),
                     correct=last.get(k, {}).get("correct"),
                     attempts=sum(a["question"] == k for a in self.attempts)) for k, q in self._questions.items()]

    def score_text(self) -> str:
        done = sum(bool(r["correct"]) for r in self.score_rows())
        return f"{done} of {len(self._questions)} correct"

    def export_csv(self, path=None) -> Path:
        """Write every graded attempt (student, question, attempt, answer, correct, time, elapsed_s) to
        `path` (default: ``answers-<student>.csv`` here), atomically; returns the path."""
        student = self.student.strip()
        if not student:
            raise BadInputError("type your name first (the box above the button, or lab.student = 'Ada L.'): "
                                "your teacher collects one file per student")
        path = (Path(path) if path is not None else Path(f"answers-{safe_name(student)}.csv")).resolve()
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=CSV_COLUMNS, lineterminator="\n")
        writer.writeheader()
        for attempt in self.attempts:
            writer.writerow(dict(attempt, student=student))
        atomic_write(path, lambda f: f.write(buffer.getvalue().encode("utf-8")))
        return path

    def scoreboard(self) -> Scoreboard:
        """Name box, score table and the "Export my answers" button (one per lab)."""
        if self._board is None:
            self._board = Scoreboard(self)
        return self._board


def safe_name(text: str) -> str:
    """A file-name-safe form of a student's name: "Ada L." -> "Ada_L"."""
    return re.sub(r"[^A-Za-z0-9_-]+", "_", text.strip()).strip("_") or "student"


def feedback_html(key: str, ok: bool | None, message: str) -> str:
    color = _GREY if ok is None else _GREEN if ok else _RED
    mark = "…" if ok is None else "✔" if ok else "✘"
    return (f"<div class='wb-lab-feedback' style='color:{color};font-size:1.05em'>"
            f"<b>{mark} {html.escape(key)}</b>: {html.escape(message)}</div>")


class QuestionCard(w.VBox):
    """One question: its prompt, the answer control, a Check button and the feedback line."""

    def __init__(self, lab: Lab, question: Question):
        super().__init__()
        self.lab, self.question = lab, question
        self.control = question.kind.control()
        self.button = w.Button(description="Check", button_style="primary", icon="check",
                               layout=w.Layout(width="auto"))
        self.button.add_class("wb-lab-check")
        self.feedback = w.HTML()
        self.button.on_click(lambda _: self.submit())
        self.children = [w.HTML(f"<b>{html.escape(question.key)}.</b> {html.escape(question.prompt)}"),
                         w.HBox([self.control, self.button]), self.feedback]
        self.add_class("wb-lab-question")

    def submit(self) -> bool | None:
        """Grade what the control shows now (what the Check button does)."""
        ok = self.lab.check(self.question.key, self.control.value, show=False)
        _, message, _ = self.lab._verdict(self.question.key, self.control.value)
        self.feedback.value = feedback_html(self.question.key, ok, message)
        return ok

    def _repr_mimebundle_(self, **kwargs):  # a saved notebook viewed without a kernel still shows the question
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle["text/html"] = (f"<p><b>{html.escape(self.question.key)}.</b> {html.escape(self.question.prompt)}"
                                   " <i>(answer it in JupyterLab with the kernel running)</i></p>")
        return bundle


class Scoreboard(w.VBox):
    """The student's name, the score so far, and "Export my answers" (a CSV for the teacher)."""

    def __init__(self, lab: Lab):
        super().__init__()
        self.lab = lab
        self.name = w.Text(value=lab.student, placeholder="your name", description="Name:",
                           layout=w.Layout(width="320px"))
        self.name.observe(self._named, names="value")
        self.table = w.HTML()
        self.button = w.Button(description="Export my answers", icon="download", button_style="success",
                               layout=w.Layout(width="auto"))
        self.button.add_class("wb-lab-export")
        self.status = w.HTML()
        self.status.add_class("wb-lab-export-status")
        self.button.on_click(lambda _: self.export())
        self.children = [self.name, self.table, w.HBox([self.button, self.status])]
        self.add_class("wb-lab-scoreboard")
        self.refresh()

    def _named(self, change) -> None:
        self.lab.student = change["new"]

    def refresh(self) -> None:
        rows = "".join(
            f"<tr><td>{html.escape(r['question'])}</td><td>{html.escape(r['prompt'])}</td>"
            f"<td>{html.escape(str(r['answer']))}</td>"
            f"<td>{'✔' if r['correct'] else '·' if r['correct'] is None else '✘'}</td><td>{r['attempts']}</td></tr>"
            for r in self.lab.score_rows())
        self.table.value = (f"<table class='wb-lab-score'><caption><b>{html.escape(self.lab.title)}: "
                            f"{self.lab.score_text()}</b></caption><tr><th>question</th><th></th><th>your answer"
                            f"</th><th>right</th><th>tries</th></tr>{rows}</table>")

    def _repr_mimebundle_(self, **kwargs):  # viewed without a kernel: the score table
        bundle = super()._repr_mimebundle_(**kwargs)
        if bundle is not None:
            bundle["text/html"] = self.table.value
        return bundle

    def export(self) -> Path | None:
        """Write the CSV (the button); the status line names the file, or says what is missing."""
        try:
            path = self.lab.export_csv()
        except (BadInputError, OSError) as exc:
            self.status.value = f"<span style='color:{_RED}'>{html.escape(str(exc))}</span>"
            return None
        self.status.value = (f"<span style='color:{_GREEN}'>saved {html.escape(str(path))} "
                             f"({len(self.lab.attempts)} answers): hand this file in</span>")
        return path
