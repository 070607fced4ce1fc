"""What to record from the decoder, and the accumulators that pool it while generation runs.

Sites (module paths in `workbench.runtime.model.SITE_SUFFIX`): ``resid`` = output of decoder block i
(the residual stream after the block), ``attn`` = its self-attention output, ``mlp`` = its MLP
output (fc2). Pooled capture keeps O(rows x hidden) per site/layer however long the clip is.

Example:
    >>> spec = CaptureSpec(layers=(0, 2), pooling="mean_std", rows="both")
    >>> spec.width(hidden_size=16), len(spec.key)
    (32, 12)
"""
from __future__ import annotations

import dataclasses
import hashlib
import json

import torch

from workbench import validation
from workbench.enums import CAPTURE_ROWS, POOLINGS, SITES  # noqa: F401  (re-exported)
from workbench.errors import EmptyInputError


@dataclasses.dataclass(frozen=True)
class CaptureSpec:
    """Which sites and layers to record, how to pool over time, and which CFG rows.

    layers: None for all layers. rows ``both`` returns conditional rows first, then unconditional.
    """

    layers: tuple[int, ...] | None = None
    sites: tuple[str, ...] = ("resid",)
    pooling: str = "mean"
    rows: str = "cond"

    def __post_init__(self):
        if self.layers is not None:
            layers = validation.int_sequence(self.layers, "layers", allow_empty=True, example="(0, 6)")
            if not layers:
                raise EmptyInputError("layers=() captures nothing: pass None for all layers or e.g. (0, 6)")
            object.__setattr__(self, "layers", tuple(sorted(set(layers))))
        object.__setattr__(self, "sites", validation.sites(self.sites))
        validation.choice(self.pooling, "pooling", POOLINGS)
        validation.choice(self.rows, "rows", CAPTURE_ROWS)

    @property
    def key(self) -> str:
        """A short stable hash of the spec, used to key activation stores."""
        blob = json.dumps(dataclasses.asdict(self), sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]

    def resolved_layers(self, n_layers: int) -> tuple[int, ...]:
        if self.layers is None:
            return tuple(range(n_layers))
        return validation.layers_in_range(self.layers, n_layers)

    def width(self, hidden_size: int) -> int:
        return 2 * hidden_size if self.pooling == "mean_std" else hidden_size

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


class PooledAccumulator:
    """Running pool of (rows, positions, H) chunks; O(rows x H) memory.

    Chunks arrive step by step; a chunk may be *replaced* (the duplicate prefill forward of
    transformers 5.x `generate`), so the newest chunk is held pending and folded in only when
    the next step begins or when the result is read.
    """

    def __init__(self, pooling: str):
        self.pooling = pooling
        self.pending: torch.Tensor | None = None
        self.count = 0
        self.total = self.total_sq = self.maximum = self.last = None
        self.steps: list[torch.Tensor] = []

    def offer(self, chunk: torch.Tensor, replace: bool) -> None:
        if not replace:
            self._fold()
        self.pending = chunk.detach().float()

    def _fold(self) -> None:
        chunk, self.pending = self.pending, None
        if chunk is None:
            return
        if self.pooling == "none":
            self.steps.append(chunk.cpu())
            return
        self.last = chunk[:, -1]
        if self.pooling in ("mean", "mean_std"):
            s = chunk.sum(dim=1)
            self.total = s if self.total is None else self.total + s
            if self.pooling == "mean_std":
                sq = (chunk * chunk).sum(dim=1)
                self.total_sq = sq if self.total_sq is None else self.total_sq + sq
        if self.pooling == "max":
            m = chunk.amax(dim=1)
            self.maximum = m if self.maximum is None else torch.maximum(self.maximum, m)
        self.count += chunk.shape[1]

    def result(self) -> torch.Tensor:
        """(rows, H) pooled, (rows, 2H) for mean_std, or (rows, T, H) for pooling ``none``."""
        self._fold()
        if self.pooling == "none":
            return torch.cat(self.steps, dim=1)
        if self.count == 0:
            raise RuntimeError("nothing was captured: the decoder never ran")
        if self.pooling == "last":
            return self.last
        if self.pooling == "max":
            return self.maximum
        mean = self.total / self.count
        if self.pooling == "mean":
            return mean
        var = (self.total_sq / self.count - mean * mean).clamp_min(0.0)
        return torch.cat([mean, var.sqrt()], dim=-1)
