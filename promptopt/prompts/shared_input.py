"""A suffix prompt run against a shared pass over the input (BBT's fast path).

With the prompt after the input, `[x; prompt]`, causal attention makes the
keys and values of x independent of the prompt: they are computed once
(`suffix_input_caches`) and each candidate then runs only its P prompt
vectors against them (`suffix_answer_states`). `SharedInputEvaluator`
(local) and the server's population scoring (`ScoringEngine`) both run
these functions, so their losses agree bit for bit; this module imports
neither of them.
"""

import numpy as np
from keras import ops

from promptopt.adapters.llama import LlamaAdapter


def left_align(token_ids, padding_mask):
    """Numpy `[B, T]` rows with their real tokens moved to the end."""
    token_ids = np.asarray(token_ids)
    padding_mask = np.asarray(padding_mask).astype("int32")
    ids = np.zeros_like(token_ids)
    mask = np.zeros_like(padding_mask)
    for row in range(len(ids)):
        real = token_ids[row][padding_mask[row] == 1]
        if len(real):
            ids[row, -len(real) :] = real
            mask[row, -len(real) :] = 1
    return ids, mask


def supports_shared_input(adapter):
    """Whether a suffix prompt can run against a shared, left-padded input.

    Llama-family models only: rotary positions depend on relative offsets,
    so the pads in front of a left-aligned row change nothing.
    """
    return isinstance(adapter, LlamaAdapter)


def suffix_input_caches(adapter, token_ids, padding_mask, prompt_length):
    """Per-layer K/V caches `[B, 2, T + P, kv_heads, head_dim]` of the inputs.

    One pass over the left-aligned inputs `[B, T]` (`left_align`) through
    all L layers, leaving the P slots after them empty for a suffix prompt
    (`suffix_answer_states`). `SharedInputEvaluator` and the server's
    population scoring both call this, so their caches are the same.
    """
    backbone = adapter.backbone
    x = adapter.embed_tokens(token_ids)  # [B, T, H]
    batch, length = ops.shape(x)[0], ops.shape(x)[1]
    p = prompt_length
    heads = backbone.num_key_value_heads
    head_dim = backbone.hidden_dim // backbone.num_query_heads
    keys = ops.concatenate(
        [ops.cast(padding_mask, "int32"), ops.zeros((batch, p), "int32")], axis=1
    )  # the prompt's slots stay empty in this pass
    attention = ops.broadcast_to(keys[:, None, :], (batch, length, length + p))
    caches = []
    for layer in backbone.transformer_layers:
        cache = ops.zeros((batch, 2, length + p, heads, head_dim), dtype=x.dtype)
        x, cache = layer(
            x,
            decoder_attention_mask=attention,
            self_attention_cache=cache,
            self_attention_cache_update_index=0,
            training=False,
        )
        caches.append(cache)
    return caches


def suffix_answer_states(adapter, prompt, caches, padding_mask):
    """Final hidden states `[B, H]` at the last of P prompt vectors `[P, H]`.

    Runs only the prompt's `B * P` rows, against the inputs' caches from
    `suffix_input_caches`; `padding_mask` `[B, T]` is the left-aligned one
    the caches were computed from.
    """
    backbone = adapter.backbone
    batch, length = ops.shape(padding_mask)[0], ops.shape(padding_mask)[1]
    p = ops.shape(prompt)[0]
    dtype = caches[0].dtype
    x = ops.broadcast_to(ops.cast(prompt, dtype)[None], (batch, p, ops.shape(prompt)[-1]))
    keys = ops.concatenate(
        [ops.cast(padding_mask, "int32"), ops.ones((batch, p), "int32")], axis=1
    )
    attention = ops.broadcast_to(keys[:, None, :], (batch, p, length + p))
    for layer, cache in zip(backbone.transformer_layers, caches):
        x, _ = layer(
            x,
            decoder_attention_mask=attention,
            self_attention_cache=cache,
            self_attention_cache_update_index=length,
            training=False,
        )
    # The answer is read at the last prompt vector.
    return backbone.layer_norm(x[:, -1, :], training=False)
