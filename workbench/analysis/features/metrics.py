"""How good an SAE is: explained variance, L0, dead and dense features, and the spliced loss.

The spliced loss is the teacher-forced code log-likelihood (mean cross-entropy over every codebook's next
code, null text) with the layer's output replaced by the SAE's reconstruction (a ``splice`` edit run by the
nnsight runner, `workbench.runtime.tracing.traced_forward`), next to the clean loss and the loss with that
output zeroed (a ``splice`` to zeros).
``recovery = (zero - spliced) / (zero - clean)``: 1 when the splice costs nothing, 0 when it is as bad as
deleting the layer's output. Logits at position t predict the input id at t + 1; positions whose next id is
the delay pattern's pad/start token are not targets.

    >>> import numpy as np, torch
    >>> from workbench.analysis.features.sae import SparseAutoencoder
    >>> sae = SparseAutoencoder(8, 16, "topk", k=8)
    >>> x = np.random.default_rng(0).normal(size=(100, 8)).astype(np.float32)
    >>> m = sae_metrics(sae, [x])
    >>> sorted(m), m["l0"] <= 8
    (['dead_fraction', 'dense_fraction', 'explained_variance', 'frequency', 'l0', 'n_frames'], True)
"""
from __future__ import annotations

import numpy as np
import torch

from workbench import validation
from workbench.analysis.features.sae import check_matches, require_sae
from workbench.errors import BadInputError, EmptyInputError, OutOfRangeError, WrongTypeError
from workbench.runtime.edits import Edit
from workbench.runtime.teacher_forcing import delayed_decoder_inputs, encode_audio, text_states
from workbench.runtime.tracing import traced_forward

__all__ = ["sae_metrics", "spliced_loss", "codes_of_rows", "DENSE_THRESHOLD"]

DENSE_THRESHOLD = 0.1  # a feature firing on more than this fraction of frames counts as dense


@torch.no_grad()
def sae_metrics(sae, chunks, dense_threshold: float = DENSE_THRESHOLD) -> dict:
    """EV, mean L0, dead fraction (never fires), dense fraction and each feature's firing frequency.

    chunks: an iterable of (n, d_in) arrays (e.g. ``b.x for b in stream.sequential()``), or one such array;
    two passes are avoided by accumulating sums. NaN / inf frames are refused (NotFiniteError)."""
    sae = require_sae(sae)
    dense_threshold = validation.finite_float(dense_threshold, "dense_threshold", low=0.0, high=1.0,
                                              hint=f"a fraction of frames, e.g. {DENSE_THRESHOLD}")
    if getattr(chunks, "ndim", None) == 2:  # one array, not a list of them
        chunks = [chunks]
    if chunks is None or isinstance(chunks, (str, bytes, dict)) or not hasattr(chunks, "__iter__"):
        raise WrongTypeError(f"chunks is a {type(chunks).__name__}: pass a list of (n, {sae.d_in}) arrays, e.g. "
                             "[b.x for b in stream.sequential()]")
    n, sq_err, s1, s2, l0_sum = 0, 0.0, None, None, 0.0
    fires = torch.zeros(sae.d_sae, dtype=torch.float64)
    for i, chunk in enumerate(chunks):
        x = torch.from_numpy(validation.float_matrix(chunk, f"chunks[{i}]", width=sae.d_in, width_name="SAE's d_in"))
        f = sae.encode(x)
        x_hat = sae.decode(f)
        sq_err += float(((x - x_hat) ** 2).double().sum())
        xd = x.double()
        s1 = xd.sum(0) if s1 is None else s1 + xd.sum(0)
        s2 = (xd ** 2).sum(0) if s2 is None else s2 + (xd ** 2).sum(0)
        active = f > 0
        fires += active.double().sum(0)
        l0_sum += float(active.double().sum())
        n += len(x)
    if n == 0:
        raise EmptyInputError("no frames to measure the SAE on")
    total_var = float((s2 - s1 ** 2 / n).sum())
    frequency = (fires / n).numpy()
    return dict(explained_variance=1.0 - sq_err / max(total_var, 1e-12), l0=l0_sum / n,
                dead_fraction=float((frequency == 0).mean()),
                dense_fraction=float((frequency > dense_threshold).mean()), frequency=frequency, n_frames=n)


def codes_of_rows(handle, store, rows, batch_size: int = 8) -> torch.Tensor:
    """(N, K, frames) EnCodec codes of store rows (their stored audio re-encoded)."""
    validation.model_handle(handle)
    if not hasattr(store, "audio") or not hasattr(store, "sample_rate_hz"):
        raise WrongTypeError(f"store is a {type(store).__name__}: pass an ActivationStore collected with audio")
    rows = validation.int_sequence(rows, "rows", allow_empty=True, example="[0, 1, 2]")
    batch_size = validation.positive_int(batch_size, "batch_size")
    if not rows:
        raise EmptyInputError("rows is empty: pass the store rows whose audio to encode, e.g. [0, 1, 2]")
    bad = [r for r in rows if not 0 <= r < len(store)]
    if bad:
        raise OutOfRangeError(f"rows {bad[:5]} are out of range: the store has rows 0-{len(store) - 1}")
    waves = [store.audio(r).mean(0) for r in rows]
    length = min(len(w) for w in waves)
    return torch.cat([encode_audio(handle, [w[:length] for w in waves[i:i + batch_size]], store.sample_rate_hz)
                      for i in range(0, len(waves), batch_size)])


def _loss(handle, logits: torch.Tensor, ids: torch.Tensor) -> tuple[float, int]:
    """(sum of cross-entropy, number of targets): logits[:, t] predict ids[:, t + 1] where that is a code."""
    bos = handle.model.generation_config.decoder_start_token_id
    targets = ids[:, 1:]
    keep = targets != bos
    pred = logits[:, :-1].float()
    ce = torch.nn.functional.cross_entropy(pred[keep], targets[keep], reduction="sum")
    return float(ce), int(keep.sum())


@torch.no_grad()
def spliced_loss(handle, sae, codes: torch.Tensor, site: str = "resid", layer: int = 0,
                 batch_size: int = 8) -> dict:
    """Clean, spliced and zero-ablated mean code cross-entropy (nats) of `codes` (N, K, frames), and recovery.

    The SAE replaces (site, layer)'s output at every position of every row (null-text conditioning, as the
    store's teacher-forced clips were read). An SAE trained on another model, layer, site or width is refused
    (DirectionMismatchError)."""

    validation.model_handle(handle)
    sae = require_sae(sae)
    site = validation.site(site)
    layer = validation.layer_index(layer, handle.n_layers)
    batch_size = validation.positive_int(batch_size, "batch_size")
    check_matches(sae.meta, "this SAE", model_id=handle.model_id, layer=layer, site=site, d_in=handle.hidden_size,
                  sae_d_in=sae.d_in)
    codes = _codes(handle, codes)
    sums = dict(clean=[0.0, 0], spliced=[0.0, 0], zero=[0.0, 0])
    sae = sae.to(handle.device)
    edits = dict(clean=[], spliced=[Edit("splice", site=site, layer=layer, fn=sae)],
                 zero=[Edit("splice", site=site, layer=layer, fn=torch.zeros_like)])
    for start in range(0, len(codes), batch_size):
        part = codes[start:start + batch_size].to(handle.device)
        ids = delayed_decoder_inputs(handle, part)
        states, mask = text_states(handle, None, len(part))
        for name, splice in edits.items():
            out = traced_forward(handle, ids, states, mask, splice)
            ce, count = _loss(handle, out.logits, ids)
            sums[name][0] += ce
            sums[name][1] += count
    loss = {name: s / max(c, 1) for name, (s, c) in sums.items()}
    gap = loss["zero"] - loss["clean"]
    loss["recovery"] = (loss["zero"] - loss["spliced"]) / gap if gap > 0 else float("nan")
    loss["n_clips"] = len(codes)
    return loss


def _codes(handle, codes) -> torch.Tensor:
    """codes as an (N, K, frames) int64 tensor of valid code ids for this model."""
    if isinstance(codes, np.ndarray):
        codes = torch.from_numpy(codes)
    if not isinstance(codes, torch.Tensor):
        raise WrongTypeError(f"codes is a {type(codes).__name__}: pass an (N, {handle.n_codebooks}, frames) int "
                             "tensor, e.g. codes_of_rows(handle, store, rows)")
    if codes.is_floating_point() or codes.is_complex() or codes.dtype == torch.bool:
        raise WrongTypeError(f"codes are {codes.dtype}: pass integer code ids (codes_of_rows gives them)")
    if codes.ndim != 3 or codes.shape[1] != handle.n_codebooks:
        raise BadInputError(f"codes have shape {tuple(codes.shape)}: pass (N, {handle.n_codebooks}, frames), one row "
                            "per clip (codes_of_rows gives them)")
    if codes.shape[0] == 0 or codes.shape[2] < 2:
        raise EmptyInputError(f"codes have shape {tuple(codes.shape)}: pass at least one clip of 2 or more frames")
    vocab = int(handle.config.decoder.vocab_size)
    if int(codes.min()) < 0 or int(codes.max()) >= vocab:
        raise OutOfRangeError(f"codes hold ids {int(codes.min())}..{int(codes.max())}, but this model's codebooks "
                              f"have ids 0-{vocab - 1}: pass codes from this model's codec")
    return codes.long()
