"""Where saved directions and probes live on disk, and how they are read back.

A name is kept as given: `save("rock_s1.0")` writes `rock_s1.0.safetensors` (tensors, with the
metadata in its header) and `rock_s1.0.safetensors.json` (the same metadata, for people and other
tools); `read_saved` takes the name, the full file name or the sidecar's name. Used by
`Direction.save` / `Direction.load` and `LinearProbe.save` / `LinearProbe.load`.

    >>> import os, tempfile
    >>> from safetensors.numpy import save_file
    >>> import numpy as np
    >>> path, sidecar = save_paths(os.path.join(tempfile.mkdtemp(), "rock_s1.0"))
    >>> save_file({"vector": np.ones(3, np.float32)}, str(path))
    >>> _ = sidecar.write_text('{"format": "workbench.direction/1"}')
    >>> tensors_path, tensors, meta, source = read_saved(path.parent / "rock_s1.0", "direction", ("vector",))
    >>> tensors_path.name, tensors["vector"].tolist(), source.name
    ('rock_s1.0.safetensors', [1.0, 1.0, 1.0], 'rock_s1.0.safetensors.json')
"""
from __future__ import annotations

import json
from pathlib import Path

from workbench.errors import BadInputError, CorruptFileError

__all__ = ["save_paths", "read_saved", "TENSORS_SUFFIX", "SIDECAR_SUFFIX"]

TENSORS_SUFFIX = ".safetensors"
SIDECAR_SUFFIX = ".json"


def save_paths(path) -> tuple[Path, Path]:
    """(tensors file, JSON sidecar) for a saved name: `rock_s1.0` -> `rock_s1.0.safetensors`,
    `rock_s1.0.safetensors.json`; a name ending in `.safetensors` (or naming the sidecar) is kept.

        >>> [p.name for p in save_paths("dirs/rock_s1.0")]
        ['rock_s1.0.safetensors', 'rock_s1.0.safetensors.json']
    """
    path = Path(path)
    if not path.name:
        raise BadInputError(f"{str(path)!r} has no file name: pass one, e.g. 'directions/rock'")
    if path.name.endswith(TENSORS_SUFFIX + SIDECAR_SUFFIX):  # the sidecar was named: its tensors file
        path = path.with_name(path.name[: -len(SIDECAR_SUFFIX)])
    if not path.name.endswith(TENSORS_SUFFIX):
        path = path.with_name(path.name + TENSORS_SUFFIX)
    return path, path.with_name(path.name + SIDECAR_SUFFIX)


def _json_object(text: str, source: Path, what: str) -> dict:
    try:
        meta = json.loads(text)
    except ValueError as exc:
        raise CorruptFileError(source, f"its {what} metadata is not valid JSON ({exc}): delete the file and "
                                       f"re-save the {what}") from exc
    if not isinstance(meta, dict):
        raise CorruptFileError(source, f"its {what} metadata is a JSON {type(meta).__name__}, not an object: "
                                       f"delete the file and re-save the {what}")
    return meta


def _old_sidecar(tensors_path: Path, what: str) -> dict | None:
    """The sidecar of the layout before issue 9 (`rock.json` next to `rock.safetensors`), if it is ours:
    a file of that name may also be a clip's or a dataset's, which is then ignored."""
    old = tensors_path.with_suffix(SIDECAR_SUFFIX)
    try:
        meta = json.loads(old.read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) and str(meta.get("format", "")).startswith(f"workbench.{what}/") else None


def read_saved(path, what: str, tensor_names) -> tuple[Path, dict, dict, Path]:
    """Read what `save` wrote: (tensors file, {name: array}, metadata, the file the metadata came from).

    what: "direction" or "probe" (checked against the metadata's `format`). Metadata comes from the
    sidecar, else the safetensors header, else an old-layout `<stem>.json` sidecar. Unreadable files
    raise `CorruptFileError` naming the file.
    """
    from safetensors import SafetensorError, safe_open
    given = Path(path)
    tensors_path, sidecar = save_paths(given)
    if not tensors_path.is_file():
        message = f"no saved {what} at {tensors_path}"
        old = given.with_suffix(TENSORS_SUFFIX)
        if old != tensors_path and old.is_file():  # older versions replaced the name's last suffix
            message += (f"; older versions saved {given.name!r} as {old.name} (they replaced the part after "
                        f"the last dot, so names like 'rock_s1.0' and 'rock_s1.5' shared one file): load "
                        f"{str(old)!r} if it is the one, or re-save it")
        raise FileNotFoundError(message)
    try:
        with safe_open(str(tensors_path), framework="numpy") as f:
            missing = [k for k in tensor_names if k not in set(f.keys())]
            tensors = {} if missing else {k: f.get_tensor(k) for k in tensor_names}
            embedded = (f.metadata() or {}).get("workbench")
    except (SafetensorError, OSError, ValueError) as exc:
        raise CorruptFileError(tensors_path, f"is not a readable safetensors file ({exc}): delete it and re-save "
                                             f"the {what}") from exc
    if sidecar.is_file():
        meta, source = _json_object(sidecar.read_text(), sidecar, what), sidecar
    elif embedded is not None:
        meta, source = _json_object(embedded, tensors_path, what), tensors_path
    else:
        meta, source = _old_sidecar(tensors_path, what) or {}, tensors_path.with_suffix(SIDECAR_SUFFIX)
    kind = str(meta.get("format", f"workbench.{what}/")).split("/")[0].removeprefix("workbench.")
    if kind != what:
        loader = {"direction": "Direction.load", "probe": "LinearProbe.load"}.get(kind, "the matching loader")
        raise BadInputError(f"{tensors_path.name} holds a saved {kind}, not a {what}: load it with {loader}")
    if missing:
        raise CorruptFileError(tensors_path, f"has no {', '.join(map(repr, missing))} tensor(s), which a saved "
                                             f"{what} has: re-save the {what}")
    return tensors_path, tensors, meta, source
