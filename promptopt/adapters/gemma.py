"""Gemma: embeddings are scaled by sqrt(H) before the first layer."""

import keras_hub
from keras import ops

from promptopt.adapters.decoder_only import DecoderOnlyAdapter


class GemmaAdapter(DecoderOnlyAdapter):
    """Adapter for `keras_hub.models.GemmaBackbone` (Gemma 1).

    The prompt lives in the same space as the embedding rows; the sqrt(H)
    scale that Gemma applies to token embeddings is applied to the prompt
    too, so a prompt initialized from vocabulary rows behaves like text.

    Args:
        backbone: a `GemmaBackbone`.
    """

    backbone_classes = (keras_hub.models.GemmaBackbone,)

    def _pre_stack(self, embeddings, start_index):
        scale = ops.sqrt(ops.cast(self.backbone.hidden_dim, embeddings.dtype))
        return embeddings * scale

    def _call_layer(self, layer, x, padding_mask):
        return layer(x, padding_mask=padding_mask)

    def _call_layer_with_cache(self, layer, x, cache, cache_update_index):
        return layer(x, cache=cache, cache_update_index=cache_update_index)

    def _cache_heads_and_dim(self):
        bb = self.backbone
        return bb.num_key_value_heads, bb.head_dim

    def token_logits(self, hidden):
        logits = super().token_logits(hidden)
        # Gemma 2 caps its final logits: cap * tanh(logits / cap).
        cap = getattr(self.backbone, "final_logit_soft_cap", None)
        if cap:
            logits = ops.tanh(logits / cap) * cap
        return logits
