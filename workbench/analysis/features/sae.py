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
import os
from pathlib import Path

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file
from torch import nn

from workbench import validation
from workbench.errors import BadInputError, CorruptFileError, DirectionMismatchError, OutOfRangeError, WrongTypeError

__all__ = ["SparseAutoencoder", "ARCHITECTURES", "SAE_CFG_FILENAME", "SAE_WEIGHTS_FILENAME", "SPARSITY_FILENAME",
           "SAELENS_VERSION", "MAX_D_IN", "MAX_D_SAE", "MAX_WEIGHTS", "read_sparsity", "default_d_sae",
           "check_sae_size", "check_matches", "require_sae"]

ARCHITECTURES = ("topk", "standard")  # SAELens's names: TopK, and ReLU (trained with L1)
SAE_CFG_FILENAME = "cfg.json"  # sae_lens.constants
SAE_WEIGHTS_FILENAME = "sae_weights.safetensors"
SPARSITY_FILENAME = "sparsity.safetensors"
SAELENS_VERSION = "6.18.0"  # the config format written (SAELens >= 6 reads it as is; older ones convert it)
_TENSORS = ("W_enc", "b_enc", "W_dec", "b_dec")
# Sizes are checked before anything is allocated: a typo in cfg.json (d_sae=16384000000) must not ask for petabytes.
MAX_D_IN = 2 ** 16      # widest residual stream of any MusicGen (large: 2048) with room to spare
MAX_D_SAE = 2 ** 24     # 16.8M features, beyond the largest published SAEs
MAX_WEIGHTS = 2 ** 31   # d_in x d_sae: one float32 weight matrix of at most 8 GiB
_FLOAT_DTYPES = ("F32", "F16", "BF16", "F64")
_SAE_FIX = "re-save the SAE with sae.save(folder) (or train it again); a hand-edited cfg.json needs its original values"


def check_sae_size(d_in, d_sae, k=None, architecture: str = "topk") -> tuple[int, int, int | None]:
    """(d_in, d_sae, k) checked and bounded before any weight is allocated; k is None for "standard" SAEs.

    k must lie in 1..d_sae: it is refused, never clamped (a clamped k is not the sparsity asked for)."""
    architecture = validation.choice(architecture, "architecture", ARCHITECTURES)
    d_in = validation.integer(d_in, "d_in", low=1, high=MAX_D_IN)
    d_sae = validation.integer(d_sae, "d_sae", low=1, high=MAX_D_SAE)
    if d_in * d_sae > MAX_WEIGHTS:
        raise OutOfRangeError(f"d_in={d_in} x d_sae={d_sae} = {d_in * d_sae:,} weights per matrix "
                              f"({2 * d_in * d_sae * 4 / 2 ** 30:,.0f} GiB in float32) is more than this workbench "
                              f"allocates ({MAX_WEIGHTS:,}): pass a smaller d_sae (8 x d_in = {8 * d_in} is usual)")
    if architecture == "standard":
        return d_in, d_sae, None
    if k is None:
        raise WrongTypeError(f"k=None: a TopK SAE needs k, the number of active features (1 <= k <= d_sae={d_sae}, "
                             "e.g. 32)")
    k = validation.integer(k, "k", low=1)
    if k > d_sae:
        raise OutOfRangeError(f"k={k} is larger than the dictionary (d_sae={d_sae}): TopK keeps k features per frame, "
                              f"so pass k <= {d_sae} (e.g. {max(1, min(32, d_sae // 8))}) or a larger d_sae")
    return d_in, d_sae, k


class SparseAutoencoder(nn.Module):
    """An SAE with SAELens's parameters; architecture "topk" (k active features) or "standard" (ReLU).

    d_in: the layer's width (hidden size); d_sae: the number of features. seed: the initialisation
    (decoder rows unit-norm, encoder its transpose, as SAELens and Gao et al. initialise).
    meta: provenance kept in cfg.json (model_id, site, layer, training settings and metrics).
    """

    def __init__(self, d_in: int, d_sae: int, architecture: str = "topk", k: int | None = 32, seed: int = 0,
                 meta: dict | None = None):
        super().__init__()
        d_in, d_sae, k = check_sae_size(d_in, d_sae, k, architecture)
        seed = validation.integer(seed, "seed")
        if meta is not None and not isinstance(meta, dict):
            raise WrongTypeError(f"meta is a {type(meta).__name__}: pass a dict (model_id, site, layer, ...) or None")
        self.d_in, self.d_sae, self.architecture, self.k = d_in, d_sae, architecture, k
        self.meta = dict(meta or {})
        gen = torch.Generator().manual_seed(seed % 2 ** 63)
        w_dec = torch.randn(self.d_sae, self.d_in, generator=gen)
        w_dec /= w_dec.norm(dim=1, keepdim=True)
        self.W_dec = nn.Parameter(w_dec)
        self.W_enc = nn.Parameter(w_dec.T.clone().contiguous())
        self.b_enc = nn.Parameter(torch.zeros(self.d_sae))
        self.b_dec = nn.Parameter(torch.zeros(self.d_in))

    def _input(self, x, width: int, what: str) -> torch.Tensor:
        """x as a float tensor whose last dimension is `width` (a numpy array is converted)."""
        if isinstance(x, np.ndarray):
            x = torch.from_numpy(np.asarray(x, np.float32))
        if not isinstance(x, torch.Tensor) or not (x.is_floating_point() or x.dtype in (torch.int32, torch.int64)):
            raise WrongTypeError(f"{what} is a {type(x).__name__}: pass a float tensor (..., {width})")
        if x.ndim == 0 or x.shape[-1] != width:
            raise DirectionMismatchError(f"{what} has shape {tuple(x.shape)}, but this SAE's width is {width} "
                                         f"(d_in={self.d_in}, d_sae={self.d_sae}): pass activations of the layer it "
                                         "was trained on")
        return x if x.is_floating_point() else x.float()

    def pre_activations(self, x: torch.Tensor) -> torch.Tensor:
        x = self._input(x, self.d_in, "x")
        return (x - self.b_dec) @ self.W_enc + self.b_enc

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Feature activations (..., d_sae), non-negative; at most k non-zero per frame for TopK."""
        pre = self.pre_activations(x)
        if self.architecture == "standard":
            return torch.relu(pre)
        values, index = torch.topk(pre, self.k, dim=-1, sorted=False)
        return torch.zeros_like(pre).scatter_(-1, index, torch.relu(values))

    def decode(self, f: torch.Tensor) -> torch.Tensor:
        f = self._input(f, self.d_sae, "f (feature activations)")
        return f @ self.W_dec + self.b_dec

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """The reconstruction x_hat of x (..., d_in), in x's dtype."""
        x = self._input(x, self.d_in, "x")
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

    @torch.no_grad()
    def is_finite(self) -> bool:
        """True when every weight is a finite number (a diverged run leaves NaN or inf)."""
        return all(bool(torch.isfinite(p).all()) for p in self.parameters())

    def decoder_row(self, feature: int) -> np.ndarray:
        """The feature's decoder row (d_in,) float32: its direction in activation space."""
        feature = validation.integer(feature, "feature")
        if not 0 <= feature < self.d_sae:
            raise OutOfRangeError(f"feature {feature} is out of range: this SAE has {self.d_sae} (0-{self.d_sae - 1})")
        return self.W_dec[feature].detach().float().cpu().numpy()

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

        meta: provenance for cfg.json's metadata (model_id, site, layer, hook_name, ...). Each file is written
        to a temporary name and renamed into place, so a crash never leaves a half-written file."""
        folder = _folder(folder)
        if "layer" in meta:
            meta["layer"] = validation.non_negative_int(meta["layer"], "layer")
        if "site" in meta:
            meta["site"] = validation.site(meta["site"])
        for key in ("model_id", "hook_name"):
            if key in meta and meta[key] is not None:
                meta[key] = validation.text(meta[key], key)
        if not self.is_finite():
            raise BadInputError("this SAE holds NaN or inf weights (a diverged training run): train it again with a "
                                "smaller lr; it was not saved")
        log_freq = None
        if sparsity is not None:
            freq = validation.float_matrix([sparsity] if np.ndim(sparsity) == 1 else sparsity, "sparsity",
                                           width=self.d_sae, width_name="d_sae")
            if freq.shape[0] != 1 or freq.min() < 0 or freq.max() > 1:
                raise OutOfRangeError(f"sparsity must be {self.d_sae} firing frequencies in [0, 1] (labels.frequency)")
            log_freq = torch.as_tensor(np.log10(np.maximum(freq[0].astype(np.float64), 1e-10)), dtype=torch.float32)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise BadInputError(f"cannot create the SAE folder {folder} ({e}): pass a folder you can write") from None
        cfg = self.cfg(**meta)
        tensors = {name: getattr(self, name).detach().float().cpu().contiguous() for name in _TENSORS}
        _replace(folder / SAE_WEIGHTS_FILENAME, lambda tmp: save_file(tensors, str(tmp)))
        if log_freq is not None:
            _replace(folder / SPARSITY_FILENAME, lambda tmp: save_file({"sparsity": log_freq}, str(tmp)))
        _replace(folder / SAE_CFG_FILENAME, lambda tmp: tmp.write_text(json.dumps(cfg, indent=1, default=str)))
        self.meta = dict(cfg["metadata"])
        return folder

    @classmethod
    def load(cls, folder, expect_model_id: str | None = None, expect_layer: int | None = None,
             expect_site: str | None = None, expect_d_in: int | None = None) -> SparseAutoencoder:
        """Read an SAE folder in SAELens's layout (ours, or one SAELens saved: topk or standard).

        expect_*: refuse (DirectionMismatchError) an SAE of another model, layer, site or width. A damaged
        cfg.json or weights file raises CorruptFileError naming it; sizes are checked before allocating."""
        folder = _folder(folder)
        cfg_path, weights_path = folder / SAE_CFG_FILENAME, folder / SAE_WEIGHTS_FILENAME
        if not cfg_path.is_file() or not weights_path.is_file():
            raise BadInputError(f"{folder} is not an SAE folder: it needs {SAE_CFG_FILENAME} and "
                                f"{SAE_WEIGHTS_FILENAME} (SAELens's layout; save one with sae.save(folder))")
        cfg = _read_cfg(cfg_path)
        meta = cfg["metadata"]
        check_matches(meta, f"the SAE in {folder}", model_id=expect_model_id, layer=expect_layer, site=expect_site,
                      d_in=expect_d_in, sae_d_in=cfg["d_in"])
        shapes = dict(W_enc=(cfg["d_in"], cfg["d_sae"]), b_enc=(cfg["d_sae"],), W_dec=(cfg["d_sae"], cfg["d_in"]),
                      b_dec=(cfg["d_in"],))
        tensors = _read_tensors(weights_path, shapes)
        sae = cls(cfg["d_in"], cfg["d_sae"], cfg["architecture"], k=cfg["k"], meta=meta)
        with torch.no_grad():
            for name in _TENSORS:
                getattr(sae, name).copy_(tensors[name].float())
            if not cfg.get("apply_b_dec_to_input", True):  # x @ W_enc + b_enc == (x - b_dec) @ W_enc + b_enc'
                sae.b_enc += sae.b_dec @ sae.W_enc
        return sae


def check_matches(meta: dict, what: str, *, model_id=None, layer=None, site=None, d_in=None,
                  sae_d_in: int | None = None) -> None:
    """Refuse (DirectionMismatchError) an SAE whose provenance `meta` names another model, layer or site than
    where it is used, or whose width `sae_d_in` is not the layer's `d_in`. A None expectation, or a key the
    SAE does not record, is not checked."""
    model_id = None if model_id is None else validation.text(model_id, "expect_model_id")
    layer = None if layer is None else validation.non_negative_int(layer, "expect_layer")
    site = None if site is None else validation.site(site)
    d_in = None if d_in is None else validation.positive_int(d_in, "expect_d_in")
    if d_in is not None and sae_d_in is not None and int(d_in) != int(sae_d_in):
        raise DirectionMismatchError(f"{what} reads {sae_d_in}-wide activations, but this layer is {d_in} wide: use "
                                     "an SAE trained on this model's layer")
    trained_on = meta.get("model_id", meta.get("model_name"))
    if model_id is not None and trained_on is not None and trained_on != model_id:
        raise DirectionMismatchError(f"{what} was trained on {trained_on!r}, not {model_id!r}: load that model, or "
                                     "train an SAE on this one")
    if layer is not None and meta.get("layer") is not None and int(meta["layer"]) != int(layer):
        raise DirectionMismatchError(f"{what} was trained on layer {meta['layer']}, not layer {layer}: use it at "
                                     f"layer {meta['layer']}, or train an SAE on layer {layer}")
    if site is not None and meta.get("site") is not None and meta["site"] != site:
        raise DirectionMismatchError(f"{what} was trained on site {meta['site']!r}, not {site!r}: use it at "
                                     f"{meta['site']!r}, or train one on {site!r}")


def require_sae(sae) -> SparseAutoencoder:
    """`sae` when it is a SparseAutoencoder with finite weights, else a workbench error saying what to pass."""
    if not isinstance(sae, SparseAutoencoder):
        raise WrongTypeError(f"sae is a {type(sae).__name__}: pass a SparseAutoencoder (train_sae(...).sae or "
                             "SparseAutoencoder.load(folder))")
    if not sae.is_finite():
        raise BadInputError("this SAE holds NaN or inf weights (a diverged training run): train it again with a "
                            "smaller lr")
    return sae


def _folder(folder) -> Path:
    if not isinstance(folder, (str, os.PathLike)) or (isinstance(folder, str) and not folder):
        raise WrongTypeError(f"folder={folder!r}: pass a folder path (a str or pathlib.Path)")
    return Path(folder)


def _replace(path: Path, write) -> None:
    """write(tmp) then rename tmp over path: readers see the old file or the new one, never half of one."""
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        write(tmp)
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise BadInputError(f"cannot write {path} ({e}): free some disk space or pass another folder") from None


def _read_cfg(cfg_path: Path) -> dict:
    """cfg.json parsed and checked (sizes bounded before anything is allocated), SAELens < 6 keys converted."""
    def bad(why):
        return CorruptFileError(cfg_path, f"{why}: {_SAE_FIX}")
    try:
        cfg = json.loads(cfg_path.read_bytes())
    except (ValueError, UnicodeDecodeError) as e:
        raise bad(f"is not valid JSON ({e})") from None
    if not isinstance(cfg, dict):
        raise bad(f"holds a {type(cfg).__name__}, not SAELens's config object")
    if cfg.get("architecture") is None and cfg.get("activation_fn_str") == "topk":  # SAELens < 6 configs
        kwargs = cfg.get("activation_fn_kwargs")
        cfg = dict(cfg, architecture="topk", k=kwargs.get("k") if isinstance(kwargs, dict) else None)
    architecture = cfg.get("architecture", "standard")
    if not isinstance(architecture, str):
        raise bad(f"architecture={architecture!r} is not a name")
    if architecture not in ARCHITECTURES:
        raise BadInputError(f"{cfg_path}: architecture {architecture!r} is not supported here (only "
                            f"{ARCHITECTURES}); load it with sae_lens.SAE.load_from_disk")
    if cfg.get("normalize_activations", "none") not in ("none", None) or cfg.get("rescale_acts_by_decoder_norm"):
        raise BadInputError(f"{cfg_path}: normalize_activations={cfg.get('normalize_activations')!r} / "
                            "rescale_acts_by_decoder_norm are not supported: fold them into the weights first")
    for key in ("d_in", "d_sae"):
        if key not in cfg:
            raise bad(f"has no {key!r}")
    try:
        d_in, d_sae, k = check_sae_size(cfg["d_in"], cfg["d_sae"], cfg.get("k"), architecture)
    except BadInputError as e:
        raise bad(f"holds impossible sizes ({e})") from None
    meta = cfg.get("metadata") or {}
    if not isinstance(meta, dict):
        raise bad(f"metadata is a {type(meta).__name__}, not an object")
    if meta.get("layer") is not None:
        try:
            validation.non_negative_int(meta["layer"], "metadata.layer")
        except BadInputError as e:
            raise bad(str(e)) from None
    return dict(cfg, architecture=architecture, d_in=d_in, d_sae=d_sae, k=k, metadata=dict(meta))


def _read_tensors(path: Path, shapes: dict) -> dict:
    """The named tensors of a safetensors file, their shapes and dtypes checked from the header before reading
    them, their values checked finite; a damaged file is a CorruptFileError."""
    try:
        with safe_open(str(path), framework="pt") as f:
            names = set(f.keys())
            missing = [n for n in shapes if n not in names]
            if missing:
                raise CorruptFileError(path, f"lacks tensors {missing}: an SAELens SAE has {list(shapes)}; {_SAE_FIX}")
            for name, shape in shapes.items():
                piece = f.get_slice(name)
                if tuple(piece.get_shape()) != tuple(shape) or piece.get_dtype() not in _FLOAT_DTYPES:
                    raise CorruptFileError(path, f"{name} is {piece.get_dtype()} {tuple(piece.get_shape())}, not "
                                                 f"float {tuple(shape)} (cfg.json's d_in/d_sae): {_SAE_FIX}")
            tensors = {name: f.get_tensor(name) for name in shapes}
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        if isinstance(e, CorruptFileError):
            raise
        raise CorruptFileError(path, f"is not a readable safetensors file ({e}): it may be truncated; "
                                     f"{_SAE_FIX}") from None
    for name, tensor in tensors.items():
        if not bool(torch.isfinite(tensor).all()):
            raise CorruptFileError(path, f"{name} holds NaN or inf: {_SAE_FIX}")
    return tensors


def read_sparsity(folder) -> np.ndarray | None:
    """Each feature's firing frequency from the folder's sparsity.safetensors (None without one)."""
    path = _folder(folder) / SPARSITY_FILENAME
    if not path.is_file():
        return None
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise CorruptFileError(path, f"is not a readable safetensors file ({e}): delete it (it only holds firing "
                                     "frequencies) or re-save the SAE with sae.save(folder, sparsity=...)") from None
    if "sparsity" not in tensors or tensors["sparsity"].ndim != 1:
        raise CorruptFileError(path, "holds no 1-D 'sparsity' tensor: delete it or re-save the SAE")
    return np.power(10.0, tensors["sparsity"].double().numpy())


def default_d_sae(d_in: int, expansion: float = 8.0) -> int:
    """d_sae for an expansion factor, rounded up to a multiple of 8."""
    d_in = validation.integer(d_in, "d_in", low=1, high=MAX_D_IN)
    expansion = validation.finite_float(expansion, "expansion", low=0.0, low_inclusive=False,
                                        hint="8 (d_sae = 8 x d_in) is usual")
    return int(math.ceil(d_in * expansion / 8) * 8)
