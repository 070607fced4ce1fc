"""An evaluation grid on disk: append-only, checksummed and crash-safe, so a rerun skips what is done.

Folder layout (format ``workbench.evaluation/2``):

- ``plan.json``: the settings every cell shares and the readers (judge, probe, CLAP) the clips were
  read with; checked on resume.
- ``results.jsonl``: first a ``{"plan": ...}`` line (a second copy of the plan: losing or replacing
  ``plan.json`` cannot let another plan in), then one line per finished cell with its rows, the
  SHA-256 of its arrays file, the hash of the plan it belongs to and a checksum of the line
  itself. A cell is committed when its
  line is appended and fsynced after its arrays; a torn last line from a crash is ignored.
- ``cells/<id>.npz``: each cell's codes and codec embeddings (temp file, fsync, rename).
- ``quarantine/<time>/``: what `ResultsLog.repair()` moved aside (cells that fail their checksum,
  unreadable lines, a corrupt ``plan.json``). Nothing is ever deleted; the next run regenerates the
  cells that were moved.

Grids of format ``workbench.evaluation/1`` (no checksums, no plan copy) still open as they are; the
first resume upgrades their ``plan.json`` once, with a warning.

    >>> import tempfile, numpy as np
    >>> log = ResultsLog(tempfile.mkdtemp())
    >>> log.commit("a|L1|s0", "f0", [dict(item=0, x=1.0)], codes=np.zeros((1, 4, 5), np.int16),
    ...            embeddings=np.zeros((1, 3)))
    >>> sorted(log.done()), EvaluationResult(log.folder).table["x"].tolist(), log.verify().sound
    (['a|L1|s0'], [1.0], True)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import shutil
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

from workbench.data.store_io import store_lock
from workbench.errors import BadInputError, CorruptFileError, EmptyInputError, WorkbenchError, WrongTypeError
from workbench.runtime.clip import Clip
from workbench.validation import integer

__all__ = ["ResultsLog", "EvaluationResult", "GridMismatchError", "GridReport", "FORMAT"]

RESULTS = "results.jsonl"
PLAN = "plan.json"
FORMAT = "workbench.evaluation/2"
READABLE_FORMATS = ("workbench.evaluation/1", FORMAT)
REPAIR_FIX = ("run ResultsLog(folder).repair() (it moves bad cells to quarantine/, deleting nothing), then run the "
              "grid again")


class GridMismatchError(WorkbenchError, ValueError):
    """A folder holds results of another grid (other settings, readers, or a method whose directions changed)."""


def _fsync_dir(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: Path, write) -> None:
    """Write `path` through ``write(binary_file)`` into a temporary name, fsync, rename, fsync the folder:
    a kill leaves the old file or the new one, never a torn one."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(path.parent)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def cell_file(cell: str) -> str:
    return hashlib.sha1(cell.encode()).hexdigest()[:16] + ".npz"


def plan_hash(plan: dict) -> str:
    """A short hash of the settings every cell shares (the readers and the format not included)."""
    shared = {k: v for k, v in plan.items() if k not in ("format", "readers")}
    return hashlib.sha256(json.dumps(shared, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _folder(folder) -> Path:
    if not isinstance(folder, (str, os.PathLike)) or not str(folder):
        raise WrongTypeError(f"folder={folder!r:.60}: pass the grid's folder as a path (str or pathlib.Path)")
    if "\0" in str(folder):
        raise BadInputError(f"folder={str(folder)!r:.60} holds a NUL character: pass a plain path")
    return Path(folder)


@dataclasses.dataclass
class GridReport:
    """What `verify()` found (and `repair()` did): committed cells that are sound, and what is wrong."""

    ok: list = dataclasses.field(default_factory=list)
    corrupt: dict = dataclasses.field(default_factory=dict)  # cell id or "results.jsonl line N" -> why
    uncommitted: list = dataclasses.field(default_factory=list)  # array files without a committed line
    plan_problem: str = ""
    actions: list = dataclasses.field(default_factory=list)

    @property
    def sound(self) -> bool:
        return not self.corrupt and not self.plan_problem

    def __str__(self) -> str:
        text = f"{len(self.ok)} cells ok, {len(self.corrupt)} corrupt, {len(self.uncommitted)} uncommitted array files"
        return text + (f"; plan: {self.plan_problem}" if self.plan_problem else "")


@dataclasses.dataclass
class _Scan:
    plan: dict | None  # the plan copy in results.jsonl
    good: dict  # cell -> record (the last one whose checksum matches its file)
    bad: dict  # cell or line label -> why


class ResultsLog:
    """The append-only log of one grid folder (see the module docstring)."""

    def __init__(self, folder, *, create: bool = True):
        self.folder = _folder(folder)
        if self.folder.exists() and not self.folder.is_dir():
            raise BadInputError(f"{self.folder} is a file, not a folder: pass a folder for the grid")
        if not create and not ((self.folder / RESULTS).exists() or (self.folder / PLAN).exists()):
            raise BadInputError(f"no evaluation grid in {self.folder}: check the path, or run run_grid(handle, plan, "
                                "folder) first")
        try:
            (self.folder / "cells").mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise BadInputError(f"cannot make the grid folder {self.folder} ({error.strerror}): pass a folder on a "
                                "writable disk, whose parents are folders") from None

    # -- the plan ------------------------------------------------------------------------------------
    def read_plan(self) -> dict | None:
        """plan.json (None when absent); CorruptFileError naming the fix when it cannot be read."""
        path = self.folder / PLAN
        if not path.exists():
            return None
        fix = ("run ResultsLog(folder).repair() to restore it from the copy in results.jsonl" if self._scan().plan
               else "move it away and run the grid again with the same plan (the twins' prompts and seeds are "
                    "checked against it)")
        try:
            plan = json.loads(path.read_bytes())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise CorruptFileError(path, f"is not JSON (damaged or edited by hand): {fix}") from None
        if not isinstance(plan, dict):
            raise CorruptFileError(path, f"holds a JSON {type(plan).__name__}, not the grid's settings: {fix}")
        if plan.get("format") not in READABLE_FORMATS:
            if isinstance(plan.get("format"), str) and plan["format"].startswith("workbench.evaluation/"):
                raise GridMismatchError(f"{self.folder} holds a grid of format {plan['format']!r}; this workbench "
                                        f"reads {READABLE_FORMATS}: use a newer workbench, or a new folder")
            raise CorruptFileError(path, f"has no valid 'format' (found {plan.get('format')!r}): {fix}")
        return plan

    def recorded_plan(self) -> dict | None:
        """The plan as the grid recorded it: plan.json, else its copy in results.jsonl (None for a new folder)."""
        return self.read_plan() or self._scan().plan

    def check_plan(self, plan: dict, readers: dict | None = None) -> None:
        """Record the plan on first use; afterwards refuse another plan or other readers, naming the difference.

        plan: `GridPlan.shared(handle, settings)`; readers: what reads the clips (`grid` describes them).
        """
        if not isinstance(plan, dict) or not isinstance(readers, (dict, type(None))):
            raise WrongTypeError("check_plan takes the dicts GridPlan.shared(handle, settings) and the readers' "
                                 "description: run_grid makes them")
        current = dict(plan, format=FORMAT, readers=readers or {})
        scan = self._scan()
        on_disk = self.read_plan()
        if on_disk is not None and scan.plan is not None and plan_hash(on_disk) != plan_hash(scan.plan):
            raise GridMismatchError(
                f"{self.folder / PLAN} differs from the plan recorded in {RESULTS} "
                f"({', '.join(_diff(scan.plan, on_disk))} differ): plan.json was replaced or edited; move it away "
                "and run the same call again (it is restored from results.jsonl)")
        recorded = on_disk or scan.plan
        if recorded is None:
            if scan.good:  # a format-1 grid that lost plan.json: its twins still name its items
                self._check_items_against_twins(current, scan)
                self._check_readers({}, current, scan)
            self._write_plan(current, record=True)
            return
        differ = _diff(recorded, current)
        if differ:
            raise GridMismatchError(f"{self.folder} holds an evaluation with other settings ({', '.join(differ)} "
                                    f"differ{_item_detail(recorded, current)}): pass a new folder, or the same "
                                    "settings to resume it")
        foreign = sorted(c for c, r in scan.good.items() if r.get("plan") not in (None, plan_hash(current)))
        if foreign:
            raise GridMismatchError(f"{self.folder} holds cells {foreign[:5]} of another plan: use a new folder, or "
                                    "move those cells away with ResultsLog(folder).repair()")
        self._check_readers(recorded, current, scan)
        if recorded.get("format") != FORMAT or on_disk is None or scan.plan is None:
            if recorded.get("format") != FORMAT:
                warnings.warn(f"{self.folder}: a grid of format {recorded.get('format')}; its plan.json is upgraded "
                              f"to {FORMAT} (the cells are read as they are)", stacklevel=3)
            elif on_disk is None:
                warnings.warn(f"{self.folder / PLAN} was missing: restored from the copy in {RESULTS}", stacklevel=3)
            self._write_plan(current, record=scan.plan is None)

    def _write_plan(self, plan: dict, *, record: bool) -> None:
        text = json.dumps(plan, sort_keys=True, default=str)
        atomic_write(self.folder / PLAN, lambda f: f.write(text.encode()))
        if record:
            self._append(json.dumps(dict(plan=plan), sort_keys=True, default=str))

    def _check_items_against_twins(self, current: dict, scan: _Scan) -> None:
        twin = scan.good.get("twin")
        if twin is None:
            return
        have = [(r.get("prompt"), r.get("target")) for r in twin["rows"]]
        want = [(i["prompt"], i["target"]) for i in current["items"]]
        seeds_have = [r.get("seed") for r in twin["rows"]]
        seeds_want = [i["seed"] for i in current["items"]]
        if have != want or seeds_have != seeds_want:
            k = next((k for k in range(min(len(have), len(want)))
                      if have[k] != want[k] or seeds_have[k] != seeds_want[k]), min(len(have), len(want)))
            raise GridMismatchError(
                f"{self.folder} lost plan.json, and its twin clips were made for other items (item {k}: "
                f"{_item_text(twin['rows'], k)} in the folder, {_item_text(current['items'], k)} here): pass a new "
                "folder, or the grid's own prompts, seeds and targets")

    def _check_readers(self, recorded: dict, current: dict, scan: _Scan) -> None:
        given = current["readers"]
        if "readers" in recorded:
            old = recorded["readers"]
            differ = [k for k in sorted(set(old) | set(given)) if old.get(k) != given.get(k)]
            if differ:
                detail = "; ".join(f"{k}: {_reader_text(old.get(k))} in the grid, {_reader_text(given.get(k))} here"
                                   for k in differ)
                raise GridMismatchError(f"{self.folder} was read with other readers ({detail}): pass the same "
                                        "judge=, probe=, probe_layer= and clap= to resume it, or use a new folder "
                                        "(one table must not mix readers)")
            return
        columns = {k for r in scan.good.values() for row in r["rows"] for k in row}  # format 1: what the rows hold
        for name in ("judge", "probe"):
            if (f"{name}_p_target" in columns) != (given.get(name) is not None) and scan.good:
                raise GridMismatchError(
                    f"{self.folder} was read {'with' if f'{name}_p_target' in columns else 'without'} a {name}, and "
                    f"this call reads {'with' if given.get(name) is not None else 'without'} one: pass the same "
                    f"{name}= to resume it, or use a new folder (one table must not mix readers)")

    # -- the cells -----------------------------------------------------------------------------------
    def _lines(self) -> list[tuple[int, bytes, bool]]:
        """(line number, bytes, is the torn last line) of results.jsonl."""
        path = self.folder / RESULTS
        if not path.exists():
            return []
        data = path.read_bytes()
        lines = data.split(b"\n")
        out = []
        for i, line in enumerate(lines):
            if line.strip():
                out.append((i + 1, line, i == len(lines) - 1))  # no newline after it: never committed
        return out

    def _scan(self) -> _Scan:
        plan, good, bad = None, {}, {}
        for number, line, torn in self._lines():
            if torn:
                continue
            try:
                record = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                bad[f"{RESULTS} line {number}"] = "not JSON"
                continue
            if isinstance(record, dict) and isinstance(record.get("plan"), dict) and "cell" not in record:
                plan = plan or record["plan"]
                continue
            if not (isinstance(record, dict) and isinstance(record.get("cell"), str)
                    and isinstance(record.get("rows"), list) and all(isinstance(r, dict) for r in record["rows"])
                    and isinstance(record.get("fingerprint"), str)):
                bad[f"{RESULTS} line {number}"] = "not a cell record"
                continue
            if "line_sha256" in record and _line_sha(record) != record["line_sha256"]:
                bad[f"{RESULTS} line {number}"] = (f"the line of cell {record['cell']!r} fails its checksum (edited "
                                                   "or damaged)")
                good.pop(record["cell"], None)
                continue
            good[record["cell"]] = record  # the latest line of a cell wins; checked below
        for cell, record in list(good.items()):
            path = self.folder / "cells" / cell_file(cell)
            problem = None
            if not path.exists():
                problem = "its arrays file is missing"
            elif "sha256" in record and _sha256(path) != record["sha256"]:
                problem = f"{path.name} fails its checksum (truncated or damaged)"
            elif "sha256" not in record and not _loads(path, len(record["rows"])):  # format 1: no checksum
                problem = f"{path.name} cannot be read"
            if problem:
                del good[cell]
                bad[cell] = problem
        return _Scan(plan, good, bad)

    def records(self) -> list[dict]:
        """The committed cells whose arrays are sound, in commit order."""
        return list(self._scan().good.values())

    def done(self) -> dict[str, str]:
        """{cell id: fingerprint} of the committed, sound cells."""
        return {c: r["fingerprint"] for c, r in self._scan().good.items()}

    def commit(self, cell: str, fingerprint: str, rows: list[dict], *, codes, embeddings, plan: str | None = None):
        """Write a cell's arrays, then append its line (fsynced): after a crash it is either done or absent."""
        codes, embeddings = np.asarray(codes), np.asarray(embeddings, np.float32)
        path = self.folder / "cells" / cell_file(cell)
        atomic_write(path, lambda f: np.savez(f, codes=codes, embeddings=embeddings))
        record = dict(cell=cell, fingerprint=fingerprint, sha256=_sha256(path), rows=rows)
        if plan is not None:
            record["plan"] = plan
        record = json.loads(json.dumps(record, default=_json_default))  # as it will read back
        record["line_sha256"] = _line_sha(record)
        self._append(json.dumps(record))

    def _append(self, line: str) -> None:
        path = self.folder / RESULTS
        if path.exists() and path.stat().st_size:
            data = path.read_bytes()
            if not data.endswith(b"\n"):  # a torn line from a crash (never committed): cut it off
                with open(path, "r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    def arrays(self, cell: str) -> dict:
        if not isinstance(cell, str):
            raise WrongTypeError(f"cell={cell!r:.60}: pass a cell id such as 'twin' (the table's 'cell' column)")
        path = self.folder / "cells" / cell_file(cell)
        if not path.exists():
            raise BadInputError(f"no cell {cell!r} in {self.folder}: it has {sorted(self.done())}")
        try:
            with np.load(path) as data:
                return {k: data[k] for k in data.files}
        except Exception as error:  # zipfile / pickle / value errors of a damaged file
            raise CorruptFileError(path, f"cannot be read ({type(error).__name__}): {REPAIR_FIX}") from None

    # -- integrity -----------------------------------------------------------------------------------
    def verify(self, full: bool = False) -> GridReport:
        """Check every committed cell's checksum (full: also load its arrays and count its rows)."""
        scan = self._scan()
        report = GridReport(corrupt=dict(scan.bad))
        for cell, record in scan.good.items():
            if full and not _loads(self.folder / "cells" / cell_file(cell), len(record["rows"])):
                report.corrupt[cell] = f"{cell_file(cell)} does not hold {len(record['rows'])} rows of codes"
            else:
                report.ok.append(cell)
        known = {cell_file(c) for c in scan.good} | {cell_file(c) for c in scan.bad}
        report.uncommitted = sorted(p.name for p in (self.folder / "cells").glob("*.npz") if p.name not in known)
        try:
            self.read_plan()  # a grid of a newer format raises here: repair must not touch it
        except CorruptFileError as error:
            report.plan_problem = str(error)
        return report

    def repair(self, full: bool = False) -> GridReport:
        """Move bad cells (and a corrupt plan.json) to quarantine/ and rewrite results.jsonl without them.

        Nothing is deleted: the old results.jsonl and every moved file are kept under quarantine/<time>/.
        The next `run_grid` with the same plan regenerates the moved cells."""
        with store_lock(self.folder):
            report = self.verify(full)
            stash = self.folder / "quarantine" / (time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6])

            def move(path: Path, why: str) -> None:
                stash.mkdir(parents=True, exist_ok=True)
                target = stash / path.name
                shutil.move(str(path), str(target))
                report.actions.append(f"moved {path.name} to {target}: {why}")

            scan = self._scan()
            bad_cells = [c for c in report.corrupt if not c.startswith(RESULTS)]
            for cell in bad_cells:
                path = self.folder / "cells" / cell_file(cell)
                if path.exists():
                    move(path, report.corrupt[cell])
            for name in report.uncommitted:
                move(self.folder / "cells" / name, "no committed line names it (a run stopped before its commit)")
            if report.plan_problem and (self.folder / PLAN).exists():  # only a CorruptFileError sets it
                move(self.folder / PLAN, report.plan_problem)
            if report.corrupt or report.plan_problem:
                results = self.folder / RESULTS
                if results.exists():
                    stash.mkdir(parents=True, exist_ok=True)
                    shutil.copy2(results, stash / RESULTS)
                keep = [] if scan.plan is None else [json.dumps(dict(plan=scan.plan), sort_keys=True, default=str)]
                keep += [json.dumps(r, default=_json_default) for c, r in scan.good.items() if c not in report.corrupt]
                atomic_write(results, lambda f: f.write("".join(line + "\n" for line in keep).encode()))
                report.actions.append(f"rewrote {RESULTS} with the {len(keep)} sound lines (the old one is in {stash})")
            if not (self.folder / PLAN).exists() and scan.plan is not None:
                self._write_plan(scan.plan, record=False)
                report.actions.append(f"restored {PLAN} from the copy in {RESULTS}")
            report.ok = [c for c in report.ok if c not in report.corrupt]
            return report


def _line_sha(record: dict) -> str:
    body = {k: v for k, v in record.items() if k != "line_sha256"}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:16]


def _loads(path: Path, n_rows: int) -> bool:
    try:
        with np.load(path) as data:
            return "codes" in data.files and "embeddings" in data.files and len(data["codes"]) == n_rows \
                and len(data["embeddings"]) == n_rows
    except Exception:  # any damage: the file is not what was committed
        return False


def _diff(old: dict, new: dict) -> list[str]:
    keys = set(old) | set(new)
    return sorted(k for k in keys if k not in ("format", "readers") and old.get(k) != new.get(k))


def _item_text(items, k: int) -> str:
    if k >= len(items):
        return "no item"
    i = items[k]
    return f"prompt {i.get('prompt')!r} seed {i.get('seed')} target {i.get('target')!r}"


def _item_detail(old: dict, new: dict) -> str:
    a, b = old.get("items") or [], new.get("items") or []
    if a == b:
        return ""
    if len(a) != len(b):
        return f"; {len(a)} items in the grid, {len(b)} here"
    k = next(k for k in range(len(a)) if a[k] != b[k])
    return f"; item {k}: {_item_text(a, k)} in the grid, {_item_text(b, k)} here"


def _reader_text(value) -> str:
    if value is None:
        return "none"
    return value.get("name", str(value)) if isinstance(value, dict) else str(value)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class EvaluationResult:
    """A grid read back from its folder: `table` (one row per clip), `arrays(cell)`, and `clip(i)` / `twin(i)`.

    handle: the model that made the clips (needed only to decode codes into audio for listening).
    Cells that fail their checksum are left out with a warning (`ResultsLog.repair()`, then rerun the grid).
    """

    def __init__(self, folder, handle=None):
        self.log = ResultsLog(folder, create=False)
        self.folder = self.log.folder
        self.handle = handle
        self.reload()

    def reload(self) -> EvaluationResult:
        import pandas as pd
        scan = self.log._scan()
        bad = sorted(k for k in scan.bad)
        if bad:
            warnings.warn(f"{self.folder}: {len(bad)} damaged cells or lines are left out ({', '.join(bad[:5])}): "
                          f"{REPAIR_FIX}", stacklevel=2)
        rows = [dict(row, row_in_cell=i) for r in scan.good.values() for i, row in enumerate(r["rows"])]
        self.table = pd.DataFrame(rows)
        try:
            self.plan = self.log.read_plan() or scan.plan or {}
        except WorkbenchError:
            self.plan = scan.plan or {}
        return self

    def __len__(self) -> int:
        return len(self.table)

    def verify(self, full: bool = False) -> GridReport:
        """`ResultsLog.verify`: every committed cell's checksum (full: its arrays loaded and counted too)."""
        return self.log.verify(full)

    def repair(self, full: bool = False) -> GridReport:
        """`ResultsLog.repair`: bad cells moved to quarantine/ (nothing deleted); the table is read again."""
        report = self.log.repair(full)
        self.reload()
        return report

    def __repr__(self) -> str:
        cells = self.table["cell"].nunique() if len(self.table) else 0
        return f"EvaluationResult({str(self.folder)!r}: {len(self.table)} clips in {cells} cells)"

    def arrays(self, cell: str) -> dict:
        """{'codes': (N, K, T), 'embeddings': (N, D)} of one cell, rows in the order of its table rows."""
        if not isinstance(cell, str):
            raise WrongTypeError(f"cell={cell!r}: pass a cell id such as 'twin' (the table's 'cell' column)")
        return self.log.arrays(cell)

    def embeddings(self, mask) -> np.ndarray:
        """Codec embeddings of the table rows selected by a boolean mask (or index list)."""
        try:
            rows = self.table[mask] if not isinstance(mask, list) else self.table.iloc[mask]
        except (KeyError, IndexError, ValueError, TypeError) as error:
            raise BadInputError(f"mask selects no rows of this result ({type(error).__name__}: {error}): pass a "
                                f"boolean mask of {len(self.table)} values or a list of row numbers") from None
        if not len(rows):
            raise EmptyInputError("mask selects no rows: select at least one row of the table")
        return np.stack([self.arrays(r.cell)["embeddings"][r.row_in_cell] for r in rows.itertuples()])

    def _row(self, index):
        index = integer(index, "index")
        if not 0 <= index < len(self.table):
            raise BadInputError(f"row {index} is out of range: this result has {len(self.table)} rows (0-"
                                f"{len(self.table) - 1})")
        return self.table.iloc[index]

    def twin_index(self, index: int) -> int:
        """The table row of the unsteered twin (same prompt and seed) of row `index`."""
        row = self._row(index)
        match = self.table.index[(self.table["kind"] == "twin") & (self.table["item"] == row["item"])]
        if not len(match):
            raise BadInputError(f"row {index} has no twin in this folder: run the grid to completion first")
        return int(self.table.index.get_loc(match[0]))

    def clip(self, index: int):
        """Row `index` as a `Clip` (decoded from its stored codes through the handle's codec)."""
        import torch

        if self.handle is None:
            raise BadInputError("decoding a clip needs the model: EvaluationResult(folder, handle=wb.load_model())")
        row = self._row(index)
        codes = torch.as_tensor(self.arrays(row["cell"])["codes"][int(row["row_in_cell"])].astype(np.int64))
        with torch.no_grad():
            wave = self.handle.model.audio_encoder.decode(codes[None, None].to(self.handle.device), [None])
        return Clip(wave.audio_values[0].float().cpu().numpy(), self.handle.sample_rate_hz, codes=codes.numpy(),
                    prompt=row["prompt"], seed=int(row["seed"]), model_id=self.handle.model_id,
                    label=str(row.get("method", "")))

    def twin(self, index: int):
        """The unsteered twin of row `index` as a `Clip`."""
        return self.clip(self.twin_index(index))
