"""One validation boundary: the checks every public entry point runs once on its numbers, texts and audio.

Torch-free (numpy only), so widgets can check a value before anything heavy loads. Each check
returns the value normalised (plain ``int`` / ``float`` / ``tuple`` / float32 array) or raises a
specific `workbench.errors.BadInputError` whose message names the fix.

Example:
    >>> import numpy as np
    >>> positive_int(8, "batch_size"), int_sequence(np.int64(6), "layers"), finite_float(3, "guidance_scale", low=1)
    (8, (6,), 3.0)
    >>> int_sequence("12", "layers")
    Traceback (most recent call last):
    ...
    workbench.errors.WrongTypeError: layers='12' is a string: pass a list of ints such as [1, 2]
    >>> stereo = np.array([[16384, -16384], [32767, 32767], [0, 0]], np.int16)  # (samples, channels) int16 PCM
    >>> audio_mono(stereo, "clip").tolist()
    [0.0, 0.999969482421875, 0.0]
"""
from __future__ import annotations

import math
import numbers

import numpy as np

from workbench.enums import SITES
from workbench.errors import (
    AudioFormatError,
    DirectionMismatchError,
    DurationError,
    EmptyInputError,
    LayerOutOfRangeError,
    NotFiniteError,
    OutOfRangeError,
    PromptTooLongError,
    UnknownOptionError,
    UnknownSiteError,
    WrongTypeError,
    ZeroNormError,
)

__all__ = ["audio_clips", "audio_length", "audio_mono", "choice", "finite_float", "guidance_scale", "integer",
           "int_sequence", "layer_index", "layers_in_range", "non_negative_int", "one_clip", "positive_int",
           "prompt_list", "seed_list", "seeds", "site", "sites", "str_list", "temperature", "threads", "top_k",
           "model_handle", "unit_direction", "window"]

SEED_RANGE = (-(2 ** 63), 2 ** 64)  # what torch.Generator.manual_seed accepts
MAX_CHARS_PER_TOKEN = 20            # no tokenizer packs more into one token: longer prompts are refused unread
MAX_FLOAT_PEAK = 100.0              # float audio lives in [-1, 1]; a peak this high is unscaled integer PCM


def _show(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _scalar(value):
    """A 0-d numpy array or torch tensor as its Python number; anything else unchanged."""
    if getattr(value, "ndim", None) == 0 and hasattr(value, "item"):
        return value.item()
    return value


def _is_bool(value) -> bool:
    return isinstance(value, (bool, np.bool_))


def integer(value, name: str, *, low: int | None = None, high: int | None = None) -> int:
    """An int, optionally within [low, high]: numpy ints and whole floats (8.0) are accepted; bools,
    strings and fractions are refused."""
    value = _scalar(value)
    if _is_bool(value):
        raise WrongTypeError(f"{name}={value!r} is a bool: pass an int")
    if isinstance(value, (numbers.Integral, np.integer)):
        result = int(value)
    elif isinstance(value, (numbers.Real, np.floating)):
        if not math.isfinite(value):
            raise NotFiniteError(f"{name}={value} is not finite: pass an int")
        if not float(value).is_integer():
            raise WrongTypeError(f"{name}={value!r} is not a whole number: pass an int such as {round(value)}")
        result = int(value)
    else:
        raise WrongTypeError(f"{name}={_show(value)} is a {type(value).__name__}: pass an int")
    if (low is not None and result < low) or (high is not None and result > high):
        wanted = (f"an int >= {low}" if high is None else f"an int <= {high}" if low is None
                  else f"an int between {low} and {high}")
        raise OutOfRangeError(f"{name}={result} is out of range: pass {wanted}")
    return result


def positive_int(value, name: str) -> int:
    """An int >= 1 (a count: batch size, clips per genre, schedule period)."""
    result = integer(value, name)
    if result < 1:
        raise OutOfRangeError(f"{name}={result} must be at least 1: pass a positive int")
    return result


def non_negative_int(value, name: str) -> int:
    """An int >= 0 (a step index)."""
    result = integer(value, name)
    if result < 0:
        raise OutOfRangeError(f"{name}={result} is negative: pass an int >= 0")
    return result


def finite_float(value, name: str, *, low: float | None = None, high: float | None = None,
                 low_inclusive: bool = True, high_inclusive: bool = True, hint: str = "") -> float:
    """A finite float, optionally within bounds; ``hint`` is appended to the range error (the fix)."""
    value = _scalar(value)
    if _is_bool(value):
        raise WrongTypeError(f"{name}={value!r} is a bool: pass a number")
    if not isinstance(value, (numbers.Real, np.integer, np.floating)):
        raise WrongTypeError(f"{name}={_show(value)} is a {type(value).__name__}: pass a number")
    result = float(value)
    if not math.isfinite(result):
        raise NotFiniteError(f"{name}={result} is not finite: pass a finite number{hint and '; ' + hint}")
    below = low is not None and (result < low if low_inclusive else result <= low)
    above = high is not None and (result > high if high_inclusive else result >= high)
    if below or above:
        parts = []
        if low is not None:
            parts.append(f"{'>=' if low_inclusive else '>'} {low:g}")
        if high is not None:
            parts.append(f"{'<=' if high_inclusive else '<'} {high:g}")
        raise OutOfRangeError(f"{name}={result:g} is out of range: pass a number {' and '.join(parts)}"
                              f"{hint and '; ' + hint}")
    return result


def int_sequence(value, name: str, *, single: bool = True, allow_empty: bool = False,
                 example: str = "[1, 2]") -> tuple[int, ...]:
    """A tuple of ints from a list/tuple/range/array of ints (or one int when ``single``).

    A string is refused: ``layers="12"`` would otherwise mean layers 1 and 2.
    """
    value = _scalar(value)
    if isinstance(value, (str, bytes)):
        raise WrongTypeError(f"{name}={value!r} is a string: pass a list of ints such as {example}")
    if value is None:
        raise WrongTypeError(f"{name}=None: pass a list of ints such as {example}")
    if isinstance(value, (numbers.Real, np.number)):
        if not single:
            raise WrongTypeError(f"{name}={value!r} is a single number: pass a list of ints such as {example}")
        return (integer(value, name),)
    if getattr(value, "ndim", 1) > 1:
        raise WrongTypeError(f"{name} is a {value.ndim}-D array: pass a flat list of ints such as {example}")
    if isinstance(value, dict):
        raise WrongTypeError(f"{name} is a dict: pass a list of ints such as {example}")
    try:
        items = list(value)
    except TypeError:
        raise WrongTypeError(f"{name}={_show(value)} is a {type(value).__name__}: pass a list of ints such as "
                             f"{example}") from None
    result = tuple(integer(x, f"{name}[{i}]") for i, x in enumerate(items))
    if not result and not allow_empty:
        raise EmptyInputError(f"{name} is empty: pass at least one int, e.g. {example}")
    return result


def is_a(value, kind: str) -> bool:
    """Whether ``value``'s class or a base is named ``kind``: by name, so an object made before a module reload
    (autoreload in notebooks) still passes."""
    return kind in {cls.__name__ for cls in type(value).__mro__}


def config_object(value, cls: type, name: str, example: str, *, error: type = WrongTypeError):
    """``value`` if it is a ``cls`` (a settings or config object), ``cls()`` for None; anything else raises
    ``error`` naming the fix (``example``)."""
    if value is None:
        return cls()
    if not is_a(value, cls.__name__):
        raise error(f"{name} is a {type(value).__name__}, not a {cls.__name__}: pass e.g. {example}, or None")
    return value


def choice(value, name: str, options, *, error: type = UnknownOptionError) -> str:
    """One of ``options`` (strings), else ``error`` listing them."""
    if not isinstance(value, str) or value not in options:
        raise error(f"unknown {name} {_show(value)}: use one of {tuple(options)}")
    return value


def site(value) -> str:
    """A decoder site name (``resid``, ``attn``, ``mlp``)."""
    return choice(value, "site", SITES, error=UnknownSiteError)


def sites(value) -> tuple[str, ...]:
    """One site name or a sequence of them, as a tuple."""
    items = (value,) if isinstance(value, str) else value
    try:
        items = tuple(items)
    except TypeError:
        raise UnknownSiteError(f"unknown site {_show(value)}: use one of {SITES}") from None
    if not items:
        raise EmptyInputError(f"sites=() records nothing: pass one or more of {SITES}, e.g. ('resid',)")
    return tuple(site(s) for s in items)


def layer_index(layer, n_layers: int) -> int:
    """A decoder layer index of a model with ``n_layers`` layers."""
    layer = integer(layer, "layer")
    if not 0 <= layer < n_layers:
        raise LayerOutOfRangeError(
            f"layer {layer} is out of range: this model has {n_layers} decoder layers (0-{n_layers - 1})")
    return layer


def layers_in_range(layers, n_layers: int) -> tuple[int, ...]:
    """Every layer of ``layers`` checked against the model's decoder depth."""
    return tuple(layer_index(layer, n_layers) for layer in layers)


def seeds(value, name: str = "seeds") -> list[int]:
    """One seed or a sequence of seeds, as a list of ints (a string is refused)."""
    if isinstance(value, (str, bytes)):
        raise WrongTypeError(f"{name}={value!r} is a string: pass an int (one seed for every prompt) or a list of "
                             "ints such as [1, 2]")
    result = list(int_sequence(value, name, allow_empty=True))
    low, high = SEED_RANGE
    for i, seed in enumerate(result):
        if not low <= seed < high:
            raise OutOfRangeError(f"{name}[{i}]={seed} does not fit a 64-bit generator seed: pass an int "
                                  f"between {low} and {high - 1}")
    return result


def seed_list(value, n: int, name: str = "seeds") -> list[int]:
    """One seed per prompt: None (all 0), one int (the same for all), or exactly ``n`` ints."""
    if value is None:
        return [0] * n
    single = not isinstance(value, (str, bytes)) and isinstance(_scalar(value), (numbers.Real, np.number))
    result = seeds(value, name)
    if single:
        return result * n
    if len(result) != n:
        raise OutOfRangeError(f"got {len(result)} seeds for {n} prompts: pass one seed per prompt or a single int")
    return result


def str_list(value, name: str, *, example: str = "['lo-fi jazz']") -> list[str]:
    """One string or a sequence of strings, as a non-empty list."""
    if isinstance(value, str):
        return [value]
    if value is None:
        raise WrongTypeError(f"{name}=None: pass a string or a list of strings, e.g. {example}")
    try:
        items = list(value)
    except TypeError:
        raise WrongTypeError(f"{name}={_show(value)} is a {type(value).__name__}: pass a string or a list of "
                             f"strings, e.g. {example}") from None
    for i, item in enumerate(items):
        if not isinstance(item, str):
            raise WrongTypeError(f"{name}[{i}]={_show(item)} is a {type(item).__name__}: pass text, e.g. {example}")
    if not items:
        raise EmptyInputError(f"{name} is empty: pass at least one, e.g. {example}")
    return [str(item) for item in items]


def prompt_list(prompts, name: str = "prompts", *, max_tokens: int | None = None) -> list[str]:
    """Text prompts as a non-empty list; with ``max_tokens``, absurdly long prompts are refused before
    any tokenizer sees them (a 50,000-character prompt would cost the text encoder gigabytes)."""
    if isinstance(prompts, (list, tuple)) and not prompts:
        raise EmptyInputError(f"{name} is empty: pass at least one text prompt, e.g. ['lo-fi jazz']")
    result = str_list(prompts, name)
    if max_tokens is not None:
        max_chars = MAX_CHARS_PER_TOKEN * max_tokens
        for i, prompt in enumerate(result):
            if len(prompt) > max_chars:
                raise PromptTooLongError(
                    f"{name}[{i}] has {len(prompt):,} characters: the text encoder reads at most {max_tokens} tokens "
                    f"(prompts over {max_chars:,} characters are refused before tokenising); shorten it to a "
                    "sentence or two")
    return result


def guidance_scale(value) -> float | None:
    """None (no guidance) or a finite scale >= 1 (1 also means no guidance)."""
    if value is None:
        return None
    return finite_float(value, "guidance_scale", low=1.0,
                        hint="1 or None turns classifier-free guidance off, 3 is MusicGen's default")


def temperature(value) -> float:
    """A finite sampling temperature > 0, or exactly 0 for greedy decoding."""
    return finite_float(value, "temperature", low=0.0,
                        hint="use a temperature > 0 to sample (1.0 is MusicGen's default) or 0 for greedy decoding")


def top_k(value) -> int | None:
    """None (sample from every code) or an int >= 1."""
    if value is None:
        return None
    result = integer(value, "top_k")
    if result < 1:
        raise OutOfRangeError(f"top_k={result} keeps no codes: pass an int >= 1 (250 is MusicGen's default), or "
                              "None to sample from all codes")
    return result


def threads(value) -> int | str | None:
    """torch intra-op threads: ``"auto"``, None (unchanged) or an int >= 1."""
    if value is None or value == "auto":
        return value
    if isinstance(value, str):
        raise UnknownOptionError(f"threads={value!r}: pass 'auto', None (leave torch's setting) or an int >= 1")
    return positive_int(value, "threads")


def one_clip(value) -> bool:
    """True when ``value`` is a single clip (a `Clip`, a 1-D array, or (samples, channels) / (1, samples)),
    False when it is a collection of clips (a list, or a 2-D array of one clip per row)."""
    if hasattr(value, "waveform") and hasattr(value, "sample_rate_hz"):
        return True
    shape = getattr(value, "shape", None)
    if shape is None or isinstance(value, (list, tuple)):
        return False
    shape = tuple(shape)
    if len(shape) <= 1:
        return True
    if len(shape) == 2:
        rows, cols = shape
        if rows == 1 or (cols in (1, 2) and rows > 2):
            return True
        if rows == 2:
            raise AudioFormatError(
                f"the audio is one array of shape {shape}, which could be one stereo clip or two mono clips: pass "
                "[array] for one stereo clip, or list(array) for two mono clips")
    return False


def audio_clips(value, name: str = "audio") -> list:
    """A list of clips from one clip or a collection of clips (see `one_clip`); items are not converted."""
    if isinstance(value, (str, bytes)) or value is None:
        raise WrongTypeError(f"{name}={_show(value)}: pass a list of clips, each a 1-D array of samples")
    if one_clip(value):
        return [value]
    try:
        return list(value)
    except TypeError:
        raise WrongTypeError(f"{name} is a {type(value).__name__}: pass a list of clips, each a 1-D array of "
                             "samples") from None


def audio_mono(array, name: str = "audio") -> np.ndarray:
    """Mono float32 samples from a 1-D array, or stereo (2, n) / (n, 2) mixed down (mean of the channels).

    Integer PCM is scaled to [-1, 1]: int16 / 32768, int32 / 2**31, uint8 centred on 128. Samples
    must be finite; float audio peaking above 100 is refused as unscaled integer PCM.
    """
    if hasattr(array, "detach"):  # a torch tensor, without importing torch
        array = array.detach().cpu().numpy()
    if isinstance(array, (str, bytes)) or array is None:
        raise WrongTypeError(f"{name} is a {type(array).__name__}: pass its samples as a numpy array")
    try:
        samples = np.asarray(array)
    except ValueError:
        raise AudioFormatError(f"{name} is a ragged list: pass its samples as one 1-D numpy array") from None
    kind = samples.dtype.kind
    if kind in "iu":
        bits = samples.dtype.itemsize * 8
        if bits > 32:
            raise AudioFormatError(
                f"{name} holds {samples.dtype} samples, which have no standard PCM scale: pass float32 in [-1, 1] "
                "or int16 / int32 PCM")
        centre = 2.0 ** (bits - 1) if kind == "u" else 0.0
        samples = ((samples.astype(np.float64) - centre) / 2.0 ** (bits - 1)).astype(np.float32)
    elif kind == "f":
        samples = samples.astype(np.float32, copy=False)
    else:
        raise AudioFormatError(f"{name} holds {samples.dtype} values: pass float32 samples in [-1, 1] or integer PCM")
    if samples.ndim == 0:
        raise AudioFormatError(f"{name} is a single number: pass a list of clips, each a 1-D array of samples "
                               "(wrap one clip as [samples])")
    if samples.ndim == 2:
        rows, cols = samples.shape
        if rows in (1, 2) and (cols > 2 or rows <= cols):
            samples = samples.mean(axis=0, dtype=np.float32) if rows == 2 else samples[0]
        elif cols in (1, 2):
            samples = samples.mean(axis=1, dtype=np.float32) if cols == 2 else samples[:, 0]
        else:
            samples = None
    if samples is None or samples.ndim != 1:
        shape = tuple(np.shape(array))
        raise AudioFormatError(f"{name} has shape {shape}: pass mono (samples,) or stereo (2, samples) / "
                               "(samples, 2) audio")
    if not np.isfinite(samples).all():
        raise NotFiniteError(f"{name} contains NaN or inf samples: clean or drop it")
    if kind == "f" and samples.size and float(np.abs(samples).max()) > MAX_FLOAT_PEAK:
        peak = float(np.abs(samples).max())
        raise AudioFormatError(
            f"{name} peaks at {peak:g}, but float audio lives in [-1, 1]: this looks like integer PCM converted to "
            "float without scaling; divide by 32768 (16-bit) or pass the int16 array itself")
    return np.ascontiguousarray(samples)


def audio_length(n_samples: int, name: str, sample_rate_hz: int, *, min_samples: int, max_samples: int,
                 min_frames: int) -> None:
    """Refuse a clip too short for the codec's minimum or too long for the model's positions."""
    seconds = n_samples / sample_rate_hz
    if n_samples < min_samples:
        raise DurationError(
            f"{name} is {seconds:.3f} s ({n_samples} samples): the codec needs at least {min_frames} frames = "
            f"{min_samples} samples ({min_samples / sample_rate_hz:.3f} s) at {sample_rate_hz} Hz; pad it (np.pad) "
            "or drop it")
    if n_samples > max_samples:
        raise DurationError(
            f"{name} is {seconds:.2f} s but this model reads at most {max_samples / sample_rate_hz:.2f} s: crop it "
            f"(e.g. audio[:{max_samples}]) or split it into shorter clips")


def text(value, name: str, *, example: str = "'facebook/musicgen-small'") -> str:
    """A non-empty string (a model id, a column name)."""
    if not isinstance(value, str) or not value:
        raise WrongTypeError(f"{name}={_show(value)}: pass a non-empty string such as {example}")
    return value


def float_sequence(value, name: str, *, low: float | None = None, example: str = "[0.0, 0.5, 1.0]") -> tuple:
    """A non-empty tuple of finite floats (one number is taken as a list of one; a string is refused)."""
    value = _scalar(value)
    if isinstance(value, (str, bytes)) or value is None or isinstance(value, dict):
        raise WrongTypeError(f"{name}={_show(value)}: pass a list of numbers such as {example}")
    if isinstance(value, (numbers.Real, np.number)):
        value = [value]
    try:
        items = list(value)
    except TypeError:
        raise WrongTypeError(f"{name}={_show(value)} is a {type(value).__name__}: pass a list of numbers such as "
                             f"{example}") from None
    if not items:
        raise EmptyInputError(f"{name} is empty: pass at least one number, e.g. {example}")
    return tuple(finite_float(x, f"{name}[{i}]", low=low) for i, x in enumerate(items))


def float_matrix(value, name: str, *, width: int | None = None, width_name: str = "width") -> np.ndarray:
    """A (rows, width) float32 array of finite numbers (a torch tensor is accepted); ``width_name`` says whose
    width it must match (a wrong width is a `DirectionMismatchError`, a NaN or inf a `NotFiniteError` naming
    the first bad row)."""
    if hasattr(value, "detach"):  # a torch tensor, without importing torch
        value = value.detach().float().cpu().numpy()
    if isinstance(value, (str, bytes)) or value is None or isinstance(value, dict):
        raise WrongTypeError(f"{name}={_show(value)}: pass a 2-D array of numbers (rows, {width_name})")
    try:
        array = np.asarray(value)
    except ValueError:
        raise WrongTypeError(f"{name} is a ragged list: pass a 2-D array of numbers (rows, {width_name})") from None
    if array.dtype.kind not in "iuf":
        raise WrongTypeError(f"{name} holds {array.dtype} values: pass a 2-D array of numbers (rows, {width_name})")
    if array.ndim != 2:
        raise WrongTypeError(f"{name} has shape {array.shape}: pass a 2-D array (rows, {width_name})")
    if width is not None and array.shape[1] != width:
        raise DirectionMismatchError(f"{name} has {array.shape[1]} columns, but the {width_name} is {width}: pass "
                                     f"activations of the layer it was made for")
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array).all(axis=1)
    if not finite.all():
        raise NotFiniteError(f"{name} row {int(np.argmin(finite))} holds NaN or inf ({int((~finite).sum())} such "
                             "rows): drop or clean those rows")
    return array


def window(value, n: int, name: str = "window", *, unit: str = "positions") -> tuple[int, int]:
    """A half-open ``(start, stop)`` of ints with 0 <= start < stop <= n: reversed, negative, empty and
    out-of-run windows are refused (patched, they would change nothing and read as "no effect")."""
    value = _scalar(value)
    if isinstance(value, (str, bytes)) or value is None or isinstance(value, (dict, numbers.Number, np.number)):
        raise WrongTypeError(f"{name}={_show(value)}: pass a (start, stop) pair of ints such as (0, {n})")
    try:
        items = list(value)
    except TypeError:
        raise WrongTypeError(f"{name}={_show(value)} is a {type(value).__name__}: pass a (start, stop) pair of ints "
                             f"such as (0, {n})") from None
    if len(items) != 2:
        raise WrongTypeError(f"{name}={_show(value)} has {len(items)} items: pass a (start, stop) pair of ints such "
                             f"as (0, {n})")
    start, stop = integer(items[0], f"{name} start"), integer(items[1], f"{name} stop")
    if start < 0:
        raise OutOfRangeError(f"{name}=({start}, {stop}) starts at a negative index: windows count {unit} from 0; "
                              f"pass 0 <= start < stop <= {n}")
    if stop <= start:
        example = (start, start + 1) if stop == start else (stop, start)
        raise EmptyInputError(f"{name}=({start}, {stop}) is {'empty' if stop == start else 'reversed'}: it would "
                              f"change nothing; pass start < stop, e.g. {example}")
    if stop > n:
        raise OutOfRangeError(f"{name}=({start}, {stop}) goes beyond the run's {n} {unit} (0-{n - 1}): pass "
                              f"stop <= {n}, e.g. ({min(start, n - 1)}, {n})")
    return start, stop


def unit_direction(value, hidden_size: int, name: str = "direction", *, model_id: str | None = None,
                   zero_hint: str = "pass a non-zero direction (e.g. a difference of class means)") -> np.ndarray:
    """The unit float32 vector of a direction (a `Direction`, array or tensor of ``hidden_size`` entries).

    A `Direction` made on another model than ``model_id`` is refused as `SteeringSpec` refuses it; NaN/inf
    entries are a `NotFiniteError`, a zero (or too small to normalise) vector a `ZeroNormError`.
    """
    made_on = getattr(value, "model_id", None)
    raw = getattr(value, "vector", value)
    if hasattr(raw, "detach"):  # a torch tensor, without importing torch
        raw = raw.detach().float().cpu().numpy()
    if raw is None or isinstance(raw, (str, bytes, dict, bool, np.bool_)):
        raise WrongTypeError(f"{name}={_show(value)}: pass a Direction or a ({hidden_size},) array of numbers")
    try:
        array = np.asarray(raw)
    except (ValueError, TypeError):
        raise WrongTypeError(f"{name} is a ragged list: pass a Direction or a ({hidden_size},) array of "
                             "numbers") from None
    if array.dtype.kind not in "iuf":
        raise WrongTypeError(f"{name} holds {array.dtype} values: pass a Direction or a ({hidden_size},) array of "
                             "numbers")
    if array.ndim == 2 and 1 in array.shape:
        array = array.reshape(-1)
    if array.ndim != 1 or array.size != hidden_size:
        raise DirectionMismatchError(
            f"{name} has shape {array.shape} but the model's hidden size is {hidden_size}: use a direction made on "
            "this model's activations, shape (hidden,)")
    array = array.astype(np.float64)
    if not np.isfinite(array).all():
        raise NotFiniteError(f"{name} has NaN or inf entries: recompute it from finite activations")
    if made_on is not None and model_id is not None and made_on != model_id:
        raise DirectionMismatchError(
            f"{name} was made on model {made_on!r}, not on {model_id!r}: recompute it on this model, or pass the "
            f"raw vector ({name}.vector) if you really mean to transfer it")
    largest = float(np.abs(array).max())
    if largest == 0:
        raise ZeroNormError(f"{name} has zero length: {zero_hint}")
    unit = array / largest  # scaled first: the norm of 1e300s or 1e-320s neither overflows nor underflows
    unit /= np.linalg.norm(unit)
    return unit.astype(np.float32)


def model_handle(value, name: str = "handle"):
    """A loaded model (`workbench.load_model` / `random_model`), recognised by what it holds."""
    if not all(hasattr(value, attr) for attr in ("model", "processor", "model_id")):
        raise WrongTypeError(f"{name} is a {type(value).__name__}, not a loaded model: pass "
                             "workbench.load_model() or workbench.random_model('tiny')")
    return value


def flag(value, name: str) -> bool:
    """A yes/no switch: True, False (numpy bools and the ints 0 / 1 too); anything else is refused, since an
    array or a string there would be truth-tested silently."""
    value = _scalar(value)
    if _is_bool(value) or (isinstance(value, (numbers.Integral, np.integer)) and value in (0, 1)):
        return bool(value)
    raise WrongTypeError(f"{name}={_show(value)}: pass True or False")


def index_array(value, name: str, n: int, *, what: str = "indices", where: str = "", single: bool = True,
                allow_empty: bool = False, example: str = "[0, 1]") -> np.ndarray:
    """A 1-D int64 array of indices into ``n`` items (0 <= i < n; ``where`` names them in the range error).

    A list, tuple or range of ints, an integer numpy array (checked in one vectorised pass, however long), or one
    int when ``single``. Strings (``"12"`` is not rows 1 and 2), bools, boolean masks, fractions and negative
    (from-the-end) indices are refused.
    """
    value = _scalar(value)
    if isinstance(value, (str, bytes)):
        raise WrongTypeError(f"{name}={_show(value)} is a string: pass a list of {what} such as {example}")
    if value is None:
        raise WrongTypeError(f"{name}=None: pass a list of {what} such as {example}")
    if isinstance(value, np.ndarray) and value.dtype.kind != "O":
        if value.ndim != 1:
            raise WrongTypeError(f"{name} is a {value.ndim}-D array: pass a flat list of {what} such as {example}")
        if value.dtype.kind == "b":
            raise WrongTypeError(f"{name} is a boolean mask: pass the {what} it selects, np.flatnonzero(mask)")
        if value.dtype.kind not in "iu":
            raise WrongTypeError(f"{name} holds {value.dtype} values: pass a list of {what} such as {example}")
        outside = (value < 0) | (value >= n)
        first_bad = int(np.argmax(outside)) if outside.any() else None
        items = value
    else:
        if isinstance(value, (numbers.Real, np.number)) and not single:
            raise WrongTypeError(f"{name}={_show(value)} is a single number: pass a list of {what} such as "
                                 f"[{_show(value)}]")
        items = int_sequence(value, name, allow_empty=True, example=example)
        first_bad = next((i for i, v in enumerate(items) if not 0 <= v < n), None)
    if not len(items) and not allow_empty:
        raise EmptyInputError(f"{name} is empty: pass at least one, e.g. {example}")
    if first_bad is not None:
        span = f"0..{n - 1}" if n > 0 else "nothing (there are none)"
        raise OutOfRangeError(f"{name} must lie in {span}{where and f' ({where})'}: {name}[{first_bad}]="
                              f"{int(items[first_bad])} is outside; indices count from 0")
    return np.asarray(items, dtype=np.int64)
