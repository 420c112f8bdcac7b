"""Prefix tuning for decoder-only families through keras-hub's K/V cache."""

from keras import ops

from promptopt.prefixes.prefixed_adapter import PrefixedAdapter


def batched_prefix(prefix, batch):
    """`[L, 2, P, N, D]` (shared) or `[B, L, 2, P, N, D]` -> `[B, L, 2, P, N, D]`."""
    if len(prefix.shape) == 6:
        return prefix
    return ops.broadcast_to(prefix[None], (batch,) + tuple(prefix.shape))


class PrefixedDecoderOnlyAdapter(PrefixedAdapter):
    """A decoder-only adapter whose every attention layer sees a K/V prefix.

    Prefix tuning (Li & Liang 2021, Sec. 4.2) prepends `P` trainable
    key/value vectors to the keys and values of every layer:
    `h_i = LM(z_i, h_<i)` where `h_i = P[:, i]` for `i < P`. keras-hub's
    attention layers already read past keys and values from a cache
    `[B, 2, P + S, N, D]` (N = K/V heads, D = head dim); putting the prefix
    in its first `P` slots and writing the text from slot `P` gives exactly
    that computation. The text takes positions `P..P+S-1` (GPT-2's learned
    positions and Llama's rotary angles), as if the prefix were `P` tokens
    of text, so a prefix made of real tokens' keys and values reproduces the
    logits of prepending those tokens (FIELD_NOTES: exact for GPT-2 and
    grouped-query Llama).

    It offers the `BackboneAdapter` interface, so the tasks and
    `CachedGenerator` run unchanged with a prefix bound in; pass them a
    zero-length prompt. Padding must be on the right (as for
    `BackboneAdapter.decode`): then the causal mask alone keeps every real
    position from reading padding, so no padding mask is passed (keras-hub
    rejects `decoder_padding_mask` together with a cache).

    Args:
        adapter: a `DecoderOnlyAdapter` (GPT-2, Llama family, Gemma).
        prefix: `[L, 2, P, N, D]` tensor, or `[B, L, 2, P, N, D]` for one
            prefix per row; `[:, 0]` holds keys, `[:, 1]` values, as stored
            in keras-hub's cache (keys after RoPE for Llama).

    Example:
    ```python
    adapter = PrefixedDecoderOnlyAdapter(adapter_for(backbone), prefix)
    scores = task(adapter, np.zeros((0, adapter.hidden_dim)), inputs)
    ```
    """

    is_encoder_decoder = False

    @staticmethod
    def prefix_shape(adapter, prefix_length):
        """`(L, 2, P, N, D)` for `adapter`'s backbone."""
        return tuple(adapter.cache_shape(1, int(prefix_length))[1:])

    def decode(self, embeddings, padding_mask):
        """`[B, S, H]` -> `[B, S, H]`, reading the prefix in every layer."""
        batch, length = ops.shape(embeddings)[0], ops.shape(embeddings)[1]
        prefix = ops.cast(batched_prefix(self.prefix, batch), embeddings.dtype)
        empty = ops.zeros(
            (batch,) + tuple(prefix.shape[1:3]) + (length,) + tuple(prefix.shape[4:]),
            dtype=embeddings.dtype,
        )
        cache = ops.concatenate([prefix, empty], axis=3)
        hidden, _ = self.adapter.decode_with_cache(
            embeddings, cache, self.prefix_length
        )
        return hidden

    def cache_shape(self, batch_size, length):
        """The inner cache shape with `P` more slots in front."""
        return self.adapter.cache_shape(batch_size, self.prefix_length + length)

    def decode_with_cache(self, embeddings, cache, cache_update_index):
        """`cache_update_index` counts text positions, the prefix excluded.

        The first call (the seed pass, a Python int index 0, as
        `CachedGenerator` and keras-hub make it) writes the prefix into the
        cache's first `P` slots; later calls, e.g. inside keras-hub's
        sampling loop, find it there.
        """
        if not ops.is_tensor(cache_update_index) and cache_update_index == 0:
            batch = ops.shape(embeddings)[0]
            prefix = ops.cast(batched_prefix(self.prefix, batch), cache.dtype)
            cache = ops.concatenate(
                [prefix, cache[:, :, :, self.prefix_length :]], axis=3
            )
        return self.adapter.decode_with_cache(
            embeddings, cache, cache_update_index + self.prefix_length
        )

    def key_values(self, embeddings):
        """Keys and values of a forward pass, `[B, L, 2, P + S, N, D]`.

        Slots `P..P+S-1` hold the keys and values of the `S` positions, i.e.
        the prefix that stands for them (Li & Liang's initialization from
        real words); the first `P` slots hold the bound prefix itself.
        """
        batch, length = ops.shape(embeddings)[0], ops.shape(embeddings)[1]
        cache = ops.zeros(self.cache_shape(batch, length), embeddings.dtype)
        _, cache = self.decode_with_cache(embeddings, cache, 0)
        return cache
