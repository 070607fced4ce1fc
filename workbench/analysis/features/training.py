"""Train a sparse autoencoder on a `workbench.data.frames.FrameStream`: progress bar, CPU or GPU, resumable.

The loss is scale-free: the reconstruction error as a fraction of the frames' variance (FVU), plus for
ReLU SAEs ``l1_coefficient`` x the decoder-norm-weighted L1 of the activations over the data's scale.
Decoder rows are kept at unit norm; ``b_dec`` starts at the data mean. A run with ``checkpoint_dir``
writes one file there every ``TrainRun.checkpoint_every`` steps (weights, Adam state and step, replaced
atomically), and the same call resumes from it: the batches of each epoch depend only on the stream's
seed, so a resumed run trains on exactly the batches the uninterrupted one would have.

Nothing non-finite is trained on or kept: the streamed frame files are checked against the store's sha256
first (``TrainRun(verify=True)``), every batch is checked for NaN / inf (a `NotFiniteError` naming the store row and
decoder step), and a NaN or inf loss stops the run with an error naming the step. In each case the last good
state stays in ``checkpoint_dir`` (the weights at the failing step when they are still finite, else the
previous checkpoint, never NaN weights), and no result with ``completed=True`` holds NaN weights.

    >>> import numpy as np, tempfile
    >>> from workbench.data.store import ActivationStore, StoreIdentity
    >>> from workbench.data.frames import FrameStream
    >>> identity = StoreIdentity("m", "k", [("resid", 0)], per_step_keys=[("resid", 0)])
    >>> s = ActivationStore.create(tempfile.mkdtemp(), identity)
    >>> rng = np.random.default_rng(0)
    >>> s.append({("resid", 0): np.zeros((4, 8))}, [{"id": str(i)} for i in range(4)],
    ...          steps={("resid", 0): [rng.normal(size=(50, 8)) for _ in range(4)]})
    >>> result = train_sae(FrameStream(s, "resid", 0, batch_size=64), TrainConfig(d_sae=32, k=4, epochs=3),
    ...                    progress=False)
    >>> result.steps, result.completed, result.sae.d_sae
    (12, True, 32)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from workbench import validation
from workbench.analysis.features.sae import ARCHITECTURES, MAX_D_SAE, SparseAutoencoder, check_sae_size, default_d_sae
from workbench.data.frames import FrameStream
from workbench.errors import BadInputError, CorruptFileError, NotFiniteError, OutOfRangeError, WrongTypeError

__all__ = ["TrainConfig", "TrainRun", "TrainResult", "train_sae", "verify_frames", "CHECKPOINT_FILENAME", "MAX_EPOCHS",
           "MAX_LR"]

CHECKPOINT_FILENAME = "train_state.safetensors"
MAX_EPOCHS = 100_000
MAX_LR = 1.0  # Adam steps each weight by about lr: above 1 an SAE of unit-norm rows only diverges
_RESTART = f"delete {CHECKPOINT_FILENAME} to train from step 0, or pass another checkpoint_dir"
_STORE_FIX = ("run store.verify() and store.repair() (a damaged shard is moved to quarantine/), or leave the row out "
              "with FrameStream(store, site, layer, rows=[...])")


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """SAE training settings. d_sae None: 8 x the layer's width. k: active features (TopK); l1_coefficient:
    sparsity penalty (ReLU, architecture "standard"); lr: Adam's, with warm-up and a linear decay to 0 over
    the last `decay_fraction` of the steps. Every setting is checked here (k > d_sae and d_sae=0 are refused,
    never clamped or replaced by the default)."""

    architecture: str = "topk"
    d_sae: int | None = None
    k: int = 32
    l1_coefficient: float = 0.3
    lr: float = 2e-3
    epochs: int = 8
    warmup_steps: int = 50
    decay_fraction: float = 0.3
    seed: int = 0

    def __post_init__(self):
        checked = dict(
            architecture=validation.choice(self.architecture, "architecture", ARCHITECTURES),
            d_sae=None if self.d_sae is None else validation.integer(self.d_sae, "d_sae", low=1, high=MAX_D_SAE),
            k=validation.integer(self.k, "k", low=1, high=MAX_D_SAE),
            l1_coefficient=validation.finite_float(self.l1_coefficient, "l1_coefficient", low=0.0,
                                                   hint="0.3 is usual for a ReLU SAE"),
            lr=validation.finite_float(self.lr, "lr", low=0.0, low_inclusive=False, high=MAX_LR,
                                       hint="Adam's learning rate: 2e-3 is usual"),
            epochs=validation.integer(self.epochs, "epochs", low=1, high=MAX_EPOCHS),
            warmup_steps=validation.non_negative_int(self.warmup_steps, "warmup_steps"),
            decay_fraction=validation.finite_float(self.decay_fraction, "decay_fraction", low=0.0, high=1.0),
            seed=validation.integer(self.seed, "seed", low=0, high=2 ** 63 - 1))
        if checked["architecture"] == "topk" and checked["d_sae"] is not None and checked["k"] > checked["d_sae"]:
            raise OutOfRangeError(f"k={checked['k']} is larger than the dictionary (d_sae={checked['d_sae']}): TopK "
                                  f"keeps k features per frame, so pass k <= {checked['d_sae']} or a larger d_sae")
        for name, value in checked.items():
            object.__setattr__(self, name, value)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class TrainRun:
    """How a training run goes (what is trained is `TrainConfig`): a checkpoint every `checkpoint_every` steps
    (with a checkpoint_dir), a log line every `log_every` steps, an end after `max_steps` steps in total (checkpointed,
    as a stop would; the learning-rate schedule still spans the whole run; None: no cap), and `verify`: first check
    the streamed frame files against the store's sha256 (reads them once; False skips it).

        >>> TrainRun(max_steps=3).checkpoint_every
        200
        >>> TrainRun(checkpoint_every=0)
        Traceback (most recent call last):
        ...
        workbench.errors.OutOfRangeError: checkpoint_every=0 must be at least 1: pass a positive int
    """

    checkpoint_every: int = 200
    log_every: int = 25
    max_steps: int | None = None
    verify: bool = True

    def __post_init__(self):
        object.__setattr__(self, "checkpoint_every", validation.positive_int(self.checkpoint_every,
                                                                             "checkpoint_every"))
        object.__setattr__(self, "log_every", validation.positive_int(self.log_every, "log_every"))
        if self.max_steps is not None:
            object.__setattr__(self, "max_steps", validation.non_negative_int(self.max_steps, "max_steps"))
        object.__setattr__(self, "verify", validation.flag(self.verify, "verify"))


@dataclasses.dataclass
class TrainResult:
    """The trained SAE, one history row per logged step, wall time, steps done, and whether it finished."""

    sae: SparseAutoencoder
    history: list
    seconds: float
    steps: int
    completed: bool
    resumed_from: int = 0
    cpu_seconds: float = 0.0  # process CPU time (all threads): steadier than wall time on a shared machine


def _device(device) -> torch.device:
    if device is None:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if not isinstance(device, (str, torch.device)):
        raise WrongTypeError(f"device={device!r}: pass 'cpu', 'cuda', 'cuda:1' ... or None (a GPU when torch sees one)")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise BadInputError(f"device={device!r} is not a torch device: pass 'cpu', 'cuda' or None") from None
    if dev.type == "cuda" and (not torch.cuda.is_available() or (dev.index or 0) >= torch.cuda.device_count()):
        raise BadInputError(f"device={device!r}: torch sees {torch.cuda.device_count()} GPU(s) here: pass 'cpu' "
                            "(or None to use a GPU only when there is one)")
    if dev.type not in ("cpu", "cuda", "mps"):
        raise BadInputError(f"device={device!r}: pass 'cpu', 'cuda' or 'mps'")
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise BadInputError(f"device={device!r}: this torch has no MPS (Apple GPU) backend here: pass 'cpu'")
    return dev


def _lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    decay_start = int(total * (1 - cfg.decay_fraction))
    decay = 1.0 if step < decay_start else max(0.0, (total - step) / max(total - decay_start, 1))
    return warm * decay


def _signature(stream, cfg: TrainConfig) -> dict:
    return dict(config=cfg.to_dict(), n_frames=stream.n_frames, hidden=stream.hidden_size,
                batch_size=stream.batch_size, stream_seed=stream.seed, site=stream.site, layer=stream.layer,
                store_id=stream.store.manifest.get("store_id"))


def _where(stream, rows, steps, i: int) -> str:
    row = int(rows[i])
    try:
        clip_id = stream.store.table[row].get("id")
    except Exception:  # the table is only for the message: a damaged one must not hide the real error
        clip_id = None
    return f"store row {row}{f' (id {clip_id!r})' if clip_id is not None else ''}, decoder step {int(steps[i])}"


def _check_frames(stream, x: np.ndarray, rows, steps, what: str) -> None:
    """NotFiniteError naming the first frame of x (with its store row and step) that holds NaN or inf."""
    finite = np.isfinite(x).all(axis=1)
    if not finite.all():
        i = int(np.argmin(finite))
        raise NotFiniteError(f"{what}: {_where(stream, rows, steps, i)} of {stream.site} layer {stream.layer} "
                             f"holds NaN or inf ({int((~finite).sum())} such frames here); nothing was trained on it: "
                             f"{_STORE_FIX}")


def verify_frames(stream) -> None:
    """Compare the sha256 of every streamed frame file with the one the store recorded when it wrote it.

    A mismatch (flipped bits, a file rewritten by hand) raises CorruptFileError naming the file; shards of
    older stores without checksums are not checked (``store.repair()`` records them)."""
    if not isinstance(stream, FrameStream):
        raise WrongTypeError(f"stream is a {type(stream).__name__}: pass a FrameStream(store, site, layer)")
    store = stream.store
    name = f"steps.{stream.site}.{int(stream.layer)}.npy"
    for entry in store.manifest.get("shards", []):
        recorded = (entry.get("files") or {}).get(name)
        if not recorded:
            continue
        path = Path(store.path) / "shards" / entry["name"] / name
        sha = hashlib.sha256()
        try:
            with open(path, "rb") as f:
                while chunk := f.read(1 << 22):
                    sha.update(chunk)
        except OSError as e:
            raise CorruptFileError(path, f"cannot be read ({e}): {_STORE_FIX}") from None
        if sha.hexdigest() != recorded[1]:
            raise CorruptFileError(path, f"does not match the sha256 the store recorded (its bytes changed on disk); "
                                         f"it was not trained on: {_STORE_FIX}")


def _save_checkpoint(folder: Path, sae, opt, step: int, signature: dict, history: list) -> None:
    tensors = {f"sae.{n}": p.detach().cpu().contiguous() for n, p in sae.named_parameters()}
    for i, p in enumerate(sae.parameters()):
        state = opt.state.get(p, {})
        for name in ("exp_avg", "exp_avg_sq"):
            if name in state:
                tensors[f"adam.{i}.{name}"] = state[name].detach().cpu().contiguous()
        if "step" in state:
            tensors[f"adam.{i}.step"] = torch.as_tensor(state["step"], dtype=torch.float32).reshape(1).cpu()
    if not all(bool(torch.isfinite(v).all()) for v in tensors.values()):
        raise NotFiniteError(f"the SAE's weights or optimiser state became NaN or inf by step {step}: not "
                             f"checkpointed ({folder / CHECKPOINT_FILENAME} keeps the last good state); train again "
                             "with a smaller lr")
    meta = dict(step=step, signature=signature, history=history)
    tmp = folder / f".{CHECKPOINT_FILENAME}.tmp"
    try:
        save_file(tensors, str(tmp), metadata={"workbench": json.dumps(meta)})
        os.replace(tmp, folder / CHECKPOINT_FILENAME)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise BadInputError(f"cannot write the checkpoint in {folder} ({e}): free some disk space or pass another "
                            "checkpoint_dir") from None


def _load_checkpoint(folder: Path, sae, opt, signature: dict, total: int) -> tuple[int, list]:
    path = folder / CHECKPOINT_FILENAME
    if not path.is_file():
        return 0, []
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["workbench"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
        step, history = int(meta["step"]), list(meta["history"])
        if not 0 <= step <= total:
            raise ValueError(f"step {step} is outside this run's 0..{total}")
    except (SafetensorError, OSError, KeyError, TypeError, ValueError, RuntimeError) as e:
        raise CorruptFileError(path, f"is not a readable training checkpoint ({type(e).__name__}: {e}); it may be "
                                     f"truncated: {_RESTART}") from None
    if meta.get("signature") != signature:
        raise BadInputError(f"{path} holds a run with other settings or data ({meta.get('signature')}): pass another "
                            "checkpoint_dir, or delete that file to start afresh")
    for n, p in sae.named_parameters():
        t = tensors.get(f"sae.{n}")
        if t is None or tuple(t.shape) != tuple(p.shape) or not bool(torch.isfinite(t).all()):
            raise CorruptFileError(path, f"its tensor sae.{n} is missing, misshapen or not finite: {_RESTART}")
    adam = {}
    for i, p in enumerate(sae.parameters()):
        if f"adam.{i}.exp_avg" in tensors:
            parts = [tensors.get(f"adam.{i}.{k}") for k in ("step", "exp_avg", "exp_avg_sq")]
            if any(t is None for t in parts) or any(tuple(t.shape) != tuple(p.shape) for t in parts[1:]):
                raise CorruptFileError(path, f"its optimiser state adam.{i} is incomplete or misshapen: {_RESTART}")
            adam[p] = dict(step=parts[0].reshape(()).clone(), exp_avg=parts[1].to(p.device),
                           exp_avg_sq=parts[2].to(p.device))
    with torch.no_grad():
        for n, p in sae.named_parameters():
            p.copy_(tensors[f"sae.{n}"])
    opt.state.update(adam)
    return step, history


def _checkpoint_folder(checkpoint_dir) -> Path | None:
    if checkpoint_dir is None:
        return None
    if not isinstance(checkpoint_dir, (str, os.PathLike)) or checkpoint_dir == "":
        raise WrongTypeError(f"checkpoint_dir={checkpoint_dir!r}: pass a folder path or None")
    folder = Path(checkpoint_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise BadInputError(f"checkpoint_dir={str(folder)!r} cannot be a folder ({e}): pass another path") from None
    return folder


def train_sae(stream, config: TrainConfig | None = None, run: TrainRun | None = None, *, device=None,
              checkpoint_dir=None, progress: bool = True, stop: Callable | None = None) -> TrainResult:
    """Train an SAE on every frame of `stream`, `config.epochs` times (shuffled anew each epoch).

    run: how the run goes (`TrainRun`: checkpoint and log cadence, a step cap, the frame check; default
    `TrainRun()`). device: "cpu", "cuda", ... (default: a GPU when torch sees one). checkpoint_dir: resume from /
    save to this folder. stop: polled each step; when it returns True the run checkpoints and returns with
    completed=False (call again to go on).
    Raises NotFiniteError on a NaN / inf frame (naming its store row) or loss (naming the step).
    """
    if not isinstance(stream, FrameStream):
        raise WrongTypeError(f"stream is a {type(stream).__name__}: pass a FrameStream(store, site, layer)")
    if config is None:
        config = TrainConfig()
    if not isinstance(config, TrainConfig):
        raise WrongTypeError(f"config is a {type(config).__name__}: pass TrainConfig(d_sae=..., k=...) or None")
    if run is None:
        run = TrainRun()
    if not isinstance(run, TrainRun):
        raise WrongTypeError(f"run is a {type(run).__name__}: pass TrainRun(checkpoint_every=..., max_steps=...) "
                             "or None")
    cfg = config
    checkpoint_every, log_every, max_steps, verify = run.checkpoint_every, run.log_every, run.max_steps, run.verify
    progress = validation.flag(progress, "progress")
    if stop is not None and not callable(stop):
        raise WrongTypeError(f"stop={stop!r}: pass a function returning True to stop, or None")
    dev = _device(device)
    d_sae = cfg.d_sae if cfg.d_sae is not None else default_d_sae(stream.hidden_size)
    d_in, d_sae, k = check_sae_size(stream.hidden_size, d_sae, cfg.k, cfg.architecture)
    folder = _checkpoint_folder(checkpoint_dir)
    if verify:
        verify_frames(stream)
    sae = SparseAutoencoder(d_in, d_sae, cfg.architecture, k=k, seed=cfg.seed)
    rng = np.random.default_rng(cfg.seed)
    index = np.sort(rng.choice(stream.n_frames, size=min(stream.n_frames, 20_000), replace=False))
    sample = stream.gather(index)
    _check_frames(stream, sample, stream.rows[index], stream.steps[index], "the frames sampled for the data mean")
    mean = sample.mean(0)
    scale_sq = float(((sample - mean) ** 2).sum(1).mean()) or 1.0
    if not math.isfinite(scale_sq):
        i = int(np.argmax(np.abs(sample).max(1)))
        raise NotFiniteError(f"the frames' variance overflows (a value of {float(np.abs(sample).max()):.3g} at "
                             f"{_where(stream, stream.rows[index], stream.steps[index], i)}): {_STORE_FIX}")
    with torch.no_grad():
        sae.b_dec.copy_(torch.from_numpy(mean))
    sae.to(dev)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    signature = _signature(stream, cfg)
    per_epoch = len(stream)
    total = cfg.epochs * per_epoch
    step, history = 0, []
    if folder is not None:
        step, history = _load_checkpoint(folder, sae, opt, signature, total)
    resumed_from = step

    def keep_last_good(error: Exception) -> Exception:
        """Checkpoint the current state when it is still finite (else the file keeps the previous one)."""
        if folder is not None and sae.is_finite():
            try:
                _save_checkpoint(folder, sae, opt, step, signature, history)
            except NotFiniteError:
                pass
        return error

    bar = None
    if progress:
        from tqdm.auto import tqdm
        bar = tqdm(total=total, initial=step, unit="step", desc=f"SAE {stream.site} L{stream.layer}")
    t0, cpu0, completed = time.perf_counter(), time.process_time(), True
    scale = torch.tensor(scale_sq ** 0.5, device=dev)
    try:
        while step < total:
            epoch, start = divmod(step, per_epoch)
            for batch in stream.batches(epoch, start):
                if (stop is not None and stop()) or (max_steps is not None and step >= max_steps):
                    completed = False
                    break
                try:
                    _check_frames(stream, batch.x, batch.rows, batch.steps, f"step {step + 1} (epoch {epoch})")
                except NotFiniteError as e:
                    raise keep_last_good(e) from None
                x = torch.from_numpy(batch.x).to(dev)
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * _lr_factor(step, total, cfg)
                f = sae.encode(x)
                x_hat = sae.decode(f)
                fvu = ((x_hat - x) ** 2).sum(-1).mean() / scale_sq
                loss = fvu
                if cfg.architecture == "standard":
                    loss = loss + cfg.l1_coefficient * (f * sae.W_dec.norm(dim=1)).sum(-1).mean() / scale
                if not bool(torch.isfinite(loss.detach())):
                    i = int(np.argmax(np.abs(batch.x).max(1)))
                    raise keep_last_good(NotFiniteError(
                        f"the loss became {loss.item()} at step {step + 1} (epoch {epoch}); the weights are "
                        f"{'finite' if sae.is_finite() else 'NaN or inf (the run diverged)'} and this batch's largest "
                        f"value is {float(np.abs(batch.x).max()):.3g} at {_where(stream, batch.rows, batch.steps, i)}. "
                        f"Train again with a smaller lr (now {cfg.lr:g}), or check that row: {_STORE_FIX}"))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sae.normalize_decoder()
                step += 1
                if step % log_every == 0 or step == total:
                    history.append(dict(step=step, loss=loss.item(), fvu=fvu.item(),
                                        l0=(f > 0).float().sum(-1).mean().item()))
                    if bar is not None:
                        bar.set_postfix(fvu=f"{fvu.item():.3f}", l0=f"{history[-1]['l0']:.1f}")
                if bar is not None:
                    bar.update(1)
                if folder is not None and step % checkpoint_every == 0:
                    _save_checkpoint(folder, sae, opt, step, signature, history)
            if not completed:
                break
    finally:
        if bar is not None:
            bar.close()
    if not sae.is_finite():  # the last update diverged: never hand back (or checkpoint) NaN weights
        raise NotFiniteError(f"the SAE's weights became NaN or inf by step {step}: train again with a smaller lr "
                             f"(now {cfg.lr:g})" + (f"; {folder / CHECKPOINT_FILENAME} keeps the last good state"
                                                     if folder is not None else ""))
    if folder is not None:
        _save_checkpoint(folder, sae, opt, step, signature, history)
    sae.to("cpu")
    sae.meta.update(model_id=stream.store.model_id, site=stream.site, layer=stream.layer,
                    train=dict(cfg.to_dict(), steps=step, n_frames=stream.n_frames))
    return TrainResult(sae, history, time.perf_counter() - t0, step, completed, resumed_from,
                       time.process_time() - cpu0)


def fraction_unexplained(x: np.ndarray, x_hat: np.ndarray) -> float:
    """sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 (1 - explained variance)."""
    x = validation.float_matrix(x, "x")
    x_hat = validation.float_matrix(x_hat, "x_hat", width=x.shape[1], width_name="width of x")
    if x.shape != x_hat.shape:
        raise BadInputError(f"x has shape {x.shape} and x_hat {x_hat.shape}: pass a reconstruction of every row")
    return float(((x - x_hat) ** 2).sum() / max(((x - x.mean(0)) ** 2).sum(), 1e-12))
