"""`python -m benchmarks roofline [--threads N] [--position P] [--repeats N] [--no-bf16] [--profile] [--json PATH]`:
a musicgen-small-shaped decoder step against the machine's memory roofline (issue 32, item 5).

A decoder step at batch 1 with guidance multiplies 2 rows by every weight matrix, so it is bound by reading the
weights: its floor is ``bytes / read bandwidth``. ``roofline_fraction`` is that floor over the measured step
(1.0: the step runs at the speed of memory; target >= 0.85).

- The model: `workbench.random_model("musicgen-small")` (the official config, random weights: the same bytes and
  shapes), float32, then the same weights cast to bfloat16 where the CPU has native bf16 (``avx512_bf16`` or
  ``amx_bf16`` in its flags; ``bf16_native`` says which, and the bf16 figures are skipped where it has none).
- ``read_bandwidth_gbs``: a single-pass ``sum`` over a 1 GiB float32 tensor with the step's thread count.
- The step: one new token per codebook (2 rows: the prompt's and guidance's null row) at ``--position`` (default
  100: two seconds into a clip) with a warm cache: the kernel's `workbench.runtime.kernel.forward.decoder_logits`
  on its static cache, and transformers' full ``MusicgenForConditionalGeneration`` forward as ``generate``
  calls it (encoder outputs given, an ``EncoderDecoderCache``). No text encoding, no sampling, no audio decoding.
- Rounds: ``--repeats`` rounds each run a read pass, a kernel step and a transformers step back to back (order
  rotating), and give one fraction per path from that round's read pass and step, so other processes' load
  weighs on both sides alike (on a shared machine both swing by 2-3x); medians, with min-max as the spread.
- Bytes: ``decoder_param_bytes`` counts every decoder parameter (``model.decoder``: layers, embeddings, heads;
  the issue's measure). Both paths compute cross-attention keys and values once, and a step gathers 2 x
  codebooks rows of the embedding tables, so a step reads fewer bytes: ``step_weight_bytes`` (the weights a step
  multiplies by; transformers also re-applies its 768 -> 1024 text projection every step, 3 MB, not counted).
  ``*_fraction`` uses the first, ``*_fraction_touched`` the second; ``kv_cache_read_bytes`` is what attention
  reads from the caches on top.
- ``--compiled``: the compiled kernel's step (`workbench.runtime.kernel.compiled`) as a third path
  (``compiled_*``; its compile time in ``compiled_compile_s``).
- ``--profile``: the share of one kernel step spent in matrix products (``aten::addmm``/``mm``/``linear``'s
  kernels) against everything else, from torch.profiler.

The model is 2.4 GB in float32 (decoder 1.68 GB) plus the 1 GiB bandwidth tensor: run it on its own.

OpenMP's wait policy is left as the environment has it (``omp_wait_policy``; "default": GNU OpenMP's, whose idle
threads spin a while before they sleep), because that is what a notebook gets. With ``OMP_WAIT_POLICY=PASSIVE``
(what the test suite and ``python -m benchmarks`` set, so that parallel jobs do not spin) every one of a step's
~400 parallel regions wakes sleeping threads: on this 2-core machine the kernel's float32 step took 100 ms
instead of 68 ms (fraction 0.72 instead of 1.10; layer norms, GELUs and attention, not the matrix products).
Compare ``OMP_WAIT_POLICY=PASSIVE python -m benchmarks roofline`` with a plain run.

    >>> out = run_all(threads=1, repeats=1, bf16=False, shape="tiny", bandwidth_gib=0.01)
    >>> sorted(k for k in out if k.endswith("roofline_fraction"))
    ['hf_roofline_fraction', 'kernel_roofline_fraction', 'roofline_fraction']
"""
from __future__ import annotations

import os

# the policy OpenMP reads when torch loads it, noted before `benchmarks.bench` (imported below) sets PASSIVE where
# unset (too late for this process's OpenMP, which torch has loaded by then)
os.environ.setdefault("WORKBENCH_OMP_WAIT_POLICY_AT_START", os.environ.get("OMP_WAIT_POLICY", "default"))

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import statistics  # noqa: E402
import time

import torch
from transformers.cache_utils import DynamicCache, EncoderDecoderCache

from benchmarks.bench import _load_average, format_table, spread
from workbench.runtime.kernel.cache import StaticCache
from workbench.runtime.kernel.compiled import CompiledDecoder, CrossCache, StepCache, StepDeltas
from workbench.runtime.kernel.forward import CrossAttention, DecoderWeights, decoder_logits
from workbench.runtime.model import random_model
from workbench.runtime.threads import intra_op_threads

TEXT_TOKENS = 12  # a sentence-long prompt
BF16_FLAGS = ("avx512_bf16", "amx_bf16")


def cpu_flags() -> set[str]:
    """The CPU's feature flags (from /proc/cpuinfo; empty where there is none)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def bf16_native() -> list[str]:
    """The native bfloat16 instruction sets this CPU has (an empty list: none, bf16 is emulated)."""
    flags = cpu_flags()
    return [flag for flag in BF16_FLAGS if flag in flags]


def decoder_param_bytes(handle) -> int:
    """Bytes of every decoder parameter (``model.decoder``: layers, embedding tables, codebook heads)."""
    return sum(p.numel() * p.element_size() for p in handle.model.decoder.parameters())


def step_weight_bytes(handle, rows: int) -> int:
    """Bytes of the weights one decoder step multiplies by: all decoder parameters but the cross-attention key
    and value projections (applied once per clip) and the embedding tables, of which ``rows`` x codebooks rows
    are read."""
    total = decoder_param_bytes(handle)
    decoder = handle.model.decoder.model.decoder
    for layer in decoder.layers:
        for proj in (layer.encoder_attn.k_proj, layer.encoder_attn.v_proj):
            total -= sum(p.numel() * p.element_size() for p in proj.parameters())
    for table in decoder.embed_tokens:
        total -= table.weight.numel() * table.weight.element_size()
        total += rows * table.weight.shape[1] * table.weight.element_size()
    return total


def kv_cache_read_bytes(handle, rows: int, position: int, text_tokens: int = TEXT_TOKENS) -> int:
    """Bytes attention reads from the caches in one step: keys and values of ``position`` + 1 positions (self)
    and of ``text_tokens`` (cross), per layer and row."""
    element = torch.empty((), dtype=handle.dtype).element_size()
    return 2 * handle.n_layers * rows * (position + 1 + text_tokens) * handle.hidden_size * element


def _text_states(handle, rows: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Text-encoder-shaped states and mask: the prompt's rows, then guidance's null rows (zero states and mask)."""
    width = handle.model.text_encoder.config.hidden_size
    cond = torch.randn(rows // 2, TEXT_TOKENS, width, generator=generator).to(handle.device, handle.dtype)
    states = torch.cat([cond, torch.zeros_like(cond)])
    mask = torch.cat([torch.ones(rows // 2, TEXT_TOKENS, dtype=torch.long),
                      torch.zeros(rows // 2, TEXT_TOKENS, dtype=torch.long)]).to(handle.device)
    return states, mask


def _tokens(handle, rows: int, length: int, generator: torch.Generator) -> torch.Tensor:
    vocab = handle.config.decoder.vocab_size
    return torch.randint(0, vocab, (rows, handle.n_codebooks, length), generator=generator).to(handle.device)


def kernel_stepper(handle, position: int, steps: int, rows: int = 2):
    """A function running one kernel step (one new token per codebook) on a static cache prefilled with
    ``position`` positions; room for ``steps`` calls."""
    generator = torch.Generator().manual_seed(0)
    weights = DecoderWeights.of(handle)
    states, mask = _text_states(handle, rows, generator)
    cross = CrossAttention.of(weights, states, mask)
    cache = StaticCache(weights.n_layers, rows, weights.heads, position + steps, weights.head_dim,
                        dtype=handle.dtype, device=handle.device)
    decoder_logits(weights, _tokens(handle, rows, position, generator), cache, cross)
    step_tokens = iter([_tokens(handle, rows, 1, generator) for _ in range(steps)])
    return lambda: decoder_logits(weights, next(step_tokens), cache, cross)


def hf_stepper(handle, position: int, steps: int, rows: int = 2):
    """A function running one step of transformers' forward as ``generate`` runs it (encoder outputs given, a
    dynamic ``EncoderDecoderCache``) after a prefill of ``position`` positions."""
    generator = torch.Generator().manual_seed(0)
    model = handle.model
    states, mask = _text_states(handle, rows, generator)
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())

    def forward(tokens):
        model(encoder_outputs=(states,), attention_mask=mask, decoder_input_ids=tokens.reshape(-1, tokens.shape[-1]),
              cache=cache, use_cache=True)

    forward(_tokens(handle, rows, position, generator))
    step_tokens = iter([_tokens(handle, rows, 1, generator) for _ in range(steps)])
    return lambda: forward(next(step_tokens))


def compiled_stepper(handle, position: int, steps: int, rows: int = 2):
    """A function running one step of the compiled kernel (`workbench.runtime.kernel.compiled`) with
    ``position`` positions in its cache (their values do not change the work: the cache is not prefilled), and
    the `CompiledDecoder` (its ``compile_s``)."""
    generator = torch.Generator().manual_seed(0)
    decoder = CompiledDecoder(handle)
    weights = decoder.weights
    states, mask = _text_states(handle, rows, generator)
    cross = CrossCache.of(CrossAttention.of(weights, states, mask), weights, rows, dtype=handle.dtype,
                          device=handle.device)
    cache = StepCache.empty(weights, rows, position + steps, dtype=handle.dtype, device=handle.device)
    cache.length = position
    deltas = StepDeltas([], weights.n_layers, handle.hidden_size, rows // 2, True, device=handle.device,
                        dtype=handle.dtype).at(0)
    step_tokens = iter([_tokens(handle, rows, 1, generator)[..., 0] for _ in range(steps)])
    return (lambda: decoder.step(next(step_tokens), cache, cross, deltas)), decoder


def timed_rounds(variants: dict, repeats: int) -> dict:
    """name -> (wall seconds, CPU seconds) per round; one untimed call of each first, then ``repeats`` rounds
    running every variant once back to back, the order rotating (the read pass sits beside the steps it
    normalises, so both see the same load from other processes)."""
    names = list(variants)
    for fn in variants.values():
        fn()
    times = {name: ([], []) for name in names}
    for r in range(repeats):
        for name in names[r % len(names):] + names[:r % len(names)]:
            start, start_cpu = time.perf_counter(), time.process_time()
            variants[name]()
            times[name][0].append(time.perf_counter() - start)
            times[name][1].append(time.process_time() - start_cpu)
    return times


MATMUL_OPS = ("aten::mm", "aten::addmm", "aten::bmm", "aten::matmul", "aten::linear", "aten::_linear")


def profile_step(step, threads: int) -> dict:
    """Milliseconds of one step in matrix products (self CPU time of the matmul ops and the BLAS calls below
    them) and in all other operators, and the ten most expensive operators."""
    from torch.profiler import ProfilerActivity, profile  # the profiler only where asked for

    with intra_op_threads(threads), profile(activities=[ProfilerActivity.CPU]) as prof:
        start = time.perf_counter()
        step()
        wall = time.perf_counter() - start
    events = prof.key_averages()
    self_ms = {e.key: e.self_cpu_time_total / 1e3 for e in events}
    total_ms = sum(self_ms.values())
    matmul_ms = sum(ms for key, ms in self_ms.items() if key in MATMUL_OPS or "mkl" in key.lower()
                    or "gemm" in key.lower())
    top = sorted(self_ms.items(), key=lambda kv: -kv[1])[:10]
    calls = sum(e.count for e in events)
    return {"wall_ms": 1e3 * wall, "ops_self_ms": total_ms, "matmul_ms": matmul_ms,
            "other_ms": total_ms - matmul_ms, "op_calls": calls,
            "top_ops": {key: round(ms, 3) for key, ms in top}}


def _paths(handle, data: torch.Tensor, position: int, repeats: int, threads: int, prefix: str,
           profile: bool, compiled: bool = False) -> dict:
    """Steps of both paths (and the compiled kernel's) interleaved with read passes over ``data``; fractions
    per round."""
    rows = 2
    out: dict = {}
    all_bytes, touched = decoder_param_bytes(handle), step_weight_bytes(handle, rows)
    out[f"{prefix}decoder_param_bytes"] = all_bytes
    out[f"{prefix}step_weight_bytes"] = touched
    out[f"{prefix}kv_cache_read_bytes"] = kv_cache_read_bytes(handle, rows, position)
    steps = repeats + 3
    with intra_op_threads(threads), torch.inference_mode():
        variants = {"read": data.sum, "kernel": kernel_stepper(handle, position, steps, rows),
                    "hf": hf_stepper(handle, position, steps, rows)}
        if compiled:
            variants["compiled"], decoder = compiled_stepper(handle, position, steps, rows)
        gc.collect()
        times = timed_rounds(variants, repeats)
        kernel = variants["kernel"]
        if compiled:
            out[f"{prefix}compiled_compile_s"] = decoder.compile_s
        if profile:
            out[f"{prefix}kernel_profile"] = profile_step(kernel, threads)
    bandwidths = [data.numel() * data.element_size() / s / 1e9 for s in times["read"][0]]
    out[f"{prefix}read_bandwidth_gbs"] = statistics.median(bandwidths)
    out[f"{prefix}read_bandwidth_gbs_spread"] = spread(bandwidths)
    roofline_ms = 1e3 * all_bytes / (out[f"{prefix}read_bandwidth_gbs"] * 1e9)
    out[f"{prefix}roofline_ms"] = roofline_ms
    out[f"{prefix}roofline_touched_ms"] = roofline_ms * touched / all_bytes
    for name in [name for name in variants if name != "read"]:
        seconds, cpu_seconds = times[name]
        step_ms = [1e3 * s for s in seconds]
        # CPU ms of this process per step: ~threads x wall on an idle machine; far less when others hold the cores
        out[f"{prefix}{name}_step_cpu_ms"] = 1e3 * statistics.median(cpu_seconds)
        out[f"{prefix}{name}_step_ms"] = statistics.median(step_ms)
        out[f"{prefix}{name}_step_ms_spread"] = spread(step_ms)
        # per round: this round's read pass over this round's step
        fractions = [(all_bytes / (b * 1e9)) / (ms / 1e3) for b, ms in zip(bandwidths, step_ms)]
        out[f"{prefix}{name}_roofline_fraction"] = statistics.median(fractions)
        out[f"{prefix}{name}_roofline_fraction_spread"] = spread(fractions)
        out[f"{prefix}{name}_roofline_fraction_touched"] = statistics.median(
            [(touched / (b * 1e9)) / (ms / 1e3) for b, ms in zip(bandwidths, step_ms)])
    return out


def run_all(threads: int | None = None, position: int = 100, repeats: int = 5, bf16: bool = True,
            profile: bool = False, shape: str = "musicgen-small", bandwidth_gib: float = 1.0,
            compiled: bool = False) -> dict:
    """roofline_fraction of the kernel's and transformers' float32 decoder step (and bfloat16 where native;
    ``compiled``: the compiled kernel's too)."""
    threads = threads or os.cpu_count() or 1
    out: dict = {"roofline_model": f"random/{shape}", "roofline_threads": threads,
                 "omp_wait_policy": os.environ["WORKBENCH_OMP_WAIT_POLICY_AT_START"], "roofline_position": position,
                 "roofline_repeats": repeats, "bf16_native": ",".join(bf16_native()) or "none"}
    data = torch.ones(int(bandwidth_gib * 2**30) // 4, dtype=torch.float32)
    handle = random_model(shape, seed=0)
    out.update(_paths(handle, data, position, repeats, threads, "", profile, compiled))
    out["roofline_fraction"] = out["kernel_roofline_fraction"]  # the headline: the kernel, float32
    out["roofline_fraction_spread"] = out["kernel_roofline_fraction_spread"]
    if bf16 and bf16_native():
        handle.model.to(torch.bfloat16)
        gc.collect()
        out.update(_paths(handle, data, position, repeats, threads, "bf16_", profile, compiled))
    elif bf16:
        out["bf16_skipped"] = "this CPU has no native bfloat16 (no avx512_bf16 / amx_bf16): bf16 is emulated"
    del handle, data
    gc.collect()
    return out


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks roofline", description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: all cores)")
    parser.add_argument("--position", type=int, default=100, help="positions already in the cache")
    parser.add_argument("--repeats", type=int, default=5, help="steps timed per path (median, min-max)")
    parser.add_argument("--no-bf16", action="store_true", help="float32 only")
    parser.add_argument("--profile", action="store_true", help="profile one kernel step (matmul vs the rest)")
    parser.add_argument("--compiled", action="store_true",
                        help="the compiled kernel's step too (compiles first: minutes at this size)")
    parser.add_argument("--json", help="write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.repeats < 1 or args.position < 1:
        parser.error("--repeats and --position must be >= 1")
    results = {"load_average_start": _load_average()}
    results.update(run_all(args.threads, args.position, args.repeats, not args.no_bf16, args.profile,
                           compiled=args.compiled))
    results["load_average_end"] = _load_average()
    profiles = {key: results.pop(key) for key in list(results) if key.endswith("kernel_profile")}
    print(format_table(results))
    for key, value in profiles.items():
        print(f"{key}: {json.dumps(value, indent=1)}")
    results.update(profiles)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=1)
    return 0
