"""A prefix saved on its own: `.npz` with metadata that guards it."""

import dataclasses

import numpy as np

from promptopt.prompts.prompt_file import FORMAT_VERSION
from promptopt.prompts.prompt_file import PromptMismatchError
from promptopt.prompts.prompt_file import fix_for_other_embeddings
from promptopt.prompts.prompt_file import read_format_version
from promptopt.prompts.tagged_npz import TaggedNPZ

_NPZ = TaggedNPZ(
    "prefix",
    save_hint="Save prefixes with PrefixModel.save_prefix().",
    missing_tag="its metadata has no promptopt prefix tag",
)


@dataclasses.dataclass
class PrefixFile:
    """A materialized prefix `[L, 2, P, N, D]` plus its model's identity.

    Like `PromptFile` (no pickle; one array, one JSON string; written and
    read by `TaggedNPZ`), with the prefixed attention sites recorded so a
    T5 prefix is never read with another site layout. Format versions are
    `PromptFile`'s: version 1 files (which stated none) hold the exact
    float32 fingerprint, version 2 the precision-independent one.

    Args:
        prefix: float32 array `[L, 2, P, N, D]`.
        model_id: the model the prefix was tuned for.
        embedding_hash: `embedding_fingerprint(table, format_version)` of
            its embedding table.
        sites: tuple of attention sites (`("decoder",)` for decoder-only).
        extra: free-form JSON-able metadata.
        format_version: int, the version `embedding_hash` was computed for.

    Example:
    ```python
    PrefixFile(prefix, "smollm2-135m-instruct", hash, ("decoder",)).save("e2e.prefix.npz")
    ```
    """

    prefix: np.ndarray
    model_id: str
    embedding_hash: str
    sites: tuple
    extra: dict = dataclasses.field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    def save(self, path):
        """Writes atomically, so an interrupted save never leaves a torn file."""
        metadata = {
            "format": _NPZ.format_tag,
            "format_version": self.format_version,
            "model_id": self.model_id,
            "embedding_hash": self.embedding_hash,
            "sites": list(self.sites),
            "shape": list(np.shape(self.prefix)),
            "extra": self.extra,
        }
        return _NPZ.save(path, self.prefix, metadata)

    @classmethod
    def load(cls, path):
        prefix, metadata = _NPZ.load(path)
        return cls(
            prefix=prefix,
            model_id=metadata["model_id"],
            embedding_hash=metadata["embedding_hash"],
            sites=tuple(metadata["sites"]),
            extra=metadata.get("extra", {}),
            format_version=read_format_version(metadata, path),
        )

    def check_compatible(self, model_id, embedding_hash, shape, sites, source=""):
        """Raises `PromptMismatchError` unless the model is the prefix's own.

        `embedding_hash` is the model's `embedding_fingerprint` at this
        file's `format_version`.
        """
        where = f" {source}" if source else ""
        if embedding_hash != self.embedding_hash:
            raise PromptMismatchError(
                f"Prefix{where} was tuned for model '{self.model_id}' with "
                f"embedding hash {self.embedding_hash}, but this model "
                f"('{model_id}') has embedding hash {embedding_hash}. "
                + fix_for_other_embeddings(self.format_version)
            )
        if tuple(sites) != self.sites or tuple(shape) != self.prefix.shape:
            raise ValueError(
                f"Prefix{where} has shape {self.prefix.shape} for sites "
                f"{self.sites}, but this model's prefix is {tuple(shape)} for "
                f"sites {tuple(sites)}. Build the model with "
                f"prefix_length={self.prefix.shape[2]} and sites={self.sites}."
            )
