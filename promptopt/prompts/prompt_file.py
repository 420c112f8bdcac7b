"""A prompt saved on its own: a small `.npz` with metadata that guards it."""

import dataclasses
import hashlib
import os

import numpy as np

from promptopt.prompts.tagged_npz import TaggedNPZ

# Version 2 fingerprints the embedding table rounded to bfloat16, so one
# prompt serves a float32 backbone and its bfloat16 copy; version 1 hashed
# the exact float32 bytes and is still read, checked with that hash.
FORMAT_VERSION = 2
_NPZ = TaggedNPZ(
    "prompt",
    save_hint="Save prompts with PromptedModel.save_prompt().",
    missing_tag="its metadata has no promptopt format tag",
)


class PromptMismatchError(ValueError):
    """A prompt file does not belong to the model it is loaded into."""


def _bfloat16_bits(array):
    """The bfloat16 bit patterns (uint16) of a float32 array.

    Rounds to nearest, ties to even, on the float32 bit pattern: the rounding
    TensorFlow's cast and ml_dtypes apply, so it gives the very bits
    `cast_backbone(backbone, "bfloat16")` stores. NaNs, whose payload a cast
    need not keep, all become one quiet NaN.
    """
    bits = array.view("uint32")
    rounded = ((bits + 0x7FFF + ((bits >> 16) & 1)) >> 16).astype("uint16")
    return np.where(np.isnan(array), np.uint16(0x7FC0), rounded)


def embedding_fingerprint(embeddings, format_version=FORMAT_VERSION):
    """A short sha256 of the embedding table `[V, H]` at `format_version`.

    Version 2 (the current one) hashes the shape and the table rounded to
    bfloat16: a float32 table and its bfloat16 copy get the same
    fingerprint, while a table that differs anywhere by more than that
    rounding (another model, other weights) gets another. Version 1 hashes
    the exact float32 bytes. A float16 copy is not covered: rounding twice
    (to float16, then bfloat16) can land on another bfloat16 value.

    Args:
        embeddings: array-like `[V, H]` of any float dtype.
        format_version: int, 1 or 2.

    Returns:
        str, 16 hex digits.
    """
    array = np.asarray(embeddings, dtype="float32")  # exact from bfloat16
    if format_version == 2:
        array = _bfloat16_bits(array).astype("<u2")
    elif format_version != 1:
        raise ValueError(
            f"Unknown format version {format_version!r}; this promptopt "
            f"reads versions 1 to {FORMAT_VERSION}."
        )
    array = np.ascontiguousarray(array)
    digest = hashlib.sha256()
    digest.update(str(array.shape).encode())
    digest.update(memoryview(array).cast("B"))
    return digest.hexdigest()[:16]


def read_format_version(metadata, path):
    """The format version a file's `metadata` states; 1 when it states none.

    Version 1 prefix files carried no version. A version this promptopt does
    not know is refused with a `ValueError` naming the fix.
    """
    version = metadata.get("format_version", 1)
    if version not in range(1, FORMAT_VERSION + 1):
        raise ValueError(
            f"{path} has format version {version!r}, but this promptopt reads "
            f"versions 1 to {FORMAT_VERSION}. Upgrade promptopt to load it."
        )
    return version


def fix_for_other_embeddings(format_version):
    """The sentence that closes an embedding-hash refusal: how to fix it."""
    fix = "Load it into the model it was tuned for."
    if format_version == 1:
        # A version 1 hash is of the exact float32 bytes, so even a bfloat16
        # copy of the model it was tuned for is refused.
        fix += (
            " Its format version 1 hash is of the exact float32 weights: load "
            "it into the float32 model, not a cast_backbone copy, and save it "
            "again to get a file that loads into either precision."
        )
    return fix


@dataclasses.dataclass
class PromptFile:
    """A materialized prompt `[P, H]` plus the identity of its model.

    Saved as `.npz` (no pickle; written and read by `TaggedNPZ`): the prompt
    array and one JSON string of metadata. `check_compatible` refuses a
    model with another hidden size or another embedding table; the table is
    compared in the fingerprint of the file's own format version.

    Args:
        prompt: float32 array `[P, H]`.
        model_id: the model the prompt was tuned for.
        embedding_hash: `embedding_fingerprint(table, format_version)` of
            that model's embeddings.
        extra: free-form JSON-able metadata (task, label words, optimizer).
        format_version: int, the version `embedding_hash` was computed for
            (`FORMAT_VERSION` for new files; 1 for files saved before
            fingerprints were precision-independent).

    Example:
    ```python
    PromptFile(prompt, "smollm2-135m-instruct", hash).save("sst2.prompt.npz")
    loaded = PromptFile.load("sst2.prompt.npz")
    loaded.check_compatible(
        model_id, embedding_fingerprint(table, loaded.format_version), 576
    )
    ```
    """

    prompt: np.ndarray
    model_id: str
    embedding_hash: str
    extra: dict = dataclasses.field(default_factory=dict)
    format_version: int = FORMAT_VERSION

    @property
    def length(self):
        return int(self.prompt.shape[0])

    @property
    def hidden_dim(self):
        return int(self.prompt.shape[1])

    def metadata(self):
        return {
            "format": _NPZ.format_tag,
            "format_version": self.format_version,
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
        format_version = read_format_version(metadata, path)
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
            format_version=format_version,
        )

    def check_compatible(self, model_id, embedding_hash, hidden_dim, source=""):
        """Raises `PromptMismatchError` unless the model is the prompt's own.

        `embedding_hash` is the model's `embedding_fingerprint` at this
        file's `format_version`.
        """
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
                + fix_for_other_embeddings(self.format_version)
            )
