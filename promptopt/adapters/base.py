"""The contract every model-family adapter fulfils."""


class BackboneAdapter:
    """Feeds embeddings, not token ids, through a frozen keras-hub backbone.

    keras-hub backbones accept only token ids, so a soft prompt cannot be
    passed to `backbone(...)`. An adapter re-wires the backbone's own
    sublayers (token embedding -> [prompt; tokens] -> positions -> transformer
    layers -> final norm) so that the model sees `[B, P + T, H]` embeddings.
    One subclass per model family holds all the family-specific knowledge;
    nothing else in promptopt branches on the family.

    Backbone sublayers always run with `training=False`: the model is frozen,
    so its dropout stays off and a forward pass is a deterministic function
    of the prompt.

    Args:
        backbone: a built `keras_hub.models.Backbone` of the adapter's family.
    """

    #: keras-hub backbone classes this adapter handles (checked in order).
    backbone_classes = ()
    #: True for encoder-decoder models (the prompt goes in front of the
    #: encoder input), False for decoder-only models.
    is_encoder_decoder = False

    def __init__(self, backbone):
        self.backbone = backbone

    @property
    def hidden_dim(self):
        return int(self.backbone.hidden_dim)

    @property
    def vocabulary_size(self):
        return int(self.backbone.vocabulary_size)

    @property
    def embedding_matrix(self):
        """The input embedding table, `[V, H]`."""
        return self.backbone.token_embedding.embeddings

    def embed_tokens(self, token_ids):
        """Token ids `[B, T]` -> input embeddings `[B, T, H]`.

        Returns the embeddings in the same space as the prompt: the space of
        the rows of `embedding_matrix`, before any family-specific scaling.
        """
        return self.backbone.token_embedding(token_ids)

    def token_logits(self, hidden):
        """Final hidden states `[..., H]` -> vocabulary logits `[..., V]`.

        Works on any leading shape, so callers can compute the LM head only
        where they need it (e.g. at the answer position alone).
        """
        return self.backbone.token_embedding(hidden, reverse=True)

    # --- decoder-only models -------------------------------------------------

    def decode(self, embeddings, padding_mask):
        """Runs the full stack on input embeddings.

        Args:
            embeddings: `[B, S, H]`, prompt and token embeddings together.
            padding_mask: `[B, S]`, 1 for positions to attend to. Padding
                must be on the right (see `PromptedModel`), so that position
                ids count from the first real position.

        Returns:
            Final hidden states `[B, S, H]`.
        """
        raise NotImplementedError

    def cache_shape(self, batch_size, length):
        """Shape of the key/value cache for `decode_with_cache`."""
        raise NotImplementedError

    def decode_with_cache(self, embeddings, cache, cache_update_index):
        """Runs new embeddings `[B, S, H]` against a key/value cache.

        Returns `(hidden [B, S, H], cache)`; `cache_update_index` is the
        position of `embeddings[:, 0]` in the whole sequence.
        """
        raise NotImplementedError
