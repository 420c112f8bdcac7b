"""Tiny random keras-hub backbones and byte-level tokenizers for unit tests.

Nothing here is downloaded: the tokenizers hold every byte as a token plus a
few merges, so they tokenize any text, and the backbones are a few thousand
random parameters.
"""

import keras
import keras_hub
import numpy as np

# Whole words that become single tokens through merges, so tests have
# single-token label words (" great") next to multi-token ones.
MERGED_WORDS = (" great", " terrible", " good", " bad", " It", " was")



def _gpt2_byte_encoder():
    # GPT-2's reversible byte -> printable-unicode map (Radford et al. 2019).
    printable = (
        list(range(ord("!"), ord("~") + 1))
        + list(range(ord("\u00a1"), ord("\u00ac") + 1))
        + list(range(ord("\u00ae"), ord("\u00ff") + 1))
    )
    codes = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            codes.append(256 + extra)
            extra += 1
    return {byte: chr(code) for byte, code in zip(printable, codes)}


def tiny_bpe_vocabulary(specials=("<|endoftext|>",)):
    """Returns `(vocabulary, merges)` covering all bytes plus merged words."""
    byte_encoder = _gpt2_byte_encoder()
    vocabulary = {}
    for token in specials:
        vocabulary[token] = len(vocabulary)
    for byte in range(256):
        vocabulary.setdefault(byte_encoder[byte], len(vocabulary))
    merges = []
    for word in MERGED_WORDS:
        symbols = [byte_encoder[b] for b in word.encode("utf-8")]
        while len(symbols) > 1:
            merge = f"{symbols[0]} {symbols[1]}"
            if merge not in merges:
                merges.append(merge)
            symbols = [symbols[0] + symbols[1]] + symbols[2:]
            vocabulary.setdefault(symbols[0], len(vocabulary))
    return vocabulary, merges


def _rescale_weights(backbone, seed):
    """Redraws a tiny random backbone at the scale of a trained model.

    keras-hub initializes GPT-2 and Llama for training at scale (std 0.02
    kernels, 0.01 embeddings). At hidden size 16 that leaves attention
    nearly uniform, the residual stream dominated by the current token and
    the logits nearly flat, so a prompt has no leverage and nothing can be
    learned through it. Unit-scale embedding rows and kernels with std
    1/sqrt(fan_in) make tokens, prompt and logits matter as in a real model.
    """
    rng = np.random.default_rng(seed)
    for weight in backbone.weights:
        if "embeddings" in weight.path and "position" not in weight.path:
            std = 1.0
        elif len(weight.shape) >= 2:
            std = 1.0 / np.sqrt(weight.shape[0])
        else:
            continue
        weight.assign((rng.normal(size=weight.shape) * std).astype("float32"))
    return backbone


def tiny_gpt2(vocabulary_size=None, hidden_dim=16, seed=0):
    vocabulary, merges = tiny_bpe_vocabulary()
    tokenizer = keras_hub.models.GPT2Tokenizer(
        vocabulary=vocabulary, merges=merges
    )
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary_size or len(vocabulary),
        num_layers=2,
        num_heads=2,
        hidden_dim=hidden_dim,
        intermediate_dim=32,
        max_sequence_length=128,
        dropout=0.1,
    )
    return _rescale_weights(backbone, seed), tokenizer


def tiny_llama(hidden_dim=16, seed=0):
    specials = ("<pad>", "<s>", "</s>")
    vocabulary, merges = tiny_bpe_vocabulary(specials)
    tokenizer = keras_hub.models.Llama3Tokenizer(
        vocabulary=vocabulary,
        merges=merges,
        bos_token="<s>",
        eos_token="</s>",
        misc_special_tokens=set(),
    )
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.Llama3Backbone(
        vocabulary_size=len(vocabulary),
        num_layers=2,
        num_query_heads=4,
        num_key_value_heads=2,  # grouped-query attention, like SmolLM2
        hidden_dim=hidden_dim,
        intermediate_dim=32,
        rope_max_wavelength=10000,
        tie_word_embeddings=True,
    )
    return _rescale_weights(backbone, seed), tokenizer


def tiny_t5(vocabulary_size=300, hidden_dim=16, seed=0):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.T5Backbone(
        vocabulary_size=vocabulary_size,
        num_layers=2,
        num_heads=2,
        hidden_dim=hidden_dim,
        intermediate_dim=32,
        key_value_dim=8,
        dropout=0.1,
        tie_embedding_weights=True,
    )
    return _rescale_weights(backbone, seed)
