"""Scores candidate prompts with a local `PromptedModel`."""

import numpy as np

from promptopt.evaluators.local_evaluator import LocalEvaluator
from promptopt.tasks.losses import classification_loss


class KerasEvaluator(LocalEvaluator):
    """Losses (and gradients) of candidate prompts on a local model.

    Each call scores K candidates on one mini-batch of the training set,
    chosen from `np.random.default_rng([seed, step])` so that a resumed run
    sees exactly the batches an uninterrupted one would. Candidates are
    scored one after another, each as one forward pass over the mini-batch
    (FIELD_NOTES: on a CPU this beats one batch of K x B rows); that is one
    forward call each, BBT's unit of budget.

    What a candidate is depends on `parameters`:
    - `"prompt"`: the raw prompt `[P, H]`; the model applies its
      reparameterization (if any) with the weights it has.
    - `"all"`: a flat vector `[D]` of every weight of the `SoftPrompt`
      layer, the reparameterization's included, so that an optimizer trains
      the residual MLP too. `initial_candidate()` gives the current values.

    Args:
        model: a `PromptedModel` with a classification task.
        x: dict of `token_ids`/`padding_mask` `[N, T]`.
        y: int labels `[N]`.
        batch_size: examples per evaluation (all N if larger).
        loss: "cross_entropy", "hinge" or "negative_accuracy".
        parameters: "prompt" or "all".
        seed: int, for mini-batch sampling.
        length_buckets: int. With n > 1, each mini-batch is sorted by text
            length and cut into n groups, each padded only to its own
            longest text; the loss (and gradient) is the size-weighted mean
            over the groups, equal to the unbucketed one. Fewer padded
            positions cost less compute when lengths vary (SST-2: 5 to 60
            tokens), at the price of n smaller forward passes.
        chunk_size: int or None. A mini-batch of more than `chunk_size`
            examples is scored in length-sorted chunks of at most that many
            (at least `length_buckets` of them), so that a search can score
            every candidate on the whole training set (as BBT does) within
            bounded memory; the loss is the same size-weighted mean.

    Example:
    ```python
    evaluator = KerasEvaluator(model, x, y, batch_size=32, loss="cross_entropy")
    evaluation = evaluator.evaluate(candidates, step=0)
    ```
    """

    raw_parameters = "prompt"

    def __init__(
        self,
        model,
        x,
        y,
        batch_size=32,
        loss="cross_entropy",
        parameters="prompt",
        seed=0,
        length_buckets=1,
        chunk_size=None,
    ):
        if int(length_buckets) < 1:
            raise ValueError(
                f"length_buckets must be a positive int, got {length_buckets!r}; "
                "use 1 to pad every mini-batch as one group."
            )
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(
                f"chunk_size must be a positive int or None, got {chunk_size!r}."
            )
        self.length_buckets = int(length_buckets)
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        super().__init__(
            model, x, y, model.soft_prompt.weights, batch_size, loss, parameters, seed
        )
        classification_loss(np.zeros((1, 2)), np.zeros(1), loss)  # validates

    def batch(self, step):
        """`(x, y)`: the inputs `[B, T']` and labels `[B]` of `step`'s mini-batch."""
        index = self._batch_indices(step)
        x = {k: v[index] for k, v in self.x.items()}
        # Trim padding columns no row of this batch uses.
        width = max(int(x["padding_mask"].sum(axis=1).max()), 1)
        return {k: v[:, :width] for k, v in x.items()}, self.y[index]

    def _prompt_of(self, candidate_parts, dropout_seed=None):
        """The prompt `[P, H]` a candidate puts in front of the model."""
        return self._materialize(candidate_parts, self.model.soft_prompt.parameterization,
                                 dropout_seed)

    def _buckets(self, x, y):
        """Splits a mini-batch into groups of similar length.

        `length_buckets` groups, or more when `chunk_size` asks for them.
        """
        count = self.length_buckets
        if self.chunk_size is not None:
            count = max(count, -(-len(y) // self.chunk_size))
        if count == 1:
            return [(x, y)]
        lengths = x["padding_mask"].sum(axis=1)
        groups = np.array_split(np.argsort(lengths, kind="stable"), count)
        out = []
        for rows in groups:
            if len(rows) == 0:
                continue
            width = max(int(lengths[rows].max()), 1)
            out.append(({k: v[rows, :width] for k, v in x.items()}, y[rows]))
        return out

    def _loss_inputs(self, step):
        x, y = self.batch(step)
        # Each bucket's mean weighs by its share of the examples.
        return [((bx, by), len(by) / len(y)) for bx, by in self._buckets(x, y)]

    def _loss_of(self, candidate_parts, x, y, dropout_seed=None):
        scores = self.model(x, prompt=self._prompt_of(candidate_parts, dropout_seed))
        return self._classification_loss(scores, y)
