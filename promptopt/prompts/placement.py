"""Where the prompt goes: in front of the input embeddings."""

from keras import ops


def right_align(token_ids, padding_mask):
    """Moves every row's real tokens to the front (left padding -> right).

    With a prompt in front, left padding would put pad tokens between the
    prompt and the text and shift the text's positions (absolute positions
    in GPT-2, rotary angles in Llama, relative buckets in T5). Rolling each
    row so its first real token sits at index 0 makes the result independent
    of the padding side. Rows already right-padded are unchanged.

    Args:
        token_ids: `[B, T]` int.
        padding_mask: `[B, T]`, 1 for real tokens (one contiguous run).

    Returns:
        `(token_ids, padding_mask)`, both `[B, T]`, right-padded.
    """
    mask = ops.cast(padding_mask, "int32")
    length = ops.shape(mask)[1]
    first = ops.argmax(mask, axis=1)  # index of the first real token
    index = (ops.arange(length)[None, :] + first[:, None]) % length
    token_ids = ops.take_along_axis(token_ids, ops.cast(index, "int32"), axis=1)
    mask = ops.take_along_axis(mask, ops.cast(index, "int32"), axis=1)
    return token_ids, mask


def prepend_prompt(prompt, embeddings, padding_mask):
    """`[prompt; tokens]` and the matching mask.

    Args:
        prompt: `[P, H]` (one prompt for the batch) or `[B, P, H]` (one per
            row, e.g. several candidates scored in one batch).
        embeddings: `[B, T, H]`.
        padding_mask: `[B, T]`.

    Returns:
        `(x [B, P + T, H], mask [B, P + T])`.
    """
    batch = ops.shape(embeddings)[0]
    prompt = ops.cast(prompt, embeddings.dtype)
    if len(prompt.shape) == 2:
        prompt = ops.broadcast_to(
            prompt[None], (batch, prompt.shape[0], prompt.shape[1])
        )
    x = ops.concatenate([prompt, embeddings], axis=1)
    ones = ops.ones((batch, ops.shape(prompt)[1]), dtype=padding_mask.dtype)
    return x, ops.concatenate([ones, padding_mask], axis=1)
