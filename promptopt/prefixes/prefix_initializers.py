"""Initial prefixes: the keys and values of real words (Li & Liang 2021)."""

import numpy as np
from keras import ops

from promptopt.prefixes.prefixed_decoder_only import PrefixedDecoderOnlyAdapter
from promptopt.prefixes.prefixed_t5 import T5_SITES
from promptopt.prefixes.prefixed_t5 import PrefixedT5Adapter


def prefix_shape(adapter, prefix_length, sites=None):
    """`(L, 2, P, N, D)` of a prefix for `adapter`'s backbone."""
    if adapter.is_encoder_decoder:
        return PrefixedT5Adapter.prefix_shape(adapter, prefix_length, sites or T5_SITES)
    return PrefixedDecoderOnlyAdapter.prefix_shape(adapter, prefix_length)


def bind_prefix(adapter, prefix, sites=None):
    """`adapter` with `prefix` `[(B,) L, 2, P, N, D]` in its attention layers."""
    if adapter.is_encoder_decoder:
        return PrefixedT5Adapter(adapter, prefix, sites or T5_SITES)
    return PrefixedDecoderOnlyAdapter(adapter, prefix)


def real_word_prefix(adapter, token_ids, sites=None):
    """The prefix that stands for `token_ids` `[P]`: their keys and values.

    Decoder-only models: the per-layer keys and values of a forward pass
    over the tokens, so that this prefix in front of any text gives exactly
    the logits of the tokens written before it. T5: the encoder's
    self-attention keys/values of the tokens, the decoder's self-attention
    keys/values when it reads the tokens (with the tokens as encoder input)
    and its cross-attention keys/values of their encoder states.

    Returns:
        numpy `[L, 2, P, N, D]`.
    """
    ids = np.asarray(token_ids, "int32")[None]  # [1, P]
    empty = np.zeros(prefix_shape(adapter, 0, sites), "float32")
    embeddings = adapter.embed_tokens(ids)
    if not adapter.is_encoder_decoder:
        cache = PrefixedDecoderOnlyAdapter(adapter, empty).key_values(embeddings)
        return np.asarray(ops.convert_to_numpy(cache))[0]
    every_site = np.zeros(prefix_shape(adapter, 0, T5_SITES), "float32")
    t5 = PrefixedT5Adapter(adapter, every_site, T5_SITES)
    mask = np.ones_like(ids)
    encoded, encoder_kv = t5.encode_with_key_values(embeddings, mask)
    _, (decoder_kv, cross_kv) = t5.decode_with_key_values(ids, mask, encoded, mask)
    by_site = {"encoder": encoder_kv, "decoder": decoder_kv, "cross": cross_kv}
    chosen = [np.asarray(ops.convert_to_numpy(by_site[s]))[0] for s in sites or T5_SITES]
    return np.concatenate(chosen, axis=0)


def initial_prefix(spec, adapter, prefix_length, sites=None, tokenize=None, seed=0):
    """An initial prefix `[L, 2, P, N, D]` from a spec.

    Args:
        spec: `"vocab"`: P token ids sampled from the first 5,000 of the
            vocabulary (frequent tokens in BPE vocabularies), as one sequence;
            `"text:<words>"`: the tokens of the words, repeated or cut to P;
            `"random"`: Gaussian with the spread of real words' keys/values
            per layer (Li & Liang found real words better); `"zeros"`; or an
            array `[L, 2, P, N, D]`.
        adapter: the backbone's `BackboneAdapter`.
        prefix_length: int, P.
        sites: T5 attention sites (see `PrefixedT5Adapter`).
        tokenize: str -> list of ids, needed for `"text:"`.
        seed: int.
    """
    shape = prefix_shape(adapter, prefix_length, sites)
    if not isinstance(spec, str):
        value = np.asarray(spec, "float32")
        if value.shape != shape:
            raise ValueError(
                f"Initial prefix has shape {value.shape}; this model needs "
                f"[L, 2, P, N, D] = {shape}."
            )
        return value
    if prefix_length == 0 or spec == "zeros":
        return np.zeros(shape, "float32")
    rng = np.random.default_rng(seed)
    vocab_ids = lambda: rng.choice(
        min(5000, adapter.vocabulary_size), size=prefix_length, replace=False
    )
    if spec == "vocab":
        return real_word_prefix(adapter, vocab_ids(), sites)
    if spec == "random":
        words = real_word_prefix(adapter, vocab_ids(), sites)
        std = words.std(axis=(1, 2, 3, 4), keepdims=True)  # per layer
        return (rng.normal(size=shape) * std).astype("float32")
    if spec.startswith("text:"):
        if tokenize is None:
            raise ValueError(
                "The 'text:' prefix initializer needs a tokenizer; pass "
                "tokenizer= to PrefixModel."
            )
        ids = list(tokenize(spec[len("text:") :]))
        if not ids:
            raise ValueError(f"{spec!r} has no tokens; give some words after 'text:'.")
        ids = (ids * (prefix_length // len(ids) + 1))[:prefix_length]
        return real_word_prefix(adapter, ids, sites)
    raise ValueError(
        f"Unknown prefix initializer {spec!r}. Use 'vocab', 'random', "
        "'zeros', 'text:<words>' or an array [L, 2, P, N, D]."
    )
