"""Load a MusicGen (teaching model, Hub id, local folder or random) behind one small handle.

Example:
    >>> h = random_model("tiny", seed=0)
    >>> h.n_layers, h.hidden_size, h.site_path("resid", 2)
    (3, 32, 'decoder.model.decoder.layers.2')
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
from pathlib import Path
from typing import Any

import torch

from workbench import validation
from workbench.errors import DurationError, ModelNotAvailableError, NotAMusicGenError
from workbench.runtime.configs import musicgen_config, random_processor
from workbench.toy import WEIGHTS_DIR

# The version is in the id: what was made on teaching model v2 ("workbench/teaching-model") does not load on v3.
TEACHING_MODEL_ID = "workbench/teaching-model-v3"
LAYERS_PATH = "decoder.model.decoder.layers"
SITE_SUFFIX = {"resid": "", "attn": ".self_attn", "mlp": ".fc2"}


@dataclasses.dataclass
class MusicGenHandle:
    """A loaded MusicGen with the facts the workbench needs; ``model`` and ``processor`` are the HF objects."""

    model: Any
    processor: Any
    model_id: str

    @property
    def config(self):
        return self.model.config

    @property
    def n_layers(self) -> int:
        return self.config.decoder.num_hidden_layers

    @property
    def hidden_size(self) -> int:
        return self.config.decoder.hidden_size

    @property
    def n_codebooks(self) -> int:
        return self.config.decoder.num_codebooks

    @property
    def audio_channels(self) -> int:
        return self.config.decoder.audio_channels

    @property
    def sample_rate_hz(self) -> int:
        return self.config.audio_encoder.sampling_rate

    @property
    def frame_rate_hz(self) -> float:
        return self.config.audio_encoder.frame_rate

    @property
    def default_temperature(self) -> float:
        """The sampling temperature `generate` uses when given none: the model's generation config
        (1.0 for MusicGen checkpoints; the teaching-model-v2 recipe writes 0.8)."""
        value = getattr(getattr(self.model, "generation_config", None), "temperature", None)
        return 1.0 if value is None else float(value)

    @property
    def delay_steps(self) -> int:
        """Extra decoder steps the delay pattern costs (3 for 4 codebooks)."""
        return self.n_codebooks // self.audio_channels - 1

    @property
    def max_frames(self) -> int:
        """Most codec frames a clip may have: the decoder's positions less the start token and the delay."""
        return self.config.decoder.max_position_embeddings - 1 - self.delay_steps

    @property
    def min_frames(self) -> int:
        """Fewest codec frames the decoder can read: shorter, the delay pattern leaves undefined inputs."""
        return max(3, self.delay_steps)

    @property
    def max_duration_s(self) -> float:
        return self.max_frames / self.frame_rate_hz

    @property
    def samples_per_frame(self) -> float:
        return self.sample_rate_hz / self.frame_rate_hz

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.decoder.parameters()).dtype

    @property
    def layers(self):
        return self.model.decoder.model.decoder.layers

    def site_path(self, site: str, layer: int) -> str:
        """Module path of a site (e.g. ``decoder.model.decoder.layers.3.fc2``), as nnsight addresses it."""
        layer = validation.layer_index(layer, self.n_layers)
        return f"{LAYERS_PATH}.{layer}{SITE_SUFFIX[validation.site(site)]}"

    def module(self, site: str, layer: int) -> torch.nn.Module:
        return self.model.get_submodule(self.site_path(site, layer))

    def check_layer(self, layer: int) -> None:
        validation.layer_index(layer, self.n_layers)

    def frames_for(self, duration_s: float) -> int:
        """Number of codec frames for a duration; raises if the model cannot generate it."""
        duration_s = validation.finite_float(duration_s, "duration_s")
        frames = int(round(duration_s * self.frame_rate_hz))
        if frames < 1:
            raise DurationError(f"duration {duration_s} s is too short: use at least {1 / self.frame_rate_hz:.3f} s")
        if duration_s > self.max_duration_s + 1e-9:
            raise DurationError(
                f"duration {duration_s} s is beyond this model's {self.config.decoder.max_position_embeddings} "
                f"positions (at most {self.max_duration_s:.2f} s): generate shorter clips, or continue a clip "
                "with audio_prompt= for longer music")
        return frames

    def __repr__(self) -> str:
        return (f"MusicGenHandle({self.model_id!r}, layers={self.n_layers}, hidden={self.hidden_size}, "
                f"codebooks={self.n_codebooks}, {self.sample_rate_hz} Hz, {self.dtype}, {self.device})")


def _resolve_dtype(dtype) -> torch.dtype:
    if dtype is None:
        return torch.float32
    if isinstance(dtype, str):
        named = {"float32": torch.float32, "fp32": torch.float32, "bfloat16": torch.bfloat16, "bf16": torch.bfloat16,
                 "float16": torch.float16, "fp16": torch.float16}
        return named[validation.choice(dtype, "dtype", sorted(named))]
    return dtype


def _finish(model, processor, model_id: str, device, dtype) -> MusicGenHandle:
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    model = model.to(device=device, dtype=_resolve_dtype(dtype)).eval()
    return MusicGenHandle(model=model, processor=processor, model_id=model_id)


def _teaching_model_dir() -> Path:
    return Path(WEIGHTS_DIR)


def _check_folder(path: Path) -> None:
    config_file = path / "config.json"
    if not config_file.exists():
        raise NotAMusicGenError(f"{path} has no config.json: point load_model at a folder saved with "
                                "MusicgenForConditionalGeneration.save_pretrained (or a Hub snapshot)")
    model_type = json.loads(config_file.read_text()).get("model_type")
    if model_type == "musicgen_melody":
        raise NotAMusicGenError(f"{path} holds MusicGen-Melody, whose chroma conditioning uses another API; "
                                "the workbench supports the text-conditioned MusicGen checkpoints")
    if model_type != "musicgen":
        raise NotAMusicGenError(f"{path} holds a {model_type!r} model, not a MusicGen (model_type 'musicgen')")


@contextlib.contextmanager
def _quiet_transformers():
    """transformers' warnings and load progress bars off inside the block."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def load_model(name_or_path: str | os.PathLike | None = None, device=None, dtype=None) -> MusicGenHandle:
    """Load MusicGen: the embedded teaching model by default, a Hub id, or a local folder.

    dtype: None (float32), "bfloat16" (about 3x faster on CPUs with bf16 support), or a torch dtype.

    Example:
        >>> h = load_model()                                  # doctest: +SKIP
        >>> h = load_model("facebook/musicgen-small", dtype="bfloat16")  # doctest: +SKIP
    """
    from transformers import AutoProcessor, MusicgenForConditionalGeneration

    if name_or_path is None:
        path = _teaching_model_dir()
        if not (path / "config.json").exists():
            raise ModelNotAvailableError(
                f"the teaching model's weights are missing from {path}: rebuild them with "
                "`python -m workbench.toy train`, or pass a model name")
        model_id = TEACHING_MODEL_ID
    else:
        path = Path(name_or_path).expanduser()
        model_id = str(name_or_path)
    if path.is_dir():
        _check_folder(path)
        # The teaching model uses pad id == vocab size as the official checkpoints do; transformers
        # warns about that on every load, which tells its users nothing they can act on.
        with _quiet_transformers() if name_or_path is None else contextlib.nullcontext():
            model = MusicgenForConditionalGeneration.from_pretrained(path)
        processor = AutoProcessor.from_pretrained(path)
        return _finish(model, processor, model_id, device, dtype)
    if path.exists():
        raise NotAMusicGenError(f"{path} is a file: pass the folder that holds config.json and the weights")
    offline = os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false")
    attempts = [True] if offline else [True, False]
    last_error: Exception | None = None
    for local_only in attempts:
        try:
            model = MusicgenForConditionalGeneration.from_pretrained(model_id, local_files_only=local_only)
            processor = AutoProcessor.from_pretrained(model_id, local_files_only=local_only)
            return _finish(model, processor, model_id, device, dtype)
        except (OSError, ValueError) as error:  # not cached / no network / not a repo
            last_error = error
    raise ModelNotAvailableError(
        f"could not load {model_id!r}: it is not in the local Hugging Face cache and could not be downloaded "
        f"({type(last_error).__name__}). On a machine with internet run `huggingface-cli download {model_id} "
        f"--local-dir ./{model_id.split('/')[-1]}`, copy that folder here and pass its path to load_model; "
        "or call load_model() with no name for the embedded teaching model.") from last_error


def random_model(name: str = "tiny", seed: int = 0, device=None, dtype=None) -> MusicGenHandle:
    """A randomly initialised MusicGen from a built-in config (``tiny`` or an official size).

    Full-size random models prove layer paths, shapes, CFG and steering without downloading weights.
    """
    from transformers import MusicgenForConditionalGeneration


    config = musicgen_config(name)
    torch.manual_seed(validation.integer(seed, "seed"))
    with _quiet_transformers():  # the official configs use pad id == vocab size, which HF warns about
        model = MusicgenForConditionalGeneration(config)
    model.generation_config.decoder_start_token_id = config.decoder.bos_token_id
    model.generation_config.pad_token_id = config.decoder.pad_token_id
    processor = random_processor(config.audio_encoder.sampling_rate, config.decoder.audio_channels)
    short = name.split("/")[-1]
    return _finish(model, processor, f"random/{short}@seed{seed}", device, dtype)
