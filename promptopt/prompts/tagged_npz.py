"""One float32 array and its JSON metadata in an `.npz`, as prompt and prefix files use."""

import dataclasses
import json
import os
import tempfile

import numpy as np


@dataclasses.dataclass(frozen=True)
class TaggedNPZ:
    """Writes and reads one kind of tensor file: an array plus tagged metadata.

    The archive holds two entries and no pickle: the float32 array, named
    `kind`, and `metadata`, one JSON object whose `"format"` is
    `"promptopt.<kind>"`. Saving is atomic (a temporary file in the same
    folder, then `os.replace`), so an interrupted save leaves the old file
    or none, never a torn one. Loading refuses, with the reason, anything
    else: a bare `.npy`, an archive without those entries, metadata that is
    not a JSON object or carries another format tag.

    Args:
        kind: str, "prompt" or "prefix": the array's name and the format tag.
        save_hint: str, the sentence that closes a refusal (how to save one).
        missing_tag: str, the reason given when the format tag is absent.

    Example:
    ```python
    PROMPT_NPZ = TaggedNPZ("prompt", "Save prompts with PromptedModel.save_prompt().",
                           "its metadata has no promptopt format tag")
    PROMPT_NPZ.save("p.npz", prompt, {"format": "promptopt.prompt", ...})
    prompt, metadata = PROMPT_NPZ.load("p.npz")  # [P, H], dict
    ```
    """

    kind: str
    save_hint: str
    missing_tag: str

    @property
    def format_tag(self):
        return f"promptopt.{self.kind}"

    def save(self, path, array, metadata):
        """Writes `array` (as float32) and `metadata`; returns the path as a str."""
        path = os.fspath(path)
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=directory, suffix=".tmp.npz")
        try:
            with os.fdopen(fd, "wb") as f:
                np.savez(
                    f,
                    **{self.kind: np.asarray(array, dtype="float32")},
                    metadata=np.array(json.dumps(metadata)),
                )
            os.replace(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.remove(tmp)
            raise
        return path

    def load(self, path):
        """Returns `(array, metadata)`: the float32 array and the metadata dict.

        Raises:
            ValueError: "<path> is not a promptopt <kind> file (<reason>).
                <save_hint>", for a missing or unreadable file too.
        """
        path = os.fspath(path)
        try:
            data = np.load(path, allow_pickle=False)
            if not isinstance(data, np.lib.npyio.NpzFile):
                # A bare .npy array has no metadata to guard it.
                raise ValueError("it holds a bare array, not an .npz archive")
            with data:
                array = np.asarray(data[self.kind], dtype="float32")
                metadata = json.loads(str(data["metadata"]))
            if not isinstance(metadata, dict):
                raise ValueError("its metadata is not a JSON object")
            if metadata.get("format") != self.format_tag:
                raise ValueError(self.missing_tag)
        except (KeyError, ValueError, OSError) as e:
            raise ValueError(
                f"{path} is not a promptopt {self.kind} file ({e}). {self.save_hint}"
            ) from None
        return array, metadata
