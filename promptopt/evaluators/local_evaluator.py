"""What evaluators of a local Keras model share: batches, candidates, the loop."""

import abc

import numpy as np
from keras import StatelessScope
from keras import ops

from promptopt.distribution.device_mesh import DistributionSetup
from promptopt.evaluators.base import Evaluation
from promptopt.evaluators.base import Evaluator
from promptopt.evaluators.candidate_layout import CandidateLayout
from promptopt.evaluators.minibatch import minibatch_indices
from promptopt.evaluators.value_and_grad import compile_function
from promptopt.evaluators.value_and_grad import make_value_and_grad
from promptopt.tasks.losses import classification_loss


class LocalEvaluator(Evaluator):
    """Scores candidates with a model in this process, one pass per candidate.

    Each `evaluate` call draws one mini-batch from the training examples
    (`minibatch_indices`: from `seed` and `step` alone, so a resumed run
    sees the same batches) and scores the K candidates one after another
    on it, each as one forward (and, if asked, backward) pass: one forward
    call each, BBT's unit of budget. A candidate is the model's trainable
    weights laid out by a `CandidateLayout`: the raw weight alone
    (`parameters=raw_parameters`) or every weight flattened
    (`parameters="all"`, so a reparameterization is trained too).

    Subclasses give the weights, `_loss_of` and `_loss_inputs`:
    - `_loss_of(candidate_parts, *inputs)` returns `(loss, metric)`, two
      scalars, for one group of examples;
    - `_loss_inputs(step)` returns `[(inputs, share)]`, the groups of
      `step`'s mini-batch with their fractions of its examples (one group
      with share 1.0 unless the batch is split, e.g. by length). Losses,
      metrics and gradients are the share-weighted sums over the groups.

    Built while a `promptopt.distribution.DistributionSetup` is current
    (JAX), the evaluator runs each pass compiled on that device mesh:
    mini-batches split over the devices, and a forward-only population's
    candidates too (`MeshScoring`); the results equal one device's up to
    float rounding.

    Args:
        model: the Keras model the candidates are written into.
        x: dict of arrays `[N, T]`, the inputs.
        y: int labels `[N]` or target tokens `[N, T]`.
        variables: list of Keras variables, the raw prompt or prefix first.
        batch_size: examples per evaluation (all N if larger).
        loss: the loss name the subclass applies.
        parameters: `raw_parameters` or "all".
        seed: int, for mini-batch sampling.

    Example:
    ```python
    class MyEvaluator(LocalEvaluator):
        raw_parameters = "prompt"

        def __init__(self, model, x, y, batch_size=32, seed=0):
            super().__init__(model, x, y, model.soft_prompt.weights, batch_size,
                             "cross_entropy", "prompt", seed)

        def _loss_inputs(self, step):
            index = self._batch_indices(step)
            x = {k: v[index] for k, v in self.x.items()}
            return [((x, self.y[index]), 1.0)]  # one group, all of the batch

        def _loss_of(self, candidate_parts, x, y):
            return self._classification_loss(self.model(x, prompt=candidate_parts[0]), y)
    ```
    """

    provides_gradients = True
    # Subclasses: the `parameters` value that makes a candidate the raw
    # weight alone ("prompt", "prefix").
    raw_parameters = None
    # The name under which `evaluate` reports the mean of `_loss_of`'s metric.
    _metric_name = "batch_accuracy"

    def __init__(self, model, x, y, variables, batch_size, loss, parameters, seed):
        if parameters not in (self.raw_parameters, "all"):
            raise ValueError(
                f"parameters must be {self.raw_parameters!r} or 'all', got {parameters!r}."
            )
        self.model = model
        self.x = {k: np.asarray(v) for k, v in x.items()}
        self.y = np.asarray(y, dtype="int32")
        if len(self.y) == 0:
            raise ValueError(f"{type(self).__name__} got no examples; give at least one.")
        self.batch_size = int(batch_size)
        self.loss = loss
        self.parameters = parameters
        self.seed = int(seed)
        self._variables = list(variables)
        self._layout = CandidateLayout(
            self._variables, first_only=parameters == self.raw_parameters
        )
        self._forward = compile_function(self._loss_of)
        self._forward_and_grad = make_value_and_grad(self._loss_of)
        # Under a current DistributionSetup (JAX), every pass runs compiled
        # on its device mesh (promptopt.distribution.MeshScoring).
        self._mesh = None
        setup = DistributionSetup.current()
        if setup is not None:
            from promptopt.distribution.mesh_scoring import MeshScoring  # imports jax

            self._mesh = MeshScoring(self, setup)
            self._forward, self._forward_and_grad = self._mesh.forward, self._mesh.value_and_grad

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

    def _batch_indices(self, step):
        return minibatch_indices(len(self.y), self.batch_size, self.seed, step)

    def _materialize(self, candidate_parts, parameterization, dropout_seed=None):
        """The raw weight `candidate_parts[0]` through `parameterization`.

        With `parameters="all"` the parameterization runs with the
        candidate's own weights (`candidate_parts[1:]`), statelessly, so
        that gradients reach them and the model's weights stay untouched.
        With `dropout_seed` (a gradient step of a parameterization with
        dropout) it runs in training mode, its `SeedGenerator` set to that
        seed: the masks depend on the run's seed and the step alone.
        """
        raw = candidate_parts[0]
        if parameterization is None:
            return raw
        if self.parameters == "all":
            mapping = list(zip(parameterization.weights, candidate_parts[1:]))
            training = dropout_seed is not None
            if training:
                # Traced with an unknown length; the state's shape is (2,).
                seed = ops.reshape(ops.convert_to_tensor(dropout_seed), (2,))
                mapping.append((parameterization.dropout_seed.state, seed))
            with StatelessScope(state_mapping=mapping):
                return parameterization(raw, training=training)
        return parameterization(raw)

    def _dropout_seed(self, step):
        """The `[2]` seed of `step`'s dropout masks, or None without dropout."""
        if self.parameters != "all":
            return None
        soft_prompt = getattr(self.model, "soft_prompt", None)  # a prefix has its own
        parameterization = getattr(soft_prompt, "parameterization", None)
        if not getattr(parameterization, "dropout", 0.0):
            return None
        return np.array([self.seed, step], parameterization.dropout_seed.state.dtype)

    def _classification_loss(self, scores, y):
        """`(mean loss, accuracy)` of class scores `[B, C]` for labels `[B]`."""
        per_example = classification_loss(scores, y, self.loss)
        accuracy = ops.mean(
            ops.cast(ops.argmax(scores, axis=-1) == ops.cast(y, "int32"), "float32")
        )
        return ops.mean(per_example), accuracy

    @abc.abstractmethod
    def _loss_inputs(self, step):
        """`[(inputs, share)]`: the groups of `step`'s mini-batch."""

    @abc.abstractmethod
    def _loss_of(self, candidate_parts, *inputs):
        """`(loss, metric)` scalars of one candidate on one group."""

    def evaluate(self, candidates, step, compute_gradients=False):
        groups = self._loss_inputs(step)
        candidates = np.asarray(candidates, dtype="float32")
        if self._mesh is not None:
            if self._mesh.shards_candidates(len(candidates), compute_gradients):
                return self._evaluate_population(candidates, groups)
            groups = [(self._mesh.shard_examples(inputs), share) for inputs, share in groups]
        dropout_seed = self._dropout_seed(step) if compute_gradients else None
        if dropout_seed is not None:
            # Dropout acts on gradient steps only, as in fit(); scoring is exact.
            groups = [((*inputs, dropout_seed), share) for inputs, share in groups]
        losses, grads, metrics = [], [], []
        for candidate in candidates:
            parts = self._split(candidate)
            loss = metric = 0.0
            grad = 0.0
            for inputs, share in groups:
                if compute_gradients:
                    (group_loss, group_metric), part_grads = self._forward_and_grad(
                        parts, *inputs
                    )
                    grad = grad + share * np.concatenate(
                        [np.asarray(g).reshape(-1) for g in part_grads]
                    )
                else:
                    group_loss, group_metric = self._forward(parts, *inputs)
                loss += share * float(ops.convert_to_numpy(group_loss))
                metric += share * float(ops.convert_to_numpy(group_metric))
            if compute_gradients:
                grads.append(grad.reshape(candidate.shape))
            losses.append(loss)
            metrics.append(metric)
        return Evaluation(
            losses=np.array(losses),
            grads=np.stack(grads) if compute_gradients else None,
            forward_calls=len(losses),
            metrics={self._metric_name: float(np.mean(metrics))},
        )

    def _evaluate_population(self, candidates, groups):
        """All K candidates per group in one pass, split over the mesh."""
        losses = np.zeros(len(candidates))
        metrics = np.zeros(len(candidates))
        for inputs, share in groups:
            group_losses, group_metrics = self._mesh.population(candidates, *inputs)
            losses += share * group_losses.astype("float64")
            metrics += share * group_metrics.astype("float64")
        return Evaluation(
            losses=losses,
            forward_calls=len(losses),
            metrics={self._metric_name: float(np.mean(metrics))},
        )
