"""Gradient descent on the prompt with any Keras optimizer (K = 1 candidate)."""

import copy
import dataclasses

import keras
import numpy as np

from promptopt.optimizers.adafactor import ConstantStepAdafactor
from promptopt.optimizers.base import PROMPT_DTYPE
from promptopt.optimizers.base import PromptOptimizer
from promptopt.optimizers.registry import register_optimizer
from promptopt.optimizers.serialization import pack_state
from promptopt.optimizers.serialization import unpack_state

# Default step sizes. Adafactor 0.3: Lester et al. (2021), constant. AdamW and
# Adam 0.03: on SmolLM2-135M / SST-2 16-shot (FIELD_NOTES.md), PEFT prompt
# tuning with AdamW was best at 0.03 from a random init over 5 seeds, and 0.3
# collapsed; 0.1 was best only from a text init. SGD has no scale-free default.
DEFAULT_LEARNING_RATES = {"adafactor": 0.3, "adamw": 0.03, "adam": 0.03}
OPTIMIZER_NAMES = ("adafactor", "adamw", "adam", "sgd")


@dataclasses.dataclass(frozen=True)
class BackpropState:
    """State of `BackpropOptimizer`.

    Args:
        params: np.ndarray `[*S]` float32, the current prompt.
        optimizer_variables: tuple of np.ndarray, the values of the Keras
            optimizer's variables (iterations, learning rate, moments), in
            `keras_optimizer.variables` order.
        step: int, the number of `tell` calls so far.
    """

    params: np.ndarray
    optimizer_variables: tuple
    step: int


@register_optimizer("backprop")
class BackpropOptimizer(PromptOptimizer):
    """Prompt tuning by gradient descent (Lester et al., 2021).

    Each step asks for one candidate (the current prompt, `K = 1`) and
    applies its gradient with a Keras optimizer. The Keras optimizer and a
    prompt `keras.Variable` are created once per instance (again only if the
    prompt shape changes); before every update they are loaded from the
    state and read back after it, so the state is plain numpy and the same
    instance can serve several independent runs.

    Args:
        optimizer: `"adafactor"` (default; `ConstantStepAdafactor`: constant
            step, no parameter scaling, as in Lester et al.), `"adamw"`,
            `"adam"`, `"sgd"`, or a Keras optimizer config dict as returned
            by `keras.optimizers.serialize(keras_optimizer)`.
        learning_rate: float or None. None takes the default of the named
            optimizer (adafactor 0.3, adamw/adam 0.03) or, for a config dict,
            the dict's own learning rate; `"sgd"` needs an explicit value.
        weight_decay: float or None, the Keras optimizer's decoupled weight
            decay. None keeps Keras's default (AdamW: 0.004; the others:
            none); the CLI passes its own value (default 0) explicitly.
        second_group: None, or `(start, learning_rate, weight_decay)`: the
            entries of a flat candidate `[D]` from `start` on are updated by
            a second optimizer of the same kind with their own learning
            rate and weight decay (None: this optimizer's). Razdaibiedina
            et al.'s reference code gives the residual MLP's weights their
            own step size and decay this way; a `KerasEvaluator` with
            `parameters="all"` puts the `P * H` prompt entries first.

    Example:

    ```python
    optimizer = BackpropOptimizer("adamw", learning_rate=0.03)
    state = optimizer.init(np.zeros((20, 576), "float32"), seed=0)
    (candidate,) = optimizer.ask(state)  # [20, 576]
    state, metrics = optimizer.tell(
        state, candidate[None], np.array([loss]), gradient[None]
    )
    ```
    """

    needs_gradients = True

    def __init__(self, optimizer="adafactor", learning_rate=None, weight_decay=None,
                 second_group=None):
        if learning_rate is not None and not (
            isinstance(learning_rate, (int, float)) and learning_rate > 0
        ):
            raise ValueError(
                f"learning_rate must be a positive number or None, got "
                f"{learning_rate!r}. Pass e.g. learning_rate=0.3."
            )
        if isinstance(optimizer, str):
            if optimizer not in OPTIMIZER_NAMES:
                raise ValueError(
                    f"Unknown optimizer {optimizer!r}. Pass one of "
                    f"{', '.join(map(repr, OPTIMIZER_NAMES))}, or a Keras "
                    "optimizer config dict from keras.optimizers.serialize()."
                )
            if optimizer == "sgd" and learning_rate is None:
                raise ValueError(
                    "optimizer='sgd' has no default learning rate: its step "
                    "scales with the gradient. Pass learning_rate=..., or use "
                    "'adafactor' or 'adamw' whose defaults are scale-free."
                )
        elif isinstance(optimizer, dict):
            optimizer = copy.deepcopy(optimizer)
        else:
            raise ValueError(
                f"optimizer must be a name or a Keras optimizer config dict, "
                f"got {type(optimizer).__name__}. Pass e.g. 'adamw' or "
                "keras.optimizers.serialize(keras.optimizers.AdamW(0.1))."
            )
        if weight_decay is not None and not (
            isinstance(weight_decay, (int, float))
            and not isinstance(weight_decay, bool)
            and weight_decay >= 0
        ):
            raise ValueError(
                f"weight_decay must be a non-negative number or None, got "
                f"{weight_decay!r}. Pass e.g. weight_decay=0.0."
            )
        self.optimizer = optimizer
        self.learning_rate = learning_rate
        self.weight_decay = None if weight_decay is None else float(weight_decay)
        self.second_group = _check_second_group(second_group)
        self._keras_optimizer = self._make_keras_optimizer()  # validates
        self._second_optimizer = None
        self._prompt_variable = None
        self._second_variable = None
        self._built_shape = None
        self._fresh_optimizer_variables = None

    def _make_keras_optimizer(self, learning_rate=None, weight_decay=None):
        """The Keras optimizer; `learning_rate`/`weight_decay` override this one's."""
        learning_rate = self.learning_rate if learning_rate is None else learning_rate
        weight_decay = self.weight_decay if weight_decay is None else weight_decay
        if isinstance(self.optimizer, dict):
            spec = copy.deepcopy(self.optimizer)
            if learning_rate is not None:
                spec.setdefault("config", {})["learning_rate"] = learning_rate
            if weight_decay is not None:
                spec.setdefault("config", {})["weight_decay"] = weight_decay
            try:
                optimizer = keras.optimizers.deserialize(spec)
                problem = f"got {type(optimizer).__name__}"
            except Exception as error:
                optimizer, problem = None, str(error)
            # Keras returns an unknown class name as a plain string.
            if not isinstance(optimizer, keras.optimizers.Optimizer):
                raise ValueError(
                    f"Could not build a Keras optimizer from the config dict "
                    f"{self.optimizer!r} ({problem}). Pass the output of "
                    "keras.optimizers.serialize(keras_optimizer)."
                )
            return optimizer
        if learning_rate is None:
            learning_rate = DEFAULT_LEARNING_RATES[self.optimizer]
        decay = {} if weight_decay is None else {"weight_decay": weight_decay}
        if self.optimizer == "adafactor":
            return ConstantStepAdafactor(learning_rate=learning_rate, **decay)
        if self.optimizer == "adamw":
            return keras.optimizers.AdamW(learning_rate=learning_rate, **decay)
        if self.optimizer == "adam":
            return keras.optimizers.Adam(learning_rate=learning_rate, **decay)
        return keras.optimizers.SGD(learning_rate=learning_rate, **decay)

    def _ensure_built(self, shape):
        """Creates the prompt Variable(s) and optimizer slots for `shape` once."""
        if self._prompt_variable is not None and self._built_shape == shape:
            return
        if self._prompt_variable is not None:
            # A new shape needs new optimizer slots: start a fresh optimizer.
            self._keras_optimizer = self._make_keras_optimizer()
        self._built_shape = shape
        first_shape = shape
        if self.second_group is not None:
            start, learning_rate, weight_decay = self.second_group
            if len(shape) != 1 or not 0 < start < shape[0]:
                raise ValueError(
                    f"second_group starts at entry {start}, which needs a flat candidate "
                    f"of more than {start} entries; got shape {shape}. Use a "
                    "KerasEvaluator with parameters='all' (the residual MLP's weights "
                    "follow the prompt's P * H entries).")
            first_shape = (start,)
            self._second_optimizer = self._make_keras_optimizer(learning_rate, weight_decay)
            self._second_variable = keras.Variable(
                np.zeros((shape[0] - start,), PROMPT_DTYPE), dtype="float32", name="second_group")
            self._second_optimizer.build([self._second_variable])
        self._prompt_variable = keras.Variable(
            np.zeros(first_shape, PROMPT_DTYPE), dtype="float32", name="prompt"
        )
        self._keras_optimizer.build([self._prompt_variable])
        self._fresh_optimizer_variables = tuple(
            np.array(v.numpy()) for v in self._optimizer_variables()
        )

    def _optimizer_variables(self):
        """The Keras optimizers' variables: the first's, then the second group's."""
        second = [] if self._second_optimizer is None else self._second_optimizer.variables
        return list(self._keras_optimizer.variables) + list(second)

    def init(self, prompt, seed):
        del seed  # Gradient descent from a given prompt draws nothing random.
        params = self._check_prompt(prompt)
        self._ensure_built(params.shape)
        return BackpropState(
            params=params.copy(),
            optimizer_variables=tuple(
                v.copy() for v in self._fresh_optimizer_variables
            ),
            step=0,
        )

    def ask(self, state):
        return state.params[None].copy()

    def tell(self, state, candidates, losses, grads=None):
        _, losses, grads = self._check_told(state, candidates, losses, grads)
        self._ensure_built(state.params.shape)
        optimizer = self._keras_optimizer
        for variable, value in zip(self._optimizer_variables(), state.optimizer_variables):
            variable.assign(value)
        learning_rate = optimizer.learning_rate  # Variable, or schedule's tensor
        if hasattr(learning_rate, "numpy"):
            learning_rate = learning_rate.numpy()
        learning_rate = float(np.asarray(learning_rate))
        gradient = grads[0].astype(PROMPT_DTYPE)
        pairs = [(optimizer, self._prompt_variable, state.params, gradient)]
        if self.second_group is not None:
            start = self.second_group[0]
            pairs = [(optimizer, self._prompt_variable, state.params[:start], gradient[:start]),
                     (self._second_optimizer, self._second_variable, state.params[start:],
                      gradient[start:])]
        for keras_optimizer, variable, value, part in pairs:
            variable.assign(value)
            # A tensor, not numpy: torch's optimizers take tensors only.
            keras_optimizer.apply_gradients([(keras.ops.convert_to_tensor(part), variable)])
        params = np.concatenate([np.array(v.numpy()).reshape(-1) for _, v, _, _ in pairs])
        new_state = BackpropState(
            params=params.reshape(state.params.shape),
            optimizer_variables=tuple(np.array(v.numpy()) for v in self._optimizer_variables()),
            step=state.step + 1,
        )
        metrics = {
            "loss": float(losses[0]),
            "learning_rate": learning_rate,
            "gradient_norm": float(np.linalg.norm(gradient)),
        }
        return new_state, metrics

    def best(self, state):
        # Mini-batch losses are noisy, so the current iterate, not the
        # lowest-loss one, is what gradient descent exports.
        return state.params.copy()

    def state_to_bytes(self, state):
        fields = {"params": state.params, "step": state.step}
        fields["num_optimizer_variables"] = len(state.optimizer_variables)
        for index, value in enumerate(state.optimizer_variables):
            fields[f"optimizer_variable_{index:04d}"] = value
        return pack_state(fields)

    def state_from_bytes(self, data):
        fields = unpack_state(data)
        count = fields["num_optimizer_variables"]
        return BackpropState(
            params=fields["params"],
            optimizer_variables=tuple(
                fields[f"optimizer_variable_{index:04d}"] for index in range(count)
            ),
            step=fields["step"],
        )

    def get_config(self):
        config = {
            "optimizer": copy.deepcopy(self.optimizer),
            "learning_rate": self.learning_rate,
        }
        if self.weight_decay is not None:
            # Only when set, so that earlier runs' checkpoints still match.
            config["weight_decay"] = self.weight_decay
        if self.second_group is not None:
            config["second_group"] = list(self.second_group)
        return config


def _check_second_group(group):
    """`(start, learning_rate, weight_decay)` as (int, float, float or None), or None."""
    if group is None:
        return None
    problem = None
    if not isinstance(group, (tuple, list)) or len(group) != 3:
        problem = "a (start, learning_rate, weight_decay) triple"
    else:
        start, learning_rate, weight_decay = group
        if isinstance(start, bool) or not isinstance(start, int) or start < 1:
            problem = "a positive int start"
        elif not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
            problem = "a positive learning rate"
        elif weight_decay is not None and not (
                isinstance(weight_decay, (int, float)) and weight_decay >= 0):
            problem = "a non-negative weight decay or None"
    if problem:
        raise ValueError(
            f"second_group needs {problem}, got {group!r}. Pass e.g. "
            "second_group=(11520, 0.003, 1e-5) to update entries 11520 on at step 0.003.")
    return (int(start), float(learning_rate), None if weight_decay is None else float(weight_decay))
