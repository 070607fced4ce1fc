"""Stream per-step frames of one (site, layer) from an activation store, shuffled, without loading it.

A store collected with ``per_step_layers=(L,)`` keeps, per shard, ``steps.<site>.<L>.npy`` (every row's
(T_i, H) activations concatenated in time) and its offsets. `FrameStream` memory-maps those files and
hands out shuffled batches of frames, each with the clip row it came from and its decoder step (time
``step / frame_rate_hz``): the training source of the sparse autoencoders (`workbench.analysis.features`).
Only the frames of the current batch are read from disk (sorted gathers from the memory map), so a store
far larger than memory streams with flat memory.

Size arithmetic: frames x hidden x bytes per value. One 4 s clip of a 50 Hz MusicGen has 200 frames plus
the delay pattern's 3 (4 codebooks) = 203 decoder steps. The teaching model (hidden 96) at 400 clips:
400 x 203 x 96 x 4 B = 31 MB per layer in float32, 16 MB in float16. MusicGen small (hidden 1024),
10 000 clips of 10 s: 10 000 x 503 x 1024 x 2 B = 10.3 GB per layer in float16 (20.6 GB in float32).
Shards written with ``store.append(..., steps_dtype="float16")`` halve that; batches are float32 either way.

    >>> import numpy as np, tempfile
    >>> from workbench.data.store import ActivationStore
    >>> s = ActivationStore.create(tempfile.mkdtemp(), model_id="m", spec={}, spec_key="k", keys=[("resid", 0)],
    ...                            per_step_keys=[("resid", 0)])
    >>> steps = [np.full((3, 4), 1, np.float16), np.full((5, 4), 2, np.float16)]
    >>> s.append({("resid", 0): np.zeros((2, 4))}, [{"id": "a"}, {"id": "b"}], steps={("resid", 0): steps},
    ...          steps_dtype="float16")
    >>> fs = FrameStream(s, "resid", 0, batch_size=4, seed=0)
    >>> fs.n_frames, fs.hidden_size, fs.dtype, fs.nbytes
    (8, 4, dtype('float16'), 64)
    >>> b = next(iter(fs.batches()))
    >>> b.x.dtype, b.x.shape, sorted(set(b.rows.tolist())) <= [0, 1], bool((b.x[:, 0] == b.rows + 1).all())
    (dtype('float32'), (4, 4), True, True)
"""
from __future__ import annotations

import dataclasses

import numpy as np

from workbench.errors import BadInputError, EmptyInputError

__all__ = ["FrameBatch", "FrameStream", "MUSICGEN_FRAME_RATE_HZ"]

MUSICGEN_FRAME_RATE_HZ = 50.0  # every MusicGen (and the teaching model): EnCodec frames per second


@dataclasses.dataclass
class FrameBatch:
    """x (B, H) float32 frames; rows (B,) their clip's store row; steps (B,) decoder step; times_s (B,)."""

    x: np.ndarray
    rows: np.ndarray
    steps: np.ndarray
    times_s: np.ndarray


class FrameStream:
    """Shuffled batches of the per-step frames of (site, layer), memory-mapped from the store's shards.

    rows: store rows to use (default all), e.g. a training split; frames of other rows are never read.
    seed: the shuffle of epoch e is a function of (seed, e) alone, so a resumed run sees the same batches.
    frame_rate_hz: decoder steps per second (50 for MusicGen), for `times_s`.
    """

    def __init__(self, store, site: str = "resid", layer: int = 0, batch_size: int = 1024, seed: int = 0,
                 rows=None, frame_rate_hz: float = MUSICGEN_FRAME_RATE_HZ):
        from workbench.data.store_io import _key_name

        key = (site, int(layer))
        if key not in store.step_keys():
            raise BadInputError(f"the store has no per-step frames of {key} (it has {store.step_keys() or 'none'}): "
                                f"collect with per_step_layers=({int(layer)},)")
        if int(batch_size) < 1:
            raise BadInputError(f"batch_size={batch_size!r}: pass a positive number of frames, e.g. 1024")
        self.store, self.site, self.layer = store, site, int(layer)
        self.batch_size, self.seed, self.frame_rate_hz = int(batch_size), int(seed), float(frame_rate_hz)
        name = f"steps.{_key_name(site, layer)}"
        self._maps, offsets_all, first_row = [], [], 0
        for folder, shard in store._shard_paths():
            data = store._load(folder / f"{name}.npy", None)  # memory-mapped, not read
            offsets = store._load(folder / f"{name}.offsets.npy", shard["n"] + 1, mmap=False).astype(np.int64)
            self._maps.append(data)
            offsets_all.append((offsets, first_row))
            first_row += shard["n"]
        wanted = np.arange(len(store)) if rows is None else np.unique(np.asarray(rows, dtype=np.int64))
        if wanted.size and (wanted.min() < 0 or wanted.max() >= len(store)):
            raise BadInputError(f"rows must lie in 0..{len(store) - 1} (the store's rows)")
        shard_of, local, row_of, step_of = [], [], [], []
        wanted_set = set(wanted.tolist())
        for s, (offsets, row0) in enumerate(offsets_all):
            for i in range(len(offsets) - 1):
                if row0 + i in wanted_set:
                    length = offsets[i + 1] - offsets[i]
                    shard_of.append(np.full(length, s, np.int32))
                    local.append(np.arange(offsets[i], offsets[i + 1], dtype=np.int64))
                    row_of.append(np.full(length, row0 + i, np.int32))
                    step_of.append(np.arange(length, dtype=np.int32))
        if not local:
            raise EmptyInputError("no frames to stream: the chosen rows hold no per-step activations")
        self._shard, self._local = np.concatenate(shard_of), np.concatenate(local)
        self.rows, self.steps = np.concatenate(row_of), np.concatenate(step_of)
        self.hidden_size = int(self._maps[0].shape[1])
        self.dtype = self._maps[0].dtype

    @property
    def n_frames(self) -> int:
        return len(self._local)

    @property
    def nbytes(self) -> int:
        """Bytes on disk of the streamed frames: frames x hidden x itemsize."""
        return self.n_frames * self.hidden_size * self.dtype.itemsize

    def __len__(self) -> int:
        """Batches per epoch (the last one may be short)."""
        return -(-self.n_frames // self.batch_size)

    def order(self, epoch: int = 0) -> np.ndarray:
        return np.random.default_rng([self.seed, int(epoch)]).permutation(self.n_frames)

    def gather(self, index: np.ndarray) -> np.ndarray:
        """(len(index), H) float32 frames at global frame indices (read in sorted order from the maps)."""
        index = np.asarray(index, dtype=np.int64)
        out = np.empty((len(index), self.hidden_size), np.float32)
        shards = self._shard[index]
        for s in np.unique(shards):
            pick = np.flatnonzero(shards == s)
            local = self._local[index[pick]]
            sort = np.argsort(local, kind="stable")
            out[pick[sort]] = self._maps[s][local[sort]]
        return out

    def batches(self, epoch: int = 0, start: int = 0):
        """Yield the `FrameBatch`es of one epoch, from batch `start` on (to resume mid-epoch)."""
        order = self.order(epoch)
        for b in range(int(start), len(self)):
            index = order[b * self.batch_size:(b + 1) * self.batch_size]
            yield self._batch(index)

    def _batch(self, index) -> FrameBatch:
        steps = self.steps[index]
        return FrameBatch(self.gather(index), self.rows[index], steps, steps / self.frame_rate_hz)

    def clip(self, row: int) -> np.ndarray:
        """(T, H) float32 frames of one store row, in time order."""
        index = np.flatnonzero(self.rows == int(row))
        if not index.size:
            raise BadInputError(f"row {row} is not streamed here: it is outside `rows`")
        return self.gather(index)

    def sample(self, n: int, seed: int = 0) -> np.ndarray:
        """(n, H) float32 frames drawn without replacement (all of them when n >= n_frames)."""
        rng = np.random.default_rng(seed)
        index = rng.choice(self.n_frames, size=min(int(n), self.n_frames), replace=False)
        return self.gather(np.sort(index))

    def sequential(self, chunk: int = 8192):
        """Yield every frame once, in store order, as `FrameBatch`es of up to `chunk` frames."""
        for start in range(0, self.n_frames, chunk):
            yield self._batch(np.arange(start, min(start + chunk, self.n_frames)))

    def __repr__(self) -> str:
        return (f"FrameStream({self.site} layer {self.layer}: {self.n_frames} frames x {self.hidden_size} "
                f"{self.dtype}, {self.nbytes / 1e6:.1f} MB, {len(self)} batches of {self.batch_size})")

