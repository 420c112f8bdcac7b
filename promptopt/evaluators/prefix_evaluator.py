"""Scores candidate prefixes with a local `PrefixModel`."""

import numpy as np
from keras import ops

from promptopt.evaluators.local_evaluator import LocalEvaluator
from promptopt.tasks.classification import VerbalizerClassification
from promptopt.tasks.losses import classification_loss


class PrefixEvaluator(LocalEvaluator):
    """Losses (and gradients) of candidate prefixes, for every optimizer.

    The counterpart of `KerasEvaluator` for `PrefixModel`: each call scores
    K candidates on one mini-batch chosen from
    `np.random.default_rng([seed, step])` (so resumed runs see the same
    batches), one forward pass per candidate. Optimizers are shape-agnostic,
    so the same `BackpropOptimizer` or `CMAESOptimizer` that tunes a prompt
    `[P, H]` tunes a prefix `[L, 2, P, N, D]`; CMA-ES in a random subspace
    of the per-layer prefixes is close to BBTv2's deep-prompt search.

    Candidates, by `parameters`:
    - `"prefix"`: the prefix layer's variable, `[L, 2, P, N, D]` (or `P'`
      `[P, k]` when the model has a `PrefixMLP`, applied with its current
      weights);
    - `"all"`: a flat vector `[D]` of every weight of the prefix layer, the
      MLP's included. `initial_candidate()` gives the current values.

    The loss follows the task: for `VerbalizerClassification`, `loss` is
    "cross_entropy", "hinge" or "negative_accuracy" over class scores; for
    `LanguageModeling`, the token cross-entropy averaged over target tokens
    (`sample_weight`, e.g. from `LanguageModeling.encode`).

    Args:
        model: a `PrefixModel`.
        x: dict of arrays `[N, T]` (the task's inputs).
        y: labels `[N]` (classification) or next tokens `[N, T]` (LM).
        sample_weight: `[N, T]` token weights (LM only; default all 1).
        batch_size: examples per evaluation (all N if larger).
        loss: classification loss name (ignored for LM).
        parameters: "prefix" or "all".
        seed: int, for mini-batch sampling.
        chunk_size: int or None: a mini-batch of more examples is scored in
            chunks of at most this many (the loss is their size-weighted
            mean), so a search can score the whole training set.

    Example:
    ```python
    evaluator = PrefixEvaluator(model, x, y, sample_weight=w, batch_size=8)
    runner = PromptTuningRunner(evaluator)
    result = runner.run(evaluator.initial_candidate(),
                        [Stage(CMAESOptimizer(popsize=10), Budget(steps=20))])
    evaluator.assign(result.best_prompt)
    ```
    """

    raw_parameters = "prefix"

    def __init__(
        self,
        model,
        x,
        y,
        sample_weight=None,
        batch_size=32,
        loss="cross_entropy",
        parameters="prefix",
        seed=0,
        chunk_size=None,
    ):
        layer = model.prefix
        variables = [layer.raw] + (
            [] if layer.parameterization is None else list(layer.parameterization.weights)
        )
        if chunk_size is not None and int(chunk_size) < 1:
            raise ValueError(
                f"chunk_size must be a positive int or None, got {chunk_size!r}."
            )
        self.chunk_size = None if chunk_size is None else int(chunk_size)
        super().__init__(model, x, y, variables, batch_size, loss, parameters, seed)
        self.is_classification = isinstance(model.task, VerbalizerClassification)
        if sample_weight is None:
            sample_weight = np.ones(self.y.shape, "float32")
        self.sample_weight = np.asarray(sample_weight, "float32")
        if self.is_classification:
            classification_loss(np.zeros((1, 2)), np.zeros(1), loss)  # validates

    @property
    def _metric_name(self):
        return "batch_accuracy" if self.is_classification else "token_likelihood"

    def batch(self, step):
        """`(x, y, sample_weight)` of `step`'s mini-batch."""
        index = self._batch_indices(step)
        x = {k: v[index] for k, v in self.x.items()}
        return x, self.y[index], self.sample_weight[index]

    def _loss_inputs(self, step):
        x, y, weight = self.batch(step)
        if self.chunk_size is None or len(y) <= self.chunk_size:
            return [((x, y, weight), 1.0)]
        # Length-sorted chunks, each trimmed to its longest row.
        lengths = x["padding_mask"].sum(axis=1) if "padding_mask" in x else None
        order = np.arange(len(y)) if lengths is None else np.argsort(lengths, kind="stable")
        groups = []
        for rows in np.array_split(order, -(-len(y) // self.chunk_size)):
            chunk = {k: v[rows] for k, v in x.items()}
            if lengths is not None and self.is_classification:
                width = max(int(lengths[rows].max()), 1)
                chunk = {k: v[:, :width] for k, v in chunk.items()}
            groups.append(((chunk, y[rows], weight[rows]), len(rows) / len(y)))
        return groups

    def _loss_of(self, candidate_parts, x, y, weight):
        prefix = self._materialize(candidate_parts, self.model.prefix.parameterization)
        outputs = self.model(x, prefix=prefix)
        if self.is_classification:
            return self._classification_loss(outputs, y)
        logp = ops.log_softmax(ops.cast(outputs, "float32"), axis=-1)  # [B, T, V]
        token_logp = ops.take_along_axis(logp, ops.cast(y, "int32")[..., None], axis=-1)[..., 0]
        total = ops.maximum(ops.sum(weight), 1.0)
        loss = -ops.sum(token_logp * weight) / total
        return loss, ops.exp(-loss)  # second output: per-token likelihood
