"""Prefix tuning (Li & Liang 2021): trainable keys/values in every layer."""

from promptopt.prefixes.prefix_file import PrefixFile
from promptopt.prefixes.prefix_initializers import bind_prefix
from promptopt.prefixes.prefix_initializers import initial_prefix
from promptopt.prefixes.prefix_initializers import prefix_shape
from promptopt.prefixes.prefix_initializers import real_word_prefix
from promptopt.prefixes.prefix_layer import KeyValuePrefix
from promptopt.prefixes.prefix_mlp import PrefixMLP
from promptopt.prefixes.prefix_model import PrefixModel
from promptopt.prefixes.prefixed_decoder_only import PrefixedDecoderOnlyAdapter
from promptopt.prefixes.prefixed_t5 import T5_SITES
from promptopt.prefixes.prefixed_t5 import PrefixedT5Adapter

__all__ = [
    "KeyValuePrefix",
    "PrefixFile",
    "PrefixMLP",
    "PrefixModel",
    "PrefixedDecoderOnlyAdapter",
    "PrefixedT5Adapter",
    "T5_SITES",
    "bind_prefix",
    "initial_prefix",
    "prefix_shape",
    "real_word_prefix",
]
