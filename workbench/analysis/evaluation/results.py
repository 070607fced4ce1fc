"""An evaluation grid on disk: append-only and crash-safe, so a rerun skips what is done.

Folder layout: ``plan.json`` (the settings every cell shares, checked on resume), ``cells/<id>.npz``
(each cell's codes and codec embeddings, written to a temp file and renamed), and ``results.jsonl``
(one line per finished cell, appended and fsynced after its arrays: the commit point; a torn last
line from a crash is ignored). `EvaluationResult` reads it back as a tidy DataFrame.

    >>> import tempfile, numpy as np
    >>> log = ResultsLog(tempfile.mkdtemp())
    >>> log.commit("a|L1|s0", "f0", [dict(item=0, x=1.0)], codes=np.zeros((1, 4, 5), np.int16),
    ...            embeddings=np.zeros((1, 3)))
    >>> sorted(log.done()), EvaluationResult(log.folder).table["x"].tolist()
    (['a|L1|s0'], [1.0])
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import numpy as np

from workbench.errors import BadInputError, CorruptFileError, WorkbenchError

__all__ = ["ResultsLog", "EvaluationResult", "GridMismatchError"]

RESULTS = "results.jsonl"
PLAN = "plan.json"


class GridMismatchError(WorkbenchError, ValueError):
    """A folder holds results of another grid (other settings, or a method whose directions changed)."""


def _atomic_write(path: Path, write) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "wb") as f:
        write(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def cell_file(cell: str) -> str:
    return hashlib.sha1(cell.encode()).hexdigest()[:16] + ".npz"


class ResultsLog:
    """The append-only log of one grid folder (see the module docstring)."""

    def __init__(self, folder):
        self.folder = Path(folder)
        (self.folder / "cells").mkdir(parents=True, exist_ok=True)

    def check_plan(self, plan: dict) -> None:
        """Write plan.json on first use; afterwards refuse a different plan (what to do is in the message)."""
        path = self.folder / PLAN
        text = json.dumps(plan, sort_keys=True, default=str)
        if not path.exists():
            _atomic_write(path, lambda f: f.write(text.encode()))
            return
        old = json.loads(path.read_text())
        if old != json.loads(text):
            diff = sorted(k for k in set(old) | set(plan) if old.get(k) != json.loads(text).get(k))
            raise GridMismatchError(f"{self.folder} holds an evaluation with other settings ({', '.join(diff)} "
                                    "differ): pass a new folder, or the same settings to resume it")

    def records(self) -> list[dict]:
        path = self.folder / RESULTS
        if not path.exists():
            return []
        out = []
        lines = path.read_bytes().split(b"\n")
        for i, line in enumerate(lines):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                if i == len(lines) - 1 or not any(x.strip() for x in lines[i + 1:]):
                    break  # a torn last line: the cell was not committed
                raise CorruptFileError(path, f"line {i + 1} is not JSON: fix or delete that line") from None
            if (self.folder / "cells" / cell_file(record["cell"])).exists():
                out.append(record)
        return out

    def done(self) -> dict[str, str]:
        """{cell id: fingerprint} of the committed cells."""
        return {r["cell"]: r["fingerprint"] for r in self.records()}

    def commit(self, cell: str, fingerprint: str, rows: list[dict], *, codes, embeddings) -> None:
        """Write a cell's arrays, then append its line (fsynced): after a crash it is either done or absent."""
        codes, embeddings = np.asarray(codes), np.asarray(embeddings, np.float32)
        _atomic_write(self.folder / "cells" / cell_file(cell),
                      lambda f: np.savez(f, codes=codes, embeddings=embeddings))
        line = json.dumps(dict(cell=cell, fingerprint=fingerprint, rows=rows), default=_json_default) + "\n"
        path = self.folder / RESULTS
        if path.exists() and path.stat().st_size:
            data = path.read_bytes()
            if not data.endswith(b"\n"):  # a torn line from a crash (never committed): cut it off
                with open(path, "r+b") as f:
                    f.truncate(data.rfind(b"\n") + 1)
        with open(path, "a", encoding="utf-8") as f:
            f.write(line)
            f.flush()
            os.fsync(f.fileno())

    def arrays(self, cell: str) -> dict:
        with np.load(self.folder / "cells" / cell_file(cell)) as data:
            return {k: data[k] for k in data.files}


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    return str(value)


class EvaluationResult:
    """A grid read back from its folder: `table` (one row per clip), `arrays(cell)`, and `clip(i)` / `twin(i)`.

    handle: the model that made the clips (needed only to decode codes into audio for listening).
    """

    def __init__(self, folder, handle=None):
        self.log = ResultsLog(folder)
        self.folder = self.log.folder
        self.handle = handle
        self.reload()

    def reload(self) -> EvaluationResult:
        import pandas as pd
        rows = [dict(row, row_in_cell=i) for r in self.log.records() for i, row in enumerate(r["rows"])]
        self.table = pd.DataFrame(rows)
        plan_path = self.folder / PLAN
        self.plan = json.loads(plan_path.read_text()) if plan_path.exists() else {}
        return self

    def __len__(self) -> int:
        return len(self.table)

    def __repr__(self) -> str:
        cells = self.table["cell"].nunique() if len(self.table) else 0
        return f"EvaluationResult({str(self.folder)!r}: {len(self.table)} clips in {cells} cells)"

    def arrays(self, cell: str) -> dict:
        """{'codes': (N, K, T), 'embeddings': (N, D)} of one cell, rows in the order of its table rows."""
        return self.log.arrays(cell)

    def embeddings(self, mask) -> np.ndarray:
        """Codec embeddings of the table rows selected by a boolean mask (or index list)."""
        rows = self.table[mask] if not isinstance(mask, list) else self.table.iloc[mask]
        return np.stack([self.arrays(r.cell)["embeddings"][r.row_in_cell] for r in rows.itertuples()])

    def _row(self, index: int):
        if not 0 <= int(index) < len(self.table):
            raise BadInputError(f"row {index} is out of range: this result has {len(self.table)} rows (0-"
                                f"{len(self.table) - 1})")
        return self.table.iloc[int(index)]

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

        from workbench.runtime.clip import Clip
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
