"""Turns strings into padded token-id arrays."""

import numpy as np


def tokenize_all(tokenizer, texts):
    """Tokenizes a list of strings into a list of id lists (no padding)."""
    texts = list(texts)
    if not texts:
        return []
    ids = tokenizer(texts)
    if hasattr(ids, "to_list"):  # tf.RaggedTensor
        ids = ids.to_list()
    elif hasattr(ids, "numpy"):
        ids = ids.numpy().tolist()
    return [[int(i) for i in row] for row in ids]


def detokenize(tokenizer, ids):
    """One id list -> its text (a str, whatever the tokenizer returns)."""
    text = tokenizer.detokenize([[int(i) for i in ids]])
    if hasattr(text, "numpy"):  # tf.Tensor
        text = text.numpy()
    if not isinstance(text, (str, bytes)):
        text = list(text)[0]
    return text.decode("utf-8", "replace") if isinstance(text, bytes) else str(text)


class TextEncoder:
    """Encodes texts as right-padded `token_ids`/`padding_mask` `[N, T]`.

    Over-long texts keep their *last* `max_length` tokens: classification
    templates put the cue ("It was") at the end, and the answer is read
    right after it.

    Args:
        tokenizer: a keras-hub tokenizer (or any callable `list[str] ->
            list[list[int]]`).
        max_length: int, T, the longest sequence kept.
        pad_id: int, the id written into padding positions.
        add_start_token: bool, prepend the tokenizer's start token (T5 and
            GPT-2 do not use one; Llama-family models were trained with
            one, but SmolLM2 works without it).

    Example:
    ```python
    batch = TextEncoder(tokenizer, max_length=64).encode(["Great fun."])
    batch["token_ids"].shape  # (1, 64)
    ```
    """

    def __init__(self, tokenizer, max_length=128, pad_id=0, add_start_token=False):
        self.tokenizer = tokenizer
        self.max_length = int(max_length)
        self.pad_id = int(pad_id)
        self.add_start_token = bool(add_start_token)

    def ids(self, texts):
        rows = tokenize_all(self.tokenizer, texts)
        if self.add_start_token:
            start = self.tokenizer.start_token_id
            rows = [[start] + row for row in rows]
        return rows

    def encode(self, texts, length=None):
        """Returns `{"token_ids": [N, T], "padding_mask": [N, T]}` (int32).

        Args:
            texts: list of N strings.
            length: T; defaults to the longest row, capped at `max_length`.
        """
        return pad_rows(self.ids(texts), self.max_length, self.pad_id, length)


def pad_rows(rows, max_length, pad_id=0, length=None):
    """Right-pads id lists into `token_ids`/`padding_mask` arrays `[N, T]`."""
    rows = [row[-max_length:] for row in rows]  # keep the end (the cue)
    if length is None:
        length = max((len(r) for r in rows), default=1)
    length = max(int(length), 1)
    token_ids = np.full((len(rows), length), pad_id, dtype="int32")
    padding_mask = np.zeros((len(rows), length), dtype="int32")
    for i, row in enumerate(rows):
        row = row[-length:]
        token_ids[i, : len(row)] = row
        padding_mask[i, : len(row)] = 1
    return {"token_ids": token_ids, "padding_mask": padding_mask}
