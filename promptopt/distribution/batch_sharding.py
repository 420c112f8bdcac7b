"""Puts arrays on a device mesh: split along the batch axis, or replicated."""

import jax
import numpy as np
from keras import tree
from keras.distribution import TensorLayout


class BatchSharding:
    """Places host arrays on a `DistributionSetup`'s mesh.

    `shard` splits every array of a nest along its first axis over the
    mesh's "batch" axis (an array `[B, ...]` becomes B / D rows on each of
    the D data shards; with model parallelism each row block is repeated
    over the "model" axis); `replicate` puts a whole copy on every device.
    A batch that D does not divide (the last length bucket of a mini-batch)
    is replicated instead: the result is the same, only not split.

    Every process of a multi-process run holds the whole mini-batch (its
    indices come from the seed and the step alone), so each fills just the
    shards its own devices hold (`jax.make_array_from_callback`), whatever
    the order of the mesh's devices; nothing crosses between processes.

    Args:
        setup: a `DistributionSetup`.

    Example:
    ```python
    sharding = BatchSharding(setup)
    x = sharding.shard({"token_ids": ids, "padding_mask": mask})  # [B, T] each
    prompt = sharding.replicate(prompt)  # [P, H] on every device
    ```
    """

    def __init__(self, setup):
        self.setup = setup
        self.mesh = setup.device_mesh
        self.batch_axis = setup.distribution.batch_dim_name
        self.data_shards = setup.data_shards

    def replicated_layout(self, ndim):
        """The `jax.sharding.Sharding` of a whole copy on every device."""
        return TensorLayout([None] * ndim, self.mesh).backend_layout

    def batch_layout(self, shape):
        """Split along axis 0 when D divides it, else replicated."""
        if len(shape) == 0 or int(shape[0]) % self.data_shards:
            return self.replicated_layout(len(shape))
        return TensorLayout([self.batch_axis] + [None] * (len(shape) - 1), self.mesh).backend_layout

    def shard(self, nest):
        return tree.map_structure(lambda a: self.place(a, self.batch_layout(np.shape(a))), nest)

    def replicate(self, nest):
        return tree.map_structure(lambda a: self.place(a, self.replicated_layout(np.ndim(a))), nest)

    def place(self, array, sharding):
        """`array` with `sharding`; an array already laid out so is kept."""
        if isinstance(array, jax.Array) and array.sharding.is_equivalent_to(sharding, array.ndim):
            return array
        host = np.asarray(array)
        return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])
