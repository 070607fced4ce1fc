"""The whole teaching-model recipe: synthesise -> tokenizer -> EnCodec -> codes -> decoder -> save.

`python -m workbench.toy train` calls `train_teaching_model`; stages are checkpointed in `work_dir`
so `--resume` continues after an interruption (same seeds, same result).

Example (a few steps, a handful of clips; seconds):
    >>> from workbench.toy.training.recipe import Recipe, train_teaching_model
    >>> recipe = Recipe.tiny()
    >>> info = train_teaching_model(recipe, "/tmp/toy-tiny", progress=False)
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from transformers import EncodecModel

from workbench.toy import SYNTH_VERSIONS, synth_module
from workbench.toy.architecture import ToySizes, build_codec, build_musicgen, build_processor
from workbench.toy.judge import MODEL_JUDGE_FILE, fit_judge
from workbench.toy.synth import synth_dataset
from workbench.toy.tokenizer import build_tokenizer
from workbench.toy.training.codec_training import CodecTraining, encode_codes, train_codec
from workbench.toy.training.decoder_training import DecoderTraining, train_decoder

# The codec v3 settings over v2's (the trials: teaching model v2's card,
# `git show c85904c:workbench/toy/MODEL_CARD.md`).
CODEC_V3_COMB_WEIGHT = 5.0
CODEC_V3_PITCH_WEIGHT = 2.0  # `codec_training.pitch_loss` (4096-point log-STFT + chroma distance)
CODEC_V3_FLOOR_DB = 60.0  # `spectral_loss`'s log floor, under each crop's peak
CODEC_V3_BALANCE_WEIGHT = 1.0  # `spectral_loss`'s long-term mel balance
CODEC_V3_PHASE_WEIGHT = 0.0  # `codec_training.phase_loss`
CODEC_V3_SIZES = dict(codec_residual_layers=2, codec_lstm_layers=0)
STAGES = ("codec", "all")
CODEC_CHECKPOINT = "codec_checkpoint.pt"


@dataclass(frozen=True)
class Recipe:
    """Every knob of the recipe. `Recipe.v3()` made the shipped weights (teaching model v3, what
    ``python -m workbench.toy train`` runs); `Recipe.v2()` made teaching model v2; the field defaults are
    teaching model v1's (`Recipe.v1()`).

    synth_version 1 trains on `workbench.toy.synth` (genre prompts); 2 on `workbench.toy.synth_v2`
    (seven factors, factor prompts; teaching model v2's card has every trial:
    `git show c85904c:workbench/toy/MODEL_CARD.md`); 3 on `workbench.toy.synth_v3` (v2's clips and prompts,
    half the clips without their bass line; prompts do not name the bass).
    """

    synth_version: int = 1
    codec_synth_version: int | None = None  # the codec's clips (None: synth_version's); v3.1 keeps v3's codec (2)
    n_per_genre: int = 300
    data_seed: int = 0
    codec_ae_steps: int = 4000
    codec_vq_steps: int = 2000
    codec_batch_size: int = 8
    codec_crop_s: float = 0.32
    codec_lr: float = 1.5e-3
    codec_comb_weight: float = 0.0  # > 0: penalise the error's frame-rate comb (codec v3)
    codec_pitch_weight: float = 0.0  # > 0: add `pitch_loss`, a pitch-resolving term (codec v3)
    codec_floor_db: float = 0.0  # > 0: `spectral_loss`'s log floor relative to each crop's peak (codec v3)
    codec_balance_weight: float = 0.0  # > 0: `spectral_loss`'s long-term mel balance term (codec v3)
    codec_phase_weight: float = 0.0  # > 0: add `phase_loss`, compressed complex spectra (codec v3)
    decoder_steps: int = 3000
    decoder_batch_size: int = 16
    decoder_lr: float = 2e-3
    cond_dropout: float = 0.15
    decoder_resid_push: float = 0.0  # > 0: train the decoder under random residual pushes (`ResidualPushes`)
    factor_keep: float | None = None  # v2 data: chance a prompt names each other factor (None: FACTOR_KEEP, 0.4-0.5)
    seed: int = 0
    threads: int = 2
    vocab_size: int = 256
    judge_clips_per_genre: int = 0  # > 0: fit a genre judge on this codec's round trips too (v2 only)
    decoder_clips_per_genre: int = 0  # > n_per_genre: the decoder trains on more clips than the codec
    sample_temperature: float = 1.0  # the generation config's temperature (what workbench.generate samples at)
    sizes: ToySizes = field(default_factory=ToySizes)

    @classmethod
    def v1(cls) -> Recipe:
        """Teaching model v1 (the field defaults; shipped until teaching model v2)."""
        return cls()

    @classmethod
    def v2(cls) -> Recipe:
        """Teaching model v2 (shipped until teaching model v3; eighth trial): seven-factor clips, a codec without
        LSTM trained on 2400 of them (3500 + 1000 steps), a decoder trained for 4600 steps on 4800,
        a 384-piece tokenizer, sampling at temperature 0.8, and a genre judge fitted on this codec's
        round trips as well (100 clips per genre, written next to the weights as ``judge_fitted_on_own_codec.json``).

        The codec has no LSTM, so a code only sees 160 ms of audio; the synthesiser's dynamics and
        brightness follow one period of a sine, so a bag of codes cannot read them (teaching model
        v2's card has what each trial measured: `git show c85904c:workbench/toy/MODEL_CARD.md`).
        """
        return cls(synth_version=2, n_per_genre=600, decoder_clips_per_genre=1200, codec_ae_steps=3500,
                   codec_vq_steps=1000, decoder_steps=4600,
                   vocab_size=384, judge_clips_per_genre=100, sample_temperature=0.8,
                   sizes=ToySizes(codec_lstm_layers=0))

    @classmethod
    def v3(cls) -> Recipe:
        """Teaching model v3, the shipped model: v2's data, steps, tokenizer and decoder, on teaching codec v3
        (`with_codec_v3`, issue 27: losses that penalise the frame-rate comb of the error (`frame_comb_loss`),
        ask for pitch (`pitch_loss`), floor the log spectra relative to each crop's peak and keep the long-term
        band balance; dilated residual units for more context, still no LSTM). It samples at temperature 1.0:
        at v2's 0.8 its generations repeated codes 30% more often than the codec's round trips of clean clips
        (0.140 against 0.108), at 1.0 they repeat 0.099 (the model card). Trained with one thread, as the
        shipped weights were: another thread count gives other weights.
        """
        return replace(cls.v2().with_codec_v3(), threads=1, sample_temperature=1.0)

    @classmethod
    def v3_1(cls) -> Recipe:
        """A candidate, teaching model v3.1: v3's recipe whose decoder trains on `workbench.toy.synth_v3` (v2's
        clips, half of them without their bass line, the same prompts), on v3's codec (trained on synth_v2's clips,
        as v3's was: the same codec, so ``--resume`` reuses a v3 run's)."""
        return replace(cls.v3(), synth_version=3, codec_synth_version=2)

    def codec_data_version(self) -> int:
        """The synthesiser of the codec's clips."""
        return self.codec_synth_version or self.synth_version

    def with_codec_v3(self) -> Recipe:
        """This recipe with teaching codec v3's codec settings (sizes other than the codec's kept)."""
        return replace(self, codec_comb_weight=CODEC_V3_COMB_WEIGHT, codec_pitch_weight=CODEC_V3_PITCH_WEIGHT,
                       codec_floor_db=CODEC_V3_FLOOR_DB, codec_balance_weight=CODEC_V3_BALANCE_WEIGHT,
                       codec_phase_weight=CODEC_V3_PHASE_WEIGHT, sizes=replace(self.sizes, **CODEC_V3_SIZES))

    @classmethod
    def tiny(cls) -> Recipe:
        """A recipe that runs in seconds (for tests): a handful of clips, a few steps, small sizes."""
        return cls(n_per_genre=2, codec_ae_steps=2, codec_vq_steps=2, codec_batch_size=2,
                   decoder_steps=2, decoder_batch_size=4,
                   sizes=ToySizes(codec_filters=4, codec_hidden=16, codebook_size=32, decoder_layers=2,
                                  decoder_hidden=32, decoder_ffn=64, text_hidden=16))

    def codec_training(self, **overrides) -> CodecTraining:
        """How this recipe trains its codec (`train_codec`'s config); `overrides` replace fields of it."""
        config = CodecTraining(ae_steps=self.codec_ae_steps, vq_steps=self.codec_vq_steps,
                               batch_size=self.codec_batch_size, crop_s=self.codec_crop_s, lr=self.codec_lr,
                               seed=self.seed, comb_weight=self.codec_comb_weight, pitch_weight=self.codec_pitch_weight,
                               floor_db=self.codec_floor_db, balance_weight=self.codec_balance_weight,
                               phase_weight=self.codec_phase_weight)
        return replace(config, **overrides)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["sizes"] = self.sizes.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> Recipe:
        d = dict(d)
        d["sizes"] = ToySizes(**d.get("sizes", {}))
        d.setdefault("synth_version", 1)  # recipes saved before v2 had no such field
        d.setdefault("vocab_size", 256)
        d.setdefault("judge_clips_per_genre", 0)  # recipes saved before the model's own judge
        d.setdefault("decoder_clips_per_genre", 0)  # ... and before the decoder's own clip count
        d.setdefault("sample_temperature", 1.0)  # ... and before a model's own sampling temperature
        d.setdefault("codec_synth_version", None)  # ... and before a codec on other clips than the decoder's
        return cls(**d)


def codec_fields(recipe: Recipe) -> dict:
    """The recipe fields the codec stage depends on: a codec checkpoint is reused only if these match."""
    d = recipe.to_dict()
    keep = {k: v for k, v in d.items()
            if (k.startswith("codec_") and k != "codec_synth_version") or k in ("n_per_genre", "data_seed", "seed")}
    keep["synth_version"] = recipe.codec_data_version()  # the codec's clips, whichever field names them
    keep["sizes"] = {k: v for k, v in d["sizes"].items() if k.startswith("codec_") or k == "codebook_size"}
    return keep


def _log_line(path: Path | None, record: dict) -> None:
    if path is not None:
        with open(path, "a") as f:
            f.write(json.dumps({"time": round(time.time(), 1), **record}) + "\n")


def train_teaching_model(recipe: Recipe, output_dir: str | Path, work_dir: str | Path | None = None,
                         resume: bool = False, progress: bool = True, device: str = "cpu",
                         stage: str = "all") -> dict:
    """Build the teaching model from scratch into `output_dir` (save_pretrained folder); returns info.

    stage: "all" (the whole model) or "codec" (stop after the codec: `output_dir` is then an
    EnCodec `save_pretrained` folder with its ``training_info.json``). The codec stage checkpoints
    itself in `work_dir` every 250 steps, so ``resume=True`` continues an interrupted one.

    device: "cpu" (the reference: `recipe.threads` threads) or a torch device such as "cuda" (same
    recipe and seeds, results differ by floating-point order; for a model this small a GPU is no
    faster than 2 CPU cores, but several recipes can train on it side by side).
    """


    if stage not in STAGES:
        raise ValueError(f"stage={stage!r}: use one of {', '.join(STAGES)}")
    if recipe.synth_version not in SYNTH_VERSIONS:
        raise ValueError(f"synth_version={recipe.synth_version!r}: use 1 (workbench.toy.synth), 2 (synth_v2) "
                         "or 3 (synth_v3)")
    if recipe.factor_keep is not None and recipe.synth_version < 2:
        raise ValueError(f"factor_keep={recipe.factor_keep!r} names synth_version 2's factors in prompts; this recipe "
                         f"trains on synth_version {recipe.synth_version} (genre prompts): leave factor_keep at None")
    if recipe.n_per_genre < 1 or recipe.decoder_steps < 0 or recipe.codec_ae_steps < 0:
        raise ValueError("n_per_genre must be >= 1 and step counts >= 0")
    if recipe.decoder_clips_per_genre and recipe.decoder_clips_per_genre < recipe.n_per_genre:
        raise ValueError(f"decoder_clips_per_genre={recipe.decoder_clips_per_genre} is below n_per_genre="
                         f"{recipe.n_per_genre}: use 0 (the codec's clips) or at least {recipe.n_per_genre}")
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    if work_dir is None:
        work_dir = Path.home() / ".cache" / "musicgen-workbench" / "toy-train"
    work_dir = Path(work_dir)
    work_dir.mkdir(parents=True, exist_ok=True)
    recipe_path = work_dir / "recipe.json"
    if resume and recipe_path.exists():
        saved = Recipe.from_dict(json.loads(recipe_path.read_text()))
        if codec_fields(saved) != codec_fields(recipe):
            raise ValueError(f"{work_dir} holds a codec of a different recipe (data, seeds or codec "
                             "settings differ): drop --resume or use another --work-dir")
    if not resume:
        for stale in ("codec", "log.jsonl", CODEC_CHECKPOINT):
            p = work_dir / stale
            if p.is_dir():
                import shutil
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()
    recipe_path.write_text(json.dumps(recipe.to_dict(), indent=1))
    log_path = work_dir / "log.jsonl"

    def log(record: dict) -> None:
        _log_line(log_path, record)

    torch.set_num_threads(recipe.threads)
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' but torch sees no GPU: use device='cpu'")
    timings: dict[str, float] = {}
    t0 = time.time()
    # Clips are interleaved by genre and seeded clip by clip, so the codec's clips (the first
    # n_per_genre of each genre) are the same whatever the decoder's count.
    n_clips = max(recipe.n_per_genre, recipe.decoder_clips_per_genre) if stage == "all" else recipe.n_per_genre
    if recipe.synth_version >= 2:  # prompts name the clips' factors (workbench.toy.prompts.factor_prompt)
        audio, _, labels = synth_module(recipe.synth_version).synth_dataset(n_clips, seed=recipe.data_seed,
                                                                            with_factors=True)
    else:
        audio, labels = synth_dataset(n_clips, seed=recipe.data_seed)
    n_genres = len(audio) // n_clips
    codec_audio = audio[:recipe.n_per_genre * n_genres]
    if recipe.codec_data_version() != recipe.synth_version:  # the codec trains on another synthesiser's clips
        codec_audio = (synth_module(recipe.codec_data_version()).synth_dataset(recipe.n_per_genre,
                                                                              seed=recipe.data_seed)[0]
                       if not (resume and (work_dir / "codec" / "config.json").exists()) else codec_audio[:0])
    timings["synth_s"] = time.time() - t0
    log(dict(stage="synth", clips=len(labels), seconds=timings["synth_s"]))
    tokenizer = build_tokenizer(vocab_size=recipe.vocab_size, seed=recipe.seed, factors=recipe.synth_version >= 2)

    t = time.time()
    codec_dir = work_dir / "codec"
    if resume and (codec_dir / "config.json").exists():
        codec = EncodecModel.from_pretrained(codec_dir).eval().to(device)
        log(dict(stage="codec", resumed=True))
    else:
        codec = build_codec(recipe.sizes, seed=recipe.seed).to(device)
        train_codec(codec, codec_audio, recipe.codec_training(), progress=progress, log=log,
                    checkpoint_path=work_dir / CODEC_CHECKPOINT)
        codec.cpu().save_pretrained(codec_dir)
        codec.to(device)
        (work_dir / CODEC_CHECKPOINT).unlink(missing_ok=True)
    timings["codec_s"] = time.time() - t
    if stage == "codec":
        codec.cpu().save_pretrained(output_dir)
        timings["total_s"] = time.time() - t0
        info = dict(recipe=recipe.to_dict(), stage="codec", timings_s={k: round(v, 1) for k, v in timings.items()},
                    n_clips=recipe.n_per_genre * n_genres, torch_version=torch.__version__, device=str(device),
                    threads=recipe.threads, codec_params=sum(p.numel() for p in codec.parameters()))
        (output_dir / "training_info.json").write_text(json.dumps(info, indent=1))
        log(dict(stage="done", **info["timings_s"]))
        return info

    t = time.time()
    codes = encode_codes(codec, audio, progress=progress)
    timings["encode_s"] = time.time() - t
    del audio, codec_audio

    if recipe.judge_clips_per_genre > 0:  # the genre judge of this model's audio (judge.fit_judge)
        if recipe.synth_version < 2:
            raise ValueError("judge_clips_per_genre > 0 needs synth_version=2 or 3 (the v1 judge ships as is)")
        t = time.time()
        fit_judge(n_per_genre=recipe.judge_clips_per_genre, version=recipe.synth_version, codec=codec,
                  progress=progress).to_json(output_dir / MODEL_JUDGE_FILE)
        timings["judge_s"] = time.time() - t
        log(dict(stage="judge", seconds=timings["judge_s"]))

    t = time.time()
    model = build_musicgen(recipe.sizes, codec, len(tokenizer), seed=recipe.seed).to(device)
    train_decoder(model, tokenizer, codes, labels,
                  DecoderTraining(steps=recipe.decoder_steps, batch_size=recipe.decoder_batch_size,
                                  lr=recipe.decoder_lr, cond_dropout=recipe.cond_dropout, seed=recipe.seed,
                                  resid_push=recipe.decoder_resid_push, factor_keep=recipe.factor_keep),
                  progress=progress, log=log)
    timings["decoder_s"] = time.time() - t

    model.generation_config.temperature = recipe.sample_temperature
    model.cpu().save_pretrained(output_dir)
    # The training tokenizer ran with padding=True; a saved padding block breaks
    # processor(audio=..., text=...) after reload (transformers#41598), so drop it first.
    tokenizer.backend_tokenizer.no_padding()
    build_processor(tokenizer).save_pretrained(output_dir)
    timings["total_s"] = time.time() - t0
    info = dict(recipe=recipe.to_dict(), timings_s={k: round(v, 1) for k, v in timings.items()},
                n_clips=len(labels), torch_version=torch.__version__, device=str(device),
                decoder_params=sum(p.numel() for p in model.decoder.parameters()),
                codec_params=sum(p.numel() for p in model.audio_encoder.parameters()),
                text_encoder_params=sum(p.numel() for p in model.text_encoder.parameters()),
                size_bytes=sum(p.stat().st_size for p in output_dir.iterdir() if p.is_file()))
    (output_dir / "training_info.json").write_text(json.dumps(info, indent=1))
    log(dict(stage="done", **info["timings_s"]))
    return info


def recipe_with(recipe: Recipe, **overrides) -> Recipe:
    """`recipe` with some fields replaced (None values are ignored)."""
    return replace(recipe, **{k: v for k, v in overrides.items() if v is not None})
