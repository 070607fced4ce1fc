"""Input preparation shared by every path that runs the decoder (the kernel, hooks, nnsight, teacher forcing):
the checks that need the model (prompt token counts, clip lengths, `generation_args` and the `GenerationArgs`
every runner takes whole, built on the torch-free `workbench.validation`), processor tensors on the model's
device, and merging of batches.

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
from workbench.runtime.capture import CaptureSpec
from workbench.runtime.edits import Edit, EditRun, capture_edits, named_edits, steering_edits
from workbench.runtime.settings import GenerationSettings, settings_of
from workbench.runtime.steering import SteeringSpec
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
class Batch:
    """One decoder batch of a generation: clips ``[start, start + len(prompts))``."""

    start: int
    prompts: list[str]
    seeds: list[int]
    audio: list[np.ndarray] | None


@dataclasses.dataclass(frozen=True)
class GenerationArgs:
    """A generation's arguments once checked (`generation_args`), handed whole to every runner.

    settings: the `GenerationSettings` they came from; the other fields are resolved from it for this model
    (seeds one per prompt, ``frames`` from the duration, the model's own temperature where None). edits: the
    steering's edits, then the caller's (their unnamed reads named by their index in the caller's list); capture
    reads are made per batch. steering: kept for the clips' metadata.
    """

    settings: GenerationSettings
    prompts: list[str]
    seeds: list[int]
    frames: int
    temperature: float
    audio: list[np.ndarray] | None = None
    audio_sample_rate_hz: int | None = None
    steering: SteeringSpec | None = None
    capture: CaptureSpec | None = None
    edits: tuple[Edit, ...] = ()

    @property
    def guidance_scale(self) -> float | None:
        return self.settings.guidance_scale

    @property
    def guided(self) -> bool:
        return self.settings.guided

    @property
    def top_k(self) -> int | None:
        return self.settings.top_k

    @property
    def batch_size(self) -> int:
        return self.settings.batch_size

    @property
    def read_names(self) -> list:
        """The keys of the caller's ``read`` edits (their values come back in ``GenerationResult.reads``)."""
        return [edit.name for edit in self.edits if edit.op == "read"]

    def batches(self) -> list[Batch]:
        """The prompts cut into decoder batches of ``settings.batch_size``."""
        size = self.settings.batch_size
        return [Batch(start, self.prompts[start:start + size], self.seeds[start:start + size],
                      self.audio[start:start + size] if self.audio is not None else None)
                for start in range(0, len(self.prompts), size)]


def generation_args(handle, prompts, settings: GenerationSettings | None = None, *,
                    steering: SteeringSpec | None = None, capture: CaptureSpec | None = None, edits=(),
                    audio_prompt=None, audio_prompt_sample_rate_hz: int | None = None,
                    **shortcuts) -> GenerationArgs:
    """Check every argument of a generation once, before any work; raise the specific error naming the fix.

    settings: a `GenerationSettings` (default: its defaults). shortcuts: its field names as keywords
    (``duration_s=2.0``), applied over it as `generate` applies them. edits: `Edit`s run at every step after
    the steering; a per-clip (N, H) vector holds one row per prompt (each batch gets its rows).
    """
    settings = settings_of(settings, **shortcuts)
    check_device(handle, settings.device)
    prompts = checked_prompts(handle, prompts)
    seeds = seeds_for(settings.seeds, len(prompts))
    frames = handle.frames_for(settings.duration_s)
    temperature = validation.temperature(handle.default_temperature if settings.temperature is None
                                         else settings.temperature)
    if steering is not None:
        check_spec(steering, "steering", "SteeringSpec", "SteeringSpec.single(direction, layers=(6,), strength=4.0)")
        steering.validate_for(handle.n_layers, handle.hidden_size, handle.model_id)
    if capture is not None:
        check_spec(capture, "capture", "CaptureSpec", "CaptureSpec(layers=(6,), pooling='mean')")
        capture_edits(capture, handle.n_layers, settings.guided)  # layers in range; rows need guidance
    all_edits = (*steering_edits(steering), *_checked_edits(handle, edits, len(prompts), settings))
    audio = audio_prompts(handle, audio_prompt, len(prompts), audio_prompt_sample_rate_hz)
    if audio is not None:
        longest = max(math.ceil(len(a) / handle.samples_per_frame) for a in audio)
        if longest + frames > handle.max_frames:
            duration_s = settings.duration_s
            raise DurationError(
                f"the audio prompt ({longest / handle.frame_rate_hz:.2f} s) plus duration_s ({duration_s} s) is "
                f"beyond this model's {handle.max_duration_s:.2f} s: continue from the prompt's last "
                f"{max(handle.max_duration_s - frames / handle.frame_rate_hz, 0):.2f} s at most, or generate less")
    return GenerationArgs(settings, prompts, seeds, frames, temperature, audio,
                          audio_prompt_sample_rate_hz if audio is not None else None, steering, capture, all_edits)


def _checked_edits(handle, edits, n_prompts: int, settings: GenerationSettings) -> list[Edit]:
    """The caller's edits, named, checked against the model and the prompts (one batch for reads and sources)."""
    edits = named_edits(edits)
    EditRun(edits, n_prompts, settings.guided).check_for(handle)  # rows, layers, sizes, per-clip vectors
    # a read with its own fn is the caller's sink (it sees every batch); one that keeps states, and a source, is
    # one batch's
    held = sorted({edit.op for edit in edits if edit.op == "replace" or (edit.op == "read" and edit.fn is None)})
    if held and n_prompts > settings.batch_size:
        raise BadInputError(f"Edit({held[0]!r}) holds one batch's states, but {n_prompts} prompts make "
                            f"{math.ceil(n_prompts / settings.batch_size)} batches of {settings.batch_size}: pass "
                            f"batch_size >= {n_prompts}, a read with fn= that keeps what it needs, or capture= "
                            "for activations pooled over many batches")
    return edits


def check_device(handle, device) -> None:
    """``device`` (a `GenerationSettings` field) must be None or where the model is: a check, never a move."""
    if device is None:
        return
    try:
        wanted = torch.device(device)
    except (RuntimeError, TypeError):
        raise BadInputError(f"device={device!r} is not a torch device: pass e.g. 'cpu' or 'cuda', or None") from None
    actual = handle.device
    if wanted.type != actual.type or (wanted.index is not None and wanted.index != actual.index):
        raise BadInputError(f"device={device!r} but the model is on {actual}: load it there "
                            f"(load_model(..., device={device!r})), or pass device=None to generate where it is")


def check_stop(stop) -> None:
    """``stop`` is None or a callable returning True to stop."""
    if stop is not None and not callable(stop):
        raise WrongTypeError(f"stop={stop!r} is not callable: pass a function returning True to stop, or None")


def check_spec(value, name: str, kind: str, example: str) -> None:
    """``value`` must be a ``kind`` (a CaptureSpec, a SteeringSpec...)."""
    if not validation.is_a(value, kind):
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


def merge_batches(per_batch: list, pooling: str, rows: str) -> dict | None:
    """Concatenate batch results (each {key: rows x ...}, torch CPU tensors or numpy arrays, per-clip lists for
    pooling ``none``) into numpy; with rows='both' keep all cond rows first, then all uncond rows.

    The one merge: `generate` merges its batches with it and `workbench.data.distributed` its workers' results.
    """
    if not per_batch or per_batch[0] is None:
        return None
    merged = {}
    for key in per_batch[0]:
        parts = [b[key] for b in per_batch]
        if rows == "both":
            conds = [p[: len(p) // 2] for p in parts]
            unconds = [p[len(p) // 2:] for p in parts]
            parts = conds + unconds
        if pooling == "none":
            merged[key] = [np.asarray(row) for p in parts for row in p]
        else:
            merged[key] = np.concatenate([np.asarray(p) for p in parts])
    return merged
