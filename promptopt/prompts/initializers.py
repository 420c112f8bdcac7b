"""Model-aware initial values for a soft prompt `[P, H]`.

Each initializer is a callable `(length, embeddings, tokenize) -> [P, H]`
where `embeddings` is the model's input embedding table `[V, H]` (numpy) and
`tokenize` maps a string to a list of token ids. All randomness comes from
an explicit seed. Lester et al. (2021, section 3.2) compare random uniform,
sampled vocabulary and class-label initialization; class labels did best.
"""

import os

import numpy as np


class PromptInitializer:
    """Base class: returns a float32 array `[P, H]`."""

    def __call__(self, length, embeddings, tokenize=None):
        raise NotImplementedError

    def get_config(self):
        return {}


class RandomUniform(PromptInitializer):
    """Uniform in `[-limit, limit]` (Lester et al. use limit 0.5).

    Args:
        limit: float, or `"embedding"` to match the std of the embedding
            table (uniform with std sigma has limit sqrt(3) * sigma), which
            keeps random prompts at the scale of real tokens.
        seed: int.
    """

    def __init__(self, limit=0.5, seed=0):
        self.limit = limit
        self.seed = int(seed)

    def __call__(self, length, embeddings, tokenize=None):
        limit = self.limit
        if limit == "embedding":
            limit = float(np.sqrt(3.0) * np.std(embeddings))
        rng = np.random.default_rng(self.seed)
        shape = (length, embeddings.shape[1])
        return rng.uniform(-limit, limit, size=shape).astype("float32")

    def get_config(self):
        return {"limit": self.limit, "seed": self.seed}


class SampledVocabulary(PromptInitializer):
    """Rows of the embedding table drawn without replacement.

    Draws from the first `num_tokens` ids; byte-level BPE and SentencePiece
    vocabularies list frequent tokens first, so these are approximately the
    most frequent tokens, as in Lester et al. (5,000 by default).

    Args:
        num_tokens: int, size of the pool to sample from.
        seed: int.
        skip_ids: ids never drawn (e.g. special tokens).
    """

    def __init__(self, num_tokens=5000, seed=0, skip_ids=()):
        self.num_tokens = int(num_tokens)
        self.seed = int(seed)
        self.skip_ids = tuple(int(i) for i in skip_ids)

    def __call__(self, length, embeddings, tokenize=None):
        pool = np.arange(min(self.num_tokens, embeddings.shape[0]))
        pool = np.setdiff1d(pool, np.asarray(self.skip_ids, dtype=int))
        rng = np.random.default_rng(self.seed)
        ids = rng.choice(pool, size=length, replace=length > len(pool))
        return np.asarray(embeddings[ids], dtype="float32")

    def get_config(self):
        return {
            "num_tokens": self.num_tokens,
            "seed": self.seed,
            "skip_ids": list(self.skip_ids),
        }


class FromText(PromptInitializer):
    """The embeddings of a text's tokens, repeated or truncated to length P.

    Args:
        text: str, e.g. "Classify the sentiment of this movie review".
    """

    def __init__(self, text):
        self.text = text

    def __call__(self, length, embeddings, tokenize=None):
        if tokenize is None:
            raise ValueError(
                "FromText needs a tokenizer; build the model with one, or "
                "pass an explicit array instead."
            )
        ids = list(tokenize(self.text))
        if not ids:
            raise ValueError(
                f"Initialization text {self.text!r} has no tokens; give a "
                "non-empty text."
            )
        ids = (ids * (length // len(ids) + 1))[:length]
        return np.asarray(embeddings[ids], dtype="float32")

    def get_config(self):
        return {"text": self.text}


class FromClassLabels(PromptInitializer):
    """Lester et al.'s best: prompt vectors start as the class label words.

    Prompt vector i takes the embedding of label word i (a word of several
    tokens gets the mean of its token embeddings, as in the paper). When P
    exceeds the number of label words, the remaining vectors are sampled
    from the vocabulary; when P is smaller, the first P words are used.

    Args:
        label_token_ids: list of token-id lists, one per label word.
        seed: int, for the sampled remainder.
        num_tokens: pool size for the sampled remainder.
    """

    def __init__(self, label_token_ids, seed=0, num_tokens=5000):
        self.label_token_ids = [list(map(int, w)) for w in label_token_ids]
        self.seed = int(seed)
        self.num_tokens = int(num_tokens)

    def __call__(self, length, embeddings, tokenize=None):
        rows = [embeddings[ids].mean(axis=0) for ids in self.label_token_ids]
        rows = rows[:length]
        rest = length - len(rows)
        sampled = SampledVocabulary(self.num_tokens, self.seed)(
            rest, embeddings
        )
        if not rows:
            return sampled
        return np.concatenate([np.stack(rows), sampled]).astype("float32")

    def get_config(self):
        return {
            "label_token_ids": self.label_token_ids,
            "seed": self.seed,
            "num_tokens": self.num_tokens,
        }


class FromArray(PromptInitializer):
    """A given array `[P, H]`, or a `.npy` file, or a promptopt prompt file.

    Args:
        value: array-like `[P, H]`, or a path to `.npy` / prompt file.
    """

    def __init__(self, value):
        self.value = value

    def __call__(self, length, embeddings, tokenize=None):
        value = self.value
        if isinstance(value, (str, os.PathLike)):
            value = load_array(value)
        value = np.asarray(value, dtype="float32")
        expected = (length, embeddings.shape[1])
        if value.shape != expected:
            raise ValueError(
                f"Initial prompt array has shape {value.shape}, but this "
                f"model needs [P, H] = {expected}. Use an array of that shape "
                f"or set prompt_length={value.shape[0]}."
            )
        return value

    def get_config(self):
        return {"value": str(self.value)}


def load_array(path):
    """Loads `[P, H]` from a `.npy` file or a promptopt prompt file."""
    path = os.fspath(path)
    if path.endswith(".npy"):
        return np.load(path, allow_pickle=False)
    from promptopt.prompts.prompt_file import PromptFile

    return PromptFile.load(path).prompt


INITIALIZERS = {
    "random": RandomUniform,
    "vocab": SampledVocabulary,
    "text": FromText,
    "labels": FromClassLabels,
    "array": FromArray,
}


def get_initializer(spec, label_token_ids=None, seed=0):
    """Resolves a user-facing initializer spec.

    Args:
        spec: a `PromptInitializer`, an array, or one of the strings
            `"random"`, `"vocab"`, `"labels"`, `"text:<some text>"`, or a
            path to a `.npy`/prompt file.
        label_token_ids: token ids of the label words, for `"labels"`.
        seed: int, for the random initializers.
    """
    if isinstance(spec, PromptInitializer):
        return spec
    if spec is None:
        spec = "vocab"
    if not isinstance(spec, (str, os.PathLike)):
        return FromArray(spec)
    spec = os.fspath(spec)
    if spec == "random":
        return RandomUniform(limit="embedding", seed=seed)
    if spec == "vocab":
        return SampledVocabulary(seed=seed)
    if spec == "labels":
        if not label_token_ids:
            raise ValueError(
                "Initializer 'labels' needs label words; it works with a "
                "classification task. Use 'vocab', 'random' or 'text:...' "
                "for other tasks."
            )
        return FromClassLabels(label_token_ids, seed=seed)
    if spec.startswith("text:"):
        return FromText(spec[len("text:") :])
    if os.path.exists(spec):
        return FromArray(spec)
    raise ValueError(
        f"Unknown prompt initializer {spec!r}. Use 'random', 'vocab', "
        "'labels', 'text:<words>', or the path of a .npy/prompt file."
    )
