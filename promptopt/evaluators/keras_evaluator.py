"""Scores candidate prompts with a local `PromptedModel`."""

import numpy as np
from keras import ops

from promptopt.evaluators.base import Evaluation
from promptopt.evaluators.candidate_layout import CandidateLayout
from promptopt.evaluators.base import Evaluator
from promptopt.evaluators.value_and_grad import compile_function
from promptopt.evaluators.value_and_grad import make_value_and_grad
from promptopt.tasks.losses import classification_loss


class KerasEvaluator(Evaluator):
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

    Example:
    ```python
    evaluator = KerasEvaluator(model, x, y, batch_size=32, loss="cross_entropy")
    evaluation = evaluator.evaluate(candidates, step=0)
    ```
    """

    provides_gradients = True

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
    ):
        if int(length_buckets) < 1:
            raise ValueError(
                f"length_buckets must be a positive int, got {length_buckets!r}; "
                "use 1 to pad every mini-batch as one group."
            )
        if parameters not in ("prompt", "all"):
            raise ValueError(
                f"parameters must be 'prompt' or 'all', got {parameters!r}."
            )
        self.model = model
        self.x = {k: np.asarray(v) for k, v in x.items()}
        self.y = np.asarray(y, dtype="int32")
        if len(self.y) == 0:
            raise ValueError("KerasEvaluator got no examples; give at least one.")
        self.batch_size = int(batch_size)
        self.loss = loss
        self.parameters = parameters
        self.seed = int(seed)
        self.length_buckets = int(length_buckets)
        classification_loss(np.zeros((1, 2)), np.zeros(1), loss)  # validates
        self._variables = list(model.soft_prompt.weights)
        self._layout = CandidateLayout(self._variables, first_only=parameters == "prompt")
        self._forward = compile_function(self._loss_of)
        self._forward_and_grad = make_value_and_grad(self._loss_of)

    @property
    def candidate_shape(self):
        return self._layout.shape

    def initial_candidate(self):
        """The model's current parameters, in candidate form."""
        return self._layout.initial()

    def assign(self, candidate):
        """Writes a candidate (e.g. the run's best) into the model."""
        self._layout.assign(candidate)

    def _split(self, candidate):
        return self._layout.split(candidate)

    def batch(self, step):
        n = len(self.y)
        if self.batch_size >= n:
            index = np.arange(n)
        else:
            rng = np.random.default_rng([self.seed, int(step)])
            index = np.sort(rng.choice(n, size=self.batch_size, replace=False))
        x = {k: v[index] for k, v in self.x.items()}
        # Trim padding columns no row of this batch uses.
        width = max(int(x["padding_mask"].sum(axis=1).max()), 1)
        return {k: v[:, :width] for k, v in x.items()}, self.y[index]

    def _prompt_of(self, candidate_parts):
        """The prompt `[P, H]` a candidate puts in front of the model."""
        prompt = candidate_parts[0]
        candidate_parts = list(candidate_parts)
        layer = self.model.soft_prompt
        if layer.parameterization is not None:
            if self.parameters == "all":
                # Evaluate the MLP with the candidate's weights.
                prompt = _call_with_weights(
                    layer.parameterization, candidate_parts[1:], prompt
                )
            else:
                prompt = layer.parameterization(prompt)
        return prompt

    def _buckets(self, x, y):
        """Splits a mini-batch into `length_buckets` groups of similar length."""
        if self.length_buckets == 1:
            return [(x, y)]
        lengths = x["padding_mask"].sum(axis=1)
        groups = np.array_split(np.argsort(lengths, kind="stable"), self.length_buckets)
        out = []
        for rows in groups:
            if len(rows) == 0:
                continue
            width = max(int(lengths[rows].max()), 1)
            out.append(({k: v[rows, :width] for k, v in x.items()}, y[rows]))
        return out

    def _loss_of(self, candidate_parts, x, y):
        prompt = self._prompt_of(candidate_parts)
        scores = self.model(x, prompt=prompt)
        per_example = classification_loss(scores, y, self.loss)
        accuracy = ops.mean(
            ops.cast(ops.argmax(scores, axis=-1) == ops.cast(y, "int32"), "float32")
        )
        return ops.mean(per_example), accuracy

    def evaluate(self, candidates, step, compute_gradients=False):
        x, y = self.batch(step)
        losses, grads, accuracies = [], [], []
        buckets = self._buckets(x, y)
        for candidate in np.asarray(candidates, dtype="float32"):
            parts = self._split(candidate)
            loss = accuracy = 0.0
            grad = 0.0
            for bucket_x, bucket_y in buckets:
                # Each bucket's mean weighs by its share of the examples.
                weight = len(bucket_y) / len(y)
                if compute_gradients:
                    (b_loss, b_acc), part_grads = self._forward_and_grad(
                        parts, bucket_x, bucket_y
                    )
                    grad = grad + weight * np.concatenate(
                        [np.asarray(g).reshape(-1) for g in part_grads]
                    )
                else:
                    b_loss, b_acc = self._forward(parts, bucket_x, bucket_y)
                loss += weight * float(ops.convert_to_numpy(b_loss))
                accuracy += weight * float(ops.convert_to_numpy(b_acc))
            if compute_gradients:
                grads.append(grad.reshape(candidate.shape))
            losses.append(loss)
            accuracies.append(accuracy)
        return Evaluation(
            losses=np.array(losses),
            grads=np.stack(grads) if compute_gradients else None,
            forward_calls=len(losses),
            metrics={"batch_accuracy": float(np.mean(accuracies))},
        )


def _call_with_weights(layer, values, inputs):
    """Calls `layer` as if its weights held `values` (stateless)."""
    mapping = list(zip(layer.weights, values))
    from keras import StatelessScope

    with StatelessScope(state_mapping=mapping):
        return layer(inputs)
