"""Tiny random keras-hub backbones and byte-level tokenizers for unit tests.

Nothing here is downloaded: the tokenizers hold every byte as a token plus a
few merges, so they tokenize any text, and the backbones are a few thousand
random parameters.
"""

import keras
import keras_hub

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
    return backbone, tokenizer


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
    return backbone, tokenizer


def tiny_t5(vocabulary_size=300, hidden_dim=16, seed=0):
    keras.utils.set_random_seed(seed)
    return keras_hub.models.T5Backbone(
        vocabulary_size=vocabulary_size,
        num_layers=2,
        num_heads=2,
        hidden_dim=hidden_dim,
        intermediate_dim=32,
        key_value_dim=8,
        dropout=0.1,
        tie_embedding_weights=True,
    )
