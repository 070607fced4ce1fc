"""Build the teaching model's T5 tokenizer offline (a Unigram model trained on the prompt corpus).

The tokenizer is saved without any padding state (transformers#41598: a saved padding block
breaks `processor(audio=..., text=...)` after reload).

Example:
    >>> from workbench.toy.tokenizer import build_tokenizer
    >>> tok = build_tokenizer(vocab_size=200)
    >>> tok("calm jazz with saxophone").input_ids[-1] == tok.eos_token_id
    True
"""

from __future__ import annotations

from workbench.toy.prompts import prompt_corpus


def build_tokenizer(vocab_size: int = 256, seed: int = 0, factors: bool = False):
    """A `T5Tokenizer` whose vocabulary covers the prompt words (unknown words fall back to pieces).

    factors: also the factor words of teaching model v2 (`workbench.toy.prompts.FACTOR_WORDS`)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import T5Tokenizer

    if vocab_size < 64:
        raise ValueError(f"vocab_size must be at least 64 to cover the alphabet, got {vocab_size}")
    corpus = prompt_corpus(seed=seed, factors=factors)
    # Include every printable ASCII character so any English prompt tokenises without <unk>.
    corpus += [p.capitalize() for p in corpus[::4]]
    corpus += [" ".join("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'-:;()&/\"")] * 4
    sp = Tokenizer(models.Unigram())
    sp.pre_tokenizer = pre_tokenizers.Metaspace()
    trainer = trainers.UnigramTrainer(vocab_size=vocab_size, special_tokens=["<pad>", "</s>", "<unk>"],
                                      unk_token="<unk>", show_progress=False)
    sp.train_from_iterator(corpus, trainer=trainer)
    vocab = [(piece, score) for piece, score in sp.get_model_vocab()] if hasattr(sp, "get_model_vocab") \
        else _unigram_vocab(sp)
    # The trainer's order (and the scores of rare pieces, in the last digits) varies between runs:
    # order pieces alphabetically so the ids are reproducible (Unigram tokenises by score, not id).
    specials, rest = vocab[:3], sorted(vocab[3:])
    tok = T5Tokenizer(vocab=specials + rest, extra_ids=0)
    tok.model_max_length = 64
    return tok


def _unigram_vocab(sp) -> list[tuple[str, float]]:
    import json

    model = json.loads(sp.to_str())["model"]
    return [(piece, float(score)) for piece, score in model["vocab"]]
