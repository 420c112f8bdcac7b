"""The Keras layer that owns a per-layer key/value prefix."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="promptopt")
class KeyValuePrefix(keras.layers.Layer):
    """A trainable prefix `[L, 2, P, N, D]`: P keys and values per layer.

    `L` counts prefixed attention layers (for T5, per attention site; see
    `PrefixedT5Adapter`), `[:, 0]` holds keys and `[:, 1]` values, `N` is
    the number of K/V heads (3 for SmolLM2's grouped-query attention) and
    `D` the head size. Without a parameterization the layer's one variable
    is the prefix itself. With one (e.g. `PrefixMLP`), the variable is the
    smaller `P'` and the prefix is `parameterization(P')`; any optimizer
    trains both, and `materialize()` returns the final prefix for export.

    Calling the layer takes no input and returns the prefix `[L, 2, P, N, D]`.

    Args:
        shape: tuple `(L, 2, P, N, D)`.
        initial_value: optional array, the initial prefix `[L, 2, P, N, D]`
            (with a parameterization, the MLP is fitted to output it).
        parameterization: optional layer with `raw_shape(shape)` and
            `call(raw) -> [L, 2, P, N, D]`.
        seed: int, for the initial `P'` of a parameterization.

    Example:
    ```python
    prefix = KeyValuePrefix((2, 2, 5, 2, 8))
    prefix.build()
    prefix().shape  # (2, 2, 5, 2, 8)
    ```
    """

    def __init__(
        self, shape, initial_value=None, parameterization=None, seed=0, **kwargs
    ):
        super().__init__(**kwargs)
        self.prefix_shape = tuple(int(d) for d in shape)
        if len(self.prefix_shape) != 5 or self.prefix_shape[1] != 2 or min(self.prefix_shape) < 0:
            raise ValueError(
                f"A prefix has shape (L, 2, P, N, D): layers, key/value, "
                f"length, heads, head size; got {shape}. Build it with "
                "PrefixModel, or take the shape from prefix_shape(adapter, P)."
            )
        if initial_value is not None:
            initial_value = np.asarray(initial_value, dtype="float32")
            if initial_value.shape != self.prefix_shape:
                raise ValueError(
                    f"Initial prefix has shape {initial_value.shape}, but the "
                    f"prefix is [L, 2, P, N, D] = {self.prefix_shape}. Pass an array "
                    "of that shape."
                )
        self.initial_value = initial_value
        self.parameterization = parameterization
        self.seed = int(seed)

    @property
    def length(self):
        return self.prefix_shape[2]

    def build(self, input_shape=None):
        if self.parameterization is None:
            value = self.initial_value
            initializer = (
                "zeros" if value is None else (lambda shape, dtype=None: ops.cast(value, dtype))
            )
            self.raw = self.add_weight(shape=self.prefix_shape, initializer=initializer, name="prefix")
        else:
            if not self.parameterization.built:
                self.parameterization.build(self.prefix_shape)
            # Li & Liang's P' is an embedding table: start it random.
            self.raw = self.add_weight(
                shape=self.parameterization.raw_shape(self.prefix_shape),
                initializer=keras.initializers.RandomNormal(seed=self.seed),
                name="prefix_input",
            )
            if self.initial_value is not None:
                self.parameterization.fit_output(self.raw, self.initial_value)
        self.built = True

    def call(self, inputs=None):
        if self.parameterization is None:
            return ops.convert_to_tensor(self.raw)
        return self.parameterization(self.raw)

    def materialize(self):
        """The final prefix `[L, 2, P, N, D]` as numpy (the MLP applied)."""
        if not self.built:
            self.build()
        # A copy: on torch, convert_to_numpy shares the variable's memory.
        return np.array(ops.convert_to_numpy(self.call()), dtype="float32")

    def assign(self, value):
        """Sets the prefix `[L, 2, P, N, D]` (through the MLP, if any)."""
        value = np.asarray(value, dtype="float32")
        if value.shape != self.prefix_shape:
            raise ValueError(
                f"Cannot assign a prefix of shape {value.shape} to a "
                f"KeyValuePrefix of shape {self.prefix_shape}."
            )
        if not self.built:
            self.build()
        if self.parameterization is None:
            self.raw.assign(value)
        else:
            self.parameterization.fit_output(self.raw, value)

    def get_config(self):
        config = super().get_config()
        config.update(
            shape=list(self.prefix_shape),
            seed=self.seed,
            parameterization=keras.saving.serialize_keras_object(
                self.parameterization
            ),
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["parameterization"] = keras.saving.deserialize_keras_object(
            config.get("parameterization")
        )
        return cls(**config)
