"""The kernel's decode loop with its one-token decoder step compiled by ``torch.compile`` (issue 32, item 3).

The compiled step has fixed shapes, so it compiles once per shape (batch rows, cache length rounded up to
``POSITION_BUCKET``, dtype; the weights are inputs, so models of one shape share it) and then runs as generated
code: on CPU inductor's C++, on a GPU CUDA graphs (``mode="reduce-overhead"``). Against the eager kernel
(`workbench.runtime.kernel.forward.decoder_logits`):

- the self-attention cache is a `StepCache` at its full (bucketed) length: a step writes its keys and values at
  the position given as a tensor and attends over every position under a mask of the filled ones; attention is
  written out (scores, softmax, weighted sum) so the compiler fuses it;
- the cross-attention keys and values are computed once per batch, as in the eager kernel (`CrossCache`);
- steering is three always-on additions per layer (after self-attention, after the MLP, after the layer) of a
  (sites, layers, rows, 1, hidden) tensor of deltas (`StepDeltas`), zero where nothing steers (``h + 0`` is
  ``h``, bit for bit), refilled between steps when a strength changes. Only ``add`` edits compile this way;
  other operations and capture run in the eager kernel (`workbench.generate`);
- an audio prompt's prefill runs position by position through the same step (attention is causal, so the states
  are the same up to summation order);
- sampling is the kernel's: the same per-clip `SeededSampler` on the step's logits.

The arithmetic is reordered (masked full-length attention, fused kernels), so logits are not bit-identical to
the eager kernel's: tests/test_kernel_compiled.py checks they agree within ``LOGITS_ATOL`` and that greedy codes
are identical. The first call per shape compiles (15-80 s on a shared 2-core CPU for the tiny and teaching
models; ``CompiledDecoder.compile_s``); later processes reuse inductor's on-disk cache.

Measured (``python -m benchmarks compiled``, teaching model, 4 s clip, 1 thread, 5 rounds, load average ~4 on 2
shared cores): compiled_over_hf 2.21 (2.03-2.23; CPU time 2.21), compiled_over_kernel 1.08 (1.06-1.10). A compiled
step costs ~0.8 ms of CPU against the eager kernel's ~0.95: at 6 layers of width 96 both are bound by per-call
overhead (inductor's calls into ``mm`` cost more than eager's), and decoding the codes to audio (~0.12 s of CPU
per 4 s clip) is the same in every loop.

Example:
    >>> from workbench.runtime.model import random_model
    >>> from workbench.runtime.inputs import generation_args
    >>> h = random_model("tiny")
    >>> args = generation_args(h, "rock", duration_s=0.1, seeds=1, temperature=0.0, top_k=None)
    >>> compiled_clips(h, args, CompiledDecoder(h, compile=False))[0].codes.shape  # eager: no compile time
    (4, 5)
"""
from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable

import numpy as np
import torch
import torch.nn.functional as F

from workbench.errors import BadInputError
from workbench.runtime.clip import Clip, clips_from
from workbench.runtime.edits import Edit, EditRun, batch_edits, edit_row_slice
from workbench.runtime.inputs import Batch, GenerationArgs
from workbench.runtime.kernel.cache import cache_positions
from workbench.runtime.kernel.forward import CrossAttention, DecoderWeights
from workbench.runtime.kernel.loop import BatchDecode, audio_from_codes, text_cross_attention
from workbench.runtime.threads import intra_op_threads, resolve_threads

SITES = ("attn", "mlp", "resid")  # the delta tensor's first axis
POSITION_BUCKET = 256  # cache positions are rounded up to a multiple: one compiled step serves many clip lengths
LOGITS_ATOL = 1e-4  # float32: |compiled - eager| per logit (tiny and teaching models: ~1e-6 measured)


@dataclasses.dataclass
class StepCache:
    """The compiled step's self-attention cache: per layer, keys and values (rows, heads, positions, head_dim),
    separate tensors (views of one buffer would make the compiler copy the whole buffer at every write), zeros
    beyond ``length`` (attention reads every position under its mask). ``positions`` is rounded up to
    ``POSITION_BUCKET`` so clips of nearby lengths share one compiled step."""

    keys: list[torch.Tensor]
    values: list[torch.Tensor]
    length: int = 0

    @classmethod
    def empty(cls, weights: DecoderWeights, rows: int, positions: int, *, dtype: torch.dtype, device) -> StepCache:
        positions = -(-positions // POSITION_BUCKET) * POSITION_BUCKET
        positions = min(positions, weights.positions.shape[0])
        shape = (rows, weights.heads, positions, weights.head_dim)
        cache = cls([torch.zeros(shape, dtype=dtype, device=device) for _ in weights.layers],
                    [torch.zeros(shape, dtype=dtype, device=device) for _ in weights.layers])
        if torch.device(device).type == "cuda":  # CUDA graphs replay writes into these very tensors
            for tensor in (*cache.keys, *cache.values):
                torch._dynamo.mark_static_address(tensor)
        return cache

    @property
    def nbytes(self) -> int:
        return sum(t.numel() * t.element_size() for t in (*self.keys, *self.values))


@dataclasses.dataclass
class CrossCache:
    """The cross-attention keys and values (`CrossAttention`'s) with the mask as an additive bias (0 or -inf) and
    a per-row factor that zeroes rows with no text position (guidance's null rows, as SDPA returns 0 there)."""

    keys_values: tuple
    bias: torch.Tensor
    keep: torch.Tensor

    @classmethod
    def of(cls, cross: CrossAttention, weights: DecoderWeights, rows: int, *, dtype: torch.dtype, device) -> CrossCache:
        mask = cross.mask(weights, torch.empty(rows, 1, weights.heads * weights.head_dim, dtype=dtype, device=device))
        length = cross.keys_values[0][0].shape[2]
        if mask is None:
            allowed = torch.ones(rows, 1, 1, length, dtype=torch.bool, device=device)
        elif mask.dtype == torch.bool:
            allowed = mask.expand(rows, 1, 1, length)
        else:  # an additive float mask
            allowed = (mask > torch.finfo(mask.dtype).min / 2).expand(rows, 1, 1, length)
        any_allowed = allowed.any(dim=-1, keepdim=True)
        allowed = allowed | ~any_allowed  # a row with nothing allowed attends uniformly, then is zeroed
        bias = torch.zeros(allowed.shape, dtype=dtype, device=device).masked_fill(~allowed, float("-inf"))
        return cls(tuple(cross.keys_values), bias, any_allowed.to(dtype))


def _attend(query, keys, values, bias, scaling: float) -> torch.Tensor:
    """Attention written out (scores, softmax, weighted sum): the compiler fuses it; SDPA would stay one call."""
    scores = torch.matmul(query, keys.transpose(-1, -2)) * scaling + bias
    return torch.matmul(scores.softmax(dim=-1), values)


def decoder_step(weights: DecoderWeights, tokens: torch.Tensor, position: torch.Tensor, keys: list, values: list,
                 cross: CrossCache, deltas: torch.Tensor) -> torch.Tensor:
    """float32 logits (rows x codebooks, vocab) of one new position: tokens (rows, codebooks), ``position`` a
    (1,) long tensor, keys/values a `StepCache`'s (written at ``position``), deltas (3, layers, rows, 1, H).

    The function ``torch.compile`` compiles; it also runs eagerly (the reference its tests compare).
    """
    rows, n_codebooks = tokens.shape
    hidden = sum(F.embedding(tokens[:, k, None], weights.embeddings[k]) for k in range(n_codebooks))
    hidden = hidden + weights.positions.index_select(0, position)
    filled = torch.arange(keys[0].shape[2], device=position.device) <= position  # the positions written so far
    self_bias = torch.zeros(filled.shape, dtype=hidden.dtype, device=hidden.device).masked_fill(~filled, float("-inf"))
    shape = (rows, 1, -1, weights.head_dim)
    for index, w in enumerate(weights.layers):
        residual = hidden
        x = F.layer_norm(hidden, *w.self_norm)
        query = F.linear(x, w.q).view(shape).transpose(1, 2)
        keys[index].index_copy_(2, position, F.linear(x, w.k).view(shape).transpose(1, 2))
        values[index].index_copy_(2, position, F.linear(x, w.v).view(shape).transpose(1, 2))
        attended = _attend(query, keys[index], values[index], self_bias, weights.scaling)
        attended = F.linear(attended.transpose(1, 2).reshape(rows, 1, -1), w.out) + deltas[0, index]
        hidden = residual + attended
        residual = hidden
        x = F.layer_norm(hidden, *w.cross_norm)
        query = F.linear(x, w.cross_q).view(shape).transpose(1, 2)
        cross_keys, cross_values = cross.keys_values[index]
        attended = _attend(query, cross_keys, cross_values, cross.bias, weights.scaling) * cross.keep
        hidden = residual + F.linear(attended.transpose(1, 2).reshape(rows, 1, -1), w.cross_out)
        residual = hidden
        x = w.activation(F.linear(F.layer_norm(hidden, *w.final_norm), w.fc1))
        hidden = residual + (F.linear(x, w.fc2) + deltas[1, index])
        hidden = hidden + deltas[2, index]
    hidden = F.layer_norm(hidden, *weights.final_norm)
    logits = torch.stack([F.linear(hidden, head) for head in weights.heads_out], dim=1)  # (rows, K, 1, vocab)
    return logits.reshape(rows * n_codebooks, -1).float()


class CompiledDecoder:
    """A model's compiled decoder step: ``step(tokens, cache, cross, deltas)`` -> logits, advancing ``cache``.

    One compiled variant per shape (batch rows, cache positions rounded up to ``POSITION_BUCKET``, dtype); the
    weights are inputs, so models of one shape share it. compile: False runs `decoder_step` eagerly (the same
    arithmetic, no compiler). mode: torch.compile's mode (default: ``"reduce-overhead"``, CUDA graphs, on CUDA;
    inductor's default elsewhere). compile_s: seconds spent in the calls that compiled.
    """

    def __init__(self, handle, *, compile: bool = True, mode: str | None = None):
        self.weights = DecoderWeights.of(handle)
        self.device = handle.device
        if mode is None and self.device.type == "cuda":
            mode = "reduce-overhead"
        self.mode = mode
        self.compiled = compile
        self.fn = torch.compile(decoder_step, mode=mode, dynamic=False, fullgraph=True) if compile else decoder_step
        self.compile_s = 0.0
        self._shapes: set = set()

    def step(self, tokens: torch.Tensor, cache: StepCache, cross: CrossCache, deltas: torch.Tensor) -> torch.Tensor:
        """Logits of the next position for tokens (rows, codebooks); writes it into ``cache`` and advances it."""
        position = torch.full((1,), cache.length, dtype=torch.long, device=self.device)
        key = (tuple(tokens.shape), tuple(cache.keys[0].shape), cache.keys[0].dtype)
        first = key not in self._shapes
        start = time.perf_counter()
        if self.compiled and self.mode == "reduce-overhead":
            torch.compiler.cudagraph_mark_step_begin()  # the previous step's logits are consumed: reuse their memory
        logits = self.fn(self.weights, tokens, position, cache.keys, cache.values, cross, deltas)
        if first:
            self._shapes.add(key)
            if self.compiled:
                self.compile_s += time.perf_counter() - start
        cache.length += 1
        return logits


def compiled_edits(run: EditRun | None) -> list[Edit]:
    """The edits of ``run`` the compiled step runs: ``add`` edits only (steering as always-on additions).

    Other operations (reads and capture included) are refused with the way out: the eager kernel runs them all.
    """
    if run is None:
        return []
    for index, edit in enumerate(run.edits):
        if edit.op != "add":
            raise BadInputError(f"edit {index} is Edit({edit.op!r}): the compiled kernel runs steering as additions "
                                "only (Edit('add', ...), SteeringSpec mode 'add'); run other operations and capture "
                                "with the eager kernel (workbench.generate)")
    return list(run.edits)


class StepDeltas:
    """The (3, layers, rows, 1, hidden) tensor of additions the compiled step applies, for one batch.

    ``at(step)`` refills it when the strengths change (schedules, windows) and returns it; zeros where no edit
    is active (the no-op).
    """

    def __init__(self, edits: list[Edit], n_layers: int, hidden: int, n_cond: int, guided: bool, *, device,
                 dtype: torch.dtype):
        rows = n_cond * (2 if guided else 1)
        self.tensor = torch.zeros(len(SITES), n_layers, rows, 1, hidden, device=device, dtype=dtype)
        self.edits = [(edit, edit_row_slice(edit.rows, n_cond, guided), edit.vector.to(device, dtype))
                      for edit in edits]
        self._strengths: tuple | None = ()

    def at(self, step: int) -> torch.Tensor:
        strengths = tuple(edit.strength_at(step) if edit.active_at(step) else 0.0 for edit, _, _ in self.edits)
        if strengths != self._strengths:
            self.tensor.zero_()
            for (edit, rows, vector), strength in zip(self.edits, strengths):
                if strength == 0.0:
                    continue
                target = self.tensor[SITES.index(edit.site), edit.layer, rows, 0]  # (rows, hidden)
                if vector.dim() == 2:  # one row per clip: the same rows for the conditional and null halves
                    vector = vector.repeat(target.shape[0] // vector.shape[0], 1)
                target.add_(strength * vector)
            self._strengths = strengths
        return self.tensor


def compiled_decode_codes(handle, decoder: CompiledDecoder, args: GenerationArgs, batch: Batch,
                          run: EditRun | None = None, stop: Callable[[], bool] | None = None):
    """Codes (B, n_codebooks, prompt frames + frames) of one batch and their codec scales, sampled by the kernel's
    one loop (`workbench.runtime.kernel.loop.BatchDecode.sample`), every decoder position through the compiled
    step."""
    weights = decoder.weights
    decode = BatchDecode.of(handle, args, batch)
    n_clips, n_codebooks, guided, rows = decode.n_clips, handle.n_codebooks, args.guided, decode.rows
    cross = CrossCache.of(text_cross_attention(handle, weights, decode.inputs, guided), weights, rows,
                          dtype=handle.dtype, device=handle.device)
    cache = StepCache.empty(weights, rows, cache_positions(weights.config, args.frames, decode.prompt_positions - 1),
                            dtype=handle.dtype, device=handle.device)
    deltas = StepDeltas(compiled_edits(run), weights.n_layers, handle.hidden_size, n_clips, guided,
                        device=handle.device, dtype=handle.dtype)

    def advance(step: int, column: int) -> torch.Tensor:
        step_deltas = deltas.at(step)
        logits = None
        while cache.length < column:  # the prefill (start token, audio prompt) one position at a time
            tokens = decode.ids[:, cache.length].reshape(n_clips, n_codebooks)
            if guided:
                tokens = tokens.repeat((2, 1))
            logits = decoder.step(tokens, cache, cross, step_deltas)
        return logits

    return decode.sample(handle, advance, stop)


def compiled_batch(handle, decoder: CompiledDecoder, args: GenerationArgs, batch: Batch, run: EditRun | None = None,
                   stop: Callable[[], bool] | None = None) -> list[Clip]:
    """The clips of one batch, as `workbench.runtime.kernel.kernel_batch` makes them, through the compiled step
    (``run``: ``add`` edits only)."""
    with torch.inference_mode():
        codes, scales = compiled_decode_codes(handle, decoder, args, batch, run, stop)
        waves = audio_from_codes(handle, codes, scales)
    return clips_from(handle, waves, codes.cpu().numpy().astype(np.int64), batch.prompts, batch.seeds,
                      args.steering, args.guidance_scale)


def compiled_clips(handle, args: GenerationArgs, decoder: CompiledDecoder | None = None,
                   stop: Callable[[], bool] | None = None) -> list[Clip]:
    """One clip per prompt of ``args`` (from `workbench.runtime.inputs.generation_args`: steering and ``add``
    edits; capture and reads need the eager loop, `workbench.generate`). Pass ``decoder`` (a `CompiledDecoder`
    of this handle) to reuse its compiled code across calls."""
    if args.capture is not None:
        raise BadInputError("the compiled kernel does not capture activations: use workbench.generate(..., "
                            "capture=...), which runs the eager kernel")
    decoder = decoder or CompiledDecoder(handle)
    clips: list[Clip] = []
    with intra_op_threads(resolve_threads(handle, args.settings.threads)):
        for batch in args.batches():
            n = len(batch.prompts)
            run = EditRun(batch_edits(args.edits, batch.start, n, handle.device, handle.dtype), n, args.guided)
            clips.extend(compiled_batch(handle, decoder, args, batch, run, stop))
    return clips
