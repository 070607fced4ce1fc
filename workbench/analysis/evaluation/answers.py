"""Listening-test answers in SQLite: one transaction per answer, safe for several widgets on one file.

The database (standard library `sqlite3`, WAL journal, ``synchronous=FULL``) has a ``participants``
table (one row per name) and a ``trials`` table (one row per answer, keyed by participant and trial, so
no trial is counted twice), plus ``meta`` (the format, ``workbench.answers/1``). Each answer is one
transaction: a crash loses at most the answer being written, never an earlier one. A reopened test
resumes each participant at their first unanswered trial (`AnswerLog.next_trial`).

Choosing the answers path:

- ``answers.sqlite`` (or ``.db``): the database itself.
- ``answers.csv`` / ``answers.jsonl`` / ``answers.json`` (what earlier versions wrote): the database is
  ``answers.sqlite`` beside it; a file of that name written by an earlier version is imported once
  (with a warning), and afterwards it is rewritten from the database after every answer, as an export.
- Warning: SQLite's locking is not safe on network file systems (NFS, SMB shares, synced folders such
  as Dropbox): two machines writing one database there can corrupt it. For a classroom, give every
  machine its own database on its local disk, collect the files afterwards, and merge them with
  ``merge_answers([...], "all.sqlite")``.

    >>> import os, tempfile
    >>> from workbench.analysis.evaluation.listening import build_trials
    >>> trials = build_trials([("s", "t", dict(target="rock"))] * 3, seed=0)
    >>> log = AnswerLog(os.path.join(tempfile.mkdtemp(), "answers.sqlite"))
    >>> log.append(trials[0], "A", response_s=1.5, participant="Ana\\nB.")["participant"]
    'Ana\\nB.'
    >>> log.next_trial("Ana\\nB.", trials), len(log.to_frame())
    (1, 1)
"""
from __future__ import annotations

import contextlib
import csv
import hashlib
import io
import json
import os
import sqlite3
import time
import uuid
import warnings
from pathlib import Path

from workbench.analysis.evaluation.results import atomic_write
from workbench.errors import BadInputError, CorruptFileError, EmptyInputError, WrongTypeError
from workbench.validation import finite_float

__all__ = ["AnswerLog", "merge_answers", "FIELDS", "FORMAT"]

FORMAT = "workbench.answers/1"
DATABASE_SUFFIXES = (".sqlite", ".sqlite3", ".db")
LEGACY_SUFFIXES = (".csv", ".json", ".jsonl")
FIELDS = ("time_unix", "participant", "trial", "kind", "question", "choice", "hit", "response_s", "steered", "x",
          "target", "method", "layer", "strength", "item")
_TRIAL_COLUMNS = FIELDS[2:]
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS participants (
    id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE, created_unix REAL NOT NULL);
CREATE TABLE IF NOT EXISTS trials (
    participant_id INTEGER NOT NULL REFERENCES participants(id), trial INTEGER NOT NULL,
    answer_id TEXT NOT NULL UNIQUE, time_unix REAL NOT NULL, kind TEXT, question TEXT, choice TEXT NOT NULL,
    hit INTEGER NOT NULL, response_s REAL NOT NULL, steered TEXT, x TEXT, target, method, layer, strength, item,
    PRIMARY KEY (participant_id, trial));
"""


class AnswerLog:
    """The answers of a listening test, in an SQLite database.

    path: ``answers.sqlite`` (the database), or ``answers.csv`` / ``.jsonl`` for the database
    ``answers.sqlite`` beside a CSV / JSON-lines export of it (a file there from an earlier version is
    imported once).

    Warning: keep the database on the machine's own disk. SQLite's locking is not safe on network file
    systems (NFS, SMB shares, synced folders): writers on two machines can corrupt it. In a classroom,
    each machine answers into its own file; collect the files and ``merge_answers(files, "all.sqlite")``.
    """

    def __init__(self, path):
        if not isinstance(path, (str, os.PathLike)) or not str(path) or "\0" in str(path):
            raise WrongTypeError(f"path={path!r:.60}: pass the answers file as a path, e.g. 'answers.sqlite'")
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in DATABASE_SUFFIXES + LEGACY_SUFFIXES:
            raise BadInputError(f"answers go to an SQLite file ({', '.join(DATABASE_SUFFIXES)}), or a .csv / .json / "
                                f".jsonl export beside one, not {path.name!r}: e.g. 'answers.sqlite'")
        self.export = path if suffix in LEGACY_SUFFIXES else None
        self.db_path = path.with_suffix(".sqlite") if self.export else path
        self.path = path
        if self.db_path.is_dir():
            raise BadInputError(f"{self.db_path} is a folder: pass a file path for the answers")
        try:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BadInputError(f"cannot make the folder of {self.db_path} ({error.strerror}): pass a path on a "
                                "writable local disk") from None
        self._create()
        if self.export is not None:
            self._import_once(self.export)

    # -- the database --------------------------------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        deadline = time.monotonic() + 30.0
        while True:
            db = None
            try:
                db = sqlite3.connect(self.db_path, timeout=30.0, isolation_level=None)
                db.execute("PRAGMA busy_timeout = 30000")
                mode = db.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                db.execute("PRAGMA synchronous = FULL")
                break
            except sqlite3.OperationalError as error:  # another writer switching a new file to WAL: wait for it
                if db is not None:
                    db.close()
                if "locked" not in str(error) or time.monotonic() > deadline:
                    raise CorruptFileError(self.db_path, f"cannot be opened ({error}): is another program holding it? "
                                           "Close it, or use another answers file") from None
                time.sleep(0.05)
            except sqlite3.DatabaseError as error:
                if db is not None:
                    db.close()
                raise CorruptFileError(self.db_path, f"is not an answers database ({error}): move it away and pass a "
                                       "new path; answers cannot be read from it") from None
        if str(mode).lower() != "wal":  # e.g. a read-only folder: answers could not be saved safely
            db.close()
            raise BadInputError(f"{self.db_path}: SQLite cannot use its WAL journal here ({mode}): put the answers on "
                                "a local, writable disk")
        return db

    @contextlib.contextmanager
    def _transaction(self):
        """One write transaction (BEGIN IMMEDIATE: writers queue up instead of failing)."""
        db = self._connect()
        try:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")
        except sqlite3.DatabaseError as error:
            raise CorruptFileError(self.db_path, f"cannot be written ({error}): if it is damaged, move it away, "
                                   "start a new file, and merge what can be read later") from None
        finally:
            db.close()

    @contextlib.contextmanager
    def _reading(self):
        db = self._connect()
        try:
            yield db
        except sqlite3.DatabaseError as error:
            raise CorruptFileError(self.db_path, f"cannot be read ({error}): move it away and start a new file") \
                from None
        finally:
            db.close()

    def _create(self) -> None:
        with self._transaction() as db:
            for statement in _SCHEMA.strip().split(";"):
                if statement.strip():
                    db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if row is None:
                db.execute("INSERT INTO meta VALUES ('format', ?), ('created_unix', ?)", (FORMAT, str(time.time())))
            elif row[0] != FORMAT:
                raise BadInputError(f"{self.db_path} holds answers of format {row[0]!r}; this workbench reads "
                                    f"{FORMAT!r}: use a newer workbench, or a new answers file")
            db.execute("PRAGMA user_version = 1")

    # -- writing -------------------------------------------------------------------------------------
    def append(self, trial, choice: str, *, response_s: float, participant: str = "") -> dict:
        """Record one answer (one committed transaction before returning); returns the row written.

        A trial already answered by this participant is refused (answers are never counted twice)."""
        if not all(hasattr(trial, a) for a in ("index", "kind", "question", "key", "info", "correct")):
            raise WrongTypeError(f"trial is a {type(trial).__name__}: pass a Trial (build_trials / trials_from_result)")
        if not isinstance(choice, str) or choice not in ("A", "B"):
            raise BadInputError(f"choice={choice!r:.60}: answer 'A' or 'B'")
        participant = _participant(participant)
        response_s = finite_float(response_s, "response_s", low=0.0)
        info = trial.info
        row = dict(time_unix=round(time.time(), 3), participant=participant, trial=int(trial.index), kind=trial.kind,
                   question=trial.question, choice=choice, hit=choice == trial.correct,
                   response_s=round(response_s, 3), steered=trial.key["steered"], x=trial.key.get("x", ""),
                   target=_plain(info.get("target", "")), method=_plain(info.get("method", "")),
                   layer=_plain(info.get("layer", "")), strength=_plain(info.get("strength", "")),
                   item=_plain(info.get("item", "")), answer_id=uuid.uuid4().hex)
        with self._transaction() as db:
            pid = _participant_id(db, participant)
            old = db.execute("SELECT choice FROM trials WHERE participant_id = ? AND trial = ?",
                             (pid, row["trial"])).fetchone()
            if old is not None:
                raise BadInputError(f"participant {participant!r} already answered trial {row['trial']} ({old[0]!r}) "
                                    f"in {self.db_path}: a reopened test resumes at next_trial(); use another "
                                    "participant name for a second listener")
            _insert(db, pid, row)
        self._export()
        return row

    def _export(self) -> None:
        """Rewrite the .csv / .jsonl export beside the database (atomically: a reader never sees half a file)."""
        if self.export is None:
            return
        if self.export.suffix.lower() == ".csv":
            self.to_csv(self.export)
        else:
            text = "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in self.read())
            atomic_write(self.export, lambda f: f.write(text.encode("utf-8")))

    def _import_once(self, path: Path) -> None:
        key = f"imported:{path.name}"
        with self._transaction() as db:
            if db.execute("SELECT 1 FROM meta WHERE key = ?", (key,)).fetchone():
                return
            rows, problems = read_legacy(path) if path.exists() else ([], [])
            added, repeated = _insert_rows(db, rows, source=path.name, rename=False, repeats="keep_first")
            db.execute("INSERT INTO meta VALUES (?, ?)", (key, str(time.time())))
        if not (added or repeated or problems):
            return
        note = f"; {len(problems)} unreadable lines skipped ({'; '.join(problems[:3])})" if problems else ""
        note += (f"; {repeated} repeated answers to trials already answered (a test reopened at trial 0) kept out: "
                 "the first answer to each trial counts") if repeated else ""
        warnings.warn(f"imported {added} answers from {path} into {self.db_path} (once): the database is now the "
                      f"record and {path.name} is rewritten from it after each answer{note}", stacklevel=3)
        self._export()

    # -- reading -------------------------------------------------------------------------------------
    def read(self, participant: str | None = None) -> list[dict]:
        """Every answer (or one participant's), oldest first: dicts with the columns of `FIELDS`."""
        query = ("SELECT p.name, t.* FROM trials t JOIN participants p ON p.id = t.participant_id"
                 + (" WHERE p.name = ?" if participant is not None else "") + " ORDER BY t.time_unix, t.rowid")
        with self._reading() as db:
            db.row_factory = sqlite3.Row
            cursor = db.execute(query, (_participant(participant),) if participant is not None else ())
            out = []
            for r in cursor.fetchall():
                row = {k: r[k] for k in ("time_unix",)}
                row["participant"] = r["name"]
                row.update({k: r[k] for k in _TRIAL_COLUMNS})
                row["hit"], row["answer_id"] = bool(r["hit"]), r["answer_id"]
                out.append(row)
        return out

    def participants(self) -> list[str]:
        with self._reading() as db:
            return [r[0] for r in db.execute("SELECT name FROM participants ORDER BY id")]

    def next_trial(self, participant: str, trials) -> int:
        """The first trial `participant` has not answered (len(trials) when all are); refuses answers given to
        another set of trials (the same index asking something else)."""
        participant = _participant(participant)
        trials = trial_list(trials)
        answered = {r["trial"]: r for r in self.read(participant)}
        for index, row in answered.items():
            if index >= len(trials) or (row["question"], row["kind"], str(row["item"])) != (
                    trials[index].question, trials[index].kind, str(_plain(trials[index].info.get("item", "")))):
                raise BadInputError(f"{self.db_path} holds answers of participant {participant!r} to another set of "
                                    f"trials (trial {index} differs): use a new answers file, or another participant "
                                    "name")
        return next((i for i in range(len(trials)) if i not in answered), len(trials))

    def to_frame(self):
        """Every answer as a pandas DataFrame (one row per answer, the columns of `FIELDS`)."""
        import pandas as pd
        return pd.DataFrame(self.read(), columns=list(FIELDS) + ["answer_id"])

    def to_csv(self, path) -> Path:
        """Write every answer to a CSV file (written to a temp file and renamed); returns its path."""
        if not isinstance(path, (str, os.PathLike)) or not str(path):
            raise WrongTypeError(f"path={path!r:.60}: pass a file path such as 'answers.csv'")
        if Path(path).is_dir():
            raise BadInputError(f"{path} is a folder: pass a file path such as 'answers.csv'")
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, fieldnames=list(FIELDS) + ["answer_id"], lineterminator="\n")
        writer.writeheader()
        writer.writerows(self.read())
        atomic_write(Path(path), lambda f: f.write(buffer.getvalue().encode("utf-8")))
        return Path(path)


def merge_answers(paths, out, *, rename: bool = False) -> AnswerLog:
    """Merge answer files (one database per machine, or .csv / .jsonl files of earlier versions) into `out`.

    The same answer met twice (a file merged again) is kept once. Two files holding different answers of one
    participant to one trial are refused naming both, unless rename=True, which names each participant
    "<name>@<file stem>". All or nothing: one transaction.

        >>> import os, tempfile
        >>> from workbench.analysis.evaluation.listening import build_trials
        >>> trials, folder = build_trials([("s", "t", dict(target="rock"))], seed=0), tempfile.mkdtemp()
        >>> for machine in ("pc1", "pc2"):
        ...     _ = AnswerLog(os.path.join(folder, machine + ".sqlite")).append(trials[0], "A", response_s=1,
        ...                                                                   participant=machine)
        >>> merged = merge_answers([os.path.join(folder, m + ".sqlite") for m in ("pc1", "pc2")],
        ...                        os.path.join(folder, "all.sqlite"))
        >>> merged.participants()
        ['pc1', 'pc2']
    """
    if isinstance(paths, (str, bytes, os.PathLike)) or not hasattr(paths, "__iter__"):
        raise WrongTypeError(f"paths={paths!r:.60}: pass a list of answer files, e.g. ['pc1.sqlite', 'pc2.sqlite']")
    paths = [Path(p) if isinstance(p, (str, os.PathLike)) else p for p in paths]
    for p in paths:
        if not isinstance(p, Path):
            raise WrongTypeError(f"answer file {p!r:.60}: pass paths")
        if not p.is_file():
            raise BadInputError(f"no answers file at {p}: pass existing files (copied from each machine)")
    if not isinstance(rename, bool):
        raise WrongTypeError(f"rename={rename!r:.60}: pass True or False")
    target = AnswerLog(out)
    sources = [(p, read_answers(p)) for p in paths]
    with target._transaction() as db:
        for path, rows in sources:
            _insert_rows(db, rows, source=path.name, rename=rename, repeats="error")
    target._export()
    return target


def read_answers(path) -> list[dict]:
    """The answers in one file, read without changing it: an SQLite database, or a .csv / .jsonl of earlier
    versions (unreadable lines skipped with a warning)."""
    if not isinstance(path, (str, os.PathLike)) or not str(path):
        raise WrongTypeError(f"path={path!r:.60}: pass an answers file path")
    path = Path(path)
    if not path.is_file():
        raise BadInputError(f"no answers file at {path}: pass an existing .sqlite, .csv or .jsonl file")
    if path.suffix.lower() in LEGACY_SUFFIXES:
        rows, problems = read_legacy(path)
        if problems:
            warnings.warn(f"{path}: {len(problems)} unreadable lines skipped ({'; '.join(problems[:3])})",
                          stacklevel=2)
        return rows
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30.0)
        db.row_factory = sqlite3.Row
        try:
            found = db.execute("SELECT value FROM meta WHERE key = 'format'").fetchone()
            if found is None or found[0] != FORMAT:
                raise BadInputError(f"{path} holds answers of format {found and found[0]!r}; this workbench reads "
                                    f"{FORMAT!r}")
            rows = [dict(r) for r in db.execute("SELECT p.name AS participant, t.* FROM trials t JOIN participants p "
                                                "ON p.id = t.participant_id ORDER BY t.time_unix, t.rowid")]
        finally:
            db.close()
    except sqlite3.DatabaseError as error:
        raise CorruptFileError(path, f"is not an answers database ({error}): leave it out of the merge, or move it "
                               "away") from None
    for row in rows:
        row.pop("participant_id", None)
        row["hit"] = bool(row["hit"])
    return rows


def read_legacy(path: Path) -> tuple[list[dict], list[str]]:
    """(rows, problems) of a .csv / .json / .jsonl answers file written by an earlier version."""
    text = Path(path).read_bytes().decode("utf-8", errors="replace")
    problems, rows = [], []
    if Path(path).suffix.lower() == ".csv":
        records = list(csv.reader(io.StringIO(text, newline="")))
        header = list(FIELDS)
        start = 0
        if records and records[0][:len(FIELDS)] == list(FIELDS):
            header, start = records[0], 1
        elif records and len(records[0]) in (len(FIELDS), len(FIELDS) + 1):
            problems.append("the header line is missing: read with the current columns")
            header = list(FIELDS) + (["answer_id"] if len(records[0]) > len(FIELDS) else [])
        for number, record in enumerate(records[start:], start=start + 1):
            if not record or record == header or record[:len(FIELDS)] == list(FIELDS):
                continue  # a blank line, or a second header (two writers started the file at once)
            if len(record) != len(header):
                problems.append(f"line {number}: {len(record)} fields, not {len(header)} (torn or edited)")
                continue
            row = dict(zip(header, record))
            row.update({k: _number(row[k]) for k in ("layer", "strength", "item") if k in row})
            rows.append((number, row))
    else:
        for number, line in enumerate(io.StringIO(text, newline=""), start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                problems.append(f"line {number}: not JSON (torn or edited)")
                continue
            if not isinstance(record, dict):
                problems.append(f"line {number}: not an answer")
                continue
            rows.append((number, record))
    out = []
    for number, record in rows:
        try:
            hit = record["hit"]
            if isinstance(hit, str):
                if hit not in ("True", "False"):
                    raise ValueError(f"hit={hit!r}")
                hit = hit == "True"
            row = dict(record, time_unix=float(record["time_unix"]), trial=int(record["trial"]),
                       response_s=float(record["response_s"]), hit=bool(hit),
                       participant=str(record.get("participant", "")), choice=str(record["choice"]))
            if row["choice"] not in ("A", "B") or row["trial"] < 0 or not row["response_s"] >= 0:
                raise ValueError(f"choice={row['choice']!r}, trial={row['trial']}, response_s={row['response_s']}")
        except (KeyError, ValueError, TypeError) as error:
            problems.append(f"line {number}: {type(error).__name__} {error}")
            continue
        out.append(row)
    return out, problems


def trial_list(trials) -> list:
    """A non-empty list of `Trial` objects (what `build_trials` returns)."""
    if isinstance(trials, (str, bytes, dict)) or not hasattr(trials, "__iter__"):
        raise WrongTypeError(f"trials={trials!r:.60}: pass the list build_trials / trials_from_result returns")
    trials = list(trials)
    if not trials:
        raise EmptyInputError("no trials: build them with workbench.analysis.evaluation.listening.build_trials")
    for i, trial in enumerate(trials):
        if not all(hasattr(trial, a) for a in ("index", "kind", "question", "clips", "key", "info")):
            raise WrongTypeError(f"trials[{i}] is a {type(trial).__name__}, not a Trial: use build_trials")
    return trials


def _number(text: str):
    """'1' -> 1, '8.0' -> 8.0, anything else as it is (CSV cells are text)."""
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            continue
    return text


def _participant(value) -> str:
    if not isinstance(value, str):
        raise WrongTypeError(f"participant={value!r:.60} is a {type(value).__name__}: pass the listener's name as text")
    _text(value, "participant")
    return value


def _text(value: str, name: str) -> str:
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise BadInputError(f"{name}={value!r:.60} is not valid Unicode text (a lone surrogate): pass the text as "
                            "typed") from None
    return value


def _plain(value):
    """A value SQLite stores as it is: numbers and text (numpy scalars become Python numbers)."""
    if hasattr(value, "item") and getattr(value, "ndim", 0) == 0:
        value = value.item()
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


def _participant_id(db, name: str) -> int:
    db.execute("INSERT OR IGNORE INTO participants (name, created_unix) VALUES (?, ?)", (name, time.time()))
    return db.execute("SELECT id FROM participants WHERE name = ?", (name,)).fetchone()[0]


def _insert(db, pid: int, row: dict) -> None:
    columns = ["participant_id", "answer_id", "time_unix", *_TRIAL_COLUMNS]
    values = [pid, row["answer_id"], row["time_unix"]] + [_plain(row.get(k, "")) for k in _TRIAL_COLUMNS]
    for name, value in zip(columns, values):
        if isinstance(value, str):
            _text(value, name)
    values[columns.index("hit")] = int(bool(row["hit"]))
    db.execute(f"INSERT INTO trials ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values)


def _answer_id(row: dict) -> str:
    if row.get("answer_id"):
        return str(row["answer_id"])
    key = json.dumps([row.get(k) for k in FIELDS], default=str, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()[:32]


def _insert_rows(db, rows, *, source: str, rename: bool, repeats: str) -> tuple[int, int]:
    """(added, repeated) after inserting rows; repeats: 'keep_first' or 'error' for a trial answered twice."""
    added = repeated = 0
    for row in rows:
        row = dict(row, answer_id=_answer_id(row))
        if db.execute("SELECT 1 FROM trials WHERE answer_id = ?", (row["answer_id"],)).fetchone():
            continue  # this very answer is already here (a file merged twice)
        name = f"{row['participant']}@{Path(source).stem}" if rename else row["participant"]
        pid = _participant_id(db, name)
        old = db.execute("SELECT choice, answer_id FROM trials WHERE participant_id = ? AND trial = ?",
                         (pid, row["trial"])).fetchone()
        if old is not None:
            if repeats == "keep_first":
                repeated += 1
                continue
            raise BadInputError(f"participant {name!r} answered trial {row['trial']} in two files ({source} and one "
                                "merged before it): give each machine's listeners distinct names, or merge with "
                                "rename=True (names become '<name>@<file>')")
        _insert(db, pid, row)
        added += 1
    return added, repeated
