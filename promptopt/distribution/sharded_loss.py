"""A loss and its gradient, compiled once for a device mesh (data parallel)."""

import jax
import numpy as np
from keras import StatelessScope


class ShardedLoss:
    """`loss_of(parts, *inputs)` jitted over a mesh, the model's weights as inputs.

    The replacement, on a mesh, of `compile_function` and
    `make_value_and_grad` (`promptopt.backends.value_and_grad`), with the
    same call signatures and results. The model's variables are passed to
    the compiled function (through a `StatelessScope`) rather than closed
    over, so jax keeps each weight where the distribution laid it out
    (replicated, or sharded by a layout map) instead of baking it into the
    program as a constant. The candidate's parts are replicated; the
    inputs come split along the batch (`BatchSharding.shard`), so each
    device runs B / D examples and XLA all-reduces the mean loss and the
    prompt's gradient (one all-reduce of `[*S]` per step). Results are
    replicated, so every process of a multi-process run can read them.

    Args:
        loss_of: `(parts, *inputs) -> (loss, metric)`, scalars (an
            evaluator's `_loss_of`).
        variables: every Keras variable `loss_of` reads (`model.variables`).
        sharding: a `BatchSharding`.

    Example:
    ```python
    loss = ShardedLoss(evaluator._loss_of, model.variables, BatchSharding(setup))
    (value, metric), grads = loss.value_and_grad([prompt], *sharding.shard((x, y)))
    ```
    """

    def __init__(self, loss_of, variables, sharding):
        self.variables = list(variables)
        self.sharding = sharding
        stateless = with_variables(loss_of, self.variables)
        replicated = sharding.replicated_layout(0)  # a prefix for every output

        def scalar(parts, values, *inputs):
            out = stateless(values, parts, *inputs)
            return out[0], out

        self._forward = jax.jit(stateless, out_shardings=replicated)
        self._value_and_grad = jax.jit(
            jax.value_and_grad(scalar, has_aux=True), out_shardings=replicated)

    def _parts(self, parts):
        return [self.sharding.replicate(np.asarray(p, "float32")) for p in parts]

    def _values(self):
        return [v.value for v in self.variables]

    def forward(self, parts, *inputs):
        """`(loss, metric)` of one candidate's parts on one group."""
        return self._forward(self._values(), self._parts(parts), *inputs)

    def value_and_grad(self, parts, *inputs):
        """`((loss, metric), grads)`, one numpy gradient per part."""
        (_, out), grads = self._value_and_grad(self._parts(parts), self._values(), *inputs)
        return out, [np.asarray(g) for g in grads]


def with_variables(fn, variables):
    """`fn` as a function of the variables' values: `g(values, *args)`.

    Inside `g`, reading `variables[i]` gives `values[i]`, so a jitted `g`
    takes the weights as (sharded) inputs.
    """

    def call(values, *args):
        with StatelessScope(state_mapping=list(zip(variables, values))):
            return fn(*args)

    return call
