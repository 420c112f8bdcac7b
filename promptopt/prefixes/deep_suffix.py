"""Per-layer prompts placed after the input: only the text's tail reads them.

BBTv2 (Sun et al. 2022) and prefix tuning put per-layer keys and values in
front of the text, so every candidate prefix changes every position's
hidden states and each candidate costs a forward pass over the whole input
(`B * T` rows per layer). A *deep suffix* puts the same `[L, 2, P, N, D]`
keys and values after the input's head instead:

    layer l attends over  [ head x_1..x_{T-k} | prompt_l (P slots) | tail ]

where the tail is the last k tokens of every row (the template's end, e.g.
" It was"; its last token is the answer position). Causal attention makes
the head's keys and values independent of the prompt, so they are computed
once for a whole population (`head_caches`) and each candidate runs only
its `B * k` tail rows through the L layers (`tail_answer_states`): with
k = 2 and T about 60 that is about 30 times fewer rows per candidate than a
prefix in front.

Positions. Keys are stored after RoPE at positions 0..P-1, the convention
of `KeyValuePrefix` (a prefix in front occupies exactly those). Placed after
a head of T_h slots, every prompt key is rotated by T_h more
(`shift_key_positions`; rotations compose, R(a)R(b) = R(a + b)), so the
tail's queries see the prompt at the same relative offsets whatever the
head's length or the batch's padding: a row's scores do not depend on the
rows it is batched with (tested). A deep suffix made of real tokens' keys
and values, moved to positions 0..P-1, reproduces the full forward pass of
`[head; tokens; tail]` (tested). Rows are left-aligned for the shared pass;
rotary positions depend only on relative offsets, so the pads in front
change nothing. Llama-family backbones only (like `SharedInputEvaluator`).
"""

from keras import ops

from promptopt.prompts.shared_input import suffix_input_caches


def left_align_tensor(token_ids, padding_mask):
    """`[B, T]` right-padded rows -> the same rows with their tokens at the end.

    `keras.ops` only (works on symbolic and traced tensors, unlike the numpy
    `left_align`): row b with n real tokens takes token `(j + n) mod T` at
    position j, which puts the T - n pads first.
    """
    mask = ops.cast(padding_mask, "int32")
    length = ops.shape(token_ids)[1]
    real = ops.sum(mask, axis=1, keepdims=True)  # [B, 1]
    index = (ops.arange(length, dtype="int32")[None, :] + real) % length
    return (ops.take_along_axis(token_ids, index, axis=1),
            ops.take_along_axis(mask, index, axis=1))


def split_tail(token_ids, padding_mask, tail_length):
    """Left-aligned `[B, T]` -> head `[B, T-k]`, its mask, and tail ids `[B, k]`."""
    k = int(tail_length)
    return token_ids[:, :-k], padding_mask[:, :-k], token_ids[:, -k:]


def shift_key_positions(layer, keys, offset):
    """Keys `[B, P, N, D]` after RoPE at positions j -> the same at j + offset.

    `layer` is a keras-hub Llama decoder layer; its attention's own rotary
    embedding turns each key by `offset` more (each key a sequence of one).
    """
    rotary = layer._self_attention_layer.rotary_embedding_layer
    shape = ops.shape(keys)
    flat = ops.reshape(keys, (-1, 1, shape[2], shape[3]))
    return ops.reshape(rotary(flat, start_index=offset), shape)


def head_caches(adapter, head_ids, head_mask, prompt_length, tail_length):
    """Per-layer caches `[B, 2, T_h + P + k, N, D]` of the left-aligned heads.

    The P prompt slots and the k tail slots after the head stay empty; one
    pass, shared by every candidate of a population.
    """
    return suffix_input_caches(adapter, head_ids, head_mask, prompt_length + tail_length)


def tail_answer_states(adapter, prefix, caches, head_mask, tail_ids):
    """Final hidden states `[B, H]` at the last tail token.

    Args:
        adapter: the Llama-family adapter the caches came from.
        prefix: `[L, 2, P, N, D]` (one deep suffix for all rows) or
            `[B, L, 2, P, N, D]` (one per row); keys after RoPE at
            positions 0..P-1.
        caches: `head_caches` of the heads, L tensors `[B, 2, S, N, D]`.
        head_mask: `[B, T_h]` left-aligned mask of the heads.
        tail_ids: `[B, k]` the tails' token ids (real tokens).
    """
    backbone = adapter.backbone
    batch, head_length = ops.shape(head_mask)[0], ops.shape(head_mask)[1]
    dtype = caches[0].dtype
    per_row = len(prefix.shape) == 6
    p = ops.shape(prefix)[-3]
    k = ops.shape(tail_ids)[1]
    x = ops.cast(adapter.embed_tokens(tail_ids), dtype)  # [B, k, H]
    keys = ops.concatenate(
        [ops.cast(head_mask, "int32"), ops.ones((batch, p + k), "int32")], axis=1)
    # The layer adds the causal mask, so tail token i reads tail tokens <= i.
    attention = ops.broadcast_to(keys[:, None, :], (batch, k, head_length + p + k))
    for index, (layer, cache) in enumerate(zip(backbone.transformer_layers, caches)):
        layer_prefix = ops.cast(prefix[:, index] if per_row else ops.broadcast_to(
            prefix[index][None], (batch,) + tuple(prefix.shape[1:])), dtype)  # [B, 2, P, N, D]
        keys = shift_key_positions(layer, layer_prefix[:, 0], head_length)
        cache = ops.concatenate(
            [cache[:, :, :head_length], ops.stack([keys, layer_prefix[:, 1]], axis=1),
             cache[:, :, head_length + p:]], axis=2)
        x, _ = layer(
            x,
            decoder_attention_mask=attention,
            self_attention_cache=cache,
            self_attention_cache_update_index=head_length + p,
            training=False,
        )
    return backbone.layer_norm(x[:, -1, :], training=False)


def deep_suffix_answer_states(adapter, prefix, token_ids, padding_mask, tail_length):
    """`[B, H]` answer states of right-padded texts `[B, T]` with a deep suffix.

    The unshared path (`PrefixModel` with `placement="suffix"`): the same
    two functions a population evaluator calls, run for one prefix.
    """
    ids, mask = left_align_tensor(token_ids, padding_mask)
    head_ids, head_mask, tail_ids = split_tail(ids, mask, tail_length)
    p = ops.shape(prefix)[-3]
    caches = head_caches(adapter, head_ids, head_mask, p, tail_length)
    return tail_answer_states(adapter, prefix, caches, head_mask, tail_ids)
