"""Scores candidate prefixes with a local `PrefixModel`."""

import numpy as np
from keras import StatelessScope
from keras import ops

from promptopt.evaluators.base import Evaluation
from promptopt.evaluators.candidate_layout import CandidateLayout
from promptopt.evaluators.base import Evaluator
from promptopt.evaluators.value_and_grad import compile_function
from promptopt.evaluators.value_and_grad import make_value_and_grad
from promptopt.tasks.classification import VerbalizerClassification
from promptopt.tasks.losses import classification_loss


class PrefixEvaluator(Evaluator):
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

    Example:
    ```python
    evaluator = PrefixEvaluator(model, x, y, sample_weight=w, batch_size=8)
    runner = PromptTuningRunner(evaluator)
    result = runner.run(evaluator.initial_candidate(),
                        [Stage(CMAESOptimizer(popsize=10), Budget(steps=20))])
    evaluator.assign(result.best_prompt)
    ```
    """

    provides_gradients = True

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
    ):
        if parameters not in ("prefix", "all"):
            raise ValueError(
                f"parameters must be 'prefix' or 'all', got {parameters!r}."
            )
        self.model = model
        self.x = {k: np.asarray(v) for k, v in x.items()}
        self.y = np.asarray(y, dtype="int32")
        if len(self.y) == 0:
            raise ValueError("PrefixEvaluator got no examples; give at least one.")
        self.is_classification = isinstance(model.task, VerbalizerClassification)
        if sample_weight is None:
            sample_weight = np.ones(self.y.shape, "float32")
        self.sample_weight = np.asarray(sample_weight, "float32")
        self.batch_size = int(batch_size)
        self.loss = loss
        self.parameters = parameters
        self.seed = int(seed)
        if self.is_classification:
            classification_loss(np.zeros((1, 2)), np.zeros(1), loss)  # validates
        layer = model.prefix
        self._variables = [layer.raw] + (
            [] if layer.parameterization is None else list(layer.parameterization.weights)
        )
        self._layout = CandidateLayout(self._variables, first_only=parameters == "prefix")
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
        return x, self.y[index], self.sample_weight[index]

    def _loss_of(self, candidate_parts, x, y, weight):
        raw = candidate_parts[0]
        mlp = self.model.prefix.parameterization
        if mlp is None:
            prefix = raw
        elif self.parameters == "all":
            # Evaluate the MLP with the candidate's weights, statelessly.
            mapping = list(zip(mlp.weights, candidate_parts[1:]))
            with StatelessScope(state_mapping=mapping):
                prefix = mlp(raw)
        else:
            prefix = mlp(raw)
        outputs = self.model(x, prefix=prefix)
        if self.is_classification:
            per_example = classification_loss(outputs, y, self.loss)
            accuracy = ops.mean(
                ops.cast(ops.argmax(outputs, axis=-1) == ops.cast(y, "int32"), "float32")
            )
            return ops.mean(per_example), accuracy
        logp = ops.log_softmax(ops.cast(outputs, "float32"), axis=-1)  # [B, T, V]
        token_logp = ops.take_along_axis(logp, ops.cast(y, "int32")[..., None], axis=-1)[..., 0]
        total = ops.maximum(ops.sum(weight), 1.0)
        loss = -ops.sum(token_logp * weight) / total
        return loss, ops.exp(-loss)  # second output: per-token likelihood

    def evaluate(self, candidates, step, compute_gradients=False):
        x, y, weight = self.batch(step)
        losses, grads, extras = [], [], []
        for candidate in np.asarray(candidates, dtype="float32"):
            parts = self._split(candidate)
            if compute_gradients:
                (loss, extra), part_grads = self._forward_and_grad(parts, x, y, weight)
                grads.append(
                    np.concatenate([np.asarray(g).reshape(-1) for g in part_grads])
                    .reshape(candidate.shape)
                )
            else:
                loss, extra = self._forward(parts, x, y, weight)
            losses.append(float(ops.convert_to_numpy(loss)))
            extras.append(float(ops.convert_to_numpy(extra)))
        name = "batch_accuracy" if self.is_classification else "token_likelihood"
        return Evaluation(
            losses=np.array(losses),
            grads=np.stack(grads) if compute_gradients else None,
            forward_calls=len(losses),
            metrics={name: float(np.mean(extras))},
        )
