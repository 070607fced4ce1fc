"""On-disk activation store: array shards + a JSON manifest, keyed by model and capture spec.

Layout of a store folder::

    manifest.json              # the commit point: identity (model_id, spec, keys) and the committed shards,
                               # each with its row ids and every file's [size, sha256]
    .lock                      # the write lock (fcntl.flock); holds the writer's pid, host and start time
    shards/NNNNNN-xxxxxx/      # one committed shard (NNNNNN: sequence number, xxxxxx: random hex)
        resid.3.npy            # pooled (n, W) per (site, layer); (n, 2, W) for rows="both" (cond, uncond)
        steps.resid.3.npy + steps.resid.3.offsets.npy   # opt-in per-step arrays, rows concatenated in time
        audio.npy + audio_offsets.npy                   # each row's audio (channels, samples), concatenated
        rows.json              # one metadata dict per row (id, label, prompt, seed, ...)
        shard.json             # the store's identity + this shard's manifest entry: rebuilds a lost manifest
    shards/.tmp-<12 hex>/      # a shard being written (removed on the next write if its writer died)
    quarantine/NNNNNN-xxxxxx/  # shards that failed verification, moved here by `repair()` (never deleted)

Writing: writers (append, compact, repair; `collect` for its whole run) hold the store's lock. It is an
advisory flock, so the kernel releases it when its process dies (even by kill -9): a crashed writer never
blocks the next one. Another writer waits up to `lock_timeout_s`, then gets StoreLockedError naming the
holder. A shard is written into a temp folder and renamed into place; only then is the manifest rewritten
(temp file + os.replace). Readers need no lock: they see the old manifest or the new one, never a half.

Checking: opening checks the size of every listed file (cheap); `verify()` also compares their sha256, and
`ActivationStore(path, verify="full")` does so on open. Reading a store that fails raises CorruptFileError
naming the file; `repair()` drops failing shards from the manifest and moves their folders to quarantine/.
A lost manifest is rebuilt from the shards' shard.json. Format-1 stores (no checksums) open as they are;
`repair()` records their checksums.

    >>> import numpy as np, tempfile
    >>> identity = StoreIdentity("random/tiny@seed0", spec_key="abc", keys=[("resid", 0)], spec={"pooling": "mean"})
    >>> s = ActivationStore.create(tempfile.mkdtemp(), identity)
    >>> s.append({("resid", 0): np.ones((2, 4), np.float32)}, [{"id": "a", "label": "x"}, {"id": "b", "label": "y"}])
    >>> s.append({("resid", 0): np.zeros((1, 4), np.float32)}, [{"id": "c", "label": "x"}])
    >>> s.array("resid", 0).shape, s.labels(), s.verify().sound
    ((3, 4), ['x', 'y', 'x'], True)
    >>> second = s.manifest["shards"][1]["name"]
    >>> damaged = s.path / "shards" / second / "resid.0.npy"
    >>> _ = damaged.write_bytes(damaged.read_bytes()[:-4])  # truncate a file of the second shard
    >>> ActivationStore(s.path).labels()  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    workbench.errors.CorruptFileError: .../resid.0.npy: has 140 bytes, not the 144 written ... run store.repair() ...
    >>> report = ActivationStore(s.path).repair(verbose=False)
    >>> list(report.corrupt) == [second], ActivationStore(s.path).labels(), (s.path / "quarantine" / second).is_dir()
    (True, ['x', 'y'], True)

The file-level pieces (names, the lock, checksummed writes, streaming .npy) live in `workbench.data.store_io`,
manifest checking, StoreReport and manifest recovery in `workbench.data.store_repair`; every public name is
importable from here.
"""
from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import os
import shutil
import time
import uuid
from pathlib import Path

import numpy as np

from workbench import validation
from workbench.data.store_io import (
    FORMAT,
    IDENTITY,
    MANIFEST,
    REPAIR_FIX,
    SHARD_NAME,
    SIDECAR,
    SITE_NAME,
    TMP_JSON,
    TMP_SHARD,
    StoreError,
    StoreLockedError,
    StoreMismatchError,
    _concat_npy,
    _key_name,
    _merge_offsets,
    _save_json,
    _save_npy,
    _seq,
    _sha256_file,
    _write_json_atomic,
    array_hash,
    store_lock,
)
from workbench.data.store_repair import (
    StoreReport,
    _inspect_shards,
    _read_manifest,
    _read_sidecar,
    _rebuild_manifest,
    _status_report,
)
from workbench.errors import BadInputError, CorruptFileError, EmptyInputError
from workbench.runtime.clip import Clip

__all__ = ["ActivationStore", "StoreIdentity", "StoreError", "StoreLockedError", "StoreMismatchError", "StoreReport",
           "array_hash", "store_lock"]


@dataclasses.dataclass(frozen=True)
class StoreIdentity:
    """What a store holds: the model, the settings it was collected with (`spec`, keyed by `spec_key`), the
    pooled (site, layer) keys and the per-step ones, the audio's sample rate, and free-form `extra`.

    A store reopened with another model_id or spec_key is refused (StoreMismatchError); checked when made.

        >>> StoreIdentity("m", spec_key="k", keys=[("resid", 0)]).keys
        (('resid', 0),)
        >>> StoreIdentity("m", spec_key="k", keys=[("resid/x", 0)])
        Traceback (most recent call last):
        ...
        workbench.errors.BadInputError: site 'resid/x' cannot name a file: use letters, digits and '_'
    """

    model_id: str
    spec_key: str
    keys: tuple
    spec: dict = dataclasses.field(default_factory=dict)
    per_step_keys: tuple = ()
    sample_rate_hz: int | None = None
    extra: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        validation.text(self.model_id, "model_id", example="'random/tiny@seed0'")
        validation.text(self.spec_key, "spec_key", example="'k'")
        for name in ("keys", "per_step_keys"):
            keys = getattr(self, name)
            if isinstance(keys, (str, bytes)) or not hasattr(keys, "__iter__"):
                raise BadInputError(f"{name}={keys!r:.60}: pass (site, layer) pairs, e.g. [('resid', 0)]")
            pairs = []
            for key in keys:
                if isinstance(key, (str, bytes)) or not hasattr(key, "__len__") or len(key) != 2:
                    raise BadInputError(f"{name} holds {key!r:.60}: pass (site, layer) pairs, e.g. [('resid', 0)]")
                site, layer = key
                if not SITE_NAME.fullmatch(str(site)):
                    raise BadInputError(f"site {site!r} cannot name a file: use letters, digits and '_'")
                pairs.append((str(site), validation.non_negative_int(layer, f"{name} layer")))
            object.__setattr__(self, name, tuple(pairs))
        for name in ("spec", "extra"):
            value = getattr(self, name)
            if value is None:
                object.__setattr__(self, name, {})
            elif not isinstance(value, dict):
                raise BadInputError(f"{name}={value!r:.60} is not a dict: pass a JSON-ready dict, or leave it out")
        if self.sample_rate_hz is not None:
            object.__setattr__(self, "sample_rate_hz", validation.positive_int(self.sample_rate_hz, "sample_rate_hz"))

    def to_manifest(self) -> dict:
        """The identity as the manifest stores it (keys as [site, layer] lists)."""
        return dict(model_id=self.model_id, spec_key=self.spec_key, spec=self.spec,
                    keys=[[s, n] for s, n in self.keys], per_step_keys=[[s, n] for s, n in self.per_step_keys],
                    sample_rate_hz=self.sample_rate_hz, extra=self.extra)


class ActivationStore:
    """Read (and append to) a store folder. Open with `ActivationStore(path)`; `collect` creates them.

    `array(site, layer)` memory-maps the layer (one file once compacted), `table` is a list of
    row dicts, `labels()` the label column, `audio(i)` the row's waveform. verify: "sizes" (default) checks
    each file's size on open, "full" its sha256 too, "none" neither. lock_timeout_s: how long a write waits
    for another writer.
    """

    def __init__(self, path, model_id: str | None = None, spec_key: str | None = None, *, verify: str = "sizes",
                 lock_timeout_s: float = 10.0):
        if verify not in ("sizes", "full", "none"):
            raise BadInputError(f"verify={verify!r}: use 'sizes' (cheap, the default), 'full' (sha256) or 'none'")
        self.path = Path(path)
        self.lock_timeout_s = float(lock_timeout_s)
        self._verify = verify
        manifest = _read_manifest(self.path)
        if manifest is None:
            manifest = self._recover()
        self._set_manifest(manifest, verify)
        self.check(model_id=model_id, spec_key=spec_key)

    def _recover(self) -> dict:
        """The manifest rebuilt from the shards' sidecars (written under the lock), or StoreError."""
        manifest = None
        if (self.path / "shards").is_dir():
            with store_lock(self.path, self.lock_timeout_s):
                manifest = _read_manifest(self.path) or _rebuild_manifest(self.path)
        if manifest is None:
            raise StoreError(f"no activation store at {self.path} (manifest.json missing): create one with "
                             "workbench.data.collect.collect(handle, inputs, spec, store_dir)")
        return manifest

    def _set_manifest(self, manifest: dict, verify: str) -> None:
        self.manifest, self._table, self._arrays = manifest, None, {}
        self._statuses = self._inspect(verify)

    def _reload(self) -> None:
        """Read the manifest afresh (another process may have committed since)."""
        disk = _read_manifest(self.path) or self._recover()
        if disk != self.manifest:
            self._set_manifest(disk, "sizes" if self._verify == "full" else self._verify)

    def lock(self, timeout_s: float | None = None):
        """Context manager holding this store's write lock (see `store_lock`); writes inside it do not wait."""
        return store_lock(self.path, self.lock_timeout_s if timeout_s is None else timeout_s)

    # ----- creation and identity -------------------------------------------------------------
    @classmethod
    def create(cls, path, identity: StoreIdentity, *, accept_spec_keys=(),
               lock_timeout_s: float = 10.0) -> ActivationStore:
        """Open the store at `path` if it matches `identity` (model_id, spec_key), else make a new one there.

        A store without rows takes the new identity (a run that failed before its first row leaves nothing to
        keep); a lost manifest is rebuilt from the shards' shard.json. accept_spec_keys: older keys of the
        same settings (such a store is relabelled with spec_key)."""
        if not isinstance(identity, StoreIdentity):
            raise BadInputError(f"identity is a {type(identity).__name__}, not a StoreIdentity: pass e.g. "
                                "StoreIdentity('random/tiny@seed0', spec_key='k', keys=[('resid', 0)])")
        path = Path(path)
        model_id, spec_key, spec = identity.model_id, identity.spec_key, identity.spec
        identity = identity.to_manifest()
        with store_lock(path, lock_timeout_s):
            manifest = _read_manifest(path) or _rebuild_manifest(path)
            if manifest is None or (not manifest["shards"] and (manifest["model_id"], manifest["spec_key"]) != (
                    model_id, spec_key)):
                (path / "shards").mkdir(exist_ok=True)
                store_id = (manifest or {}).get("store_id") or uuid.uuid4().hex
                _write_json_atomic(path / MANIFEST, dict(format=FORMAT, store_id=store_id, **identity, shards=[]))
            elif manifest["model_id"] == model_id and manifest["spec_key"] != spec_key \
                    and manifest["spec_key"] in accept_spec_keys:
                _write_json_atomic(path / MANIFEST, dict(manifest, spec_key=spec_key, spec=spec))
            store = cls(path, model_id=model_id, spec_key=spec_key, lock_timeout_s=lock_timeout_s)
        bad = store._first_problem()
        if bad is not None:
            raise CorruptFileError(bad[0], f"{bad[1]}: this store cannot be extended until it is repaired: run "
                                           f"ActivationStore({str(path)!r}).repair(), then collect again")
        return store

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
        return [(s, int(n)) for s, n in self.manifest["keys"]]

    def step_keys(self) -> list[tuple[str, int]]:
        return [(s, int(n)) for s, n in self.manifest["per_step_keys"]]

    def __len__(self) -> int:
        return sum(s["n"] for s in self.manifest["shards"])

    def ids(self) -> set[str]:
        return {i for s in self.manifest["shards"] for i in s["ids"]}

    def __repr__(self) -> str:
        return (f"ActivationStore({str(self.path)!r}, model={self.model_id!r}, rows={len(self)}, "
                f"keys={len(self.keys())}, spec={self.spec})")

    # ----- checking ----------------------------------------------------------------------------
    def _inspect(self, mode: str) -> list:
        """(entry, status, path, reason) per manifest entry; mode "none" | "sizes" | "full"."""
        return _inspect_shards(self.path, self.manifest, mode)

    def _first_problem(self) -> tuple[Path, str] | None:
        for _, status, path, reason in self._statuses:
            if status not in ("ok", "unchecked"):
                more = sum(s not in ("ok", "unchecked") for _, s, _, _ in self._statuses) - 1
                return path, reason + (f" (and {more} more problems)" if more else "")
        return None

    def _require_sound(self) -> None:
        bad = self._first_problem()
        if bad is not None:
            raise CorruptFileError(bad[0], f"{bad[1]}: {REPAIR_FIX}")

    def verify(self, full: bool = True) -> StoreReport:
        """Check every listed shard's files: sizes, and with full=True their sha256 (reads every byte).

        Reads the manifest afresh; reads of this object raise CorruptFileError from then on if it fails."""
        self._reload()
        self._statuses = self._inspect("full" if full else "sizes")
        return _status_report(self._statuses)

    def repair(self, full: bool = True, verbose: bool = True) -> StoreReport:
        """Make the store readable again; returns (and prints, with verbose) what it did.

        Drops from the manifest each shard that fails `verify(full)` and moves its folder to quarantine/ (a
        missing one is just dropped, an entry that is not a shard name too, never followed as a path); keeps
        the first of duplicates; records checksums for shards of older stores; rewrites lost shard.json
        sidecars. Nothing is deleted: collect again to recompute the dropped rows."""
        with self.lock():
            self._begin_write()
            report = self.verify(full=full)
            keep, actions = [], report.actions
            for e, status, path, reason in self._statuses:
                name, rows = e["name"], f"{e['n']} rows"
                if status == "unchecked":
                    e = self._record_checksums(e)
                    if "files" not in e:
                        actions.append(f"moved shard {name} to {self._quarantine(name)}: it is incomplete "
                                       f"({e['why']}; {rows})")
                        continue
                    actions.append(f"recorded the checksums of shard {name} (written by an older workbench)")
                if status in ("ok", "unchecked"):
                    if self._ensure_sidecar(e):
                        actions.append(f"wrote the missing or unreadable {SIDECAR} of shard {name}")
                    keep.append(e)
                elif status == "invalid":
                    actions.append(f"dropped manifest entry {name!r}: not a shard name (nothing on disk touched; "
                                   f"{rows})")
                elif status == "missing":
                    actions.append(f"dropped shard {name} from the manifest: its folder is missing ({rows})")
                elif status == "listed_twice":
                    actions.append(f"dropped the second listing of shard {name}")
                else:  # corrupt, or rows already in an earlier shard
                    what = f"{path.name} {reason}" if status == "corrupt" else reason
                    actions.append(f"moved shard {name} to {self._quarantine(name)}: {what} ({rows})")
            if keep != self.manifest["shards"]:
                self._commit(dict(self.manifest, shards=keep))
        if verbose:
            print(f"repair of {self.path}: " + ("\n  ".join(["", *actions]) if actions else "nothing to repair"))
        return report

    def _quarantine(self, name: str) -> str:
        if not (self.path / "shards" / name).is_dir():
            return "nowhere (its folder is missing)"
        target = self.path / "quarantine" / name
        target.parent.mkdir(exist_ok=True)
        if target.exists():
            target = target.with_name(f"{name}.{time.strftime('%Y%m%d-%H%M%S')}-{uuid.uuid4().hex[:4]}")
        os.replace(self.path / "shards" / name, target)
        return str(target.relative_to(self.path))

    def _shard_files(self, e: dict) -> list[str]:
        names = [_key_name(*k) + ".npy" for k in self.keys()] + ["rows.json"]
        for k in self.step_keys():
            names += [f"steps.{_key_name(*k)}.npy", f"steps.{_key_name(*k)}.offsets.npy"]
        return names + (["audio.npy", "audio_offsets.npy"] if e.get("audio") else [])

    def _record_checksums(self, e: dict) -> dict:
        """The entry with its files' [size, sha256] (an older shard), or with 'why' when it is incomplete."""
        folder = self.path / "shards" / e["name"]
        try:
            for k in self.keys():
                self._load(folder / (_key_name(*k) + ".npy"), e["n"])
            self._rows(folder, e)
        except CorruptFileError as err:
            return dict(e, why=str(err))
        files = {f: [(folder / f).stat().st_size, _sha256_file(folder / f)] for f in self._shard_files(e)
                 if (folder / f).exists()}
        missing = sorted(set(self._shard_files(e)) - set(files))
        return dict(e, why=f"{missing[0]} is missing") if missing else dict(e, files=files)

    def _ensure_sidecar(self, e: dict) -> bool:
        folder = self.path / "shards" / e["name"]
        try:
            if _read_sidecar(folder) is not None:
                return False
        except (CorruptFileError, StoreError):
            pass
        _write_json_atomic(folder / SIDECAR, self._sidecar(e))
        return True

    def _sidecar(self, e: dict, replaces=()) -> dict:
        m = self.manifest
        return dict(format=FORMAT, store_id=m.get("store_id"), **{k: m.get(k) for k in IDENTITY}, shard=e,
                    replaces=list(replaces))

    # ----- writing -----------------------------------------------------------------------------
    def _commit(self, manifest: dict, statuses: list | None = None) -> None:
        """Rewrite the manifest (the commit point); statuses: those of its entries, when known."""
        manifest = dict(manifest, format=FORMAT, store_id=manifest.get("store_id") or uuid.uuid4().hex)
        _write_json_atomic(self.path / MANIFEST, manifest)
        self.manifest, self._table, self._arrays = manifest, None, {}
        self._statuses = statuses if statuses is not None else self._inspect("sizes")

    def _begin_write(self) -> None:
        """Under the lock: reread the manifest; give an older store its store_id before shards name it."""
        self._reload()
        if not self.manifest.get("store_id") or self.manifest.get("format") != FORMAT:
            self._commit(self.manifest, self._statuses)

    def _new_shard(self) -> tuple[str, Path]:
        seqs = [_seq(e["name"]) for e in self.manifest["shards"] if SHARD_NAME.fullmatch(e["name"])]
        tmp = self.path / "shards" / f".tmp-{uuid.uuid4().hex[:12]}"
        tmp.mkdir(parents=True)
        return f"{max(seqs, default=-1) + 1:06d}-{uuid.uuid4().hex[:6]}", tmp

    def append(self, pooled: dict, rows: list[dict], steps: dict | None = None, audio: list | None = None,
               steps_dtype: str = "float32") -> None:
        """Commit one shard: pooled[(site, layer)] (n, ...) arrays, one metadata dict per row (with a unique
        "id"), optional per-step lists of (T_i, H) arrays, optional audio list of (channels, samples).
        steps_dtype: "float32" or "float16" (half the disk; `workbench.data.frames` streams either).

        Holds the write lock (waiting up to lock_timeout_s) and rereads the manifest first, so appends from
        several processes all land."""
        n = len(rows)
        ids = [str(r["id"]) for r in rows]
        if steps_dtype not in ("float32", "float16"):
            raise BadInputError(f"steps_dtype={steps_dtype!r}: use 'float32' or 'float16'")
        for key in self.keys():
            if key not in pooled or len(pooled[key]) != n:
                raise BadInputError(f"shard misses {key} or has the wrong row count (want {n})")
        for key in self.step_keys():
            if key not in (steps or {}) or len(steps[key]) != n:
                raise BadInputError(f"shard misses per-step arrays of {key} or has the wrong row count (want {n})")
        with self.lock():
            self._begin_write()
            clash = set(ids) & self.ids()
            if clash or len(set(ids)) != n:
                raise StoreError(f"rows {sorted(clash)[:3] or ids[:3]} are already in the store or repeated: "
                                 "each input needs a unique id")
            name, tmp = self._new_shard()
            try:
                files = {}
                for key in self.keys():
                    fname = _key_name(*key) + ".npy"
                    files[fname] = _save_npy(tmp, fname, np.asarray(pooled[key], dtype=np.float32))
                for key in self.step_keys():
                    seqs, fname = steps[key], f"steps.{_key_name(*key)}"
                    files[fname + ".npy"] = _save_npy(tmp, fname + ".npy", np.concatenate(seqs).astype(steps_dtype))
                    files[fname + ".offsets.npy"] = _save_npy(tmp, fname + ".offsets.npy",
                                                              np.cumsum([0] + [len(x) for x in seqs]))
                if audio is not None:
                    waves = [np.atleast_2d(np.asarray(a, dtype=np.float32)) for a in audio]
                    files["audio.npy"] = _save_npy(tmp, "audio.npy", np.concatenate(waves, axis=1))
                    files["audio_offsets.npy"] = _save_npy(tmp, "audio_offsets.npy",
                                                           np.cumsum([0] + [w.shape[1] for w in waves]))
                files["rows.json"] = _save_json(tmp / "rows.json", rows)
                entry = dict(name=name, n=n, ids=ids, audio=audio is not None, files=files)
                _save_json(tmp / SIDECAR, self._sidecar(entry))
                os.replace(tmp, self.path / "shards" / name)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self._commit(dict(self.manifest, shards=self.manifest["shards"] + [entry]),
                         [*self._statuses, (entry, "ok", self.path / "shards" / name, "")])

    def sweep_leftovers(self) -> list[str]:
        """Remove what a killed writer of this store left; returns the paths removed.

        Only the store's own leftovers go: temp shard folders (.tmp-<12 hex>), unlisted shard folders whose
        shard.json says they belong to this store, and temp manifests. Anything else (your files and folders
        under shards/, shards of an older workbench) is never touched."""
        removed = []
        with self.lock():
            self._begin_write()
            listed, store_id = {e["name"] for e in self.manifest["shards"]}, self.manifest.get("store_id")
            shards = self.path / "shards"
            for child in sorted(shards.iterdir()) if shards.is_dir() else ():
                if child.is_symlink() or not child.is_dir():
                    continue
                ours = TMP_SHARD.fullmatch(child.name) is not None
                if not ours and store_id and SHARD_NAME.fullmatch(child.name) and child.name not in listed:
                    try:
                        ours = (_read_sidecar(child) or {}).get("store_id") == store_id
                    except (CorruptFileError, StoreError):
                        ours = False
                if ours:
                    shutil.rmtree(child)
                    removed.append(str(child))
            for tmp in self.path.glob(".manifest.json.*.tmp"):
                if TMP_JSON.fullmatch(tmp.name):
                    tmp.unlink(missing_ok=True)
                    removed.append(str(tmp))
        return removed

    def compact(self) -> None:
        """Merge all shards into one so each (site, layer) is a single memory-mappable file.

        Streams file by file in 8 MiB pieces (memory stays flat whatever the store's size) and checks every
        input byte against its sha256 on the way; CorruptFileError (and nothing changed) if one fails."""
        with self.lock():
            self._begin_write()
            self._require_sound()
            shards = self.manifest["shards"]
            if len(shards) <= 1:
                return
            folders = [(self.path / "shards" / e["name"], e) for e in shards]
            name, tmp = self._new_shard()
            try:
                def concat(fname, axis=0):
                    files[fname] = _concat_npy(tmp / fname, [(f / fname, (e.get("files") or {}).get(fname))
                                                             for f, e in folders], axis)

                def offsets(fname):
                    files[fname] = _save_npy(tmp, fname, _merge_offsets([self._load(f / fname, None, e, mmap=False)
                                                                         for f, e in folders]))
                files = {}
                for key in self.keys():
                    concat(_key_name(*key) + ".npy")
                for key in self.step_keys():
                    concat(f"steps.{_key_name(*key)}.npy")
                    offsets(f"steps.{_key_name(*key)}.offsets.npy")
                audio = all(e["audio"] for e in shards)
                if audio:
                    concat("audio.npy", axis=1)
                    offsets("audio_offsets.npy")
                rows = [r for f, e in folders for r in self._rows(f, e, full=True)]
                files["rows.json"] = _save_json(tmp / "rows.json", rows)
                entry = dict(name=name, n=len(rows), ids=[i for e in shards for i in e["ids"]], audio=audio,
                             files=files)
                _save_json(tmp / SIDECAR, self._sidecar(entry, replaces=[e["name"] for e in shards]))
                os.replace(tmp, self.path / "shards" / name)
            except BaseException:
                shutil.rmtree(tmp, ignore_errors=True)
                raise
            self._commit(dict(self.manifest, shards=[entry]), [(entry, "ok", self.path / "shards" / name, "")])
            for folder, _ in folders:  # superseded: their rows are in the new shard (sweep finishes a killed run)
                shutil.rmtree(folder, ignore_errors=True)

    # ----- reading -----------------------------------------------------------------------------
    def _shard_paths(self):
        self._require_sound()
        return [(self.path / "shards" / s["name"], s) for s in self.manifest["shards"]]

    def _gone(self, path: Path) -> Exception:
        """The error for a file that vanished: the store was rewritten since it was opened, or damaged."""
        try:
            changed = _read_manifest(self.path) != self.manifest
        except (CorruptFileError, StoreError):
            changed = True
        if changed:
            return StoreError(f"store {self.path} changed on disk since it was opened (another process compacted "
                              f"or repaired it): open it again with ActivationStore({str(self.path)!r})")
        return CorruptFileError(path, f"is missing: {REPAIR_FIX}")

    def _load(self, path: Path, n: int | None, entry: dict | None = None, mmap: bool = True) -> np.ndarray:
        """np.load with clear errors; n: the row count the array must have; entry: check the file's sha256."""
        try:
            if entry is not None and entry.get("files") and path.name in entry["files"]:
                blob = path.read_bytes()
                if hashlib.sha256(blob).hexdigest() != entry["files"][path.name][1]:
                    raise CorruptFileError(path, f"does not match its sha256 checksum: {REPAIR_FIX}")
                arr = np.load(io.BytesIO(blob), allow_pickle=False)
            else:
                arr = np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
        except FileNotFoundError:
            raise self._gone(path) from None
        except (OSError, ValueError, EOFError) as e:
            raise CorruptFileError(path, f"is not a readable .npy file ({e}): {REPAIR_FIX}") from None
        if n is not None and (arr.ndim == 0 or arr.shape[0] != n):
            raise CorruptFileError(path, f"holds {arr.shape[:1]} rows, not the {n} manifest.json lists: {REPAIR_FIX}")
        return arr

    def _rows(self, folder: Path, entry: dict, full: bool = False) -> list[dict]:
        path = folder / "rows.json"
        try:
            blob = path.read_bytes()
        except FileNotFoundError:
            raise self._gone(path) from None
        if full and entry.get("files") and hashlib.sha256(blob).hexdigest() != entry["files"]["rows.json"][1]:
            raise CorruptFileError(path, f"does not match its sha256 checksum: {REPAIR_FIX}")
        try:
            rows = json.loads(blob)
        except ValueError as e:
            raise CorruptFileError(path, f"is not valid JSON ({e}): {REPAIR_FIX}") from None
        if not (isinstance(rows, list) and all(isinstance(r, dict) for r in rows)
                and [str(r.get("id")) for r in rows] == entry["ids"]):
            raise CorruptFileError(path, f"does not hold the {entry['n']} rows manifest.json lists for shard "
                                         f"{entry['name']}: {REPAIR_FIX}")
        return rows

    def _concat(self, filename: str, rows: bool = True) -> np.ndarray:
        parts = [self._load(folder / filename, s["n"] if rows else None) for folder, s in self._shard_paths()]
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
            rows = [r for folder, s in self._shard_paths() for r in self._rows(folder, s)]
            self._table = [dict(r, row=i) for i, r in enumerate(rows)]
        return self._table

    def column(self, name: str) -> list:
        return [r.get(name) for r in self.table]

    def labels(self, column: str = "label") -> list:
        return self.column(column)

    def _row_index(self, row) -> int:
        """A row index checked like every other argument: an int in 0..len-1 (a workbench error otherwise)."""
        n = len(self)
        if n == 0:
            raise EmptyInputError("the store has no rows yet: collect into it first")
        return validation.integer(row, "row", low=0, high=n - 1)

    def _locate(self, row: int):
        row = self._row_index(row)
        for folder, shard in self._shard_paths():
            if row < shard["n"]:
                return folder, shard, row
            row -= shard["n"]

    def steps(self, site: str, layer: int, row: int) -> np.ndarray:
        """(T, H) per-step activations of one row (needs per_step_layers at collection)."""
        site, layer = validation.site(site), validation.non_negative_int(layer, "layer")
        if (site, layer) not in self.step_keys():
            raise BadInputError(f"no per-step capture of {(site, layer)}: collect with per_step_layers=({layer},)")
        folder, shard, i = self._locate(row)
        name = f"steps.{_key_name(site, layer)}"
        offsets = self._load(folder / f"{name}.offsets.npy", shard["n"] + 1, mmap=False)
        return self._load(folder / f"{name}.npy", None)[offsets[i]:offsets[i + 1]]

    def audio(self, row: int) -> np.ndarray:
        """(channels, samples) float32 waveform of a row, at `sample_rate_hz`."""
        folder, shard, i = self._locate(row)
        if not shard.get("audio"):
            raise StoreError("this store kept no audio (collect(..., keep_audio=False))")
        offsets = self._load(folder / "audio_offsets.npy", shard["n"] + 1, mmap=False)
        return np.asarray(self._load(folder / "audio.npy", None)[:, offsets[i]:offsets[i + 1]])

    @property
    def sample_rate_hz(self) -> int | None:
        return self.manifest.get("sample_rate_hz")

    def clip(self, row: int):
        """The row as a `workbench.Clip` (to listen: `store.clip(i).audio()`)."""
        r = self.table[self._row_index(row)]
        return Clip(self.audio(row), self.sample_rate_hz, prompt=r.get("prompt"), seed=r.get("seed"),
                    model_id=self.model_id, label=r.get("label"))
