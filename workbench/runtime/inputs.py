"""Input preparation shared by every path that runs the decoder (hooks, nnsight, teacher forcing):
the checks that need the model (prompt token counts, clip lengths, `generation_args`, built on the
torch-free `workbench.validation`), processor tensors on the model's device, and merging of batches.

Example:
    >>> prompt_list("jazz"), seeds_for(3, 2)
    (['jazz'], [3, 3])
"""
from __future__ import annotations

import dataclasses
import math

import numpy as np
import torch

from workbench import validation
from workbench.errors import BadInputError, DurationError, PromptTooLongError, WrongTypeError
from workbench.validation import prompt_list  # noqa: F401  (re-exported: the nnsight path uses it)

FALLBACK_MAX_TOKENS = 512  # T5's positions; its relative attention runs longer, at O(tokens^2) memory


def seeds_for(seeds, n: int) -> list[int]:
    """One seed per prompt: None (all 0), one int, or ``n`` ints (see `workbench.validation.seed_list`)."""
    return validation.seed_list(seeds, n)


def max_prompt_tokens(handle) -> int:
    """The longest prompt, in tokens, the handle's text encoder is meant to read."""
    limit = getattr(handle.processor.tokenizer, "model_max_length", None)
    if isinstance(limit, int) and 0 < limit <= 100_000:  # unset tokenizers report ~1e30
        return limit
    positions = getattr(handle.config.text_encoder, "n_positions", None)
    return positions if isinstance(positions, int) and positions > 0 else FALLBACK_MAX_TOKENS


def checked_prompts(handle, prompts, name: str = "prompts") -> list[str]:
    """Prompts as a list, each within the text encoder's token limit (absurd lengths refused untokenised)."""
    limit = max_prompt_tokens(handle)
    prompts = validation.prompt_list(prompts, name, max_tokens=limit)
    for i, ids in enumerate(handle.processor.tokenizer(prompts, verbose=False)["input_ids"]):
        if len(ids) > limit:
            raise PromptTooLongError(f"{name}[{i}] is {len(ids)} tokens long but the text encoder reads at most "
                                     f"{limit}: shorten it (a sentence or two describes music well)")
    return prompts


def audio_prompts(handle, audio_prompt, n: int, sample_rate_hz: int | None) -> list[np.ndarray] | None:
    """One mono float32 prompt per text prompt (a single clip is used for all), each long enough to encode."""
    if audio_prompt is None:
        return None
    check_sample_rate(handle, sample_rate_hz, "audio_prompt", "audio_prompt_sample_rate_hz")
    single = validation.one_clip(audio_prompt)
    clips = validation.audio_clips(audio_prompt, "audio_prompt")
    audio = [validation.audio_mono(a, "audio_prompt" if single else f"audio_prompt[{i}]") for i, a in enumerate(clips)]
    if single:
        audio = audio * n
    if len(audio) != n:
        raise BadInputError(f"got {len(audio)} audio prompts for {n} text prompts: pass one per prompt or one array")
    for i, wave in enumerate(audio[:1] if single else audio):
        check_audio_length(handle, len(wave), "audio_prompt" if single else f"audio_prompt[{i}]")
    return audio


def check_sample_rate(handle, sample_rate_hz, what: str = "audio", arg: str = "sample_rate_hz") -> None:
    """The audio's sample rate, given as ``arg``, must be the model's."""
    if sample_rate_hz is None:
        raise BadInputError(f"{what} needs its sample rate: pass {arg}= (e.g. {handle.sample_rate_hz})")
    if validation.positive_int(sample_rate_hz, arg) != handle.sample_rate_hz:
        raise BadInputError(f"{what} is {sample_rate_hz} Hz but the model expects {handle.sample_rate_hz} Hz: "
                            "resample it first (e.g. workbench.data.datasets.resample)")


def check_audio_length(handle, n_samples: int, name: str) -> None:
    """Between the codec's minimum (`MusicGenHandle.min_frames`) and the model's longest clip."""
    per_frame = handle.samples_per_frame
    validation.audio_length(n_samples, name, handle.sample_rate_hz, min_frames=handle.min_frames,
                            min_samples=math.ceil(handle.min_frames * per_frame),
                            max_samples=math.floor(handle.max_frames * per_frame))


@dataclasses.dataclass(frozen=True)
class GenerationArgs:
    """`generate`'s arguments once checked: the one place they are validated (hooks and nnsight paths)."""

    prompts: list[str]
    seeds: list[int]
    frames: int
    guidance_scale: float | None
    guided: bool
    temperature: float
    top_k: int | None
    batch_size: int
    audio: list[np.ndarray] | None


def generation_args(handle, prompts, *, duration_s, seeds, guidance_scale, temperature, top_k, batch_size=1,
                    steering=None, capture=None, audio_prompt=None, audio_prompt_sample_rate_hz=None,
                    stop=None, threads="auto") -> GenerationArgs:
    """Check every argument of a generation once, before any work; raise the specific error naming the fix."""
    prompts = checked_prompts(handle, prompts)
    seeds = seeds_for(seeds, len(prompts))
    frames = handle.frames_for(duration_s)
    guidance = validation.guidance_scale(guidance_scale)
    temp = validation.temperature(handle.default_temperature if temperature is None else temperature)
    k = validation.top_k(top_k)
    batch_size = validation.positive_int(batch_size, "batch_size")
    validation.threads(threads)
    if steering is not None:
        check_spec(steering, "steering", "SteeringSpec", "SteeringSpec.single(direction, layers=(6,), strength=4.0)")
        steering.validate_for(handle.n_layers, handle.hidden_size, handle.model_id)
    if capture is not None:
        check_spec(capture, "capture", "CaptureSpec", "CaptureSpec(layers=(6,), pooling='mean')")
        capture.resolved_layers(handle.n_layers)
    if stop is not None and not callable(stop):
        raise WrongTypeError(f"stop={stop!r} is not callable: pass a function returning True to stop, or None")
    audio = audio_prompts(handle, audio_prompt, len(prompts), audio_prompt_sample_rate_hz)
    if audio is not None:
        longest = max(math.ceil(len(a) / handle.samples_per_frame) for a in audio)
        if longest + frames > handle.max_frames:
            raise DurationError(
                f"the audio prompt ({longest / handle.frame_rate_hz:.2f} s) plus duration_s ({duration_s} s) is "
                f"beyond this model's {handle.max_duration_s:.2f} s: continue from the prompt's last "
                f"{max(handle.max_duration_s - frames / handle.frame_rate_hz, 0):.2f} s at most, or generate less")
    return GenerationArgs(prompts, seeds, frames, guidance, guidance is not None and guidance > 1, temp, k,
                          batch_size, audio)


def check_spec(value, name: str, kind: str, example: str) -> None:
    """``value`` must be a ``kind`` (a CaptureSpec, a SteeringSpec...)."""
    # by class name, so a spec made before a module reload (autoreload in notebooks) still passes
    if kind not in {cls.__name__ for cls in type(value).__mro__}:
        raise WrongTypeError(f"{name} is a {type(value).__name__}, not a {kind}: pass e.g. {example}, or None")


def processor_inputs(handle, prompts: list[str], audio=None, audio_sample_rate_hz: int | None = None) -> dict:
    """The processor's tensors for these prompts (and audio prompts), on the handle's device and dtype."""
    if audio is not None:
        check_sample_rate(handle, audio_sample_rate_hz, "audio_prompt", "audio_prompt_sample_rate_hz")
        inputs = handle.processor(text=prompts, audio=audio, sampling_rate=audio_sample_rate_hz, padding=True,
                                  return_tensors="pt")
    else:
        inputs = handle.processor(text=prompts, padding=True, return_tensors="pt")
    return {k: (v.to(handle.device, handle.dtype) if v.dtype.is_floating_point else v.to(handle.device))
            for k, v in inputs.items()}


def merge_batches(per_batch: list[dict], pooling: str, rows: str) -> dict | None:
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
