"""T5: the prompt goes in front of the encoder input."""

import keras_hub
from keras import ops

from promptopt.adapters.base import BackboneAdapter


class T5Adapter(BackboneAdapter):
    """Adapter for `keras_hub.models.T5Backbone` (encoder-decoder).

    Following Lester et al. (2021), who tuned T5, the prompt is prepended to
    the *encoder* input: `encode([prompt; x])`. The decoder reads the encoder
    output through cross-attention and is otherwise untouched. T5 has no
    absolute positions (relative position buckets are computed inside the
    first attention layer), and with tied embeddings the decoder output is
    scaled by `H ** -0.5` before the LM head.

    Args:
        backbone: a `T5Backbone`.
    """

    backbone_classes = (keras_hub.models.T5Backbone,)
    is_encoder_decoder = True

    def encode(self, embeddings, padding_mask):
        """Encoder embeddings `[B, S, H]` + mask `[B, S]` -> `[B, S, H]`."""
        bb = self.backbone
        x = bb.encoder_embedding_dropout(embeddings, training=False)
        attention_mask = padding_mask[:, None, :]
        position_bias = None
        for layer in bb.encoder_transformer_layers:
            x, position_bias = layer(
                x,
                attention_mask=attention_mask,
                position_bias=position_bias,
                use_causal_mask=False,
                training=False,
            )
        x = bb.encoder_layer_norm(x, training=False)
        return bb.encoder_dropout(x, training=False)

    def decode_from_encoder(
        self, decoder_token_ids, decoder_padding_mask, encoded, encoder_mask
    ):
        """Teacher-forced decoder pass.

        Args:
            decoder_token_ids: `[B, U]`.
            decoder_padding_mask: `[B, U]`.
            encoded: encoder output `[B, S, H]`.
            encoder_mask: `[B, S]`.

        Returns:
            Decoder hidden states `[B, U, H]`.
        """
        bb = self.backbone
        x = bb.token_embedding(decoder_token_ids)
        x = bb.decoder_embedding_dropout(x, training=False)
        position_bias = None
        for layer in bb.decoder_transformer_layers:
            x, position_bias = layer(
                x,
                attention_mask=decoder_padding_mask[:, None, :],
                position_bias=position_bias,
                encoder_hidden_states=encoded,
                encoder_attention_mask=encoder_mask[:, None, :],
                use_causal_mask=True,
                training=False,
            )
        x = bb.decoder_layer_norm(x, training=False)
        return bb.decoder_dropout(x, training=False)

    def token_logits(self, hidden):
        if self.backbone.tie_embedding_weights:
            hidden = hidden * ops.cast(
                self.backbone.hidden_dim**-0.5, hidden.dtype
            )
        return super().token_logits(hidden)

    @property
    def decoder_start_token_id(self):
        # T5 starts decoding from the pad token, id 0.
        return 0
