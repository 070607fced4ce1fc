"""Hostile-user failures of the activation store (issue 9, item 1): locking, names, checksums, repair."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
from store_helpers import KEYS, shard

import workbench
from workbench.data.store import ActivationStore, StoreError, StoreIdentity, StoreLockedError, store_lock
from workbench.errors import CorruptFileError

ROOT = str(Path(workbench.__file__).parent.parent)
IDENTITY = dict(model_id="random/tiny@seed0", spec={"pooling": "mean"}, spec_key="k1", keys=KEYS,
                per_step_keys=[("resid", 2)], sample_rate_hz=8000)


def make(path, **kw):
    return ActivationStore.create(path, StoreIdentity(**dict(IDENTITY, **kw)))


def two_shards(path):
    store = make(path)
    store.append(*shard(0, 3))
    store.append(*shard(3, 2))
    return store


def names(store):
    return [e["name"] for e in store.manifest["shards"]]


def edit_manifest(path, change):
    m = json.loads((path / "manifest.json").read_text())
    change(m)
    (path / "manifest.json").write_text(json.dumps(m))


def spawn(code, *args, **kw):
    env = dict(os.environ, PYTHONPATH=ROOT)
    return subprocess.Popen([sys.executable, "-c", textwrap.dedent(code), *map(str, args)], env=env, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kw)


# ----- 1. a lock: one writer at a time ------------------------------------------------------------
HOLDER = """
    import sys, time
    from workbench.data.store import store_lock
    with store_lock(sys.argv[1]):
        print("held", flush=True)
        time.sleep(float(sys.argv[2]))
"""


def test_second_writer_waits_or_is_refused_naming_the_holder(tmp_path):
    store = two_shards(tmp_path / "s")
    holder = spawn(HOLDER, store.path, 1.5)
    assert holder.stdout.readline().strip() == "held"
    record = json.loads((store.path / ".lock").read_text())
    assert record["pid"] == holder.pid and record["host"] == socket.gethostname()
    with pytest.raises(StoreLockedError) as err:
        ActivationStore(store.path, lock_timeout_s=0).append(*shard(5, 1))
    message = str(err.value)
    assert f"pid {holder.pid}" in message and socket.gethostname() in message and record["since"] in message
    assert "lock_timeout_s" in message and isinstance(err.value, StoreError)
    assert ActivationStore(store.path).labels() == list("ababa")  # readers need no lock
    start = time.monotonic()
    ActivationStore(store.path, lock_timeout_s=60).append(*shard(5, 1))  # waits for the holder to finish
    assert time.monotonic() - start > 0.2 and holder.wait(10) == 0
    assert len(ActivationStore(store.path)) == 6


def test_a_writer_refused_in_the_instant_before_the_holder_records_itself_still_names_it(tmp_path):
    """The holder takes the flock, then writes its record: a refusal in between used to say "pid ?"
    (seen in CI under load, test_two_collections_at_once_one_is_refused)."""
    import fcntl
    import threading

    folder = tmp_path / "s"
    folder.mkdir()
    fd = os.open(folder / ".lock", os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX)  # held, record not written yet
    late = threading.Timer(0.3, lambda: os.pwrite(fd, json.dumps(
        dict(pid=4242, host="elsewhere", since="a moment ago")).encode(), 0))
    late.start()
    try:
        with pytest.raises(StoreLockedError, match="pid 4242 on host elsewhere since a moment ago"):
            with store_lock(folder, timeout_s=0):
                pass
    finally:
        late.join()
        os.close(fd)


def test_a_killed_writer_never_blocks_the_next(tmp_path):
    store = two_shards(tmp_path / "s")
    holder = spawn(HOLDER, store.path, 60)
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(StoreLockedError):
        with store_lock(store.path, timeout_s=0.1):
            pass
    holder.send_signal(signal.SIGKILL)
    holder.wait()
    with store_lock(store.path, timeout_s=0) as me:  # the kernel released the dead writer's flock
        assert me["pid"] == os.getpid()
        store.append(*shard(5, 1))  # re-entrant in this thread
    assert len(ActivationStore(store.path)) == 6


APPENDER = """
    import sys, time
    from pathlib import Path
    import numpy as np
    from workbench.data import store as sm
    path, tag, go = sys.argv[1], sys.argv[2], Path(sys.argv[3])
    original = sm._save_npy
    def slow_save(*a):
        time.sleep(0.01)  # widen the windows in which two unlocked writers would interleave
        return original(*a)
    sm._save_npy = slow_save
    while not go.exists():
        time.sleep(0.002)
    store, start = sm.ActivationStore(path), time.time()
    for k in range(8):
        rows = [dict(id=f"{tag}{k}-{i}", label=tag) for i in range(3)]
        store.append({("resid", 0): np.full((3, 4), k, np.float32), ("resid", 2): np.zeros((3, 4), np.float32)}, rows)
        store.sweep_leftovers()
    print(start, time.time())
"""


def test_two_processes_appending_at_once_lose_no_rows(tmp_path):
    store = ActivationStore.create(tmp_path / "s", StoreIdentity(**dict(IDENTITY, per_step_keys=())))
    go = tmp_path / "go"
    writers = [spawn(APPENDER, store.path, tag, go) for tag in "xy"]
    time.sleep(0.5)
    go.touch()
    outputs = [w.communicate(timeout=120) for w in writers]
    assert [w.returncode for w in writers] == [0, 0], outputs
    (start_x, end_x), (start_y, end_y) = [map(float, out.split()) for out, _ in outputs]
    assert max(start_x, start_y) < min(end_x, end_y), "the writers did not overlap"
    after = ActivationStore(store.path)
    ids = [r["id"] for r in after.table]
    assert len(ids) == len(set(ids)) == 48 and set(ids) == {f"{t}{k}-{i}" for t in "xy" for k in range(8)
                                                             for i in range(3)}
    assert after.verify(full=True).sound and len(names(after)) == 16
    assert after.array("resid", 0).shape == (48, 4)


# ----- 2. shard names are names, never paths --------------------------------------------------------
@pytest.mark.parametrize("crafted", ["../../other/shards/{name}", "{absolute}", "000001-abcdef/../../../other",
                                     "..", ""])
def test_manifest_entries_are_names_not_paths(tmp_path, crafted):
    mine = two_shards(tmp_path / "mine")
    other = make(tmp_path / "other")
    other.append(*shard(10, 2))
    victim = other.path / "shards" / names(other)[0]
    name = crafted.format(name=victim.name, absolute=victim)
    edit_manifest(mine.path, lambda m: m["shards"].append(dict(other.manifest["shards"][0], name=name)))
    opened = ActivationStore(mine.path)
    with pytest.raises(CorruptFileError, match="not a name this store writes") as err:
        opened.compact()
    assert err.value.path == str(mine.path / "manifest.json") and "store.repair()" in str(err.value)
    with pytest.raises(CorruptFileError):
        opened.array("resid", 0)
    report = opened.repair(verbose=False)
    assert report.invalid == [name] and victim.is_dir() and len(list(victim.iterdir())) > 3
    assert ActivationStore(mine.path).labels() == list("ababa")
    assert ActivationStore(other.path).array("resid", 0).shape == (2, 4)  # the other store is untouched
    assert not (other.path / "quarantine").exists()


# ----- 3. checksums: truncation, bit flips, verify and repair ----------------------------------------
def test_truncated_shard_raises_naming_it_and_repair_quarantines_it(tmp_path):
    store = two_shards(tmp_path / "s")
    second = store.path / "shards" / names(store)[1]
    audio = second / "audio.npy"
    audio.write_bytes(audio.read_bytes()[:-8])
    reopened = ActivationStore(store.path)
    with pytest.raises(CorruptFileError, match=r"has \d+ bytes, not the \d+ written.*store\.repair\(\)") as err:
        reopened.labels()
    assert err.value.path == str(audio)
    assert reopened.verify(full=False).corrupt[second.name].startswith("audio.npy has ")
    report = reopened.repair(verbose=False)
    assert list(report.corrupt) == [second.name] and any("quarantine" in a for a in report.actions)
    assert (store.path / "quarantine" / second.name / "audio.npy").exists()  # moved, never deleted
    repaired = ActivationStore(store.path)
    assert repaired.labels() == list("aba") and repaired.verify().sound and names(repaired) == names(store)[:1]


def test_bit_flip_is_caught_by_full_verification_and_compaction(tmp_path):
    store = two_shards(tmp_path / "s")
    first = store.path / "shards" / names(store)[0]
    target = first / "resid.2.npy"
    data = bytearray(target.read_bytes())
    data[-3] ^= 0x10  # same size: the cheap check on open cannot see it
    target.write_bytes(bytes(data))
    assert ActivationStore(store.path).array("resid", 0).shape == (5, 4)
    report = ActivationStore(store.path).verify(full=True)
    assert not report.sound and list(report.corrupt) == [first.name] and "sha256" in report.corrupt[first.name]
    with pytest.raises(CorruptFileError, match="sha256") as err:
        ActivationStore(store.path, verify="full").array("resid", 2)
    assert err.value.path == str(target)
    with pytest.raises(CorruptFileError, match="sha256"):
        ActivationStore(store.path).compact()  # never copies damaged bytes into a freshly checksummed shard
    assert names(ActivationStore(store.path)) == names(store)
    assert sorted(p.name for p in (store.path / "shards").iterdir()) == sorted(names(store))
    ActivationStore(store.path).repair(verbose=False)
    assert ActivationStore(store.path, verify="full").labels() == list("ba")


# ----- 4. duplicates ----------------------------------------------------------------------------------
def test_a_shard_listed_twice_is_refused_and_repair_drops_the_listing(tmp_path):
    store = two_shards(tmp_path / "s")
    edit_manifest(store.path, lambda m: m["shards"].append(m["shards"][0]))
    reopened = ActivationStore(store.path)
    with pytest.raises(CorruptFileError, match="twice"):
        reopened.array("resid", 0)
    report = reopened.repair(verbose=False)
    assert list(report.duplicate) == [names(store)[0]] and report.actions == [
        f"dropped the second listing of shard {names(store)[0]}"]
    assert len(ActivationStore(store.path).table) == 5 and (store.path / "shards" / names(store)[0]).is_dir()


def test_the_same_row_in_two_shards_is_refused(tmp_path):
    store = two_shards(tmp_path / "s")
    copy = store.path / "shards" / "000007-abcdef"
    shutil.copytree(store.path / "shards" / names(store)[1], copy)
    edit_manifest(store.path, lambda m: m["shards"].append(dict(m["shards"][1], name=copy.name)))
    with pytest.raises(CorruptFileError, match=f"also in shard {names(store)[1]}") as err:
        _ = ActivationStore(store.path).table
    assert err.value.path == str(copy)
    ActivationStore(store.path).repair(verbose=False)
    assert [r["id"] for r in ActivationStore(store.path).table] == [f"r{i}" for i in range(5)]
    assert (store.path / "quarantine" / copy.name).is_dir()


# ----- 5. a lost manifest is rebuilt; sweeps touch only the store's own leftovers ----------------------
def test_lost_manifest_is_rebuilt_from_sidecars_and_user_files_survive(tmp_path):
    store = two_shards(tmp_path / "s")
    aside = tmp_path / "aside"
    shutil.copytree(store.path / "shards", aside)
    store.compact()
    for old in aside.iterdir():  # as if killed after the compaction's commit, before it removed the old shards
        shutil.copytree(old, store.path / "shards" / old.name)
    store.append(*shard(5, 2))
    expected = (ActivationStore(store.path).table, ActivationStore(store.path).array("resid", 2).copy())
    user = [store.path / "shards/my_notes/notes.txt", store.path / "shards/README.txt",
            store.path / "shards/000099-abcdef/mine.npy", store.path / "shards/.tmp-mine/x.txt"]
    for f in user:
        f.parent.mkdir(parents=True, exist_ok=True)
        f.write_text("keep me")
    (store.path / "manifest.json").unlink()
    with pytest.warns(UserWarning, match="rebuilt it from the shard.json of 2 shards"):
        reopened = ActivationStore(store.path)
    assert reopened.table == expected[0] and np.array_equal(reopened.array("resid", 2), expected[1])
    assert reopened.steps("resid", 2, 6)[0, 0] == 6 and reopened.audio(6).shape == (1, 16)
    (store.path / "manifest.json").unlink()
    with pytest.warns(UserWarning, match="rebuilt"):
        again = make(store.path)  # what collect does: recover, then sweep
    removed = again.sweep_leftovers()
    assert sorted(Path(p).name for p in removed) == sorted(p.name for p in aside.iterdir())
    assert all(f.read_text() == "keep me" for f in user) and len(again) == 7 and again.verify().sound


# ----- 8. corrupt manifests and sidecars name the file and the fix --------------------------------------
@pytest.mark.parametrize("change", [
    lambda m: "{half",
    lambda m: "[]",
    lambda m: "null",
    lambda m: json.dumps({"format": 2}),
    lambda m: json.dumps(dict(m, shards=[{"name": 3}])),
    lambda m: json.dumps(dict(m, shards="000000-abcdef")),
    lambda m: json.dumps(dict(m, keys=[["../../x", 0]])),
    lambda m: json.dumps(dict(m, shards=[dict(m["shards"][0], files={"../rows.json": [1, "x"]})])),
], ids=["truncated", "list", "null", "no-fields", "name-not-str", "shards-not-list", "site-is-path", "file-is-path"])
def test_corrupt_manifest_raises_corrupt_file_error(tmp_path, change):
    store = two_shards(tmp_path / "s")
    manifest = store.path / "manifest.json"
    manifest.write_text(change(json.loads(manifest.read_text())))
    with pytest.raises(CorruptFileError, match="rename it") as err:
        ActivationStore(store.path)
    assert err.value.path == str(manifest) and not isinstance(err.value, ValueError)


def format1_store(path):
    """A store as the earlier workbench wrote it: no checksums, no shard.json, no store_id."""
    folder = path / "shards" / "000000-a1b2c3"
    folder.mkdir(parents=True)
    pooled, rows, _, _ = shard(0, 3)
    for (site, layer), arr in pooled.items():
        np.save(folder / f"{site}.{layer}.npy", arr)
    (folder / "rows.json").write_text(json.dumps(rows))
    manifest = dict(format=1, model_id="random/tiny@seed0", spec_key="k1", spec={"pooling": "mean"},
                    keys=[list(k) for k in KEYS], per_step_keys=[], sample_rate_hz=8000, extra={},
                    shards=[dict(name=folder.name, n=3, ids=["r0", "r1", "r2"], audio=False)])
    (path / "manifest.json").write_text(json.dumps(manifest))
    return folder


def test_corrupt_sidecars_raise_corrupt_file_error(tmp_path):
    folder = format1_store(tmp_path / "old")
    (folder / "rows.json").write_text("[{half")
    with pytest.raises(CorruptFileError, match="not valid JSON.*store.repair") as err:
        _ = ActivationStore(tmp_path / "old").table
    assert err.value.path == str(folder / "rows.json")
    (folder / "rows.json").write_text(json.dumps({"id": "r0"}))
    with pytest.raises(CorruptFileError, match="does not hold the 3 rows"):
        ActivationStore(tmp_path / "old").labels()
    np.save(folder / "resid.0.npy", np.zeros((2, 4), np.float32))
    with pytest.raises(CorruptFileError, match="not the 3 manifest.json lists"):
        ActivationStore(tmp_path / "old").array("resid", 0)

    store = two_shards(tmp_path / "s")
    rows = store.path / "shards" / names(store)[0] / "rows.json"
    rows.write_text("{half")
    with pytest.raises(CorruptFileError, match="store.repair") as err:
        ActivationStore(store.path).labels()
    assert err.value.path == str(rows)
    for name in names(store):
        (store.path / "shards" / name / "shard.json").write_text("{half")
    (store.path / "manifest.json").unlink()
    with pytest.raises(CorruptFileError, match="cannot be rebuilt from this damaged shard.json") as err:
        ActivationStore(store.path)
    assert err.value.path.endswith("shard.json") and sorted(p.name for p in (store.path / "shards").iterdir()) \
        == sorted(names(store))


# ----- old stores ---------------------------------------------------------------------------------------
def test_format_1_store_opens_extends_and_gets_checksums_from_repair(tmp_path):
    folder = format1_store(tmp_path / "old")
    old = ActivationStore(tmp_path / "old")
    assert old.labels() == list("aba") and old.array("resid", 2)[2, 0] == 4
    report = old.verify()
    assert report.sound and report.unchecked == [folder.name] and report.ok == []
    old.append({k: np.zeros((1, 4), np.float32) for k in KEYS}, [dict(id="r9", label="b")])
    manifest = json.loads((tmp_path / "old/manifest.json").read_text())
    assert manifest["format"] == 2 and manifest["store_id"] and "files" in manifest["shards"][1]
    report = ActivationStore(tmp_path / "old").repair(verbose=False)
    assert f"recorded the checksums of shard {folder.name} (written by an older workbench)" in report.actions
    assert ActivationStore(tmp_path / "old").verify().ok == names(old)
    (tmp_path / "old/manifest.json").unlink()  # its shards now carry shard.json: the manifest can be rebuilt
    with pytest.warns(UserWarning, match="rebuilt"):
        assert ActivationStore(tmp_path / "old").labels() == list("abab")


# ----- 7. compaction streams ------------------------------------------------------------------------------
COMPACT_PEAK = """
    import json, sys
    from workbench.data.store import ActivationStore
    def status_kib(field):  # VmHWM: peak resident memory since the last reset, VmRSS: now
        return int(open("/proc/self/status").read().split(field + ":")[1].split()[0])
    store = ActivationStore(sys.argv[1])
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # reset VmHWM, so the peak is that of the compaction alone
    before_kib = status_kib("VmRSS")
    store.compact()
    print(json.dumps(dict(before_kib=before_kib, peak_kib=status_kib("VmHWM"))))
"""


@pytest.mark.skipif(not Path("/proc/self/clear_refs").exists(), reason="measures peak memory with Linux's /proc")
def test_compaction_memory_stays_flat_whatever_the_store_size(tmp_path):
    keys = [("resid", layer) for layer in range(4)]
    store = ActivationStore.create(tmp_path / "big", StoreIdentity("m", spec_key="k", keys=keys))
    n_rows, width = 400, 4096
    for s in range(8):  # 8 shards x 4 layers x 6.5 MB = 210 MB
        rows = [dict(id=f"{s}-{i}") for i in range(n_rows)]
        store.append({k: np.full((n_rows, width), s + k[1] / 10, np.float32) for k in keys}, rows)
    total_bytes = sum(f.stat().st_size for f in (store.path / "shards").rglob("*.npy"))
    proc = spawn(COMPACT_PEAK, store.path)
    out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    peak = json.loads(out)
    extra_bytes = (peak["peak_kib"] - peak["before_kib"]) * 1024
    print(f"compacting {total_bytes / 1e6:.0f} MB: peak RSS {peak['peak_kib'] / 1024:.0f} MiB, "
          f"{extra_bytes / 1e6:.1f} MB above the {peak['before_kib'] / 1024:.0f} MiB before")
    assert extra_bytes < total_bytes / 8, "compaction loaded the store into memory"
    after = ActivationStore(store.path, verify="full")
    arr = after.array("resid", 3)
    assert isinstance(arr, np.memmap) and arr.shape == (8 * n_rows, width) and len(names(after)) == 1
    assert arr[5 * n_rows + 7, 100] == np.float32(5.3) and after.table[-1]["id"] == f"7-{n_rows - 1}"


def test_compaction_of_stereo_audio_and_steps(tmp_path):
    store = make(tmp_path / "s")
    for start, n in ((0, 2), (2, 3)):
        pooled, rows, steps, _ = shard(start, n)
        audio = [np.stack([np.full(5 + i, i), np.full(5 + i, -i)]).astype(np.float32) for i in range(start, start + n)]
        store.append(pooled, rows, steps, audio)
    before = [store.audio(i) for i in range(5)], [store.steps("resid", 2, i) for i in range(5)]
    store.compact()
    after = ActivationStore(store.path, verify="full")
    assert all(np.array_equal(a, after.audio(i)) for i, a in enumerate(before[0]))
    assert all(np.array_equal(s, after.steps("resid", 2, i)) for i, s in enumerate(before[1]))
    assert after.audio(3).shape == (2, 8) and after.audio(3)[1, 0] == -3


@pytest.mark.parametrize("row", [99, -1, "x", None, 1.5, True])
def test_bad_rows_of_a_store_are_workbench_errors(tmp_path, row):
    from workbench.errors import BadInputError
    store = two_shards(tmp_path / "s")
    for call in (lambda: store.audio(row), lambda: store.clip(row), lambda: store.steps("resid", 2, row)):
        with pytest.raises(BadInputError):
            call()
