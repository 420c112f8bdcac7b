"""One soft prompt per row: N prompts in a table that each row gathers from."""

import numpy as np
from keras import ops

from promptopt.tasks.text_encoder import pad_rows


class PromptTable:
    """N soft prompts of any lengths, for batches whose rows differ in prompt.

    One frozen model can serve many tasks in one batch, each row carrying
    its own prompt (Lester et al. 2021, Sec. 7). The prompts are padded into
    a table `[N, P, H]` (P the longest; prompt n has `lengths[n]` real
    vectors), and a row reaches its prompt through *virtual token ids*:
    vector j of prompt n gets the id `V + n * P + j`, past the vocabulary
    (V ids), and `bind` writes those ids in front of the row's text ids and
    wraps the adapter so that `embed_tokens` looks them up in the table.
    Everything downstream (the tasks, `CachedGenerator`, keras-hub's
    samplers and key/value cache) runs unchanged on `[virtual ids; text]`.

    Each row is then exactly the sequence `[prompt_n; text]` of a pass with
    prompt n alone: the same vectors at the same positions (GPT-2's learned
    positions and Llama's rotary angles start at the row's first prompt
    vector, not at P), followed by right padding, which the causal mask
    keeps every real position from reading. A zero-length prompt (the base
    model) adds no ids, so its rows take the plain-text path. A mixed batch
    therefore equals a separate pass per prompt up to float rounding
    (tests/models/test_prompt_table.py checks 1e-5).

    Args:
        prompts: list of N arrays `[p_n, H]` (any `p_n >= 0`, one H).

    Example:
    ```python
    table = PromptTable([sst2_prompt, np.zeros((0, 576)), trec_prompt])
    model.classify(texts, prompts=table, prompt_ids=[0, 0, 1, 2])
    model.generate(texts, prompts=table, prompt_ids=[2, 1, 0, 0])
    ```
    """

    def __init__(self, prompts):
        prompts = [np.asarray(p, "float32") for p in prompts]
        if not prompts:
            raise ValueError("PromptTable needs at least one prompt [P, H].")
        if any(p.ndim != 2 for p in prompts) or len({p.shape[1] for p in prompts}) > 1:
            shapes = [list(p.shape) for p in prompts]
            raise ValueError(
                f"Every prompt must be [P, H] with one H; got shapes {shapes}."
            )
        self.hidden_dim = int(prompts[0].shape[1])
        self.lengths = np.array([p.shape[0] for p in prompts], "int32")  # [N]
        self.max_length = int(self.lengths.max())
        self.table = np.zeros(
            (len(prompts), self.max_length, self.hidden_dim), "float32"
        )  # [N, P, H]
        for n, prompt in enumerate(prompts):
            self.table[n, : len(prompt)] = prompt

    def __len__(self):
        return len(self.lengths)

    def bind(self, adapter, prompt_ids, rows):
        """The adapter and id rows that run row i with prompt `prompt_ids[i]`.

        Args:
            adapter: the backbone's `BackboneAdapter`.
            prompt_ids: B ints in `[0, N)`.
            rows: B lists of token ids (the texts, not yet padded).

        Returns:
            `(adapter, rows)`: an adapter whose `embed_tokens` also maps
            virtual ids to prompt vectors, and the B rows with their
            prompt's virtual ids in front (pass the task or generator a
            zero-length prompt `[0, H]`).
        """
        prompt_ids = checked_prompt_ids(prompt_ids, len(rows), len(self))
        if int(adapter.hidden_dim) != self.hidden_dim:
            raise ValueError(
                f"The prompts have H={self.hidden_dim}, but this model has "
                f"H={adapter.hidden_dim}. Use prompts tuned for this model."
            )
        base = int(adapter.vocabulary_size)
        bound = []
        for n, row in zip(prompt_ids, rows):
            first = base + int(n) * self.max_length
            bound.append(list(range(first, first + int(self.lengths[n]))) + list(row))
        flat = self.table.reshape(-1, self.hidden_dim)  # [N * P, H]
        return _VirtualTokenAdapter(adapter, flat), bound


class _VirtualTokenAdapter:
    """An adapter whose ids `V + k` embed as row k of a prompt table `[K, H]`.

    Real ids (below V) embed as before, and every other method is the
    wrapped adapter's: the LM head, and so generation, only ever yields
    real ids.
    """

    def __init__(self, adapter, vectors):
        self._adapter = adapter
        self._vectors = vectors

    def __getattr__(self, name):
        return getattr(self._adapter, name)

    def embed_tokens(self, token_ids):
        size = int(self._adapter.vocabulary_size)
        token_ids = ops.convert_to_tensor(token_ids, "int32")
        real = self._adapter.embed_tokens(ops.minimum(token_ids, size - 1))
        if len(self._vectors) == 0:
            return real
        index = ops.clip(token_ids - size, 0, len(self._vectors) - 1)
        virtual = ops.cast(ops.take(self._vectors, index, axis=0), real.dtype)
        return ops.where((token_ids >= size)[..., None], virtual, real)


def checked_prompt_ids(prompt_ids, rows, size):
    """`prompt_ids` as int64 `[B]`; ValueError unless one per row, in `[0, size)`."""
    prompt_ids = np.asarray(prompt_ids, "int64").reshape(-1)
    if len(prompt_ids) != rows:
        raise ValueError(
            f"Got {len(prompt_ids)} prompt_ids for {rows} texts; give one "
            "prompt id per text."
        )
    if len(prompt_ids) and (prompt_ids.min() < 0 or prompt_ids.max() >= size):
        raise ValueError(
            f"prompt_ids must index the {size} prompts, i.e. lie in "
            f"[0, {size - 1}]; got {sorted(set(prompt_ids.tolist()))}."
        )
    return prompt_ids


def per_row_class_scores(model, texts, prompts, prompt_ids, batch_size=32):
    """Class scores `[N, C]` of `model`'s task with a prompt per text.

    Args:
        model: a `FrozenBackboneModel` (its task, adapter and tokenizer).
        texts: N strings.
        prompts: a `PromptTable` or `PrefixTable`.
        prompt_ids: N ints into `prompts`.
        batch_size: int, texts per forward pass.
    """
    prompt_ids = checked_prompt_ids(prompt_ids, len(texts), len(prompts))
    if not len(prompt_ids):
        return np.zeros((0, model.task.num_classes), "float32")
    # Texts keep their last max_length tokens, as in a pass without a
    # table; the prompt then goes in front.
    rows = [row[-model.max_length :] for row in model.text_encoder().ids(texts)]
    no_prompt = np.zeros((0, model.adapter.hidden_dim), "float32")
    scores = []
    for start in range(0, len(rows), batch_size):
        stop = start + batch_size
        adapter, bound = prompts.bind(
            model.adapter, prompt_ids[start:stop], rows[start:stop]
        )
        batch = pad_rows(bound, max(len(r) for r in bound))
        scores.append(
            ops.convert_to_numpy(
                ops.cast(model.task(adapter, no_prompt, batch), "float32")
            )
        )
    return np.concatenate(scores)
