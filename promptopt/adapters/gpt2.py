"""GPT-2: learned absolute positions are added after the prompt goes in."""

import keras_hub

from promptopt.adapters.decoder_only import DecoderOnlyAdapter


class GPT2Adapter(DecoderOnlyAdapter):
    """Adapter for `keras_hub.models.GPT2Backbone`.

    Positions are added to `[prompt; tokens]` as a whole, so the prompt takes
    positions `0..P-1` and the text starts at `P`, exactly as if the prompt
    were `P` tokens of text (FIELD_NOTES: re-wiring matches `backbone(...)`
    to max |diff| 0.0).

    Args:
        backbone: a `GPT2Backbone`.
    """

    backbone_classes = (keras_hub.models.GPT2Backbone,)

    def _pre_stack(self, embeddings, start_index):
        bb = self.backbone
        positions = bb.position_embedding(embeddings, start_index=start_index)
        x = bb.embeddings_add((embeddings, positions))
        return bb.embeddings_dropout(x, training=False)

    def _cache_heads_and_dim(self):
        bb = self.backbone
        return bb.num_heads, bb.hidden_dim // bb.num_heads
