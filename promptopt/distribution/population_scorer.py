"""Forward losses of a whole population at once, candidates split over devices."""

import jax
import numpy as np
from keras import ops

from promptopt.distribution.sharded_loss import with_variables


class PopulationScorer:
    """Scores K candidates in one compiled call, K / D on each data shard.

    For forward-only search (CMA-ES, BBTv2): the candidates `[K, *S]` are
    split along K over the mesh's "batch" axis, each device maps
    `loss_of` over its own (`jax.vmap`, so K / D candidates x B examples
    in one pass) on a full copy of the group's inputs, and only the K
    losses and metrics are gathered; no gradient, no all-reduce of
    activations. K is padded to a multiple of D with copies of the last
    candidate, whose scores are dropped.

    Args:
        loss_of: `(parts, *inputs) -> (loss, metric)` of one candidate.
        layout: the evaluator's `CandidateLayout` (how a candidate splits
            into parts).
        variables: every Keras variable `loss_of` reads.
        sharding: a `BatchSharding`.

    Example:
    ```python
    scorer = PopulationScorer(evaluator._loss_of, evaluator._layout,
                              model.variables, BatchSharding(setup))
    losses, metrics = scorer(candidates, x, y)  # [K] each, numpy
    ```
    """

    def __init__(self, loss_of, layout, variables, sharding):
        self.variables = list(variables)
        self.sharding = sharding
        stateless = with_variables(loss_of, self.variables)
        shapes, first_only = list(layout.shapes), layout.first_only

        def split(candidate):
            # `CandidateLayout.split` on a traced candidate.
            if first_only:
                return [candidate]
            parts, offset = [], 0
            for shape in shapes:
                size = int(np.prod(shape))
                parts.append(ops.reshape(candidate[offset:offset + size], shape))
                offset += size
            return parts

        def population(values, candidates, *inputs):
            return jax.vmap(lambda c: stateless(values, split(c), *inputs))(candidates)

        self._population = jax.jit(population, out_shardings=sharding.replicated_layout(1))

    def __call__(self, candidates, *inputs):
        """`(losses [K], metrics [K])` as numpy, of `candidates` `[K, *S]`."""
        candidates = np.asarray(candidates, "float32")
        count = len(candidates)
        padded = -(-count // self.sharding.data_shards) * self.sharding.data_shards
        if padded > count:
            candidates = np.concatenate([candidates, np.repeat(candidates[-1:], padded - count, 0)])
        losses, metrics = self._population(
            [v.value for v in self.variables],
            self.sharding.shard(candidates),
            *self.sharding.replicate(inputs),
        )
        return np.asarray(losses)[:count], np.asarray(metrics)[:count]
