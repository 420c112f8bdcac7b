"""Adafactor as prompt tuning used it: constant step size, no parameter scaling."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="promptopt")
class ConstantStepAdafactor(keras.optimizers.Optimizer):
    """Adafactor (Shazeer & Stern, 2018) with a constant step size.

    Lester et al. (2021) tune prompts with Adafactor at a *constant* learning
    rate of 0.3, without Adafactor's relative step (`1/sqrt(t)`) and without
    its parameter scaling (`max(eps2, RMS(x))`). `keras.optimizers.Adafactor`
    always applies both (its step is `min(lr, 1/sqrt(t)) * max(eps2, RMS(x))`,
    whatever `relative_step` says), which, for a prompt initialized near zero,
    shrinks the step about a thousandfold. This class implements Algorithms 4
    and 5 of the paper with `alpha_t = learning_rate`, no momentum (`beta_1 =
    0`), like T5X's Adafactor that Lester et al. used.

    Second moments of a variable `[..., n, m]` are factored into a row and a
    column estimate only when both `n` and `m` are at least
    `min_dim_size_to_factor` (T5X's rule; so a `[20, 576]` prompt keeps a full
    `[20, 576]` estimate, and a `[P, H]` prompt with `P >= 128` is factored).

    Args:
        learning_rate: float or schedule, the step size `alpha_t`.
            Defaults to 0.3.
        decay_rate: float, `c` in `beta2_t = 1 - t^(-c)`. Defaults to 0.8.
        epsilon1: float, added to squared gradients. Defaults to 1e-30.
        clipping_threshold: float, `d` in the update clipping
            `U / max(1, RMS(U) / d)`. Defaults to 1.0.
        min_dim_size_to_factor: int, see above. Defaults to 128.
        name: str, the optimizer name.
        **kwargs: other `keras.optimizers.Optimizer` arguments.

    Example:

    ```python
    optimizer = ConstantStepAdafactor(learning_rate=0.3)
    prompt = keras.Variable(np.zeros((20, 576), "float32"))
    optimizer.apply_gradients([(gradient, prompt)])
    ```
    """

    def __init__(
        self,
        learning_rate=0.3,
        decay_rate=0.8,
        epsilon1=1e-30,
        clipping_threshold=1.0,
        min_dim_size_to_factor=128,
        name="constant_step_adafactor",
        **kwargs,
    ):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)
        self.decay_rate = decay_rate
        self.epsilon1 = epsilon1
        self.clipping_threshold = clipping_threshold
        self.min_dim_size_to_factor = min_dim_size_to_factor

    def _is_factored(self, shape):
        return len(shape) >= 2 and min(shape[-2:]) >= self.min_dim_size_to_factor

    def build(self, var_list):
        if self.built:
            return
        super().build(var_list)
        self._row_moments = []
        self._column_moments = []
        self._full_moments = []
        for var in var_list:
            shape = tuple(var.shape)
            factored = self._is_factored(shape)
            # Unused slots get scalar placeholders so that every list lines up
            # with `var_list` and all optimizer variables are real Variables.
            self._row_moments.append(
                self.add_variable(
                    shape=shape[:-1] if factored else (),
                    dtype=var.dtype,
                    name="row_second_moment",
                )
            )
            self._column_moments.append(
                self.add_variable(
                    shape=shape[:-2] + shape[-1:] if factored else (),
                    dtype=var.dtype,
                    name="column_second_moment",
                )
            )
            self._full_moments.append(
                self.add_variable(
                    shape=() if factored else shape,
                    dtype=var.dtype,
                    name="second_moment",
                )
            )

    def update_step(self, gradient, variable, learning_rate):
        dtype = variable.dtype
        gradient = ops.cast(gradient, dtype)
        index = self._get_variable_index(variable)
        step = ops.cast(self.iterations + 1, dtype)
        # Alg. 4/5, line 3: beta2_t = 1 - t^(-0.8).
        beta2 = 1.0 - ops.power(step, -self.decay_rate)
        squared = ops.square(gradient) + self.epsilon1
        if self._is_factored(tuple(variable.shape)):
            row = self._row_moments[index]
            column = self._column_moments[index]
            # Alg. 4, lines 5-6, with means instead of sums (the ratio below
            # is the same): R_t and C_t.
            self.assign(
                row,
                beta2 * row + (1.0 - beta2) * ops.mean(squared, axis=-1),
            )
            self.assign(
                column,
                beta2 * column + (1.0 - beta2) * ops.mean(squared, axis=-2),
            )
            # Alg. 4, line 7: V_t = R_t C_t / (1^T R_t).
            second_moment = (
                ops.expand_dims(row / ops.mean(row, axis=-1, keepdims=True), -1)
                * ops.expand_dims(column, -2)
            )
        else:
            full = self._full_moments[index]
            # Alg. 5, line 5.
            self.assign(full, beta2 * full + (1.0 - beta2) * squared)
            second_moment = full
        # Alg. 4/5: U_t = G_t / sqrt(V_t), then clip U_t / max(1, RMS(U_t)/d).
        update = gradient / ops.sqrt(second_moment)
        rms = ops.sqrt(ops.mean(ops.square(update)))
        update = update / ops.maximum(1.0, rms / self.clipping_threshold)
        # Constant alpha_t: no relative step, no parameter scaling.
        self.assign_sub(variable, ops.cast(learning_rate, dtype) * update)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "decay_rate": self.decay_rate,
                "epsilon1": self.epsilon1,
                "clipping_threshold": self.clipping_threshold,
                "min_dim_size_to_factor": self.min_dim_size_to_factor,
            }
        )
        return config
