"""Generate clips (text, or continuation of an audio prompt), optionally steering, editing and capturing the decoder.

`generate` checks everything once (`workbench.runtime.inputs.generation_args`), then runs batch after batch in
one of two decode loops, chosen by ``GenerationSettings.decoder_loop``:

- ``"kernel"`` (the default): the runtime's own loop (`workbench.runtime.kernel`), with edits applied in place;
  where the kernel refuses a model (attention other than sdpa, forward hooks on the decoder...) generation falls
  back to the transformers loop with a `KernelFallbackWarning` naming the reason (also on the result);
- ``"transformers"``: transformers' ``generate`` with the hook runner (`workbench.runtime.hooks`), the reference.

Both execute the same list of edits (`workbench.runtime.edits`: the steering's, the caller's, then the capture's
reads) with the same arithmetic, so codes, activations and reads are identical (tests/test_edit_runners.py).
Each clip's randomness comes from its own seed (per-row Gumbel-max sampling), so a clip is the same whether it
ran alone or in a batch, steered or not (up to floating-point batch effects).

Example:
    >>> from workbench import random_model, CaptureSpec
    >>> h = random_model("tiny")
    >>> res = generate(h, ["rock", "jazz"], duration_s=0.2, seeds=[1, 2], capture=CaptureSpec(pooling="mean"))
    >>> len(res.clips), res.activations[("resid", 0)].shape, res.decoder_loop
    (2, (2, 32), 'kernel')
"""
from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Callable

import torch
from tqdm.auto import tqdm
from transformers import LogitsProcessorList

from workbench.runtime.capture import CaptureSpec
from workbench.runtime.clip import Clip, clips_from
from workbench.runtime.edits import EditRun, batch_edits, capture_edits, pooled_activations
from workbench.runtime.hooks import edit_hooks
from workbench.runtime.inputs import Batch, GenerationArgs, check_stop, generation_args, merge_batches, processor_inputs
from workbench.runtime.kernel.forward import DecoderWeights, kernel_refusal
from workbench.runtime.kernel.loop import kernel_batch
from workbench.runtime.sampling import SeededSampler, codes_from, record_codes
from workbench.runtime.settings import UNSET, GenerationSettings
from workbench.runtime.steering import SteeringSpec
from workbench.runtime.threads import flush_denormals, intra_op_threads, resolve_threads


class KernelFallbackWarning(UserWarning):
    """``decoder_loop="kernel"`` ran transformers' loop instead; the message says why."""


@dataclasses.dataclass
class GenerationResult:
    """clips: one per prompt. activations: the capture, dict[(site, layer)] -> np.ndarray (N, W), or a list of
    (T_i, H) for pooling ``none`` (rows ``both``: all conditional rows, then all unconditional ones). reads: per
    ``read`` edit of ``edits=`` (by ``Edit.name``, else its index in the list), its per-step values in step
    order (step 0 = the prefill). decoder_loop: the loop that ran; fallback_reason: why not the kernel, if asked."""

    clips: list[Clip]
    activations: dict | None = None
    reads: dict | None = None
    decoder_loop: str = "transformers"
    fallback_reason: str | None = None


def generate(handle, prompts, settings: GenerationSettings | None = None, *, steering: SteeringSpec | None = None,
             capture: CaptureSpec | None = None, edits=(), audio_prompt=None,
             audio_prompt_sample_rate_hz: int | None = None, progress: bool = False,
             stop: Callable[[], bool] | None = None, duration_s=UNSET, seeds=UNSET, guidance_scale=UNSET,
             temperature=UNSET, top_k=UNSET, batch_size=UNSET, threads=UNSET) -> GenerationResult:
    """Generate one clip per prompt; optionally steer, edit and capture.

    settings: a `GenerationSettings` (default: its defaults: 4 s, seed 0, guidance 3, top-k 250, batches of 8,
    the kernel loop); the keyword shortcuts ``duration_s``, ``seeds``, ``guidance_scale``, ``temperature``,
    ``top_k``, ``batch_size`` and ``threads`` override its fields (``generate(h, "jazz", duration_s=2)``).
    edits: `workbench.runtime.edits.Edit`s applied at every step after the steering (per-row steering is an
    ``add`` edit with an (N, H) vector, one row per prompt); their reads come back in ``result.reads``.
    audio_prompt: a 1-D array (or list of them, one per prompt) to continue; the clip holds the prompt audio
    followed by ``duration_s`` of continuation. stop: a callable polled every step (True raises `StoppedError`;
    clips of finished batches are not lost: they are on the error's ``partial_result``). progress: a bar per clip.
    Every argument is checked before any work starts: bad input raises a `workbench.errors.BadInputError`
    subclass whose message names the fix.
    """
    args = generation_args(handle, prompts, settings, steering=steering, capture=capture, edits=edits,
                           audio_prompt=audio_prompt, audio_prompt_sample_rate_hz=audio_prompt_sample_rate_hz,
                           duration_s=duration_s, seeds=seeds, guidance_scale=guidance_scale,
                           temperature=temperature, top_k=top_k, batch_size=batch_size, threads=threads)
    check_stop(stop)
    bar = tqdm(total=len(args.prompts), unit="clip") if progress else None
    try:
        return run_generation(handle, args, stop=stop, on_batch=bar.update if bar is not None else None)
    finally:
        if bar is not None:
            bar.close()


def run_generation(handle, args: GenerationArgs, *, stop: Callable[[], bool] | None = None,
                   on_batch: Callable[[int], object] | None = None) -> GenerationResult:
    """The clips of checked ``args``, batch after batch, in the loop ``args.settings.decoder_loop`` names.

    on_batch: called with each finished batch's number of clips. On any error (a stop included) the clips,
    activations and reads of the finished batches are on the error's ``partial_result``.
    """
    loop, reason = args.settings.decoder_loop, None
    if loop == "kernel":
        reason = kernel_refusal(handle)
        if reason is not None:
            warnings.warn(f"decoder_loop='kernel' ran transformers' generate instead: {reason}",
                          KernelFallbackWarning, stacklevel=3)
            loop = "transformers"
    if loop == "kernel":
        weights = DecoderWeights.of(handle)

        def one_batch(batch: Batch, run: EditRun) -> list[Clip]:
            return kernel_batch(handle, weights, args, batch, run, stop)
    else:
        def one_batch(batch: Batch, run: EditRun) -> list[Clip]:
            return _transformers_batch(handle, args, batch, run, stop)

    clips: list[Clip] = []
    captured: list[dict] = []
    reads: dict | None = None

    def result() -> GenerationResult:
        activations = merge_batches(captured, args.capture.pooling, args.capture.rows) if args.capture else None
        return GenerationResult(clips, activations, reads, loop, reason)

    try:
        with intra_op_threads(resolve_threads(handle, args.settings.threads)), flush_denormals():
            batches = args.batches()
            for batch in batches:
                n = len(batch.prompts)
                reading = capture_edits(args.capture, handle.n_layers, args.guided)
                edits = batch_edits(args.edits, batch.start, n, handle.device, handle.dtype)
                run = EditRun([*edits, *reading.values()], n, args.guided)
                clips.extend(one_batch(batch, run))
                if reading:
                    captured.append(pooled_activations(reading))
                if args.read_names and len(batches) == 1:  # over several batches only fn reads run (the caller's)
                    reads = {name: [_ordinary(value) for value in run.read_list(name)] for name in args.read_names}
                if on_batch is not None:
                    on_batch(n)
    except BaseException as error:
        error.partial_result = result()
        raise
    return result()


def _transformers_batch(handle, args: GenerationArgs, batch: Batch, run: EditRun, stop) -> list[Clip]:
    """One batch through transformers' ``generate``, ``run`` executed by the hook runner."""
    model = handle.model
    inputs = processor_inputs(handle, batch.prompts, batch.audio, args.audio_sample_rate_hz)
    sampler = SeededSampler(batch.seeds, handle.n_codebooks, args.guidance_scale if args.guided else None,
                            args.temperature, args.top_k)
    codes_sink: list = []
    with edit_hooks(handle, run, stop=stop), record_codes(model, codes_sink), torch.no_grad():
        waves = model.generate(**inputs, max_new_tokens=args.frames + handle.delay_steps, do_sample=False,
                               guidance_scale=args.guidance_scale if args.guided else None, top_k=None,
                               temperature=None, logits_processor=LogitsProcessorList([sampler]))
    return clips_from(handle, waves, codes_from(codes_sink, handle.audio_channels), batch.prompts, batch.seeds,
                      args.steering, args.guidance_scale)


def _ordinary(value):
    """A read made under the kernel's ``torch.inference_mode`` as an ordinary tensor (a copy), so a caller may
    edit it in place as they may the transformers loop's reads; anything else as it is."""
    if isinstance(value, torch.Tensor) and value.is_inference():
        return value.clone()
    return value
