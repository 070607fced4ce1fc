"""Official MusicGen configurations (for random-weight models at full size) and a tiny one.

Real weights never load on machines without the Hub; these configs let tests exercise layer
paths, shapes, dtypes, CFG and steering at the real sizes with random weights.

Example:
    >>> cfg = musicgen_config("musicgen-small")
    >>> cfg.decoder.num_hidden_layers, cfg.decoder.hidden_size
    (24, 1024)
"""
from __future__ import annotations

import string

from workbench.errors import BadInputError

# Decoder shapes of the released checkpoints (hidden, layers, heads, ffn, codebooks, channels).
_DECODERS = {
    "musicgen-small": (1024, 24, 16, 4096, 4, 1),
    "musicgen-medium": (1536, 48, 24, 6144, 4, 1),
    "musicgen-large": (2048, 48, 32, 8192, 4, 1),
    "musicgen-stereo-small": (1024, 24, 16, 4096, 8, 2),
    "musicgen-stereo-medium": (1536, 48, 24, 6144, 8, 2),
    "musicgen-stereo-large": (2048, 48, 32, 8192, 8, 2),
    "tiny": (32, 3, 4, 64, 4, 1),
}
OFFICIAL_NAMES = tuple(n for n in _DECODERS if n != "tiny")


def _t5_base():
    from transformers import T5Config
    return T5Config(vocab_size=32128, d_model=768, d_kv=64, d_ff=3072, num_layers=12, num_heads=12,
                    relative_attention_num_buckets=32, dropout_rate=0.1, feed_forward_proj="relu",
                    is_encoder_decoder=True, tie_word_embeddings=True)


def _encodec_32khz(audio_channels: int = 1):
    from transformers import EncodecConfig
    # EnCodec 32 kHz as released with MusicGen: 50 Hz frames, 4 codebooks of 2048 entries.
    return EncodecConfig(sampling_rate=32000, audio_channels=1, num_filters=64, upsampling_ratios=[8, 5, 4, 4],
                         codebook_size=2048, codebook_dim=128, hidden_size=128, target_bandwidths=[2.2],
                         num_lstm_layers=2, kernel_size=7, last_kernel_size=7, residual_kernel_size=3,
                         dilation_growth_rate=2, num_residual_layers=1, use_causal_conv=False, normalize=False,
                         pad_mode="reflect", compress=2, norm_type="weight_norm", use_conv_shortcut=False,
                         trim_right_ratio=1.0, chunk_length_s=None, overlap=None)


def _tiny_encoders():
    from transformers import EncodecConfig, T5Config
    text = T5Config(vocab_size=128, d_model=16, d_kv=8, d_ff=32, num_layers=1, num_heads=2,
                    is_encoder_decoder=True, decoder_start_token_id=0)
    audio = EncodecConfig(sampling_rate=32000, audio_channels=1, num_filters=4, upsampling_ratios=[8, 5, 4, 4],
                          codebook_size=64, codebook_dim=16, hidden_size=16, target_bandwidths=[1.2],  # 4 x 6 bits
                          num_lstm_layers=1, num_residual_layers=1, use_causal_conv=False, normalize=False,
                          chunk_length_s=None, overlap=None)
    return text, audio


def musicgen_config(name: str):
    """A `MusicgenConfig` for one of `OFFICIAL_NAMES` (facebook/<name>) or ``tiny``."""
    from transformers import MusicgenConfig, MusicgenDecoderConfig
    short = name.split("/")[-1]
    if short not in _DECODERS:
        raise BadInputError(f"no built-in config {name!r}: use one of {sorted(_DECODERS)}")
    hidden, layers, heads, ffn, codebooks, channels = _DECODERS[short]
    if short == "tiny":
        text, audio = _tiny_encoders()
        vocab = audio.codebook_size
    else:
        text, audio, vocab = _t5_base(), _encodec_32khz(), 2048
    decoder = MusicgenDecoderConfig(
        vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, ffn_dim=ffn,
        num_codebooks=codebooks, audio_channels=channels, max_position_embeddings=2048, dropout=0.1,
        activation_function="gelu", pad_token_id=vocab, bos_token_id=vocab, scale_embedding=False,
        tie_word_embeddings=False)
    config = MusicgenConfig(text_encoder=text.to_dict(), audio_encoder=audio.to_dict(), decoder=decoder.to_dict())
    config.decoder_start_token_id = vocab
    config.pad_token_id = vocab
    return config


def char_tokenizer(vocab_size: int = 128):
    """A character-level T5-style tokenizer (pad=0, eos=1, unk=2) built offline for random models."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast
    chars = [c for c in string.printable if c not in "\t\n\r\x0b\x0c"]
    vocab = {"<pad>": 0, "</s>": 1, "<unk>": 2}
    for c in chars[: vocab_size - 3]:
        vocab.setdefault(c, len(vocab))
    tok = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(single="$A </s>", special_tokens=[("</s>", 1)])
    return PreTrainedTokenizerFast(tokenizer_object=tok, pad_token="<pad>", eos_token="</s>", unk_token="<unk>")


def random_processor(sample_rate_hz: int = 32000, audio_channels: int = 1):
    from transformers import EncodecFeatureExtractor, MusicgenProcessor
    fe = EncodecFeatureExtractor(feature_size=audio_channels, sampling_rate=sample_rate_hz, padding_value=0.0)
    return MusicgenProcessor(feature_extractor=fe, tokenizer=char_tokenizer())
