"""A prompt saved on its own: a small `.npz` with metadata that guards it."""

import dataclasses
import hashlib
import os

import numpy as np

from promptopt.prompts.tagged_npz import TaggedNPZ

FORMAT_VERSION = 1
_NPZ = TaggedNPZ(
    "prompt",
    save_hint="Save prompts with PromptedModel.save_prompt().",
    missing_tag="its metadata has no promptopt format tag",
)


class PromptMismatchError(ValueError):
    """A prompt file does not belong to the model it is loaded into."""


def embedding_fingerprint(embeddings):
    """A short sha256 of the embedding table `[V, H]` (float32 bytes).

    Two models whose input embeddings differ in any bit get different
    fingerprints, so a prompt tuned on one is never silently loaded into the
    other.
    """
    array = np.ascontiguousarray(np.asarray(embeddings, dtype="float32"))
    digest = hashlib.sha256()
    digest.update(str(array.shape).encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()[:16]


@dataclasses.dataclass
class PromptFile:
    """A materialized prompt `[P, H]` plus the identity of its model.

    Saved as `.npz` (no pickle; written and read by `TaggedNPZ`): the prompt
    array and one JSON string of metadata. `check_compatible` refuses a
    model with another hidden size or another embedding table.

    Args:
        prompt: float32 array `[P, H]`.
        model_id: the model the prompt was tuned for.
        embedding_hash: `embedding_fingerprint` of that model's embeddings.
        extra: free-form JSON-able metadata (task, label words, optimizer).

    Example:
    ```python
    PromptFile(prompt, "smollm2-135m-instruct", hash).save("sst2.prompt.npz")
    PromptFile.load("sst2.prompt.npz").check_compatible(model_id, hash, 576)
    ```
    """

    prompt: np.ndarray
    model_id: str
    embedding_hash: str
    extra: dict = dataclasses.field(default_factory=dict)

    @property
    def length(self):
        return int(self.prompt.shape[0])

    @property
    def hidden_dim(self):
        return int(self.prompt.shape[1])

    def metadata(self):
        return {
            "format": _NPZ.format_tag,
            "format_version": FORMAT_VERSION,
            "model_id": self.model_id,
            "hidden_dim": self.hidden_dim,
            "prompt_length": self.length,
            "embedding_hash": self.embedding_hash,
            "extra": self.extra,
        }

    def save(self, path):
        """Writes atomically, so an interrupted save never leaves a torn file."""
        return _NPZ.save(path, self.prompt, self.metadata())

    @classmethod
    def load(cls, path):
        path = os.fspath(path)
        if not os.path.exists(path):
            raise FileNotFoundError(f"No prompt file at {path}.")
        prompt, metadata = _NPZ.load(path)
        stated = [metadata.get("prompt_length"), metadata.get("hidden_dim")]
        if list(prompt.shape) != stated:
            raise ValueError(
                f"{path} is corrupt: its prompt has shape {prompt.shape} but "
                f"its metadata says [P, H] = {stated}. Save the prompt again "
                "with PromptedModel.save_prompt()."
            )
        return cls(
            prompt=prompt,
            model_id=metadata["model_id"],
            embedding_hash=metadata["embedding_hash"],
            extra=metadata.get("extra", {}),
        )

    def check_compatible(self, model_id, embedding_hash, hidden_dim, source=""):
        """Raises `PromptMismatchError` unless the model is the prompt's own."""
        where = f" {source}" if source else ""
        if int(hidden_dim) != self.hidden_dim:
            raise PromptMismatchError(
                f"Prompt{where} has hidden size H={self.hidden_dim} (tuned for "
                f"model '{self.model_id}'), but this model ('{model_id}') has "
                f"H={hidden_dim}. Load it into the model it was tuned for."
            )
        if embedding_hash != self.embedding_hash:
            raise PromptMismatchError(
                f"Prompt{where} was tuned for model '{self.model_id}' with "
                f"embedding hash {self.embedding_hash}, but this model "
                f"('{model_id}') has embedding hash {embedding_hash}: the "
                "weights differ, so the prompt would mean something else. "
                "Load it into the model it was tuned for."
            )
