"""Checking and recovery of an activation store: manifest/sidecar validation, shard status, StoreReport.

`workbench.data.store.ActivationStore` opens, verifies and repairs stores with these: `_read_manifest` /
`_read_sidecar` validate the JSON metadata (CorruptFileError naming what is wrong), `_inspect_shards` gives
every manifest entry its status (ok, unchecked, missing, corrupt, duplicate, listed_twice, invalid),
`_status_report` turns those into the `StoreReport` that `verify()` and `repair()` return, and
`_rebuild_manifest` rebuilds a lost manifest from the shards' shard.json sidecars.

    >>> report = StoreReport(ok=["000000-a1b2c3"], corrupt={"000001-d4e5f6": "resid.0.npy is missing"})
    >>> report.sound, str(report)
    (False, '1 shards ok, 0 without checksums, 0 missing, 1 corrupt, 0 duplicate, 0 invalid')
"""
from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path

from workbench.data.store_io import (
    FILE_NAME,
    FORMAT,
    IDENTITY,
    MANIFEST,
    MANIFEST_FIX,
    READABLE_FORMATS,
    SHARD_NAME,
    SIDECAR,
    SITE_NAME,
    StoreError,
    _read_json,
    _seq,
    _sha256_file,
    _write_json_atomic,
)
from workbench.errors import CorruptFileError

__all__ = ["StoreReport"]


# ----- manifest and sidecars ----------------------------------------------------------------------
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


def _inspect_shards(path: Path, manifest: dict, mode: str) -> list:
    """(entry, status, path, reason) per entry of the store manifest at `path`; mode "none" | "sizes" | "full"."""
    statuses, names, owner = [], set(), {}
    mpath = path / MANIFEST
    for e in manifest["shards"]:
        name = e["name"]
        if not SHARD_NAME.fullmatch(name):
            statuses.append((e, "invalid", mpath, f"lists shard {name!r}, which is not a name this store writes "
                                                   "(like 000003-a1b2c3); it is never opened as a path"))
            continue
        if name in names:
            statuses.append((e, "listed_twice", mpath, f"lists shard {name} twice (its rows would be read twice)"))
            continue
        names.add(name)
        folder = path / "shards" / name
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


# ----- verification report ------------------------------------------------------------------------
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


# ----- a lost manifest ----------------------------------------------------------------------------
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
                         f"stores {sorted(map(str, stores))}: move each store's shard folders into a folder of "
                         "their own")
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
