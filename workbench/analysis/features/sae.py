"""Sparse autoencoders on one (site, layer) of the residual stream, saved in SAELens's on-disk layout.

`SparseAutoencoder` computes what SAELens's inference SAEs compute, with the same parameter names:
``f = act(((x - b_dec) @ W_enc) + b_enc)``, ``x_hat = f @ W_dec + b_dec``; ``act`` is TopK (the k
largest pre-activations, then ReLU: SAELens architecture ``"topk"``) or ReLU (``"standard"``, trained
with an L1 penalty). A saved SAE is a folder SAELens reads with ``SAE.load_from_disk(folder)``:

    cfg.json                  # SAELens 6 keys: architecture, d_in, d_sae, dtype, device, apply_b_dec_to_input,
                              # normalize_activations, reshape_activations, k (topk), metadata{model_name,
                              # hook_name, sae_lens_version, ...}; the workbench's own keys under metadata
    sae_weights.safetensors   # W_enc (d_in, d_sae), b_enc (d_sae,), W_dec (d_sae, d_in), b_dec (d_in,)
    sparsity.safetensors      # "sparsity": log10 of each feature's firing frequency (when measured)

    >>> import tempfile, torch
    >>> sae = SparseAutoencoder(d_in=8, d_sae=32, architecture="topk", k=4, seed=0)
    >>> x = torch.randn(5, 8)
    >>> tuple(sae.encode(x).shape), int((sae.encode(x) > 0).sum(1).max()) <= 4
    ((5, 32), True)
    >>> folder = sae.save(tempfile.mkdtemp(), model_id="random/tiny@seed0", site="resid", layer=1,
    ...                   hook_name="decoder.model.decoder.layers.1")
    >>> back = SparseAutoencoder.load(folder)
    >>> back.architecture, back.k, back.meta["layer"], bool(torch.equal(back(x), sae(x)))
    ('topk', 4, 1, True)
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import torch
from torch import nn

from workbench.errors import BadInputError, CorruptFileError

__all__ = ["SparseAutoencoder", "ARCHITECTURES", "SAE_CFG_FILENAME", "SAE_WEIGHTS_FILENAME", "SPARSITY_FILENAME",
           "SAELENS_VERSION", "read_sparsity", "default_d_sae"]

ARCHITECTURES = ("topk", "standard")  # SAELens's names: TopK, and ReLU (trained with L1)
SAE_CFG_FILENAME = "cfg.json"  # sae_lens.constants
SAE_WEIGHTS_FILENAME = "sae_weights.safetensors"
SPARSITY_FILENAME = "sparsity.safetensors"
SAELENS_VERSION = "6.18.0"  # the config format written (SAELens >= 6 reads it as is; older ones convert it)
_TENSORS = ("W_enc", "b_enc", "W_dec", "b_dec")


class SparseAutoencoder(nn.Module):
    """An SAE with SAELens's parameters; architecture "topk" (k active features) or "standard" (ReLU).

    d_in: the layer's width (hidden size); d_sae: the number of features. seed: the initialisation
    (decoder rows unit-norm, encoder its transpose, as SAELens and Gao et al. initialise).
    meta: provenance kept in cfg.json (model_id, site, layer, training settings and metrics).
    """

    def __init__(self, d_in: int, d_sae: int, architecture: str = "topk", k: int | None = 32, seed: int = 0,
                 meta: dict | None = None):
        super().__init__()
        if architecture not in ARCHITECTURES:
            raise BadInputError(f"architecture={architecture!r}: use 'topk' (TopK) or 'standard' (ReLU + L1)")
        if int(d_in) < 1 or int(d_sae) < 1:
            raise BadInputError(f"d_in={d_in}, d_sae={d_sae}: both must be positive (d_sae is often 8 x d_in)")
        if architecture == "topk" and (k is None or not 1 <= int(k) <= int(d_sae)):
            raise BadInputError(f"k={k!r}: a TopK SAE needs 1 <= k <= d_sae={d_sae}")
        self.d_in, self.d_sae, self.architecture = int(d_in), int(d_sae), architecture
        self.k = int(k) if architecture == "topk" else None
        self.meta = dict(meta or {})
        gen = torch.Generator().manual_seed(int(seed))
        w_dec = torch.randn(self.d_sae, self.d_in, generator=gen)
        w_dec /= w_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)
        self.W_enc = nn.Parameter(w_dec.T.clone().contiguous())
        self.b_enc = nn.Parameter(torch.zeros(self.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(self.d_in))

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations (..., d_sae), non-negative; at most k non-zero per frame for TopK."""
        pre = self.pre_activations(x)
        if self.architecture == "standard":
            return torch.relu(pre)
        values, index = torch.topk(pre, self.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, index, torch.relu(values))

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        return f @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction x_hat of x (..., d_in), in x's dtype."""
        dtype = x.dtype
        return self.decode(self.encode(x.to(self.W_enc.dtype))).to(dtype)

    @torch.no_grad()
    def normalize_decoder(self) -> None:
        """Rescale decoder rows to unit norm (the encoder's columns and b_enc compensate for ReLU; TopK picks
        by pre-activation, so it is trained with unit rows throughout)."""
        norms = self.W_dec.norm(dim=1).clamp_min(1e-8)
        self.W_dec /= norms[:, None]
        if self.architecture == "standard":
            self.W_enc *= norms[None, :]
            self.b_enc *= norms

    def decoder_row(self, feature: int) -> np.ndarray:
        """The feature's decoder row (d_in,) float32: its direction in activation space."""
        if not 0 <= int(feature) < self.d_sae:
            raise BadInputError(f"feature {feature} is out of range: this SAE has {self.d_sae} (0-{self.d_sae - 1})")
        return self.W_dec[int(feature)].detach().float().cpu().numpy()

    def __repr__(self) -> str:
        k = f", k={self.k}" if self.k else ""
        where = f", {self.meta.get('site')} layer {self.meta.get('layer')}" if "layer" in self.meta else ""
        return f"SparseAutoencoder({self.architecture}, d_in={self.d_in}, d_sae={self.d_sae}{k}{where})"

    # ----- SAELens layout ---------------------------------------------------------------------
    def cfg(self, **meta) -> dict:
        """The cfg.json dict (SAELens 6 keys; the workbench's provenance under metadata)."""
        metadata = dict(self.meta, **meta)
        metadata.setdefault("sae_lens_version", SAELENS_VERSION)
        metadata.setdefault("sae_lens_training_version", SAELENS_VERSION)
        metadata.setdefault("model_name", metadata.get("model_id"))
        metadata.setdefault("prepend_bos", False)
        cfg = dict(architecture=self.architecture, d_in=self.d_in, d_sae=self.d_sae, dtype="float32", device="cpu",
                   apply_b_dec_to_input=True, normalize_activations="none", reshape_activations="none",
                   metadata=metadata)
        if self.architecture == "topk":
            cfg.update(k=self.k, rescale_acts_by_decoder_norm=False)
        return cfg

    def save(self, folder, sparsity: np.ndarray | None = None, **meta) -> Path:
        """Write cfg.json + sae_weights.safetensors (+ sparsity.safetensors) into `folder`; returns it.

        meta: provenance for cfg.json's metadata (model_id, site, layer, hook_name, ...)."""
        from safetensors.torch import save_file
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        cfg = self.cfg(**meta)
        self.meta = dict(cfg["metadata"])
        tensors = {name: getattr(self, name).detach().float().cpu().contiguous() for name in _TENSORS}
        save_file(tensors, str(folder / SAE_WEIGHTS_FILENAME))
        if sparsity is not None:
            log_freq = np.log10(np.maximum(np.asarray(sparsity, np.float64), 1e-10))
            log_freq = torch.as_tensor(log_freq, dtype=torch.float32)
            save_file({"sparsity": log_freq}, str(folder / SPARSITY_FILENAME))
        (folder / SAE_CFG_FILENAME).write_text(json.dumps(cfg, indent=1, default=str))
        return folder

    @classmethod
    def load(cls, folder, expect_model_id: str | None = None) -> SparseAutoencoder:
        """Read an SAE folder in SAELens's layout (ours, or one SAELens saved: topk or standard)."""
        from safetensors.torch import load_file
        folder = Path(folder)
        cfg_path, weights_path = folder / SAE_CFG_FILENAME, folder / SAE_WEIGHTS_FILENAME
        if not cfg_path.is_file() or not weights_path.is_file():
            raise BadInputError(f"{folder} is not an SAE folder: it needs {SAE_CFG_FILENAME} and "
                                f"{SAE_WEIGHTS_FILENAME} (SAELens's layout; save one with sae.save(folder))")
        try:
            cfg = json.loads(cfg_path.read_text())
        except ValueError as e:
            raise CorruptFileError(cfg_path, f"is not valid JSON ({e}): re-save the SAE") from None
        if cfg.get("architecture") is None and cfg.get("activation_fn_str") == "topk":  # SAELens < 6 configs
            cfg = dict(cfg, architecture="topk", k=(cfg.get("activation_fn_kwargs") or {}).get("k"))
        architecture = cfg.get("architecture", "standard")
        if architecture not in ARCHITECTURES:
            raise BadInputError(f"{cfg_path}: architecture {architecture!r} is not supported here (only "
                                f"{ARCHITECTURES}); load it with sae_lens.SAE.load_from_disk")
        if cfg.get("normalize_activations", "none") not in ("none", None) or cfg.get("rescale_acts_by_decoder_norm"):
            raise BadInputError(f"{cfg_path}: normalize_activations={cfg.get('normalize_activations')!r} / "
                                "rescale_acts_by_decoder_norm are not supported: fold them into the weights first")
        tensors = load_file(str(weights_path))
        missing = [n for n in _TENSORS if n not in tensors]
        if missing:
            raise CorruptFileError(weights_path, f"lacks tensors {missing}: an SAELens SAE has {list(_TENSORS)}")
        meta = dict(cfg.get("metadata") or {})
        if expect_model_id is not None and meta.get("model_id", meta.get("model_name")) != expect_model_id:
            raise BadInputError(f"{folder} was trained on {meta.get('model_id', meta.get('model_name'))!r}, not "
                                f"{expect_model_id!r}: load that model, or train an SAE on this one")
        sae = cls(int(cfg["d_in"]), int(cfg["d_sae"]), architecture, k=cfg.get("k"), meta=meta)
        shapes = dict(W_enc=(sae.d_in, sae.d_sae), b_enc=(sae.d_sae,), W_dec=(sae.d_sae, sae.d_in), b_dec=(sae.d_in,))
        with torch.no_grad():
            for name in _TENSORS:
                if tuple(tensors[name].shape) != shapes[name]:
                    raise CorruptFileError(weights_path, f"{name} has shape {tuple(tensors[name].shape)}, not "
                                                         f"{shapes[name]} (cfg.json's d_in/d_sae): re-save the SAE")
                getattr(sae, name).copy_(tensors[name].float())
            if not cfg.get("apply_b_dec_to_input", True):  # x @ W_enc + b_enc == (x - b_dec) @ W_enc + b_enc'
                sae.b_enc += sae.b_dec @ sae.W_enc
        return sae


def read_sparsity(folder) -> np.ndarray | None:
    """Each feature's firing frequency from the folder's sparsity.safetensors (None without one)."""
    from safetensors.torch import load_file
    path = Path(folder) / SPARSITY_FILENAME
    if not path.is_file():
        return None
    return np.power(10.0, load_file(str(path))["sparsity"].double().numpy())



def default_d_sae(d_in: int, expansion: float = 8.0) -> int:
    """d_sae for an expansion factor, rounded up to a multiple of 8."""
    return int(math.ceil(d_in * expansion / 8) * 8)
