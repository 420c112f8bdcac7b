"""Li & Liang's reparameterization of a prefix: `P = MLP(P')`."""

import keras
import numpy as np
from keras import ops


@keras.saving.register_keras_serializable(package="promptopt")
class PrefixMLP(keras.layers.Layer):
    """Maps a small matrix `P'` `[P, k]` to the prefix `[L, 2, P, N, D]`.

    Li & Liang (2021, Sec. 4.3): optimizing the prefix directly is unstable,
    so they reparameterize it as `P[i, :] = MLP(P'[i, :])`, a two-layer MLP
    (tanh hidden layer) shared by the `P` positions whose output is every
    layer's key and value at that position. After training only `P` is kept:
    `KeyValuePrefix.materialize()` drops `P'` and the MLP.

    Args:
        input_dim: int, `k`, the width of `P'` (their `n_embd`, e.g. 512).
        hidden_units: int, the MLP's hidden width (their `mid_dim`, 512).
        seed: int, for the initial weights.

    Example:
    ```python
    prefix = KeyValuePrefix((30, 2, 10, 3, 64), parameterization=PrefixMLP())
    prefix().shape  # (30, 2, 10, 3, 64)
    ```
    """

    def __init__(self, input_dim=512, hidden_units=512, seed=0, **kwargs):
        super().__init__(**kwargs)
        self.input_dim = int(input_dim)
        self.hidden_units = int(hidden_units)
        self.seed = int(seed)

    def raw_shape(self, prefix_shape):
        """Shape of `P'` for a prefix `[L, 2, P, N, D]`: `(P, k)`."""
        return (int(prefix_shape[2]), self.input_dim)

    def build(self, prefix_shape):
        self.prefix_shape = tuple(int(d) for d in prefix_shape)
        layers, two, _, heads, head_dim = self.prefix_shape
        output_dim = layers * two * heads * head_dim
        init = lambda i: keras.initializers.GlorotUniform(seed=self.seed + i)
        self.hidden_kernel = self.add_weight(
            shape=(self.input_dim, self.hidden_units), initializer=init(0), name="hidden_kernel"
        )
        self.hidden_bias = self.add_weight(
            shape=(self.hidden_units,), initializer="zeros", name="hidden_bias"
        )
        self.output_kernel = self.add_weight(
            shape=(self.hidden_units, output_dim), initializer=init(1), name="output_kernel"
        )
        self.output_bias = self.add_weight(
            shape=(output_dim,), initializer="zeros", name="output_bias"
        )
        self.built = True

    def _hidden(self, raw):
        return ops.tanh(ops.matmul(raw, self.hidden_kernel) + self.hidden_bias)

    def call(self, raw):
        """`P'` `[P, k]` -> prefix `[L, 2, P, N, D]`."""
        out = ops.matmul(self._hidden(raw), self.output_kernel) + self.output_bias
        layers, two, _, heads, head_dim = self.prefix_shape
        out = ops.reshape(out, (-1, layers, two, heads, head_dim))  # [P, L, 2, N, D]
        return ops.transpose(out, (1, 2, 0, 3, 4))

    def fit_output(self, raw, target):
        """Sets the output layer so that `MLP(raw) == target` exactly.

        With `hidden_units >= P` the hidden activations `h = tanh(raw W1 + b1)`
        `[P, m]` have full row rank, so the minimum-norm least-squares
        `[W2; b2] = pinv([h, 1]) target` solves `h W2 + b2 = target`: the
        MLP starts at the given prefix (e.g. real words' activations, Li &
        Liang Sec. 7.2) while keeping its reparameterized training dynamics.

        Args:
            raw: `[P, k]`, the value of `P'`.
            target: `[L, 2, P, N, D]`.
        """
        hidden = np.asarray(ops.convert_to_numpy(self._hidden(raw)), "float64")
        design = np.concatenate([hidden, np.ones((len(hidden), 1))], axis=1)
        target = np.transpose(np.asarray(target, "float64"), (2, 0, 1, 3, 4))
        target = target.reshape(len(hidden), -1)  # [P, L * 2 * N * D]
        solution = np.linalg.pinv(design) @ target
        self.output_kernel.assign(solution[:-1].astype("float32"))
        self.output_bias.assign(solution[-1].astype("float32"))

    def get_config(self):
        config = super().get_config()
        config.update(
            input_dim=self.input_dim, hidden_units=self.hidden_units, seed=self.seed
        )
        return config
