"""Shared wiring of decoder-only families (GPT-2, Llama, Gemma)."""

from keras import ops

from promptopt.adapters.base import BackboneAdapter


class DecoderOnlyAdapter(BackboneAdapter):
    """Base for decoder-only families whose layers take a K/V cache.

    Subclasses say how embeddings enter the stack (`_pre_stack`) and how
    many K/V heads the cache has. Layers are called the way keras-hub's
    `TransformerDecoder` and `LlamaDecoder` take them (`decoder_padding_mask`,
    `self_attention_cache`); a family whose layers differ overrides
    `_call_layer` and `_call_layer_with_cache`.
    """

    def _pre_stack(self, embeddings, start_index):
        """Embeddings `[B, S, H]` -> input of the first transformer layer."""
        return embeddings

    def _call_layer(self, layer, x, padding_mask):
        return layer(x, decoder_padding_mask=padding_mask, training=False)

    def _call_layer_with_cache(self, layer, x, cache, cache_update_index):
        return layer(
            x,
            self_attention_cache=cache,
            self_attention_cache_update_index=cache_update_index,
            training=False,
        )

    def _cache_heads_and_dim(self):
        raise NotImplementedError

    def decode(self, embeddings, padding_mask):
        x = self._pre_stack(embeddings, start_index=0)
        for layer in self.backbone.transformer_layers:
            x = self._call_layer(layer, x, padding_mask)
        return self.backbone.layer_norm(x, training=False)

    def cache_shape(self, batch_size, length):
        heads, head_dim = self._cache_heads_and_dim()
        num_layers = len(self.backbone.transformer_layers)
        return (batch_size, num_layers, 2, length, heads, head_dim)

    def decode_with_cache(self, embeddings, cache, cache_update_index):
        x = self._pre_stack(embeddings, start_index=cache_update_index)
        caches = []
        for i, layer in enumerate(self.backbone.transformer_layers):
            x, layer_cache = self._call_layer_with_cache(
                layer, x, cache[:, i, ...], cache_update_index
            )
            caches.append(layer_cache)
        hidden = self.backbone.layer_norm(x, training=False)
        return hidden, ops.stack(caches, axis=1)
