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
    >>> from workbench.data.store import ActivationStore, StoreIdentity
    >>> identity = StoreIdentity("m", "k", [("resid", 0)], per_step_keys=[("resid", 0)])
    >>> s = ActivationStore.create(tempfile.mkdtemp(), identity)
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

from workbench import validation
from workbench.data.store import ActivationStore
from workbench.data.store_io import REPAIR_FIX
from workbench.errors import BadInputError, CorruptFileError, EmptyInputError, OutOfRangeError, WrongTypeError

__all__ = ["FrameBatch", "FrameStream", "MUSICGEN_FRAME_RATE_HZ"]

MUSICGEN_FRAME_RATE_HZ = 50.0  # every MusicGen (and the teaching model): EnCodec frames per second


def _brief(value) -> str:
    """repr on one line, cut to 60 characters (an array's repr would fill the message)."""
    text = " ".join(repr(value).split())
    return text if len(text) <= 60 else text[:57] + "..."


@dataclasses.dataclass
class FrameBatch:
    """x (B, H) float32 frames; rows (B,) their clip's store row; steps (B,) decoder step; times_s (B,)."""

    x: np.ndarray
    rows: np.ndarray
    steps: np.ndarray
    times_s: np.ndarray

    def __post_init__(self):
        if not isinstance(self.x, np.ndarray):
            raise WrongTypeError(f"x={_brief(self.x)} is a {type(self.x).__name__}: pass a 2-D array (frames, hidden)")
        if self.x.ndim != 2:
            raise WrongTypeError(f"x has shape {self.x.shape}: pass a 2-D array (frames, hidden)")
        for name in ("rows", "steps", "times_s"):
            value = getattr(self, name)
            if not isinstance(value, np.ndarray):
                raise WrongTypeError(f"{name}={_brief(value)} is a {type(value).__name__}: pass a 1-D array with one "
                                     "entry per frame of x")
            if value.shape != (len(self.x),):
                raise WrongTypeError(f"{name} has shape {value.shape} but x has {len(self.x)} frames: pass a 1-D array "
                                     "with one entry per frame of x")


class FrameStream:
    """Shuffled batches of the per-step frames of (site, layer), memory-mapped from the store's shards.

    rows: store rows to use (default all), e.g. a training split; frames of other rows are never read.
    seed: the shuffle of epoch e is a function of (seed, e) alone, so a resumed run sees the same batches.
    frame_rate_hz: decoder steps per second (50 for MusicGen), for `times_s`.
    Every argument is checked before anything is read (a `BadInputError` naming the fix), and the frame files'
    layout on opening (a `CorruptFileError` naming the file).
    """

    def __init__(self, store, site: str = "resid", layer: int = 0, batch_size: int = 1024, seed: int = 0,
                 rows=None, frame_rate_hz: float = MUSICGEN_FRAME_RATE_HZ):
        if not isinstance(store, ActivationStore):
            shown = "store=None" if store is None else f"store={_brief(store)} is a {type(store).__name__}"
            raise WrongTypeError(f"{shown}: pass an ActivationStore, e.g. FrameStream(ActivationStore(path), "
                                 "'resid', layer)")
        site = validation.site(site)
        layer = validation.non_negative_int(layer, "layer")
        batch_size = validation.positive_int(batch_size, "batch_size")
        seed = validation.non_negative_int(seed, "seed")  # numpy's generators take no negative seeds
        frame_rate_hz = validation.finite_float(frame_rate_hz, "frame_rate_hz", low=0.0, low_inclusive=False,
                                                hint=f"MusicGen decodes {MUSICGEN_FRAME_RATE_HZ:g} steps per second")
        key = (site, layer)
        if key not in store.step_keys():
            raise BadInputError(f"the store has no per-step frames of {key} (it has {store.step_keys() or 'none'}): "
                                f"collect with per_step_layers=({layer},)")
        n_store_rows = len(store)
        if not n_store_rows:
            raise EmptyInputError(f"the store has no rows yet: collect into it first (with per_step_layers=({layer},))")
        wanted = np.arange(n_store_rows) if rows is None else np.unique(
            validation.index_array(rows, "rows", n_store_rows, what="store rows", where="the store's rows"))
        self.store, self.site, self.layer = store, site, layer
        self.batch_size, self.seed, self.frame_rate_hz = batch_size, seed, frame_rate_hz
        self._n_store_rows = n_store_rows
        self._maps, offsets_all, first_row = [], [], 0
        for folder, shard in store._shard_paths():
            name = f"steps.{site}.{layer}"
            data = store._load(folder / f"{name}.npy", None)  # memory-mapped, not read
            offsets = store._load(folder / f"{name}.offsets.npy", shard["n"] + 1, mmap=False)
            self._check_shard(folder / f"{name}.npy", data, folder / f"{name}.offsets.npy", offsets)
            self._maps.append(data)
            offsets_all.append((offsets.astype(np.int64), first_row))
            first_row += shard["n"]
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

    def _check_shard(self, data_path, data, offsets_path, offsets) -> None:
        """CorruptFileError unless the frames are a (frames, hidden) float matrix of the first shard's width and
        the offsets run from 0 to its length without decreasing (else frames would be misread without a word)."""
        if data.ndim != 2:
            raise CorruptFileError(data_path, f"holds an array of shape {data.shape}, not (frames, hidden): "
                                              f"{REPAIR_FIX}")
        if data.dtype.kind != "f":
            raise CorruptFileError(data_path, f"holds {data.dtype} values, not float frames: {REPAIR_FIX}")
        if self._maps and data.shape[1] != self._maps[0].shape[1]:
            raise CorruptFileError(data_path, f"holds frames of width {data.shape[1]}, but the first shard's have "
                                              f"width {self._maps[0].shape[1]}: {REPAIR_FIX}")
        if offsets.ndim != 1 or offsets.dtype.kind not in "iu":
            raise CorruptFileError(offsets_path, f"holds {offsets.dtype} {offsets.shape}, not a list of integer "
                                                 f"offsets: {REPAIR_FIX}")
        if offsets[0] != 0:
            raise CorruptFileError(offsets_path, f"offsets do not start at 0 (they start at {int(offsets[0])}): "
                                                 f"{REPAIR_FIX}")
        if (np.diff(offsets.astype(np.int64)) < 0).any():
            raise CorruptFileError(offsets_path, f"offsets decrease (a clip of negative length): {REPAIR_FIX}")
        if offsets[-1] != data.shape[0]:
            raise CorruptFileError(offsets_path, f"offsets end at {int(offsets[-1])} but the file holds "
                                                 f"{data.shape[0]} frames: {REPAIR_FIX}")

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
        """The shuffled frame indices of epoch `epoch` (>= 0)."""
        epoch = validation.non_negative_int(epoch, "epoch")
        return np.random.default_rng([self.seed, epoch]).permutation(self.n_frames)

    def gather(self, index) -> np.ndarray:
        """(len(index), H) float32 frames at frame indices 0..n_frames-1 (read in sorted order from the maps)."""
        index = validation.index_array(index, "index", self.n_frames, what="frame indices",
                                       where="this stream's frames", single=False, allow_empty=True)
        return self._gather(index)

    def _gather(self, index: np.ndarray) -> np.ndarray:
        out = np.empty((len(index), self.hidden_size), np.float32)
        shards = self._shard[index]
        for s in np.unique(shards):
            pick = np.flatnonzero(shards == s)
            local = self._local[index[pick]]
            sort = np.argsort(local, kind="stable")
            out[pick[sort]] = self._maps[s][local[sort]]
        return out

    def batches(self, epoch: int = 0, start: int = 0):
        """Yield the `FrameBatch`es of one epoch, from batch `start` on (to resume mid-epoch; 0 <= start <= len)."""
        order = self.order(epoch)
        start = validation.non_negative_int(start, "start")
        if start > len(self):
            raise OutOfRangeError(f"start={start} is beyond the epoch's {len(self)} batches: pass 0-{len(self)} "
                                  "(the batch to resume from)")
        return (self._batch(order[b * self.batch_size:(b + 1) * self.batch_size]) for b in range(start, len(self)))

    def _batch(self, index) -> FrameBatch:
        steps = self.steps[index]
        return FrameBatch(self._gather(index), self.rows[index], steps, steps / self.frame_rate_hz)

    def clip(self, row: int) -> np.ndarray:
        """(T, H) float32 frames of one store row, in time order."""
        row = validation.integer(row, "row")
        if not 0 <= row < self._n_store_rows:
            raise OutOfRangeError(f"row={row} is out of range: the store has rows 0-{self._n_store_rows - 1}")
        index = np.flatnonzero(self.rows == row)
        if not index.size:
            raise BadInputError(f"row {row} is not streamed here: it is outside `rows`")
        return self._gather(index)

    def sample(self, n: int, seed: int | None = 0) -> np.ndarray:
        """(n, H) float32 frames drawn without replacement (all of them when n >= n_frames); seed None: fresh."""
        n = validation.positive_int(n, "n")
        seed = None if seed is None else validation.non_negative_int(seed, "seed")
        rng = np.random.default_rng(seed)
        index = rng.choice(self.n_frames, size=min(n, self.n_frames), replace=False)
        return self._gather(np.sort(index))

    def sequential(self, chunk: int = 8192):
        """Yield every frame once, in store order, as `FrameBatch`es of up to `chunk` frames."""
        chunk = validation.positive_int(chunk, "chunk")
        return (self._batch(np.arange(start, min(start + chunk, self.n_frames)))
                for start in range(0, self.n_frames, chunk))

    def __repr__(self) -> str:
        return (f"FrameStream({self.site} layer {self.layer}: {self.n_frames} frames x {self.hidden_size} "
                f"{self.dtype}, {self.nbytes / 1e6:.1f} MB, {len(self)} batches of {self.batch_size})")
