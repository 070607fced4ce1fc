"""Train a sparse autoencoder on a `workbench.data.frames.FrameStream`: progress bar, CPU or GPU, resumable.

The loss is scale-free: the reconstruction error as a fraction of the frames' variance (FVU), plus for
ReLU SAEs ``l1_coefficient`` x the decoder-norm-weighted L1 of the activations over the data's scale.
Decoder rows are kept at unit norm; ``b_dec`` starts at the data mean. A run with ``checkpoint_dir``
writes one file there every ``checkpoint_every`` steps (weights, Adam state and step, replaced
atomically), and the same call resumes from it: the batches of each epoch depend only on the stream's
seed, so a resumed run trains on exactly the batches the uninterrupted one would have.

    >>> import numpy as np, tempfile
    >>> from workbench.data.store import ActivationStore
    >>> from workbench.data.frames import FrameStream
    >>> s = ActivationStore.create(tempfile.mkdtemp(), model_id="m", spec={}, spec_key="k", keys=[("resid", 0)],
    ...                            per_step_keys=[("resid", 0)])
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
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from workbench.analysis.features.sae import ARCHITECTURES, SparseAutoencoder, default_d_sae
from workbench.errors import BadInputError

__all__ = ["TrainConfig", "TrainResult", "train_sae", "CHECKPOINT_FILENAME"]

CHECKPOINT_FILENAME = "train_state.safetensors"


@dataclasses.dataclass(frozen=True)
class TrainConfig:
    """SAE training settings. d_sae None: 8 x the layer's width. k: active features (TopK); l1_coefficient:
    sparsity penalty (ReLU, architecture "standard"); lr: Adam's, with warm-up and a linear decay to 0 over
    the last `decay_fraction` of the steps."""

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
        if self.architecture not in ARCHITECTURES:
            raise BadInputError(f"architecture={self.architecture!r}: use 'topk' or 'standard' (ReLU + L1)")
        if int(self.epochs) < 1 or not self.lr > 0 or self.l1_coefficient < 0:
            raise BadInputError(f"epochs={self.epochs}, lr={self.lr}, l1_coefficient={self.l1_coefficient}: "
                                "epochs >= 1, lr > 0 and l1_coefficient >= 0")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


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
    return torch.device(device)


def _lr_factor(step: int, total: int, cfg: TrainConfig) -> float:
    warm = min(1.0, (step + 1) / max(cfg.warmup_steps, 1))
    decay_start = int(total * (1 - cfg.decay_fraction))
    decay = 1.0 if step < decay_start else max(0.0, (total - step) / max(total - decay_start, 1))
    return warm * decay


def _signature(stream, cfg: TrainConfig) -> dict:
    return dict(config=cfg.to_dict(), n_frames=stream.n_frames, hidden=stream.hidden_size,
                batch_size=stream.batch_size, stream_seed=stream.seed, site=stream.site, layer=stream.layer,
                store_id=stream.store.manifest.get("store_id"))


def _save_checkpoint(folder: Path, sae, opt, step: int, signature: dict, history: list) -> None:
    from safetensors.torch import save_file
    tensors = {f"sae.{n}": p.detach().cpu().contiguous() for n, p in sae.named_parameters()}
    for i, p in enumerate(sae.parameters()):
        state = opt.state.get(p, {})
        for name in ("exp_avg", "exp_avg_sq"):
            if name in state:
                tensors[f"adam.{i}.{name}"] = state[name].detach().cpu().contiguous()
        if "step" in state:
            tensors[f"adam.{i}.step"] = torch.as_tensor(state["step"], dtype=torch.float32).reshape(1).cpu()
    meta = dict(step=step, signature=signature, history=history)
    tmp = folder / f".{CHECKPOINT_FILENAME}.tmp"
    save_file(tensors, str(tmp), metadata={"workbench": json.dumps(meta)})
    os.replace(tmp, folder / CHECKPOINT_FILENAME)


def _load_checkpoint(folder: Path, sae, opt, signature: dict) -> tuple[int, list]:
    from safetensors import safe_open
    path = folder / CHECKPOINT_FILENAME
    if not path.is_file():
        return 0, []
    with safe_open(str(path), framework="pt") as f:
        meta = json.loads(f.metadata()["workbench"])
        tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118
    if meta["signature"] != signature:
        raise BadInputError(f"{path} holds a run with other settings or data ({meta['signature']}): pass another "
                            "checkpoint_dir, or delete that file to start afresh")
    with torch.no_grad():
        for n, p in sae.named_parameters():
            p.copy_(tensors[f"sae.{n}"])
    for i, p in enumerate(sae.parameters()):
        if f"adam.{i}.exp_avg" in tensors:
            opt.state[p] = dict(step=tensors[f"adam.{i}.step"].reshape(()).clone(),
                                exp_avg=tensors[f"adam.{i}.exp_avg"].to(p.device),
                                exp_avg_sq=tensors[f"adam.{i}.exp_avg_sq"].to(p.device))
    return int(meta["step"]), list(meta["history"])


def train_sae(stream, config: TrainConfig | None = None, *, device=None, checkpoint_dir=None,
              checkpoint_every: int = 200, progress: bool = True, stop: Callable | None = None,
              log_every: int = 25, max_steps: int | None = None) -> TrainResult:
    """Train an SAE on every frame of `stream`, `config.epochs` times (shuffled anew each epoch).

    device: "cpu", "cuda", ... (default: a GPU when torch sees one). checkpoint_dir: resume from / save to
    this folder. stop: polled each step; when it returns True the run checkpoints and returns with
    completed=False (call again to go on). max_steps: end (and checkpoint) after this many steps in total,
    as a stop would (the learning-rate schedule still spans the whole run).
    """
    cfg = config or TrainConfig()
    dev = _device(device)
    d_sae = cfg.d_sae or default_d_sae(stream.hidden_size)
    sae = SparseAutoencoder(stream.hidden_size, d_sae, cfg.architecture, k=min(cfg.k, d_sae), seed=cfg.seed)
    sample = stream.sample(min(stream.n_frames, 20_000), seed=cfg.seed)
    mean = sample.mean(0)
    scale_sq = float(((sample - mean) ** 2).sum(1).mean()) or 1.0
    with torch.no_grad():
        sae.b_dec.copy_(torch.from_numpy(mean))
    sae.to(dev)
    opt = torch.optim.Adam(sae.parameters(), lr=cfg.lr, betas=(0.9, 0.999))
    signature = _signature(stream, cfg)
    folder = Path(checkpoint_dir) if checkpoint_dir is not None else None
    step, history = 0, []
    if folder is not None:
        folder.mkdir(parents=True, exist_ok=True)
        step, history = _load_checkpoint(folder, sae, opt, signature)
    resumed_from = step
    per_epoch = len(stream)
    total = cfg.epochs * per_epoch
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
                x = torch.from_numpy(batch.x).to(dev)
                for group in opt.param_groups:
                    group["lr"] = cfg.lr * _lr_factor(step, total, cfg)
                f = sae.encode(x)
                x_hat = sae.decode(f)
                fvu = ((x_hat - x) ** 2).sum(-1).mean() / scale_sq
                loss = fvu
                if cfg.architecture == "standard":
                    loss = loss + cfg.l1_coefficient * (f * sae.W_dec.norm(dim=1)).sum(-1).mean() / scale
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
    if folder is not None:
        _save_checkpoint(folder, sae, opt, step, signature, history)
    sae.to("cpu")
    sae.meta.update(site=stream.site, layer=stream.layer, train=dict(cfg.to_dict(), steps=step,
                                                                      n_frames=stream.n_frames))
    return TrainResult(sae, history, time.perf_counter() - t0, step, completed, resumed_from,
                       time.process_time() - cpu0)


def fraction_unexplained(x: np.ndarray, x_hat: np.ndarray) -> float:
    """sum ||x - x_hat||^2 / sum ||x - mean(x)||^2 (1 - explained variance)."""
    return float(((x - x_hat) ** 2).sum() / max(((x - x.mean(0)) ** 2).sum(), 1e-12))
