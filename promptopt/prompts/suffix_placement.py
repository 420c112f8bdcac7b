"""Where the prompt goes: right after each row's text (a suffix prompt)."""

from keras import ops


def append_prompt(prompt, embeddings, padding_mask):
    """`[tokens; prompt; padding]` per row, and the matching mask.

    Row b becomes its `L_b` real tokens, then the `P` prompt vectors, then
    padding, so the prompt sits at positions `L_b .. L_b + P - 1` exactly as
    in an unpadded `[x; prompt]` (whatever the model's position encoding).
    With the prompt after the input, the input's hidden states do not depend
    on the prompt (causal attention), which is what lets a population of
    candidates share one pass over the input (`SharedInputEvaluator`).

    Args:
        prompt: `[P, H]` (one prompt for the batch) or `[B, P, H]`.
        embeddings: `[B, T, H]`, right-padded (see `right_align`).
        padding_mask: `[B, T]`, 1 for real tokens.

    Returns:
        `(x [B, T + P, H], mask [B, T + P])`. The last prompt vector of row
        b is at index `L_b + P - 1`, where a prefix prompt puts the last
        real token: the answer position is the same for both placements.
    """
    batch, length = ops.shape(embeddings)[0], ops.shape(embeddings)[1]
    prompt = ops.cast(prompt, embeddings.dtype)
    if len(prompt.shape) == 2:
        prompt = ops.broadcast_to(
            prompt[None], (batch, prompt.shape[0], prompt.shape[1])
        )
    prompt_length = ops.shape(prompt)[1]
    lengths = ops.sum(ops.cast(padding_mask, "int32"), axis=1)[:, None]  # [B, 1]
    i = ops.arange(length + prompt_length)[None, :]  # [1, T + P]
    # Index into [tokens; prompt]: the text below L_b, then prompt vector
    # (i - L_b), then a masked filler.
    source = ops.where(
        i < lengths,
        i,
        ops.where(i < lengths + prompt_length, length + i - lengths, 0),
    )
    both = ops.concatenate([embeddings, prompt], axis=1)  # [B, T + P, H]
    x = ops.take_along_axis(both, ops.cast(source, "int32")[:, :, None], axis=1)
    mask = ops.cast(i < lengths + prompt_length, padding_mask.dtype)
    return x, mask
