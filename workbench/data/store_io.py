"""File-level helpers of the activation store: its on-disk names, the write lock, checksummed writes, streaming .npy.

Nothing here knows about manifests or shards as a whole (`workbench.data.store` and
`workbench.data.store_repair` do); these are the pieces that touch single files:

- `store_lock`: the store's advisory flock (re-entrant per thread, released by the kernel when its process dies)
  and the holder record (pid, host, since) that a waiting writer's StoreLockedError names;
- `_save_npy` / `_save_json` / `_write_json_atomic`: writes that return the file's [size, sha256];
- `_sha256_file`, `_read_json`: checks and reads with clear errors;
- `_concat_npy` / `_merge_offsets`: compaction's streaming concatenation of .npy files (flat memory).

    >>> import numpy as np, tempfile
    >>> from pathlib import Path
    >>> folder = Path(tempfile.mkdtemp())
    >>> a = _save_npy(folder, "a.npy", np.ones((2, 3), np.float32))
    >>> b = _save_npy(folder, "b.npy", np.zeros((1, 3), np.float32))
    >>> a[0] == (folder / "a.npy").stat().st_size, a[1] == _sha256_file(folder / "a.npy")
    (True, True)
    >>> _ = _concat_npy(folder / "ab.npy", [(folder / "a.npy", a), (folder / "b.npy", b)], axis=0)
    >>> np.load(folder / "ab.npy").sum(axis=1).tolist()
    [3.0, 3.0, 0.0]
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import socket
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from workbench.errors import CorruptFileError, WorkbenchError

__all__ = ["StoreError", "StoreLockedError", "StoreMismatchError", "array_hash", "store_lock"]


# ----- the on-disk layout -------------------------------------------------------------------------
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


for _cls in (StoreError, StoreMismatchError, StoreLockedError):
    _cls.__module__ = "workbench.data.store"  # their public home: tracebacks and pickles name it, as before
del _cls


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


# ----- the write lock -----------------------------------------------------------------------------
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


def _read_holder(lock_path: Path, wait_s: float = 1.0) -> dict:
    """The holder's record; a writer records itself just after taking the lock, so an empty record
    is read again for up to `wait_s` seconds (a busy machine can delay that write)."""
    deadline = time.monotonic() + wait_s
    while True:
        try:
            holder = json.loads(lock_path.read_text() or "{}")
        except (OSError, ValueError):
            holder = {}
        holder = holder if isinstance(holder, dict) else {}
        if "pid" in holder or time.monotonic() >= deadline:
            return holder
        time.sleep(0.02)


def _locked_message(folder: Path, lock_path: Path, timeout_s: float) -> str:
    holder = _read_holder(lock_path)
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


# ----- files: written with their checksums, read with clear errors --------------------------------
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


# ----- streaming .npy concatenation (compaction) --------------------------------------------------
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
