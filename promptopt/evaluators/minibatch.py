"""Which examples a step's mini-batch holds, the same for every evaluator."""

import numpy as np


def minibatch_indices(num_examples, batch_size, seed, step):
    """Sorted indices `[B]` of the examples in `step`'s mini-batch.

    Drawn from `np.random.default_rng([seed, step])` and nothing else, so a
    run resumed from a checkpoint sees the batches an uninterrupted one
    would, and local and remote evaluators with one seed see the same
    examples. B = min(batch_size, N); with batch_size >= N, every example
    in order.

    Example:
    ```python
    minibatch_indices(100, 32, seed=0, step=7)  # [32] ints in [0, 100)
    ```
    """
    if batch_size >= num_examples:
        return np.arange(num_examples)
    rng = np.random.default_rng([seed, int(step)])
    return np.sort(rng.choice(num_examples, size=batch_size, replace=False))
