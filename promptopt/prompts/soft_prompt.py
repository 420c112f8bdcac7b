"""The Keras layer that owns the prompt tensor."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="promptopt")
class SoftPrompt(keras.layers.Layer):
    """A trainable soft prompt `[P, H]`, the one tensor every optimizer acts on.

    The layer owns the raw prompt variable. What the language model sees is
    `parameterization(prompt)`: the identity by default, or a
    reparameterization such as the residual MLP of Razdaibiedina et al.
    (2023). The reparameterization is a sublayer, kept out of this class, so
    any optimizer can train it and `materialize()` can drop it at export.

    Calling the layer takes no input and returns the prompt the model sees,
    `[P, H]`; the model broadcasts it over the batch.

    Args:
        length: int, P, the number of prompt vectors. 0 is allowed (no prompt).
        hidden_dim: int, H, the model's embedding size.
        initial_value: optional array `[P, H]`; see
            `promptopt.prompts.initializers` for model-aware initializers.
            Config does not carry it: weights travel with `save_weights` or
            the prompt file.
        parameterization: optional Keras layer mapping `[P, H] -> [P, H]`.

    Example:
    ```python
    prompt = SoftPrompt(length=20, hidden_dim=576)
    prompt.build()
    prompt().shape  # (20, 576)
    ```
    """

    def __init__(
        self,
        length,
        hidden_dim,
        initial_value=None,
        parameterization=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(length) < 0:
            raise ValueError(
                f"Prompt length must be >= 0, got {length}. Use 0 for no "
                "prompt, or a positive number of prompt vectors."
            )
        self.length = int(length)
        self.hidden_dim = int(hidden_dim)
        if initial_value is not None:
            initial_value = np.asarray(initial_value, dtype="float32")
            expected = (self.length, self.hidden_dim)
            if initial_value.shape != expected:
                raise ValueError(
                    f"Initial prompt has shape {initial_value.shape}, but the "
                    f"prompt is [P, H] = {expected}. Pass an array of that "
                    "shape, or change length/hidden_dim to match the array."
                )
        self.initial_value = initial_value
        self.parameterization = parameterization

    def build(self, input_shape=None):
        shape = (self.length, self.hidden_dim)
        if self.initial_value is not None:
            value = self.initial_value
            initializer = lambda shape, dtype=None: ops.cast(value, dtype)
        else:
            initializer = "zeros"
        self.prompt = self.add_weight(
            shape=shape, initializer=initializer, name="prompt"
        )
        if self.parameterization is not None and not self.parameterization.built:
            # A parameterization revived from a config is already built
            # (Keras saves its build_config); building it again would fail.
            self.parameterization.build(shape)
        self.built = True

    def call(self, inputs=None):
        if self.parameterization is None:
            return ops.convert_to_tensor(self.prompt)
        return self.parameterization(self.prompt)

    def materialize(self):
        """The final prompt `[P, H]` as numpy, reparameterization applied."""
        if not self.built:
            self.build()
        # A copy: on torch, convert_to_numpy shares the variable's memory.
        return np.array(ops.convert_to_numpy(self.call()), dtype="float32")

    def assign(self, value):
        """Sets the raw prompt variable from an array `[P, H]`."""
        value = np.asarray(value, dtype="float32")
        if value.shape != (self.length, self.hidden_dim):
            raise ValueError(
                f"Cannot assign a prompt of shape {value.shape} to a SoftPrompt "
                f"of shape {(self.length, self.hidden_dim)}."
            )
        if not self.built:
            self.build()
        self.prompt.assign(value)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "length": self.length,
                "hidden_dim": self.hidden_dim,
                "parameterization": keras.saving.serialize_keras_object(
                    self.parameterization
                ),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["parameterization"] = keras.saving.deserialize_keras_object(
            config.get("parameterization")
        )
        return cls(**config)
