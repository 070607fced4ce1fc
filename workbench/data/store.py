"""On-disk activation store: array shards + a JSON manifest, keyed by model and capture spec.

Layout of a store folder::

    manifest.json             # the commit point: model_id, spec, and the list of committed shards
    shards/<name>/resid.3.npy # pooled (n, W) per (site, layer); (n, 2, W) for rows="both" (cond, uncond)
    shards/<name>/steps.resid.3.npy + .offsets.npy   # opt-in per-step arrays, rows concatenated in time
    shards/<name>/audio.npy + audio_offsets.npy      # each row's audio (channels, samples), concatenated
    shards/<name>/rows.json   # one metadata dict per row (id, label, prompt, seed, ...)

A shard is written into a temporary folder and renamed into place; only then is the manifest
rewritten (temp file + os.replace). A crash at any moment leaves either the old manifest or the new
one, and never lists a half-written shard; leftovers are swept on the next write.

    >>> import numpy as np, tempfile
    >>> s = ActivationStore.create(tempfile.mkdtemp(), model_id="random/tiny@seed0", spec={"pooling": "mean"},
    ...                            spec_key="abc", keys=[("resid", 0)])
    >>> s.append({("resid", 0): np.ones((2, 4), np.float32)}, [{"id": "a", "label": "x"}, {"id": "b", "label": "y"}])
    >>> s.array("resid", 0).shape, s.labels()
    ((2, 4), ['x', 'y'])
"""
from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

import numpy as np

from workbench.errors import BadInputError, WorkbenchError

__all__ = ["ActivationStore", "StoreMismatchError", "StoreError", "array_hash"]

FORMAT = 1


class StoreError(WorkbenchError):
    """A store folder that cannot be used as asked."""


class StoreMismatchError(StoreError, ValueError):
    """The store was made by another model or capture spec."""


def array_hash(*arrays, extra=None) -> str:
    """Short content hash of arrays (shape, dtype and bytes) plus any JSON-able `extra`."""
    h = hashlib.sha256()
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.shape}{a.dtype}".encode())
        h.update(memoryview(a).cast("B"))
    if extra is not None:
        h.update(json.dumps(extra, sort_keys=True, default=str).encode())
    return h.hexdigest()[:16]


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    with open(tmp, "w") as f:
        json.dump(obj, f, default=str)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _save_npy(folder: Path, name: str, array: np.ndarray) -> None:
    with open(folder / name, "wb") as f:
        np.save(f, np.ascontiguousarray(array))
        f.flush()
        os.fsync(f.fileno())


def _key_name(site: str, layer: int) -> str:
    return f"{site}.{int(layer)}"


class ActivationStore:
    """Read (and append to) a store folder. Open with `ActivationStore(path)`; `collect` creates them.

    `array(site, layer)` memory-maps the layer (one file once compacted), `table` is a list of
    row dicts, `labels()` the label column, `audio(i)` the row's waveform.
    """

    def __init__(self, path, model_id: str | None = None, spec_key: str | None = None):
        self.path = Path(path)
        manifest_path = self.path / "manifest.json"
        if not manifest_path.exists():
            raise StoreError(f"no activation store at {self.path} (manifest.json missing): create one with "
                             "workbench.data.collect.collect(handle, inputs, spec, store_dir)")
        self.manifest = json.loads(manifest_path.read_text())
        if self.manifest.get("format") != FORMAT:
            raise StoreError(f"store {self.path} has format {self.manifest.get('format')!r}; this workbench reads "
                             f"format {FORMAT}: collect it again into a new folder")
        self.check(model_id=model_id, spec_key=spec_key)
        self._table = None
        self._arrays: dict = {}

    # ----- creation and identity -------------------------------------------------------------
    @classmethod
    def create(cls, path, *, model_id: str, spec: dict, spec_key: str, keys, per_step_keys=(),
               sample_rate_hz: int | None = None, extra: dict | None = None) -> "ActivationStore":
        """Open the store at `path` if it matches (model_id, spec_key), else make a new one there."""
        path = Path(path)
        if (path / "manifest.json").exists():
            return cls(path, model_id=model_id, spec_key=spec_key)
        path.mkdir(parents=True, exist_ok=True)
        (path / "shards").mkdir(exist_ok=True)
        manifest = dict(format=FORMAT, model_id=model_id, spec_key=spec_key, spec=spec,
                        keys=[[s, int(l)] for s, l in keys], per_step_keys=[[s, int(l)] for s, l in per_step_keys],
                        sample_rate_hz=sample_rate_hz, extra=extra or {}, shards=[])
        _write_json_atomic(path / "manifest.json", manifest)
        return cls(path)

    def check(self, model_id: str | None = None, spec_key: str | None = None) -> None:
        m = self.manifest
        if model_id is not None and m["model_id"] != model_id:
            raise StoreMismatchError(
                f"store {self.path} holds activations of model {m['model_id']!r}, not {model_id!r}: load "
                f"{m['model_id']!r}, or pass a new store_dir for this model")
        if spec_key is not None and m["spec_key"] != spec_key:
            raise StoreMismatchError(
                f"store {self.path} was collected with capture spec {m['spec']} (key {m['spec_key']}), "
                f"not key {spec_key}: reuse that spec, or pass a new store_dir")

    @property
    def model_id(self) -> str:
        return self.manifest["model_id"]

    @property
    def spec(self) -> dict:
        return self.manifest["spec"]

    @property
    def spec_key(self) -> str:
        return self.manifest["spec_key"]

    def keys(self) -> list[tuple[str, int]]:
        return [(s, int(l)) for s, l in self.manifest["keys"]]

    def step_keys(self) -> list[tuple[str, int]]:
        return [(s, int(l)) for s, l in self.manifest["per_step_keys"]]

    def __len__(self) -> int:
        return sum(s["n"] for s in self.manifest["shards"])

    def ids(self) -> set[str]:
        return {i for s in self.manifest["shards"] for i in s["ids"]}

    def __repr__(self) -> str:
        return (f"ActivationStore({str(self.path)!r}, model={self.model_id!r}, rows={len(self)}, "
                f"keys={len(self.keys())}, spec={self.spec})")

    # ----- writing -----------------------------------------------------------------------------
    def append(self, pooled: dict, rows: list[dict], steps: dict | None = None, audio: list | None = None) -> None:
        """Commit one shard: pooled[(site, layer)] (n, ...) arrays, one metadata dict per row (with a unique
        "id"), optional per-step lists of (T_i, H) arrays, optional audio list of (channels, samples)."""
        n = len(rows)
        ids = [str(r["id"]) for r in rows]
        clash = set(ids) & self.ids()
        if clash or len(set(ids)) != n:
            raise StoreError(f"rows {sorted(clash)[:3] or ids[:3]} are already in the store or repeated: "
                             "each input needs a unique id")
        for key in self.keys():
            if key not in pooled or len(pooled[key]) != n:
                raise BadInputError(f"shard misses {key} or has the wrong row count (want {n})")
        shards = self.path / "shards"
        tmp = shards / f".tmp-{uuid.uuid4().hex[:12]}"
        tmp.mkdir(parents=True)
        for key in self.keys():
            _save_npy(tmp, _key_name(*key) + ".npy", np.asarray(pooled[key], dtype=np.float32))
        for key in self.step_keys():
            seqs = (steps or {})[key]
            _save_npy(tmp, f"steps.{_key_name(*key)}.npy", np.concatenate(seqs).astype(np.float32))
            _save_npy(tmp, f"steps.{_key_name(*key)}.offsets.npy", np.cumsum([0] + [len(x) for x in seqs]))
        if audio is not None:
            waves = [np.atleast_2d(np.asarray(a, dtype=np.float32)) for a in audio]
            _save_npy(tmp, "audio.npy", np.concatenate(waves, axis=1))
            _save_npy(tmp, "audio_offsets.npy", np.cumsum([0] + [w.shape[1] for w in waves]))
        _write_json_atomic(tmp / "rows.json", rows)
        name = f"{len(self.manifest['shards']):06d}-{uuid.uuid4().hex[:6]}"
        os.replace(tmp, shards / name)
        manifest = dict(self.manifest)
        manifest["shards"] = self.manifest["shards"] + [dict(name=name, n=n, ids=ids, audio=audio is not None)]
        _write_json_atomic(self.path / "manifest.json", manifest)  # the commit point
        self.manifest = manifest
        self._table, self._arrays = None, {}

    def sweep_leftovers(self) -> None:
        """Delete shard folders the manifest does not list (from a run killed mid-write)."""
        listed = {s["name"] for s in self.manifest["shards"]}
        for child in (self.path / "shards").iterdir():
            if child.name not in listed:
                shutil.rmtree(child, ignore_errors=True)
        for tmp in self.path.glob(".manifest.json.*.tmp"):
            tmp.unlink(missing_ok=True)

    def compact(self) -> None:
        """Merge all shards into one so each (site, layer) is a single memory-mappable file."""
        shards = self.manifest["shards"]
        if len(shards) <= 1:
            return
        rows = self.table
        pooled = {key: self._concat(_key_name(*key) + ".npy") for key in self.keys()}
        steps = {key: [self.steps(*key, row=i) for i in range(len(rows))] for key in self.step_keys()}
        audio = [self.audio(i) for i in range(len(rows))] if all(s["audio"] for s in shards) else None
        old = [s["name"] for s in shards]
        fresh = ActivationStore(self.path)
        fresh.manifest = dict(self.manifest, shards=[])  # in memory only until append commits
        fresh.append(pooled, [{k: v for k, v in r.items() if k != "row"} for r in rows], steps, audio)
        self.manifest, self._table, self._arrays = fresh.manifest, None, {}
        for name in old:
            shutil.rmtree(self.path / "shards" / name, ignore_errors=True)

    # ----- reading -----------------------------------------------------------------------------
    def _shard_paths(self):
        return [(self.path / "shards" / s["name"], s) for s in self.manifest["shards"]]

    def _concat(self, filename: str) -> np.ndarray:
        parts = [np.load(folder / filename, mmap_mode="r") for folder, _ in self._shard_paths()]
        if not parts:
            raise StoreError(f"store {self.path} is empty: run collect first")
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def array(self, site: str, layer: int, cfg_row: str | None = None) -> np.ndarray:
        """(n, W) float32 for (site, layer); memory-mapped when the store has one shard.

        For rows="both" stores the array is (n, 2, W): pass cfg_row="cond" or "uncond" for (n, W)."""
        key = (site, int(layer))
        if key not in self.keys():
            raise BadInputError(f"{key} is not in this store; it holds {self.keys()[:6]}"
                                f"{' ...' if len(self.keys()) > 6 else ''}")
        if key not in self._arrays:
            self._arrays[key] = self._concat(_key_name(*key) + ".npy")
        arr = self._arrays[key]
        if cfg_row is None:
            return arr
        if arr.ndim != 3:
            raise BadInputError(f"cfg_row={cfg_row!r} needs a store collected with rows='both'")
        return arr[:, ("cond", "uncond").index(cfg_row)]

    def arrays(self, cfg_row: str | None = None, layers=None, sites=None) -> dict:
        """dict[(site, layer)] -> array, ready for `probes.sweep(store.arrays(), store.labels())`."""
        return {k: self.array(*k, cfg_row=cfg_row) for k in self.keys()
                if (layers is None or k[1] in layers) and (sites is None or k[0] in sites)}

    @property
    def table(self) -> list[dict]:
        """One dict per row, in row order, each with its row index under "row"."""
        if self._table is None:
            rows = []
            for folder, _ in self._shard_paths():
                rows.extend(json.loads((folder / "rows.json").read_text()))
            self._table = [dict(r, row=i) for i, r in enumerate(rows)]
        return self._table

    def column(self, name: str) -> list:
        return [r.get(name) for r in self.table]

    def labels(self, column: str = "label") -> list:
        return self.column(column)

    def _locate(self, row: int):
        if not 0 <= row < len(self):
            raise IndexError(f"row {row} is out of range: the store has {len(self)} rows")
        for folder, shard in self._shard_paths():
            if row < shard["n"]:
                return folder, shard, row
            row -= shard["n"]

    def steps(self, site: str, layer: int, row: int) -> np.ndarray:
        """(T, H) per-step activations of one row (needs per_step_layers at collection)."""
        if (site, int(layer)) not in self.step_keys():
            raise BadInputError(f"no per-step capture of {(site, layer)}: collect with per_step_layers=({layer},)")
        folder, _, i = self._locate(row)
        name = f"steps.{_key_name(site, layer)}"
        offsets = np.load(folder / f"{name}.offsets.npy")
        return np.load(folder / f"{name}.npy", mmap_mode="r")[offsets[i]:offsets[i + 1]]

    def audio(self, row: int) -> np.ndarray:
        """(channels, samples) float32 waveform of a row, at `sample_rate_hz`."""
        folder, shard, i = self._locate(row)
        if not shard.get("audio"):
            raise StoreError("this store kept no audio (collect(..., keep_audio=False))")
        offsets = np.load(folder / "audio_offsets.npy")
        return np.asarray(np.load(folder / "audio.npy", mmap_mode="r")[:, offsets[i]:offsets[i + 1]])

    @property
    def sample_rate_hz(self) -> int | None:
        return self.manifest.get("sample_rate_hz")

    def clip(self, row: int):
        """The row as a `workbench.Clip` (to listen: `store.clip(i).audio()`)."""
        from workbench.runtime.clip import Clip
        r = self.table[row]
        return Clip(self.audio(row), self.sample_rate_hz, prompt=r.get("prompt"), seed=r.get("seed"),
                    model_id=self.model_id, label=r.get("label"))
