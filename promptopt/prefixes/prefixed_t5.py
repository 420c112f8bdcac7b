"""Prefix tuning for T5: encoder self-, decoder self- and cross-attention."""

from keras import ops

from promptopt.prefixes.prefixed_adapter import PrefixedAdapter
from promptopt.prefixes.prefixed_decoder_only import batched_prefix

T5_SITES = ("encoder", "decoder", "cross")


class PrefixedT5Adapter(PrefixedAdapter):
    """A `T5Adapter` whose attention layers see K/V prefixes.

    Li & Liang (2021, Sec. 4.2) prefix an encoder-decoder model on both
    sides: `z = [PREFIX; x; PREFIX'; y]`, so the encoder's self-attention,
    the decoder's self-attention and (through the encoder states it reads)
    the decoder's cross-attention all see trained keys and values. Here each
    of these attention *sites* gets its own `P` keys and values per layer,
    written into the first `P` slots of keras-hub's T5 attention cache;
    `sites` picks which (PEFT, for comparison, prefixes the decoder only).
    The prefix tensor stacks the chosen sites' layers along its first axis,
    in the order encoder layers, decoder self-attention layers, decoder
    cross-attention layers: `L = len(sites) * num_layers`.

    Queries and keys of the real tokens start at position `P`, so T5's
    relative position buckets treat the prefix as `P` earlier positions
    and the identity "prefix of real tokens' keys/values == those tokens as
    text" holds exactly on the encoder side.

    Args:
        adapter: a `T5Adapter`.
        prefix: `[L, 2, P, N, D]` or `[B, L, 2, P, N, D]` (N heads, D
            `key_value_dim`).
        sites: tuple, a subset of `("encoder", "decoder", "cross")`.

    Example:
    ```python
    adapter = PrefixedT5Adapter(adapter_for(t5), prefix, sites=("encoder",))
    encoded = adapter.encode(embeddings, padding_mask)
    ```
    """

    is_encoder_decoder = True

    def __init__(self, adapter, prefix, sites=T5_SITES):
        super().__init__(adapter, prefix)
        self.sites = tuple(sites)
        expected = self.prefix_shape(adapter, self.prefix_length, self.sites)
        if tuple(prefix.shape[-5:]) != expected:
            raise ValueError(
                f"A T5 prefix for sites {self.sites} has shape [L, 2, P, N, D] "
                f"= {expected}, got {tuple(prefix.shape)}. Build it with "
                "PrefixedT5Adapter.prefix_shape(adapter, P, sites)."
            )

    @staticmethod
    def prefix_shape(adapter, prefix_length, sites=T5_SITES):
        bb = adapter.backbone
        attention = bb.encoder_transformer_layers[0].self_attention
        layers = len(bb.encoder_transformer_layers)
        return (
            len(tuple(sites)) * layers,
            2,
            int(prefix_length),
            attention.num_heads,
            attention.key_value_dim,
        )

    @property
    def decoder_start_token_id(self):
        return self.adapter.decoder_start_token_id

    def _site(self, name, batch, dtype):
        """The prefix of one site, `[B, layers, 2, P, N, D]`, or None."""
        if name not in self.sites:
            return None
        layers = len(self.backbone.encoder_transformer_layers)
        start = self.sites.index(name) * layers
        prefix = ops.cast(batched_prefix(self.prefix, batch), dtype)
        return prefix[:, start : start + layers]

    def _cache(self, site_prefix, layer, length):
        """Layer `layer`'s cache `[B, 2, P + length, N, D]`, prefix in front."""
        prefix = site_prefix[:, layer]
        shape = ops.shape(prefix)
        empty = ops.zeros(
            (shape[0], 2, length, shape[3], shape[4]), dtype=prefix.dtype
        )
        return ops.concatenate([prefix, empty], axis=2)

    def _prefixed_mask(self, mask, prefixed):
        """`[B, S]` -> `[B, 1, (P +) S]`: the prefix is always attended."""
        mask = ops.cast(mask, "int32")
        if prefixed:
            ones = ops.ones((ops.shape(mask)[0], self.prefix_length), "int32")
            mask = ops.concatenate([ones, mask], axis=1)
        return mask[:, None, :]

    def encode(self, embeddings, padding_mask):
        """Encoder embeddings `[B, S, H]` + mask `[B, S]` -> `[B, S, H]`."""
        encoded, _ = self.encode_with_key_values(embeddings, padding_mask)
        return encoded

    def encode_with_key_values(self, embeddings, padding_mask):
        """Also returns each encoder layer's cache `[B, layers, 2, (P +) S, N, D]`

        (None when the encoder is not prefixed). Its last `S` slots are the
        keys and values of the input positions.
        """
        bb = self.backbone
        batch, length = ops.shape(embeddings)[0], ops.shape(embeddings)[1]
        site = self._site("encoder", batch, embeddings.dtype)
        x = bb.encoder_embedding_dropout(embeddings, training=False)
        mask = self._prefixed_mask(padding_mask, site is not None)
        position_bias, caches = None, []
        for i, layer in enumerate(bb.encoder_transformer_layers):
            if site is None:
                x, position_bias = layer(
                    x,
                    attention_mask=mask,
                    position_bias=position_bias,
                    use_causal_mask=False,
                    training=False,
                )
                continue
            x, position_bias, cache, _ = layer(
                x,
                attention_mask=mask,
                position_bias=position_bias,
                use_causal_mask=False,
                self_attention_cache=self._cache(site, i, length),
                self_attention_cache_update_index=self.prefix_length,
                training=False,
            )
            caches.append(cache)
        x = bb.encoder_layer_norm(x, training=False)
        x = bb.encoder_dropout(x, training=False)
        return x, (ops.stack(caches, axis=1) if caches else None)

    def decode_from_encoder(
        self, decoder_token_ids, decoder_padding_mask, encoded, encoder_mask
    ):
        """Teacher-forced decoder pass `[B, U]` -> `[B, U, H]` with prefixes."""
        hidden, _ = self.decode_with_key_values(
            decoder_token_ids, decoder_padding_mask, encoded, encoder_mask
        )
        return hidden

    def decode_with_key_values(
        self, decoder_token_ids, decoder_padding_mask, encoded, encoder_mask
    ):
        """Also returns the decoder caches `(self, cross)`, each
        `[B, layers, 2, (P +) length, N, D]` or None."""
        bb = self.backbone
        batch = ops.shape(encoded)[0]
        target_length = ops.shape(decoder_token_ids)[1]
        source_length = ops.shape(encoded)[1]
        x = bb.token_embedding(decoder_token_ids)
        x = bb.decoder_embedding_dropout(x, training=False)
        self_site = self._site("decoder", batch, x.dtype)
        cross_site = self._site("cross", batch, x.dtype)
        self_mask = self._prefixed_mask(decoder_padding_mask, self_site is not None)
        cross_mask = self._prefixed_mask(encoder_mask, cross_site is not None)
        position_bias, self_caches, cross_caches = None, [], []
        for i, layer in enumerate(bb.decoder_transformer_layers):
            kwargs = {}
            if self_site is not None:
                kwargs.update(
                    self_attention_cache=self._cache(self_site, i, target_length),
                    self_attention_cache_update_index=self.prefix_length,
                )
            if cross_site is not None:
                kwargs.update(
                    cross_attention_cache=self._cache(cross_site, i, source_length),
                    cross_attention_cache_update_index=self.prefix_length,
                )
            outputs = layer(
                x,
                attention_mask=self_mask,
                position_bias=position_bias,
                encoder_hidden_states=encoded,
                encoder_attention_mask=cross_mask,
                use_causal_mask=True,
                training=False,
                **kwargs,
            )
            x, position_bias = outputs[0], outputs[1]
            if self_site is not None:
                self_caches.append(outputs[2])
                if cross_site is not None:
                    cross_caches.append(outputs[3])
        x = bb.decoder_layer_norm(x, training=False)
        x = bb.decoder_dropout(x, training=False)
        stack = lambda c: ops.stack(c, axis=1) if c else None
        return x, (stack(self_caches), stack(cross_caches))
