"""What the prefixed adapters share: the wrapped adapter and what they pass through."""

from promptopt.prefixes.cache_gradient import ensure_cache_update_gradient


class PrefixedAdapter:
    """Base of `PrefixedDecoderOnlyAdapter` and `PrefixedT5Adapter`.

    Wraps a model family's `BackboneAdapter` and a prefix
    `[L, 2, P, N, D]` (or `[B, L, 2, P, N, D]`). A prefix changes only what
    attention reads, so the embeddings, the vocabulary and the LM head are
    the wrapped adapter's, passed through unchanged; subclasses define how
    the prefix enters each attention layer (`decode`, `encode`, ...).

    Args:
        adapter: the backbone's `BackboneAdapter`.
        prefix: tensor, the prefix keys and values.
    """

    def __init__(self, adapter, prefix):
        # TensorFlow has no gradient for the cache update the prefix goes
        # through; register ours before any tape needs it.
        ensure_cache_update_gradient()
        self.adapter = adapter
        self.backbone = adapter.backbone
        self.prefix = prefix
        self.prefix_length = int(prefix.shape[-3])

    @property
    def hidden_dim(self):
        return self.adapter.hidden_dim

    @property
    def vocabulary_size(self):
        return self.adapter.vocabulary_size

    @property
    def embedding_matrix(self):
        return self.adapter.embedding_matrix

    def embed_tokens(self, token_ids):
        return self.adapter.embed_tokens(token_ids)

    def token_logits(self, hidden):
        return self.adapter.token_logits(hidden)
