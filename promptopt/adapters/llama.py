"""Llama family (Llama 2/3, SmolLM2, Mistral): RoPE lives inside attention."""

import keras_hub

from promptopt.adapters.decoder_only import DecoderOnlyAdapter


class LlamaAdapter(DecoderOnlyAdapter):
    """Adapter for `LlamaBackbone`, `Llama3Backbone` and `MistralBackbone`.

    There is no position layer: rotary embeddings are applied to queries and
    keys inside each attention layer from the sequence index, so the prompt
    simply takes indices `0..P-1`. The K/V cache has `num_key_value_heads`
    heads (grouped-query attention: SmolLM2 has 9 query and 3 K/V heads).

    Args:
        backbone: a Llama-family backbone.
    """

    backbone_classes = (
        keras_hub.models.LlamaBackbone,  # Llama3Backbone subclasses it.
        keras_hub.models.MistralBackbone,
    )

    def _cache_heads_and_dim(self):
        bb = self.backbone
        return bb.num_key_value_heads, bb.hidden_dim // bb.num_query_heads
