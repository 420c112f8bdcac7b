"""Population scoring of deep suffixes against one shared pass over the heads."""

import numpy as np

from promptopt.evaluators.prefix_evaluator import PrefixEvaluator
from promptopt.evaluators.value_and_grad import compile_function
from promptopt.prefixes.deep_suffix import head_caches
from promptopt.prefixes.deep_suffix import split_tail
from promptopt.prefixes.deep_suffix import tail_answer_states
from promptopt.prompts.shared_input import left_align


class DeepSuffixEvaluator(PrefixEvaluator):
    """Forward-only losses of K deep suffixes `[L, 2, P, N, D]` (BBTv2's search).

    A `PrefixModel` built with `VerbalizerClassification(placement="suffix")`
    puts its per-layer keys and values after each text's head, where only
    the last k tokens read them (`promptopt.prefixes.deep_suffix`). The
    heads' caches, `[B, 2, T_h + P + k, N, D]` per layer, do not depend on
    the candidate: they are computed once per mini-batch (once per run when
    the batch is the whole training set, as BBTv2 scores it), and each
    candidate then runs only its `B * k` tail rows through the L layers,
    instead of the `B * T` rows of `PrefixEvaluator`'s full pass. Losses are
    those of the model's own forward pass (the same two functions), to
    float rounding: chunks are trimmed to their longest row, which moves
    every position by the same amount.

    Args: as `PrefixEvaluator` (classification only).

    Example:
    ```python
    task = VerbalizerClassification(verbalizer, placement="suffix")
    model = PrefixModel(backbone, task, prefix_length=5, suffix_tail_length=2,
                        tokenizer=tokenizer)
    evaluator = DeepSuffixEvaluator(model, x, y, batch_size=len(y))
    losses = evaluator.evaluate(population, step=0).losses  # [K]
    ```
    """

    provides_gradients = False

    def __init__(self, model, x, y, batch_size=32, loss="cross_entropy",
                 parameters="prefix", seed=0, chunk_size=None):
        if getattr(model, "placement", "prefix") != "suffix":
            raise ValueError(
                "DeepSuffixEvaluator needs a PrefixModel whose task has "
                "placement='suffix' (a deep suffix); this model's prefix is in "
                "front, which every position reads. Use PrefixEvaluator.")
        super().__init__(model, x, y, batch_size=batch_size, loss=loss,
                         parameters=parameters, seed=seed, chunk_size=chunk_size)
        if not self.is_classification:
            raise ValueError("DeepSuffixEvaluator scores classification tasks only.")
        self._shared_pass = compile_function(self._head_caches)
        self._whole_set_groups = None

    def _head_caches(self, head_ids, head_mask):
        return head_caches(self.model.adapter, head_ids, head_mask,
                           self.model.prefix_length, self.model.suffix_tail_length)

    def _loss_inputs(self, step):
        whole_set = self.batch_size >= len(self.y)
        if whole_set and self._whole_set_groups is not None:
            return self._whole_set_groups
        groups = []
        for (x, y, _), share in super()._loss_inputs(step):
            token_ids, padding_mask = left_align(x["token_ids"], x["padding_mask"])
            head_ids, head_mask, tail_ids = split_tail(
                token_ids, padding_mask, self.model.suffix_tail_length)
            caches = self._shared_pass(head_ids, head_mask)
            groups.append(((caches, head_mask, tail_ids, np.asarray(y)), share))
        if whole_set:
            self._whole_set_groups = groups
        return groups

    def _loss_of(self, candidate_parts, caches, head_mask, tail_ids, y):
        prefix = self._materialize(candidate_parts, self.model.prefix.parameterization)
        answer = tail_answer_states(self.model.adapter, prefix, caches, head_mask, tail_ids)
        scores = self.model.task.scores_at_answer(self.model.adapter, answer)
        return self._classification_loss(scores, y)

    def evaluate(self, candidates, step, compute_gradients=False):
        if compute_gradients:
            raise ValueError(
                "DeepSuffixEvaluator scores forward only; use PrefixEvaluator "
                "for optimizers that need gradients.")
        return super().evaluate(candidates, step)
