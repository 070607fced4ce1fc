"""Sizes and assembly of the teaching model (standard transformers MusicGen classes, tiny).

Example:
    >>> from workbench.toy.architecture import ToySizes, build_codec, build_musicgen
    >>> from workbench.toy.tokenizer import build_tokenizer
    >>> sizes = ToySizes(codec_filters=4, decoder_layers=1, decoder_hidden=32, text_hidden=16)
    >>> tok = build_tokenizer()
    >>> model = build_musicgen(sizes, build_codec(sizes), len(tok))
    >>> model.decoder.config.num_codebooks
    4
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

SAMPLE_RATE_HZ = 32000
FRAME_RATE_HZ = 50
N_CODEBOOKS = 4


@dataclass(frozen=True)
class ToySizes:
    """Every size knob of the teaching model."""

    codec_filters: int = 16
    codec_conv_shortcut: bool = False
    codec_hidden: int = 64  # latent / codebook dimension
    codebook_size: int = 256
    codec_lstm_layers: int = 1  # 0: no recurrence: a code sees only its conv window (160 ms)
    codec_residual_layers: int = 1  # dilated residual units per resolution (dilations 1, 2, 4, ...)
    codec_kernel_size: int = 7  # first and last conv
    text_hidden: int = 64
    text_layers: int = 2
    text_heads: int = 4
    decoder_hidden: int = 96
    decoder_layers: int = 6
    decoder_heads: int = 4
    decoder_ffn: int = 384
    max_positions: int = 1024  # decoder positions: ~20 s of audio (it was trained on 4 s)

    def to_dict(self) -> dict:
        return asdict(self)


def build_codec(sizes: ToySizes, seed: int = 0):
    """An untrained `EncodecModel`: 32 kHz mono, 50 Hz frames, exactly 4 RVQ codebooks."""
    import math

    import torch
    from transformers import EncodecConfig, EncodecModel

    nbits = math.ceil(math.log2(sizes.codebook_size))
    # num_quantizers = floor(1000 * bandwidth / (frame_rate * nbits)): aim between 4 and 5.
    bandwidth_kbps = round(N_CODEBOOKS * FRAME_RATE_HZ * nbits / 1000 * 1.1, 3)
    config = EncodecConfig(
        sampling_rate=SAMPLE_RATE_HZ, audio_channels=1, upsampling_ratios=[8, 5, 4, 4],
        num_filters=sizes.codec_filters, hidden_size=sizes.codec_hidden,
        codebook_size=sizes.codebook_size, target_bandwidths=[bandwidth_kbps],
        num_lstm_layers=max(1, sizes.codec_lstm_layers), num_residual_layers=sizes.codec_residual_layers,
        kernel_size=sizes.codec_kernel_size, last_kernel_size=sizes.codec_kernel_size, use_causal_conv=False,
        norm_type="weight_norm",
        normalize=False, chunk_length_s=None, overlap=None, use_conv_shortcut=sizes.codec_conv_shortcut,
    )
    assert config.num_quantizers == N_CODEBOOKS and config.frame_rate == FRAME_RATE_HZ
    torch.manual_seed(seed)
    codec = EncodecModel(config)
    if sizes.codec_lstm_layers == 0:
        # transformers always builds the LSTM; EncodecLSTM returns lstm(x) + x, and an LSTM whose
        # weights are all zero outputs exactly 0, so zeroed and frozen it passes its input through.
        for module in codec.modules():
            if isinstance(module, torch.nn.LSTM):
                for param in module.parameters():
                    param.data.zero_()
                    param.requires_grad_(False)
    return codec


def build_musicgen(sizes: ToySizes, codec, text_vocab_size: int, seed: int = 0):
    """Assemble text encoder (random T5) + `codec` + a fresh decoder into MusicgenForConditionalGeneration."""
    import torch
    from transformers import MusicgenConfig, MusicgenDecoderConfig, MusicgenForConditionalGeneration, T5Config

    torch.manual_seed(seed)
    text_config = T5Config(
        vocab_size=text_vocab_size, d_model=sizes.text_hidden, d_kv=sizes.text_hidden // sizes.text_heads,
        d_ff=sizes.text_hidden * 2, num_layers=sizes.text_layers, num_heads=sizes.text_heads,
        pad_token_id=0, eos_token_id=1, decoder_start_token_id=0,
    )
    special = sizes.codebook_size  # pad / bos / decoder start: one id past the codebook
    decoder_config = MusicgenDecoderConfig(
        vocab_size=sizes.codebook_size, max_position_embeddings=sizes.max_positions,
        num_hidden_layers=sizes.decoder_layers, ffn_dim=sizes.decoder_ffn,
        num_attention_heads=sizes.decoder_heads, hidden_size=sizes.decoder_hidden,
        num_codebooks=N_CODEBOOKS, audio_channels=1, pad_token_id=special, bos_token_id=special,
        eos_token_id=None, dropout=0.0, attention_dropout=0.0, activation_dropout=0.0,
    )
    config = MusicgenConfig(text_encoder=text_config.to_dict(), audio_encoder=codec.config.to_dict(),
                            decoder=decoder_config.to_dict())
    model = MusicgenForConditionalGeneration(config)
    model.audio_encoder.load_state_dict(codec.state_dict())
    model.generation_config.decoder_start_token_id = special
    model.generation_config.pad_token_id = special
    model.generation_config.bos_token_id = special
    model.generation_config.eos_token_id = None
    model.generation_config.do_sample = True
    model.generation_config.guidance_scale = 3.0
    model.generation_config.top_k = 250
    model.generation_config.max_new_tokens = 4 * FRAME_RATE_HZ + N_CODEBOOKS - 1  # 4.0 s
    model.generation_config.max_length = sizes.max_positions
    return model


def build_processor(tokenizer):
    """MusicgenProcessor = our tokenizer + a 32 kHz mono EncodecFeatureExtractor."""
    from transformers import EncodecFeatureExtractor, MusicgenProcessor

    fe = EncodecFeatureExtractor(feature_size=1, sampling_rate=SAMPLE_RATE_HZ, padding_value=0.0)
    return MusicgenProcessor(feature_extractor=fe, tokenizer=tokenizer)
