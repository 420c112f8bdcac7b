"""Residual Prompt Tuning (Razdaibiedina et al. 2023): a residual MLP."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="promptopt")
class ResidualReparameterization(keras.layers.Layer):
    """`prompt' = prompt + LayerNorm(W2 . ReLU(W1 . prompt))`, shape `[P, H]`.

    With `layer_norm=False`, `prompt' = prompt + W2 . ReLU(W1 . prompt)`.

    Razdaibiedina et al. (2023, eq. 2-3) pass each prompt vector through a
    bottleneck MLP with a skip connection; the reparameterized prompt trains
    faster and is more robust to the learning rate than plain prompt tuning.
    The MLP is shared across the P prompt vectors by default (the paper's
    choice); `shared=False` gives each vector its own MLP. It is a
    parameterization of `SoftPrompt`, so any optimizer trains it, and it is
    dropped at export: `SoftPrompt.materialize()` returns `prompt'`.

    The LayerNorm's output has unit variance per entry, so at init the
    residual term has norm about sqrt(H) (24 for SmolLM2) whatever the
    scale of the embeddings. T5's embedding rows, which the paper tuned,
    are far larger than that; SmolLM2's have norm about 3, so the term
    would swamp an initialization from real words. `output_scale` sets the
    LayerNorm's initial gain; `PromptedModel` users can pass the std of
    the embedding table to start the term at the scale of real tokens
    (1.0, the paper's setting, is the default).

    Args:
        bottleneck: int, the MLP's hidden size (400 in the paper).
        shared: bool, one MLP for all prompt vectors.
        seed: int, for the MLP's initial weights.
        output_scale: float, initial LayerNorm gain.
        layer_norm: bool, end the MLP in a LayerNorm (the paper's and the
            reference code's default). Without it the residual term starts
            at the scale Glorot-initialized weights give it.
        dropout: float in [0, 1), dropout on the MLP's output before the
            LayerNorm, in training only (the reference code's place for it).
            Its mask comes from `dropout_seed`, a `SeedGenerator`: `fit()`
            advances it; the runner's evaluators set its state from the
            run's seed and the step, so a resumed run draws the same masks.

    Example:
    ```python
    prompt = SoftPrompt(20, 576, parameterization=ResidualReparameterization())
    ```
    """

    def __init__(self, bottleneck=400, shared=True, seed=0, output_scale=1.0, layer_norm=True,
                 dropout=0.0, **kwargs):
        super().__init__(**kwargs)
        if not 0 <= float(dropout) < 1:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}. Pass e.g. dropout=0.1.")
        self.dropout = float(dropout)
        self.dropout_seed = keras.random.SeedGenerator(seed) if self.dropout else None
        self.use_layer_norm = bool(layer_norm)
        self.bottleneck = int(bottleneck)
        self.shared = bool(shared)
        self.seed = int(seed)
        self.output_scale = float(output_scale)

    def build(self, input_shape):
        length, hidden = int(input_shape[0]), int(input_shape[1])
        lead = () if self.shared else (length,)
        init = lambda i: keras.initializers.GlorotUniform(seed=self.seed + i)
        self.down_kernel = self.add_weight(
            shape=lead + (hidden, self.bottleneck), initializer=init(0), name="down_kernel"
        )
        self.down_bias = self.add_weight(
            shape=lead + (self.bottleneck,), initializer="zeros", name="down_bias"
        )
        self.up_kernel = self.add_weight(
            shape=lead + (self.bottleneck, hidden), initializer=init(1), name="up_kernel"
        )
        self.up_bias = self.add_weight(
            shape=lead + (hidden,), initializer="zeros", name="up_bias"
        )
        self.layer_norm = None
        if self.use_layer_norm:
            self.layer_norm = keras.layers.LayerNormalization(
                epsilon=1e-5,
                gamma_initializer=keras.initializers.Constant(self.output_scale),
                name="layer_norm",
            )
            self.layer_norm.build((length, hidden))
        self.built = True

    def call(self, prompt, training=None):
        if self.shared:
            h = ops.relu(ops.matmul(prompt, self.down_kernel) + self.down_bias)
            h = ops.matmul(h, self.up_kernel) + self.up_bias
        else:  # one MLP per prompt vector: [P, H] x [P, H, R] -> [P, R]
            h = ops.relu(ops.einsum("ph,phr->pr", prompt, self.down_kernel) + self.down_bias)
            h = ops.einsum("pr,prh->ph", h, self.up_kernel) + self.up_bias
        if training and self.dropout:
            h = keras.random.dropout(h, self.dropout, seed=self.dropout_seed)
        if self.layer_norm is not None:
            h = self.layer_norm(h)
        return prompt + h  # eq. 3: the skip connection

    def get_config(self):
        config = super().get_config()
        config.update(
            bottleneck=self.bottleneck,
            shared=self.shared,
            seed=self.seed,
            output_scale=self.output_scale,
            layer_norm=self.use_layer_norm,
            dropout=self.dropout,
        )
        return config
