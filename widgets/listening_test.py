"""Listening test: blind A/B or A/B/X trials, one at a time; every answer is saved as it is given.

The page shows the trial number, the question and players named A and B (and X); nothing in it
(labels, classes, captions, file names) says which clip is steered: the key stays in Python. In A/B/X
the X player gets the chosen clip's samples at a -0.04 dB gain, so its bytes never equal A's or
B's. Answers (choice, hit, response time from showing the trial to the click) are saved to `path`
as they are given, one SQLite transaction each (`workbench.analysis.evaluation.answers.AnswerLog`:
``answers.sqlite``, or ``answers.csv`` for a database beside a CSV export). Reopened on the same file,
the test resumes each participant at their first unanswered trial. `summary()` gives the binomial test.

Warning: keep `path` on the machine's local disk: SQLite's locking is not safe on network file systems.
For a class, one file per machine, merged afterwards with
`workbench.analysis.evaluation.answers.merge_answers([...], "all.sqlite")`.

    >>> import numpy as np, tempfile, os
    >>> from workbench.analysis.evaluation.listening import build_trials
    >>> tone = lambda f: (np.sin(np.arange(8000) * f / 8000 * 6.283).astype(np.float32), 8000)
    >>> trials = build_trials([(tone(440), tone(220), dict(target="rock"))] * 2, kind="abx", seed=1)
    >>> path = os.path.join(tempfile.mkdtemp(), "answers.sqlite")
    >>> lt = ListeningTest(trials, path=path, participant="p1")
    >>> lt.answer(trials[0].correct)["hit"], lt.position, lt.summary()["n"]
    (True, 1, 1)
    >>> ListeningTest(trials, path=path, participant="p1").position  # reopened: resumes at trial 2
    1
"""
from __future__ import annotations

import html
import time

import ipywidgets as w
import traitlets as t

from workbench.analysis.evaluation.answers import trial_list
from workbench.analysis.evaluation.listening import AnswerLog, summarize
from workbench.errors import BadInputError

from ._base import View, guarded
from .static import wav_bytes, waveform_of

X_GAIN = 10 ** (-0.04 / 20)  # X's bytes differ from A's and B's; far below what anyone hears


class ListeningTest(View):
    """Trials one by one: players A, B (and X), buttons A and B; each answer saved to `path` as it is given.

    path: the answers database (local disk only, see the module docstring); participant: the listener's name
    (any text), whose earlier answers in `path` are resumed, not asked again."""

    position = t.Int(0, help="index of the trial on screen (== number answered)")
    finished = t.Bool(False)

    def __init__(self, trials, *, path, participant: str = "", **kwargs):
        super().__init__(**kwargs)
        self.trials = trial_list(trials)
        self.answer_log = AnswerLog(path)
        start = self.answer_log.next_trial(participant, self.trials)  # checks the name and the trials
        self.participant = participant
        self.answers: list[dict] = self.answer_log.read(participant)
        self.position = start
        self._shown_at = time.monotonic()
        self.header = w.HTML()
        self.header.add_class("wb-listen-header")
        self.players = w.HBox()
        self.buttons = {c: w.Button(description=c, button_style="", layout=w.Layout(width="90px")) for c in "AB"}
        for choice, button in self.buttons.items():
            button.add_class(f"wb-listen-choice-{choice.lower()}")
            button.on_click(lambda _, c=choice: self._clicked(c))
        self.status = w.HTML()
        self.status.add_class("wb-listen-status")
        self.children = [self.header, self.players, w.HBox(list(self.buttons.values())), self.status, self.errors]
        self.add_class("wb-listen")
        self._show()

    def _show(self) -> None:
        if self.position >= len(self.trials):
            self.finished = True
            self.players.children = ()
            for b in self.buttons.values():
                b.disabled = True
            s = self.summary()
            self.header.value = "<b>Done: thank you.</b>"
            self.status.value = (f"{s['n']} answers saved to {html.escape(str(self.answer_log.db_path))}; "
                                 f"{s['hits']} hits, binomial p = {s['p_value']:.3g}")
            return
        trial = self.trials[self.position]
        self.header.value = (f"<b>Trial {self.position + 1} of {len(self.trials)}</b>: "
                             f"{html.escape(trial.question)}")
        boxes = []
        for name in ("A", "B", "X") if "X" in trial.clips else ("A", "B"):
            samples, rate = waveform_of(trial.clips[name])
            if name == "X":
                samples = samples * X_GAIN
            player = w.Audio(value=wav_bytes(samples, rate), format="wav", autoplay=False, loop=False)
            player.add_class(f"wb-listen-player-{name.lower()}")
            boxes.append(w.VBox([w.HTML(f"<b>{name}</b>"), player]))
        self.players.children = boxes
        self.status.value = f"{self.position} answered"
        self._shown_at = time.monotonic()

    @guarded
    def _clicked(self, choice: str) -> None:
        self.answer(choice)

    def answer(self, choice: str) -> dict:
        """Answer the trial on screen ('A' or 'B'), as a click does; saves it, then shows the next."""
        if self.finished:
            raise BadInputError("every trial is answered: see summary()")
        row = self.answer_log.append(self.trials[self.position], choice, response_s=time.monotonic() - self._shown_at,
                                     participant=self.participant)
        self.answers.append(row)
        self.position = self.answer_log.next_trial(self.participant, self.trials)  # skips trials answered earlier
        self._show()
        return row

    def summary(self) -> dict:
        """Hits, hit rate and the one-sided binomial p-value of this participant's answers (earlier sessions too)."""
        return summarize(self.answers)

    def static_html(self) -> str:
        return (f"<div>listening test: {self.position} of {len(self.trials)} trials answered "
                f"(players are shown only in a live notebook)</div>")
