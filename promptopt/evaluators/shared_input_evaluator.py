"""Population scoring that computes the shared input once per mini-batch."""

from promptopt.evaluators.keras_evaluator import KerasEvaluator
from promptopt.evaluators.value_and_grad import compile_function
from promptopt.prompts.shared_input import left_align
from promptopt.prompts.shared_input import suffix_answer_states
from promptopt.prompts.shared_input import suffix_input_caches
from promptopt.prompts.shared_input import supports_shared_input
from promptopt.tasks.classification import VerbalizerClassification


class SharedInputEvaluator(KerasEvaluator):
    """Forward-only losses of K candidates that share one pass over the input.

    For black-box search (CMA-ES, BBT) with the prompt placed after the
    input, `[x; prompt]` (`VerbalizerClassification(placement="suffix")`).
    Causal attention makes the keys and values of x independent of the
    prompt, so they are computed once per mini-batch, `[B, T]` through all
    L layers, and every candidate then runs only its P prompt vectors
    against that cache: `B * P` rows per candidate instead of
    `B * (P + T)`. On SST-2 (T about 25 to 60) this is several times fewer
    FLOPs per candidate than `KerasEvaluator`.

    The texts are left-aligned for the shared pass (pads first, masked) so
    that the prompt follows every row's last token at cache index T. Rotary
    position embeddings depend only on relative positions, so the scores
    equal those of the full `[x; prompt]` forward pass of the model (up to
    float rounding); this needs a Llama-family backbone (Llama, SmolLM2,
    Mistral). Losses, mini-batches and candidate forms are those of
    `KerasEvaluator`; each candidate counts as one forward call, BBT's
    unit, though the shared pass is paid once per mini-batch.

    Args:
        model: a `PromptedModel` with a Llama-family backbone and a
            `VerbalizerClassification(..., placement="suffix")` task.
        x, y, batch_size, loss, parameters, seed, chunk_size: as for
            `KerasEvaluator`. When a batch is the whole training set (as
            BBT scores it), its caches are computed once for the whole run.

    Example:
    ```python
    task = VerbalizerClassification(verbalizer, placement="suffix")
    model = PromptedModel(backbone, task, prompt_length=20, tokenizer=tokenizer)
    evaluator = SharedInputEvaluator(model, x, y, batch_size=32)
    losses = evaluator.evaluate(population, step=0).losses  # [K]
    ```
    """

    provides_gradients = False

    def __init__(
        self, model, x, y, batch_size=32, loss="cross_entropy", parameters="prompt", seed=0,
        chunk_size=None,
    ):
        task = model.task
        if not (
            isinstance(task, VerbalizerClassification) and task.placement == "suffix"
        ):
            raise ValueError(
                "SharedInputEvaluator needs the prompt after the input: build "
                "the model with VerbalizerClassification(verbalizer, "
                "placement='suffix'). With a prefix prompt the input's keys "
                "and values depend on the prompt; use KerasEvaluator."
            )
        if not supports_shared_input(model.adapter):
            raise ValueError(
                "SharedInputEvaluator needs a Llama-family backbone (rotary "
                "positions, so a left-padded shared input matches the "
                f"unpadded one); got {type(model.backbone).__name__}. Use "
                "KerasEvaluator."
            )
        if model.prompt_length < 1:
            raise ValueError("SharedInputEvaluator needs prompt_length >= 1.")
        super().__init__(model, x, y, batch_size, loss, parameters, seed,
                         chunk_size=chunk_size)
        self._shared_pass = compile_function(self._input_caches)
        self._whole_set_groups = None

    def _input_caches(self, token_ids, padding_mask):
        return suffix_input_caches(
            self.model.adapter, token_ids, padding_mask, self.model.prompt_length
        )

    def _loss_inputs(self, step):
        # The mini-batch's caches, computed once for all K candidates (per
        # chunk); the whole training set's, once for the whole run.
        whole_set = self.batch_size >= len(self.y)
        if whole_set and self._whole_set_groups is not None:
            return self._whole_set_groups
        x, y = self.batch(step)
        groups = []
        for (bx, by), share in [((bx, by), len(by) / len(y)) for bx, by in self._buckets(x, y)]:
            token_ids, padding_mask = left_align(bx["token_ids"], bx["padding_mask"])
            caches = self._shared_pass(token_ids, padding_mask)
            groups.append(((caches, padding_mask, by), share))
        if whole_set:
            self._whole_set_groups = groups
        return groups

    def _loss_of(self, candidate_parts, caches, padding_mask, y):
        """Runs only the P prompt vectors, against the input's caches."""
        answer = suffix_answer_states(
            self.model.adapter, self._prompt_of(candidate_parts), caches, padding_mask
        )
        scores = self.model.task.scores_at_answer(self.model.adapter, answer)
        return self._classification_loss(scores, y)

    def evaluate(self, candidates, step, compute_gradients=False):
        if compute_gradients:
            raise ValueError(
                "SharedInputEvaluator scores forward only; use KerasEvaluator "
                "for optimizers that need gradients."
            )
        return super().evaluate(candidates, step)
