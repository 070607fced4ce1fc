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
    >>> s = ActivationStore.create(tempfile.mkdtemp(), model_id="random/tiny@seed0", spec={"pooling": "mean"},
    ...                            spec_key="abc", keys=[("resid", 0)])
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
"""
from __future__ import annotations

import dataclasses
import fcntl
import hashlib
import io
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
import warnings
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from workbench.errors import BadInputError, CorruptFileError, WorkbenchError

__all__ = ["ActivationStore", "StoreError", "StoreLockedError", "StoreMismatchError", "StoreReport",
           "array_hash", "store_lock"]

FORMAT = 2  # 2: per-file [size, sha256] in the manifest and a shard.json per shard; 1: neither (still read)
READABLE_FORMATS = (1, 2)
SHARD_NAME = re.compile(r"[0-9]{6,}-[0-9a-f]{6}")  # the only shard names the store writes or reads
TMP_SHARD = re.compile(r"\.tmp-[0-9a-f]{12}")
TMP_JSON = re.compile(r"\.[a-z_]+\.json\.[0-9a-f]{8}\.tmp")
FILE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.]*")
SITE_NAME = re.compile(r"[A-Za-z0-9_]+")
LOCK_FILE, SIDECAR, MANIFEST = ".lock", "shard.json", "manifest.json"
IDENTITY = ("model_id", "spec_key", "spec", "keys", "per_step_keys", "sample_rate_hz", "extra")
CHUNK_BYTES = 8 << 20  # compaction streams this much at a time
REPAIR_FIX = ("run store.repair() (it drops failing shards from manifest.json and moves their folders to "
              "quarantine/, deleting nothing; collect again to recompute their rows)")
MANIFEST_FIX = ("rename it (e.g. to manifest.json.bad) and open the store again: the manifest is rebuilt "
                "from the shards' shard.json files")


class StoreError(WorkbenchError):
    """A store folder that cannot be used as asked."""


class StoreMismatchError(StoreError, ValueError):
    """The store was made by another model or capture spec."""


class StoreLockedError(StoreError):
    """Another process is writing the store: it holds the store's lock file."""


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


# ----- the write lock ----------------------------------------------------------------------------
_held: dict = {}  # (folder, thread id) -> (fd, holder): the lock is re-entrant within one thread
_held_guard = threading.Lock()
os.register_at_fork(after_in_child=_held.clear)  # a forked child must take the lock itself


@contextmanager
def store_lock(path, timeout_s: float = 0.0):
    """Hold the write lock of the store folder `path` (made if missing); yields the holder's record.

    Waits up to timeout_s seconds for another writer, then raises StoreLockedError naming it. Re-entrant
    in one thread; another thread or process waits.

        >>> import tempfile
        >>> with store_lock(tempfile.mkdtemp()) as holder:
        ...     sorted(holder)
        ['host', 'pid', 'since', 'since_unix']
    """
    folder = Path(path)
    folder.mkdir(parents=True, exist_ok=True)
    key = (os.path.realpath(folder), threading.get_ident())
    with _held_guard:
        held = _held.get(key)
    if held is not None:
        yield held[1]
        return
    lock_path = folder / LOCK_FILE
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        deadline, delay_s = time.monotonic() + max(0.0, float(timeout_s)), 0.005
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise StoreLockedError(_locked_message(folder, lock_path, timeout_s)) from None
                time.sleep(min(delay_s, max(0.0, deadline - time.monotonic())))
                delay_s = min(2 * delay_s, 0.1)
        holder = dict(pid=os.getpid(), host=socket.gethostname(), since=time.strftime("%Y-%m-%d %H:%M:%S %z"),
                      since_unix=round(time.time(), 3))
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(holder).encode(), 0)
    except BaseException:
        os.close(fd)
        raise
    with _held_guard:
        _held[key] = (fd, holder)
    try:
        yield holder
    finally:
        with _held_guard:
            _held.pop(key, None)
        try:
            os.ftruncate(fd, 0)  # a waiter never reads a finished writer's record as the holder
        finally:
            os.close(fd)  # releases the flock


def _locked_message(folder: Path, lock_path: Path, timeout_s: float) -> str:
    try:
        holder = json.loads(lock_path.read_text() or "{}")
    except (OSError, ValueError):
        holder = {}
    holder = holder if isinstance(holder, dict) else {}
    pid, host, since = holder.get("pid", "?"), holder.get("host", "?"), holder.get("since", "?")
    note = ""
    if host == socket.gethostname() and isinstance(pid, int) and not _alive(pid):
        note = f" (pid {pid} has exited, but a process it started still holds the lock: end that one)"
    waited = f"waited {timeout_s:g} s; " if timeout_s > 0 else ""
    return (f"store {folder} is being written by pid {pid} on host {host} since {since}{note}: {waited}let that "
            "writer finish (pass lock_timeout_s=<seconds> to wait for it) or stop it; its lock is released the "
            "moment it exits, even by kill -9. Reading the store needs no lock: open it meanwhile.")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


# ----- files: written with their checksums, read with clear errors -------------------------------
class _HashingWriter:
    """A write-only file wrapper that keeps the sha256 and size of everything written."""

    def __init__(self, f):
        self.f, self.sha, self.size = f, hashlib.sha256(), 0

    def write(self, data):
        view = memoryview(data).cast("B")
        self.sha.update(view)
        self.f.write(view)
        self.size += view.nbytes
        return view.nbytes

    def digest(self) -> list:
        self.f.flush()
        os.fsync(self.f.fileno())
        return [self.size, self.sha.hexdigest()]


def _save_npy(folder: Path, name: str, array: np.ndarray) -> list:
    """Write one .npy; returns its [size, sha256]."""
    with open(folder / name, "wb") as f:
        out = _HashingWriter(f)
        np.save(out, np.ascontiguousarray(array))
        return out.digest()


def _save_json(path: Path, obj) -> list:
    with open(path, "wb") as f:
        out = _HashingWriter(f)
        out.write(json.dumps(obj, default=str).encode())
        return out.digest()


def _write_json_atomic(path: Path, obj) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.tmp")
    _save_json(tmp, obj)
    os.replace(tmp, path)


def _sha256_file(path: Path) -> str:
    sha, buf = hashlib.sha256(), bytearray(CHUNK_BYTES)
    with open(path, "rb") as f:
        while n := f.readinto(buf):
            sha.update(memoryview(buf)[:n])
    return sha.hexdigest()


def _read_json(path: Path, what: str, fix: str):
    """Parsed JSON; None when the file is missing; CorruptFileError when it cannot be read."""
    try:
        obj = json.loads(path.read_bytes())
    except FileNotFoundError:
        return None
    except OSError as e:
        raise CorruptFileError(path, f"cannot read this {what} ({e}): {fix}") from None
    except ValueError as e:
        raise CorruptFileError(path, f"this {what} is not valid JSON ({e}): {fix}") from None
    if obj is None:
        raise CorruptFileError(path, f"this {what} holds JSON null: {fix}")
    return obj


def _key_name(site: str, layer: int) -> str:
    return f"{site}.{int(layer)}"


def _seq(name: str) -> int:
    return int(name.split("-")[0])


def _validate_identity(m, path: Path, fix: str) -> dict:
    """Check the fields every manifest and sidecar carries; CorruptFileError names what is wrong."""
    def bad(what):
        raise CorruptFileError(path, f"{what}: the file was damaged or edited by hand; {fix}")
    if not isinstance(m, dict):
        bad(f"holds a JSON {type(m).__name__}, not an object")
    if m.get("format") not in READABLE_FORMATS:
        if isinstance(m.get("format"), int):
            raise StoreError(f"store {path.parent} has format {m['format']}; this workbench reads formats "
                             f"{READABLE_FORMATS}: use a newer workbench, or collect again into a new folder")
        bad(f"has no valid 'format' (found {m.get('format')!r})")
    for field, kind in (("model_id", str), ("spec_key", str), ("spec", dict), ("keys", list)):
        if not isinstance(m.get(field), kind):
            bad(f"field {field!r} is missing or not a {kind.__name__}")
    for field in ("keys", "per_step_keys"):
        for k in m.get(field) or []:
            if not (isinstance(k, list) and len(k) == 2 and isinstance(k[0], str) and SITE_NAME.fullmatch(k[0])
                    and isinstance(k[1], int)):
                bad(f"{field} entry {k!r} is not a [site, layer] pair")
    return m


def _validate_entry(e, path: Path, fix: str) -> dict:
    """Check one shard entry's types (its name is checked separately, so repair can drop it)."""
    def bad(what):
        raise CorruptFileError(path, f"shard entry {str(e)[:80]}: {what}; the file was damaged or edited; {fix}")
    if not isinstance(e, dict) or not isinstance(e.get("name"), str):
        bad("not an object with a 'name'")
    if not isinstance(e.get("n"), int) or not isinstance(e.get("ids"), list) or len(e["ids"]) != e["n"] \
            or not all(isinstance(i, str) for i in e["ids"]):
        bad("'n' and 'ids' (one string per row) do not agree")
    files = e.get("files")
    if files is not None and not (isinstance(files, dict) and all(
            isinstance(f, str) and FILE_NAME.fullmatch(f) and isinstance(v, list) and len(v) == 2
            and isinstance(v[0], int) and isinstance(v[1], str) for f, v in files.items())):
        bad("'files' is not a map of plain file names to [size, sha256]")
    return e


def _read_manifest(path: Path) -> dict | None:
    mpath = path / MANIFEST
    m = _read_json(mpath, "store manifest", MANIFEST_FIX)
    if m is None:
        return None
    _validate_identity(m, mpath, MANIFEST_FIX)
    if not isinstance(m.get("shards"), list):
        raise CorruptFileError(mpath, f"has no 'shards' list: the file was damaged or edited; {MANIFEST_FIX}")
    m.setdefault("per_step_keys", [])
    for e in m["shards"]:
        _validate_entry(e, mpath, MANIFEST_FIX)
    return m


def _read_sidecar(folder: Path) -> dict | None:
    fix = "it cannot be used to rebuild the manifest; keep the manifest, or move this shard folder away"
    path = folder / SIDECAR
    car = _read_json(path, "shard sidecar", fix)
    if car is not None:
        _validate_identity(car, path, fix)
        _validate_entry(car.get("shard"), path, fix)
        if car["shard"]["name"] != folder.name or car["shard"].get("files") is None:
            raise CorruptFileError(path, f"describes shard {car['shard']['name']!r}, not {folder.name!r}: {fix}")
    return car


def _check_files(folder: Path, files: dict, full: bool) -> tuple[Path, str] | None:
    """(path, what is wrong) for the first file that fails its size (and with full, sha256) check."""
    for name, (size, _) in files.items():
        try:
            found = (folder / name).stat().st_size
        except FileNotFoundError:
            return folder / name, "is missing (the shard is incomplete)"
        if found != size:
            return folder / name, f"has {found} bytes, not the {size} written (truncated or overwritten)"
    for name, (_, sha) in files.items() if full else ():
        if _sha256_file(folder / name) != sha:
            return folder / name, "does not match its sha256 checksum (the bytes changed since they were written)"
    return None


def _npy_layout(path: Path) -> tuple[tuple, np.dtype, int]:
    """(shape, dtype, data offset) of a C-ordered .npy whose size matches its header."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            read = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
            if version not in read:
                raise ValueError(f"npy version {version}")
            shape, fortran, dtype = read[version](f)
            offset, size = f.tell(), os.fstat(f.fileno()).st_size
    except FileNotFoundError:
        raise CorruptFileError(path, f"is missing: {REPAIR_FIX}") from None
    except (OSError, ValueError, EOFError) as e:
        raise CorruptFileError(path, f"is not a readable .npy file ({e}): {REPAIR_FIX}") from None
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if fortran or dtype.hasobject or size != offset + nbytes:
        raise CorruptFileError(path, f"holds {size - offset} data bytes, not the {nbytes} its header announces for "
                                     f"{shape} {dtype}: {REPAIR_FIX}")
    return shape, dtype, offset


def _copy(path: Path, out, start: int, nbytes: int, sha=None) -> None:
    """Stream `nbytes` from `start` of path into out (and every byte read into sha, when given)."""
    buf = bytearray(CHUNK_BYTES)
    with open(path, "rb") as f:
        f.seek(start)
        while nbytes > 0:
            n = f.readinto(memoryview(buf)[:min(nbytes, CHUNK_BYTES)])
            if not n:
                raise CorruptFileError(path, f"ended early while compacting: {REPAIR_FIX}")
            if sha is not None:
                sha.update(memoryview(buf)[:n])
            out.write(memoryview(buf)[:n])
            nbytes -= n


def _concat_npy(out_path: Path, parts: list, axis: int) -> list:
    """Write the concatenation of .npy files along axis 0 (or axis 1 of 2-D ones) without loading them.

    parts: (path, [size, sha256] or None) per input; each input is checked against it on the way, so
    compaction never copies damaged bytes into a freshly checksummed file. Returns the output's [size, sha256]."""
    layouts = [_npy_layout(p) for p, _ in parts]
    shape0, dtype, _ = layouts[0]
    for (p, _), (shape, dt, _) in zip(parts, layouts):
        if dt != dtype or len(shape) != len(shape0) or any(a != b for i, (a, b) in enumerate(zip(shape, shape0))
                                                            if i != axis):
            raise CorruptFileError(p, f"holds {shape} {dt}, which does not join the other shards' {shape0} {dtype}: "
                                      f"{REPAIR_FIX}")
    total = sum(shape[axis] for shape, _, _ in layouts)
    out_shape = (*shape0[:axis], total, *shape0[axis + 1:])
    # axis 0, or one channel: each input's data is one contiguous run of the output, read once and hashed on the way
    contiguous = axis == 0 or shape0[0] == 1
    with open(out_path, "wb") as f:
        out = _HashingWriter(f)
        np.lib.format.write_array_header_1_0(out, {"descr": np.lib.format.dtype_to_descr(dtype),
                                                   "fortran_order": False, "shape": out_shape})
        if contiguous:
            for (p, expected), (shape, dt, offset) in zip(parts, layouts):
                sha = hashlib.sha256()
                with open(p, "rb") as head:
                    sha.update(head.read(offset))
                _copy(p, out, offset, int(np.prod(shape, dtype=np.int64)) * dt.itemsize, sha)
                if expected is not None and sha.hexdigest() != expected[1]:
                    raise CorruptFileError(p, f"does not match its sha256 checksum: {REPAIR_FIX}")
        else:  # (channels, samples) with several channels: channel by channel, inputs checked first
            for p, expected in parts:
                if expected is not None and _sha256_file(p) != expected[1]:
                    raise CorruptFileError(p, f"does not match its sha256 checksum: {REPAIR_FIX}")
            for channel in range(shape0[0]):
                for (p, _), (shape, dt, offset) in zip(parts, layouts):
                    run = shape[1] * dt.itemsize
                    _copy(p, out, offset + channel * run, run)
        return out.digest()


def _merge_offsets(offsets: list) -> np.ndarray:
    merged, total = [np.asarray(offsets[0], dtype=np.int64)], int(offsets[0][-1])
    for o in offsets[1:]:
        merged.append(np.asarray(o[1:], dtype=np.int64) + total)
        total += int(o[-1])
    return np.concatenate(merged)


# ----- verification report -----------------------------------------------------------------------
@dataclasses.dataclass
class StoreReport:
    """What `verify()` found (and `repair()` did), by shard name.

    unchecked: shards of older stores with no recorded checksums (present, not verifiable until repair()).
    duplicate: name -> why (listed twice, or rows already in an earlier shard). invalid: manifest entries
    that are not shard names (never opened as paths)."""

    ok: list = dataclasses.field(default_factory=list)
    unchecked: list = dataclasses.field(default_factory=list)
    missing: list = dataclasses.field(default_factory=list)
    corrupt: dict = dataclasses.field(default_factory=dict)
    duplicate: dict = dataclasses.field(default_factory=dict)
    invalid: list = dataclasses.field(default_factory=list)
    actions: list = dataclasses.field(default_factory=list)

    @property
    def sound(self) -> bool:
        return not (self.missing or self.corrupt or self.duplicate or self.invalid)

    def __str__(self) -> str:
        head = (f"{len(self.ok)} shards ok, {len(self.unchecked)} without checksums, {len(self.missing)} missing, "
                f"{len(self.corrupt)} corrupt, {len(self.duplicate)} duplicate, {len(self.invalid)} invalid")
        return "\n".join([head, *self.actions])


def _status_report(statuses) -> StoreReport:
    report = StoreReport()
    for entry, status, path, reason in statuses:
        name = entry["name"]
        if status in ("ok", "unchecked", "missing", "invalid"):
            getattr(report, status).append(name)
        elif status == "corrupt":
            report.corrupt[name] = f"{Path(path).name} {reason}"
        else:
            report.duplicate[name] = reason
    return report


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
    def create(cls, path, *, model_id: str, spec: dict, spec_key: str, keys, per_step_keys=(),
               sample_rate_hz: int | None = None, extra: dict | None = None, accept_spec_keys=(),
               lock_timeout_s: float = 10.0) -> "ActivationStore":
        """Open the store at `path` if it matches (model_id, spec_key), else make a new one there.

        A store without rows takes the new identity (a run that failed before its first row leaves nothing to
        keep); a lost manifest is rebuilt from the shards' shard.json. accept_spec_keys: older keys of the
        same settings (such a store is relabelled with spec_key)."""
        path = Path(path)
        for site, _ in [*keys, *per_step_keys]:
            if not SITE_NAME.fullmatch(str(site)):
                raise BadInputError(f"site {site!r} cannot name a file: use letters, digits and '_'")
        identity = dict(model_id=model_id, spec_key=spec_key, spec=spec, keys=[[s, int(l)] for s, l in keys],
                        per_step_keys=[[s, int(l)] for s, l in per_step_keys], sample_rate_hz=sample_rate_hz,
                        extra=extra or {})
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

    # ----- checking ----------------------------------------------------------------------------
    def _inspect(self, mode: str) -> list:
        """(entry, status, path, reason) per manifest entry; mode "none" | "sizes" | "full"."""
        statuses, names, owner = [], set(), {}
        mpath = self.path / MANIFEST
        for e in self.manifest["shards"]:
            name = e["name"]
            if not SHARD_NAME.fullmatch(name):
                statuses.append((e, "invalid", mpath, f"lists shard {name!r}, which is not a name this store writes "
                                                       "(like 000003-a1b2c3); it is never opened as a path"))
                continue
            if name in names:
                statuses.append((e, "listed_twice", mpath, f"lists shard {name} twice (its rows would be read twice)"))
                continue
            names.add(name)
            folder = self.path / "shards" / name
            seen = next((i for i in e["ids"] if i in owner), None)
            if seen is not None or len(set(e["ids"])) != len(e["ids"]):
                where = f"also in shard {owner[seen]}" if seen is not None else "listed twice within it"
                statuses.append((e, "duplicate", folder, f"holds row {seen!r}, {where} (it would be read twice)"))
                continue
            if mode != "none" and not folder.is_dir():
                statuses.append((e, "missing", folder, "is listed in manifest.json but missing"))
                continue
            bad = _check_files(folder, e["files"], mode == "full") if mode != "none" and e.get("files") else None
            if bad is not None:
                statuses.append((e, "corrupt", *bad))
                continue
            statuses.append((e, "ok" if e.get("files") else "unchecked", folder, ""))
            owner.update(dict.fromkeys(e["ids"], name))
        return statuses

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

    def append(self, pooled: dict, rows: list[dict], steps: dict | None = None, audio: list | None = None) -> None:
        """Commit one shard: pooled[(site, layer)] (n, ...) arrays, one metadata dict per row (with a unique
        "id"), optional per-step lists of (T_i, H) arrays, optional audio list of (channels, samples).

        Holds the write lock (waiting up to lock_timeout_s) and rereads the manifest first, so appends from
        several processes all land."""
        n = len(rows)
        ids = [str(r["id"]) for r in rows]
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
                    files[fname + ".npy"] = _save_npy(tmp, fname + ".npy", np.concatenate(seqs).astype(np.float32))
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
        from workbench.runtime.clip import Clip
        r = self.table[row]
        return Clip(self.audio(row), self.sample_rate_hz, prompt=r.get("prompt"), seed=r.get("seed"),
                    model_id=self.model_id, label=r.get("label"))


def _rebuild_manifest(path: Path) -> dict | None:
    """Rebuild a lost manifest from the shards' sidecars (call under the lock); None when there are none.

    Keeps complete shards of one store in sequence order, leaves out shards a later compaction replaced
    and any whose rows are already kept; writes the manifest and warns what it did. Touches no shard."""
    shards = path / "shards"
    found, damaged, skipped, bare = [], [], [], []
    for child in sorted(shards.iterdir()) if shards.is_dir() else ():
        if child.is_symlink() or not child.is_dir() or not SHARD_NAME.fullmatch(child.name):
            continue
        try:
            car = _read_sidecar(child)
        except CorruptFileError as e:
            damaged.append(e)
            continue
        except StoreError as e:
            skipped.append(str(e))
            continue
        if car is None:
            bare.append(child.name)
        elif (bad := _check_files(child, car["shard"]["files"], full=False)) is not None:
            skipped.append(f"{bad[0]}: {bad[1]}")
        else:
            found.append(car)
    skipped += [str(e) for e in damaged]
    if not found:
        if damaged:
            raise CorruptFileError(damaged[0].path, f"manifest.json is missing and cannot be rebuilt from this damaged "
                                   f"shard.json ({len(damaged)} damaged): restore manifest.json from a backup, or "
                                   "collect into a new folder (nothing here was changed)") from damaged[0]
        if skipped or bare:
            raise StoreError(f"store {path} has no manifest.json and none of its shard folders can rebuild one "
                             f"({len(bare)} without {SIDECAR}, written by an older workbench; {len(skipped)} "
                             f"incomplete{': ' + skipped[0] if skipped else ''}): collect into a new folder "
                             "(nothing here was changed)")
        return None
    stores = {(c["store_id"], c["model_id"]) for c in found}
    if len(stores) > 1:
        raise StoreError(f"store {path} has no manifest.json and its shards come from {len(stores)} different "
                         f"stores {sorted(map(str, stores))}: move each store's shard folders into a folder of their own")
    replaced = {n for c in found for n in c.get("replaces") or []}
    kept, ids, latest = [], set(), max(found, key=lambda c: _seq(c["shard"]["name"]))
    for car in sorted(found, key=lambda c: _seq(c["shard"]["name"])):
        e = car["shard"]
        if e["name"] in replaced or ids & set(e["ids"]):
            skipped.append(f"{e['name']}: its rows are in another shard")
            continue
        kept.append(e)
        ids |= set(e["ids"])
    manifest = dict(format=FORMAT, store_id=latest["store_id"], **{k: latest.get(k) for k in IDENTITY}, shards=kept)
    manifest["extra"] = manifest["extra"] or {}
    manifest["per_step_keys"] = manifest["per_step_keys"] or []
    _write_json_atomic(path / MANIFEST, manifest)
    warnings.warn(f"store {path}: manifest.json was missing; rebuilt it from the shard.json of {len(kept)} shards "
                  f"({len(ids)} rows)" + (f"; left out {len(skipped)}: " + "; ".join(skipped) if skipped else "")
                  + (f"; {len(bare)} older shard folders without {SIDECAR} left as they are" if bare else ""),
                  stacklevel=3)
    return manifest
