"""Listening-test answers in SQLite (issue 28): concurrent writers, kill -9 mid-answer, hostile names and files.

Several processes answering into one file lose nothing and never corrupt it; a writer killed with SIGKILL
loses at most the answer it was writing; any participant name round-trips; a reopened test resumes at the
first unanswered trial; CSV / JSON-lines files of the earlier format import (torn, doubled-header, hand-edited
and header-less ones too, naming what was skipped); one database per machine merges into one.
"""
import csv
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from workbench.analysis.evaluation.answers import FIELDS, AnswerLog, merge_answers, read_answers
from workbench.analysis.evaluation.listening import build_trials, summarize
from workbench.errors import BadInputError, CorruptFileError, WorkbenchError

DATA = Path(__file__).parent / "data"
NAMES = ["", "Ana", "line\nbreak", "para\u2029sep", "line\u2028sep", 'quote " and, comma', "tab\there", "\r\n",
         "emoji \U0001f3b5", "nul\x00char", "   ", "x" * 2000]


def _tone(freq):
    return (0.1 * np.sin(np.arange(4000) * freq / 8000 * 2 * np.pi)).astype(np.float32), 8000


def _trials(n=6, kind="ab"):
    pairs = [(_tone(440 + k), _tone(220 + k), dict(target="rock", method="m", layer=1, strength=8.0, item=np.int64(k)))
             for k in range(n)]
    return build_trials(pairs, kind=kind, seed=0)


# -- names, resume, export -------------------------------------------------------------------------------

def test_any_participant_name_round_trips(tmp_path):
    trials = _trials(2)
    log = AnswerLog(tmp_path / "a.sqlite")
    for name in NAMES:
        log.append(trials[0], "A", response_s=1.0, participant=name)
    assert sorted(log.participants()) == sorted(NAMES)
    assert sorted(r["participant"] for r in log.read()) == sorted(NAMES)
    assert sorted(log.to_frame()["participant"]) == sorted(NAMES)
    log.to_csv(tmp_path / "a.csv")
    with open(tmp_path / "a.csv", newline="", encoding="utf-8") as f:
        assert sorted(r["participant"] for r in csv.DictReader(f)) == sorted(NAMES)
    assert sorted(r["participant"] for r in read_answers(tmp_path / "a.csv")) == sorted(NAMES)


def test_a_reopened_test_resumes_each_participant_and_never_double_counts(tmp_path):
    from widgets import ListeningTest
    trials, path = _trials(4, "abx"), tmp_path / "answers.sqlite"
    first = ListeningTest(trials, path=path, participant="p\n1")
    first.answer("A")
    first.answer("B")
    again = ListeningTest(trials, path=path, participant="p\n1")
    assert again.position == 2 and again.summary()["n"] == 2  # resumed, earlier answers counted once
    other = ListeningTest(trials, path=path, participant="p2")
    assert other.position == 0
    again.answer("A")
    again.answer("A")
    assert again.finished and ListeningTest(trials, path=path, participant="p\n1").finished
    assert len(AnswerLog(path).read("p\n1")) == 4
    with pytest.raises(BadInputError, match="already answered trial 0"):
        AnswerLog(path).append(trials[0], "A", response_s=1.0, participant="p\n1")
    with pytest.raises(BadInputError, match="another set of trials"):
        ListeningTest(_trials(4, "ab"), path=path, participant="p\n1")  # other questions at the same indices
    frame = AnswerLog(path).to_frame()
    assert list(frame.columns)[:len(FIELDS)] == list(FIELDS) and len(frame) == 4
    assert summarize(frame)["n"] == 4


def test_bad_arguments_are_workbench_errors(tmp_path):
    trials = _trials(2)
    log = AnswerLog(tmp_path / "a.sqlite")
    bad = [lambda: AnswerLog(None), lambda: AnswerLog(tmp_path / "a.txt"), lambda: AnswerLog(tmp_path),
           lambda: log.append("trial", "A", response_s=1.0), lambda: log.append(trials[0], "C", response_s=1.0),
           lambda: log.append(trials[0], "A", response_s=float("nan")),
           lambda: log.append(trials[0], "A", response_s=-1.0),
           lambda: log.append(trials[0], "A", response_s=1.0, participant=None),
           lambda: log.append(trials[0], "A", response_s=1.0, participant=7),
           lambda: log.to_csv(None), lambda: merge_answers("a.sqlite", tmp_path / "m.sqlite"),
           lambda: merge_answers([tmp_path / "missing.sqlite"], tmp_path / "m.sqlite"),
           lambda: build_trials([("a", "b")], seed=0), lambda: build_trials("ab"), lambda: build_trials([], seed=0),
           lambda: build_trials([("a", "b", {})], kind="abc"), lambda: build_trials([("a", "b", {})], seed="1"),
           lambda: build_trials([("a", "b", {})], n=0), lambda: summarize("answers"), lambda: summarize([1, 2]),
           lambda: summarize([dict(hit=True, response_s="slow")]), lambda: log.next_trial("p", 5),
           lambda: log.next_trial("p", []), lambda: log.next_trial("p", ["trial"]), lambda: read_answers(None),
           lambda: read_answers(tmp_path / "none.sqlite"), lambda: log.to_csv(tmp_path),
           lambda: log.append(trials[0], "A", response_s=1.0, participant="\ud800"),  # a lone surrogate
           lambda: AnswerLog(tmp_path / "a.sqlite" / "b.sqlite"), lambda: AnswerLog("a\0b.sqlite")]
    for make in bad:
        with pytest.raises(WorkbenchError):
            make()
    from widgets import ListeningTest
    for trials_arg in (None, "12", 5, [None]):
        with pytest.raises(WorkbenchError):
            ListeningTest(trials_arg, path=tmp_path / "w.sqlite")
    assert log.read() == []


# -- files damaged or of another version ----------------------------------------------------------------

def test_a_file_that_is_not_a_database_names_itself(tmp_path):
    path = tmp_path / "a.sqlite"
    path.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(CorruptFileError, match="a.sqlite.*not an answers database"):
        AnswerLog(path)
    with pytest.raises(CorruptFileError, match="not an answers database"):
        merge_answers([path], tmp_path / "m.sqlite")


def test_answer_databases_carry_a_format_version(tmp_path):
    path = tmp_path / "a.sqlite"
    AnswerLog(path)
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key='format'").fetchone() == ("workbench.answers/1",)
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        db.execute("UPDATE meta SET value='workbench.answers/7' WHERE key='format'")
    with pytest.raises(BadInputError, match="newer workbench"):
        AnswerLog(path)


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_files_of_the_earlier_format_import_once(tmp_path, suffix):
    path = tmp_path / f"answers.{suffix}"
    shutil.copy(DATA / f"answers_v1.{suffix}", path)
    with pytest.warns(UserWarning, match="imported 4 answers"):
        log = AnswerLog(path)
    assert log.db_path == tmp_path / "answers.sqlite"
    rows = log.read()
    assert [(r["participant"], r["trial"], r["choice"]) for r in rows] == [
        ('Ana, "the first"', 0, "A"), ('Ana, "the first"', 1, "B"), ('Ana, "the first"', 2, "A"), ("p2", 0, "B")]
    assert [r["hit"] for r in rows] == [True, False, False, False] and rows[0]["layer"] == 1
    trials = build_trials([("s", "t", dict(target="rock", method="m", layer=1, strength=8.0, item=k))
                           for k in range(3)], kind="ab", seed=0)
    log.append(trials[1], "A", response_s=1.0, participant="p2")
    reopened = AnswerLog(path)  # imported once: the export beside it is not read again
    assert len(reopened.read()) == 5 and len(read_answers(path)) == 5  # the export follows the database


def test_hostile_csv_files_import_what_can_be_read_and_name_the_rest(tmp_path):
    good = (DATA / "answers_v1.csv").read_text(encoding="utf-8").splitlines()
    header, rows = good[0], good[1:]
    cases = {
        "torn": ([header] + rows[:3] + [rows[3][:20]], 3, "line 5"),
        "two_headers": ([header, header] + rows, 4, None),  # two widgets started the file at once
        "bad_number": ([header, rows[0], rows[1].replace(",1.25,", ",1.2.5,")] + rows[2:], 3, "line 3"),
        "no_header": (rows, 4, "header line is missing"),
        "torn_then_more": ([header, rows[0], rows[1][:15] + rows[2]] + rows[3:], 2, "line 3"),
    }
    for name, (lines, n, skipped) in cases.items():
        path = tmp_path / f"{name}.csv"
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")
        with pytest.warns(UserWarning, match=skipped or "imported 4 answers"):
            log = AnswerLog(path)
        assert len(log.read()) == n, name


def test_a_doubled_legacy_file_keeps_the_first_answer_to_each_trial(tmp_path):
    lines = (DATA / "answers_v1.csv").read_text(encoding="utf-8").splitlines()
    path = tmp_path / "answers.csv"
    path.write_text("\n".join(lines + [lines[1].replace(",A,True,", ",B,False,").replace("1796553850", "1796553999")])
                    + "\n", encoding="utf-8")
    with pytest.warns(UserWarning, match="1 repeated answers"):
        log = AnswerLog(path)
    assert len(log.read()) == 4 and log.read()[0]["choice"] == "A"


# -- one database per machine ---------------------------------------------------------------------------

def test_merge_one_database_per_machine(tmp_path):
    trials = _trials(3)
    for machine in ("pc1", "pc2"):
        log = AnswerLog(tmp_path / f"{machine}.sqlite")
        for t in trials:
            log.append(t, "A", response_s=1.0, participant=f"student on {machine}")
    shutil.copy(DATA / "answers_v1.csv", tmp_path / "old.csv")
    sources = [tmp_path / "pc1.sqlite", tmp_path / "pc2.sqlite", tmp_path / "old.csv"]
    merged = merge_answers(sources, tmp_path / "all.sqlite")
    assert len(merged.read()) == 3 + 3 + 4
    assert len(merge_answers(sources, tmp_path / "all.sqlite").read()) == 10  # merging again adds nothing
    AnswerLog(tmp_path / "pc3.sqlite").append(trials[0], "B", response_s=2.0, participant="student on pc1")
    with pytest.raises(BadInputError, match="answered trial 0 in two files.*rename=True"):
        merge_answers(sources + [tmp_path / "pc3.sqlite"], tmp_path / "all.sqlite")
    assert len(AnswerLog(tmp_path / "all.sqlite").read()) == 10  # all or nothing
    renamed = merge_answers(sources + [tmp_path / "pc3.sqlite"], tmp_path / "renamed.sqlite", rename=True)
    assert "student on pc1@pc3" in renamed.participants() and len(renamed.read()) == 11


# -- concurrency and kills ------------------------------------------------------------------------------

WRITER = textwrap.dedent("""
    import sys, time
    sys.path.insert(0, {tests!r})
    from test_listening_db import _trials
    from workbench.analysis.evaluation.answers import AnswerLog
    path, name, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
    trials = _trials(n)
    for t in trials:
        AnswerLog(path).append(t, "AB"[t.index % 2], response_s=0.5, participant=name)
        print(t.index, flush=True)  # committed before this line is printed
    time.sleep(600)
""")


def _writers(tmp_path, path, names, n):
    script = tmp_path / "writer.py"
    script.write_text(WRITER.format(tests=str(Path(__file__).parent)))
    env = dict(os.environ, PYTHONPATH=str(Path(__file__).parents[1]))
    return [subprocess.Popen([sys.executable, str(script), str(path), name, str(n)], stdout=subprocess.PIPE,
                             text=True, env=env) for name in names]


@pytest.mark.timeout(300)
def test_concurrent_writers_on_one_new_file_lose_nothing(tmp_path):
    path = tmp_path / "answers.csv"  # the database beside it, and its CSV export, both shared
    names = [f"w{k}" for k in range(4)]
    procs = _writers(tmp_path, path, names, 12)
    try:
        for proc in procs:
            lines = [proc.stdout.readline() for _ in range(12)]
            assert lines[-1].strip() == "11", lines
    finally:
        for proc in procs:
            proc.kill()
            proc.wait()
    log = AnswerLog(path)
    answered = sorted((r["participant"], r["trial"]) for r in log.read())
    assert answered == sorted((n, k) for n in names for k in range(12))
    with sqlite3.connect(log.db_path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert len(read_answers(path)) == 48  # the export is whole (written by rename, never torn)


@pytest.mark.timeout(300)
def test_a_writer_killed_mid_answer_loses_at_most_that_answer(tmp_path):
    path = tmp_path / "answers.sqlite"
    for attempt in range(3):
        name = f"k{attempt}"
        [proc] = _writers(tmp_path, path, [name], 400)
        committed = -1
        deadline = time.monotonic() + 120
        while committed < 5 + attempt * 7 and time.monotonic() < deadline:
            committed = int(proc.stdout.readline())
        proc.send_signal(signal.SIGKILL)  # somewhere in the next answer's transaction
        proc.wait()
        rows = AnswerLog(path).read(name)
        assert committed + 1 <= len(rows) <= committed + 2  # every printed answer is there; at most one more
        assert [r["trial"] for r in rows] == list(range(len(rows)))
    trials = _trials(400)
    log = AnswerLog(path)
    log.append(trials[log.next_trial("k0", trials)], "A", response_s=1.0, participant="k0")  # resumes cleanly
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
