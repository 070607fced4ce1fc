"""Generate clips (text, or continuation of an audio prompt) and teacher-force real audio,
optionally steering and capturing the decoder through `workbench.hooks`.

Each clip's randomness comes from its own seed (per-row Gumbel-max sampling), so a clip is the
same whether it ran alone or in a batch, steered or not (up to floating-point batch effects).

Example:
    >>> from workbench import random_model, CaptureSpec
    >>> h = random_model("tiny")
    >>> res = generate(h, ["rock", "jazz"], duration_s=0.2, seeds=[1, 2], capture=CaptureSpec(pooling="mean"))
    >>> len(res.clips), res.activations[("resid", 0)].shape
    (2, (2, 32))
"""
from __future__ import annotations

import contextlib
import dataclasses
from typing import Callable, Sequence

import numpy as np
import torch

from .capture import CaptureSpec
from .clip import Clip
from .errors import BadInputError, EmptyInputError
from .hooks import instrument
from .steering import SteeringSpec


@dataclasses.dataclass
class GenerationResult:
    clips: list[Clip]
    activations: dict | None = None  # dict[(site, layer)] -> np.ndarray (N, W), or list of (T_i, H) for "none"


class SeededSampler:
    """A logits processor that samples each clip from its own generator (Gumbel-max trick).

    Runs before or after MusicGen's CFG processor: seeing the doubled batch it applies guidance
    itself and returns identical halves, so the CFG combination that follows keeps its choice.
    """

    def __init__(self, seeds: Sequence[int], n_codebooks: int, guidance_scale: float | None,
                 temperature: float, top_k: int | None):
        self.generators = [torch.Generator().manual_seed(int(s)) for s in seeds]
        self.n_codebooks = n_codebooks
        self.guidance_scale = guidance_scale
        self.temperature = temperature
        self.top_k = top_k

    def __call__(self, input_ids, scores):
        rows = len(self.generators) * self.n_codebooks
        logits = scores.float()
        doubled = logits.shape[0] == 2 * rows
        if doubled:
            cond, uncond = logits[:rows], logits[rows:]
            logits = uncond + self.guidance_scale * (cond - uncond)
        if self.top_k:
            kth = torch.topk(logits, min(self.top_k, logits.shape[-1]), dim=-1).values[..., -1:]
            logits = logits.masked_fill(logits < kth, float("-inf"))
        if self.temperature > 0:
            uniform = torch.cat([torch.rand((self.n_codebooks, logits.shape[-1]), generator=g)
                                 for g in self.generators]).to(logits.device)
            gumbel = -torch.log(-torch.log(uniform.clamp(1e-20, 1.0 - 1e-7)))
            logits = logits / self.temperature + gumbel
        choice = logits.argmax(dim=-1)
        out = scores.new_zeros((rows, scores.shape[-1]))
        out[torch.arange(rows, device=out.device), choice] = 1.0
        return torch.cat([out, out]) if doubled else out


SMALL_MODEL_HIDDEN = 512  # at or below this width one intra-op thread is fastest (per-op overhead dominates)


@contextlib.contextmanager
def intra_op_threads(threads: int | None):
    """Temporarily set torch's intra-op thread count (None: leave it as it is)."""
    before = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(int(threads))
    try:
        yield
    finally:
        torch.set_num_threads(before)


def resolve_threads(handle, threads) -> int | None:
    """``"auto"``: one thread for small decoders (on a shared 2-core CPU two threads spin-waited
    15-36x slower on the teaching model), unchanged for full-size ones."""
    if threads == "auto":
        return 1 if handle.hidden_size <= SMALL_MODEL_HIDDEN else None
    return threads


@contextlib.contextmanager
def _record_codes(model, sink: list):
    """Keep the codes `generate` hands to the audio decoder (it returns only audio)."""
    original = model.audio_encoder.decode

    def recording_decode(audio_codes, *args, **kwargs):
        sink.append(audio_codes.detach().cpu())
        return original(audio_codes, *args, **kwargs)

    model.audio_encoder.decode = recording_decode
    try:
        yield
    finally:
        del model.audio_encoder.decode  # back to the class method


def _as_list(prompts) -> list[str]:
    prompts = [prompts] if isinstance(prompts, str) else list(prompts)
    if not prompts:
        raise EmptyInputError("prompts is empty: pass at least one text prompt, e.g. ['lo-fi jazz']")
    return prompts


def _seeds_for(seeds, n: int) -> list[int]:
    if seeds is None:
        return [0] * n
    if isinstance(seeds, (int, np.integer)):
        return [int(seeds)] * n
    seeds = [int(s) for s in seeds]
    if len(seeds) != n:
        raise BadInputError(f"got {len(seeds)} seeds for {n} prompts: pass one seed per prompt or a single int")
    return seeds


def _merge(per_batch: list[dict], pooling: str, rows: str) -> dict | None:
    """Concatenate batch results; with rows='both' keep all cond rows first, then all uncond rows."""
    if not per_batch:
        return None
    merged = {}
    for key in per_batch[0]:
        parts = [b[key] for b in per_batch]
        if rows == "both":
            conds = [p[: p.shape[0] // 2] for p in parts]
            unconds = [p[p.shape[0] // 2:] for p in parts]
            parts = conds + unconds
        if pooling == "none":
            merged[key] = [row.numpy() for p in parts for row in p]
        else:
            merged[key] = torch.cat(parts).numpy()
    return merged


def generate(handle, prompts, *, duration_s: float = 4.0, seeds=0, guidance_scale: float = 3.0,
             steering: SteeringSpec | None = None, capture: CaptureSpec | None = None,
             audio_prompt=None, audio_prompt_sample_rate_hz: int | None = None, batch_size: int = 8,
             temperature: float = 1.0, top_k: int | None = 250, progress: bool = False,
             stop: Callable[[], bool] | None = None, threads: int | str | None = "auto") -> GenerationResult:
    """Generate one clip per prompt; optionally steer and capture.

    audio_prompt: a 1-D array (or list of them, one per prompt) to continue; the clip holds the
    prompt audio followed by ``duration_s`` of continuation. stop: a callable polled every step
    (True raises `StoppedError`; clips of earlier batches are not lost: they are on the error).
    threads: torch intra-op threads while generating; ``"auto"`` = 1 for small models, None = unchanged.
    """
    prompts = _as_list(prompts)
    seeds = _seeds_for(seeds, len(prompts))
    frames = handle.frames_for(duration_s)
    if steering is not None:
        steering.validate_for(handle.n_layers, handle.hidden_size, handle.model_id)
    if capture is not None:
        capture.resolved_layers(handle.n_layers)
    audio = _audio_prompts(audio_prompt, len(prompts))
    guided = guidance_scale is not None and guidance_scale > 1
    clips: list[Clip] = []
    captured: list[dict] = []
    bar = _progress_bar(progress, len(prompts))
    try:
        with intra_op_threads(resolve_threads(handle, threads)):
            _run_batches(handle, prompts, seeds, frames, guidance_scale, guided, steering, capture, audio,
                         audio_prompt_sample_rate_hz, temperature, top_k, stop, batch_size, clips, captured, bar)
    except BaseException as error:
        error.partial_result = GenerationResult(clips, _merge(captured, capture.pooling, capture.rows)
                                                if capture is not None else None)
        raise
    finally:
        if bar is not None:
            bar.close()
    activations = _merge(captured, capture.pooling, capture.rows) if capture is not None else None
    return GenerationResult(clips, activations)


def _run_batches(handle, prompts, seeds, frames, guidance_scale, guided, steering, capture, audio, audio_sr,
                 temperature, top_k, stop, batch_size, clips: list, captured: list, bar) -> None:
    """Generate batch after batch, appending to ``clips``/``captured`` so a stop keeps finished batches."""
    for start in range(0, len(prompts), batch_size):
        idx = slice(start, start + batch_size)
        batch_clips, acts = _generate_batch(
            handle, prompts[idx], seeds[idx], frames, guidance_scale, guided, steering, capture,
            audio[idx] if audio else None, audio_sr, temperature, top_k, stop)
        clips.extend(batch_clips)
        if acts is not None:
            captured.append(acts)
        if bar is not None:
            bar.update(len(batch_clips))


def _progress_bar(progress: bool, total: int):
    if not progress:
        return None
    from tqdm.auto import tqdm
    return tqdm(total=total, unit="clip")


def _audio_prompts(audio_prompt, n: int):
    if audio_prompt is None:
        return None
    if isinstance(audio_prompt, np.ndarray) and audio_prompt.ndim == 1:
        return [audio_prompt] * n
    audio = [np.asarray(a, dtype=np.float32).reshape(-1) for a in audio_prompt]
    if len(audio) != n:
        raise BadInputError(f"got {len(audio)} audio prompts for {n} text prompts: pass one per prompt or one array")
    return audio


def _generate_batch(handle, prompts, seeds, frames, guidance_scale, guided, steering, capture, audio,
                    audio_sr, temperature, top_k, stop):
    from transformers import LogitsProcessorList

    model, processor = handle.model, handle.processor
    if audio is not None:
        if audio_sr is None:
            raise BadInputError("audio_prompt needs audio_prompt_sample_rate_hz (e.g. 32000)")
        if audio_sr != handle.sample_rate_hz:
            raise BadInputError(f"audio prompt is {audio_sr} Hz but the model expects {handle.sample_rate_hz} Hz: "
                                "resample it first (e.g. workbench.datasets.resample)")
        inputs = processor(text=prompts, audio=audio, sampling_rate=audio_sr, padding=True, return_tensors="pt")
    else:
        inputs = processor(text=prompts, padding=True, return_tensors="pt")
    inputs = {k: (v.to(handle.device) if v.dtype.is_floating_point is False else v.to(handle.device, handle.dtype))
              for k, v in inputs.items()}
    sampler = SeededSampler(seeds, handle.n_codebooks, guidance_scale if guided else None, temperature, top_k)
    codes_sink: list = []
    with instrument(handle, len(prompts), guided, capture, steering) as inst:
        if stop is not None:  # polled once a decoder step; the tracker raises StoppedError on the next forward
            inst.tracker.on_step = lambda step: setattr(inst.tracker, "stop_requested", bool(stop()))
        with _record_codes(model, codes_sink), torch.no_grad():
            waves = model.generate(**inputs, max_new_tokens=frames + handle.delay_steps, do_sample=False,
                                   guidance_scale=guidance_scale if guided else None, top_k=None,
                                   temperature=None, logits_processor=LogitsProcessorList([sampler]))
        acts = inst.activations() if capture is not None else None
    codes = _codes_from(codes_sink, handle.audio_channels)
    waves = waves.float().cpu().numpy()
    clips = [Clip(waves[i], handle.sample_rate_hz, codes=codes[i], prompt=p, seed=s, steering=steering,
                  guidance_scale=guidance_scale, model_id=handle.model_id) for i, (p, s) in enumerate(zip(prompts, seeds))]
    return clips, acts


def _codes_from(sink: list, channels: int) -> np.ndarray:
    """(B, n_codebooks, frames) from the recorded decode inputs (two calls, interleaved, for stereo)."""
    parts = [c[0] for c in sink]  # each (B, K/channels, T)
    if channels == 1:
        return parts[0].numpy().astype(np.int64)
    left, right = parts
    merged = torch.stack([left, right], dim=2).reshape(left.shape[0], -1, left.shape[-1])
    return merged.numpy().astype(np.int64)
