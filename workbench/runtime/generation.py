"""Generate clips (text, or continuation of an audio prompt) and teacher-force real audio,
optionally steering and capturing the decoder through `workbench.runtime.hooks`.

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

import dataclasses
from collections.abc import Callable

import torch

from workbench.runtime.capture import CaptureSpec
from workbench.runtime.clip import Clip, clips_from
from workbench.runtime.edits import EditRun, batch_edits, capture_edits, pooled_activations, steering_edits
from workbench.runtime.hooks import edit_hooks
from workbench.runtime.inputs import generation_args, merge_batches, processor_inputs
from workbench.runtime.sampling import SeededSampler, codes_from, record_codes
from workbench.runtime.steering import SteeringSpec
from workbench.runtime.threads import intra_op_threads, resolve_threads


@dataclasses.dataclass
class GenerationResult:
    clips: list[Clip]
    activations: dict | None = None  # dict[(site, layer)] -> np.ndarray (N, W), or list of (T_i, H) for "none"
    reads: list | None = None  # nnsight path only: per `Intervention`, its per-step reads (see runtime.tracing)


def generate(handle, prompts, *, duration_s: float = 4.0, seeds=0, guidance_scale: float = 3.0,
             steering: SteeringSpec | None = None, capture: CaptureSpec | None = None,
             audio_prompt=None, audio_prompt_sample_rate_hz: int | None = None, batch_size: int = 8,
             temperature: float | None = None, top_k: int | None = 250, progress: bool = False,
             stop: Callable[[], bool] | None = None, threads: int | str | None = "auto") -> GenerationResult:
    """Generate one clip per prompt; optionally steer and capture.

    audio_prompt: a 1-D array (or list of them, one per prompt) to continue; the clip holds the
    prompt audio followed by ``duration_s`` of continuation. stop: a callable polled every step
    (True raises `StoppedError`; clips of earlier batches are not lost: they are on the error).
    threads: torch intra-op threads while generating; ``"auto"`` = 1 for small models, None = unchanged.
    guidance_scale: >= 1 (1 or None: no guidance); temperature: > 0, or 0 for greedy, or None for the
    model's own (`MusicGenHandle.default_temperature`: 1.0 for MusicGen); top_k: None or >= 1.
    Every argument is checked before any work starts (`workbench.runtime.inputs.generation_args`): bad
    input raises a `workbench.errors.BadInputError` subclass whose message names the fix.
    """
    args = generation_args(handle, prompts, duration_s=duration_s, seeds=seeds, guidance_scale=guidance_scale,
                           temperature=temperature, top_k=top_k, batch_size=batch_size, steering=steering,
                           capture=capture, audio_prompt=audio_prompt,
                           audio_prompt_sample_rate_hz=audio_prompt_sample_rate_hz, stop=stop, threads=threads)
    clips: list[Clip] = []
    captured: list[dict] = []
    bar = _progress_bar(progress, len(args.prompts))
    try:
        with intra_op_threads(resolve_threads(handle, threads)):
            _run_batches(handle, args.prompts, args.seeds, args.frames, args.guidance_scale, args.guided, steering,
                         capture, args.audio, audio_prompt_sample_rate_hz, args.temperature, args.top_k, stop,
                         args.batch_size, clips, captured, bar)
    except BaseException as error:
        error.partial_result = GenerationResult(clips, merge_batches(captured, capture.pooling, capture.rows)
                                                if capture is not None else None)
        raise
    finally:
        if bar is not None:
            bar.close()
    activations = merge_batches(captured, capture.pooling, capture.rows) if capture is not None else None
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


def _generate_batch(handle, prompts, seeds, frames, guidance_scale, guided, steering, capture, audio,
                    audio_sr, temperature, top_k, stop):
    from transformers import LogitsProcessorList

    model = handle.model
    inputs = processor_inputs(handle, prompts, audio, audio_sr)
    sampler = SeededSampler(seeds, handle.n_codebooks, guidance_scale if guided else None, temperature, top_k)
    codes_sink: list = []
    captured = capture_edits(capture, handle.n_layers, guided)
    edits = batch_edits(steering_edits(steering), 0, len(prompts), handle.device, handle.dtype)
    run = EditRun([*edits, *captured.values()], len(prompts), guided)
    with edit_hooks(handle, run, stop=stop), record_codes(model, codes_sink), torch.no_grad():
        waves = model.generate(**inputs, max_new_tokens=frames + handle.delay_steps, do_sample=False,
                               guidance_scale=guidance_scale if guided else None, top_k=None,
                               temperature=None, logits_processor=LogitsProcessorList([sampler]))
    acts = pooled_activations(captured) if capture is not None else None
    clips = clips_from(handle, waves, codes_from(codes_sink, handle.audio_channels), prompts, seeds, steering,
                       guidance_scale)
    return clips, acts
