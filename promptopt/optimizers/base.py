"""The one protocol that every prompt optimizer obeys (ask / tell over a state)."""

import abc

import numpy as np

PROMPT_DTYPE = np.float32
"""Every optimizer hands out candidates in this dtype (a prompt variable's)."""


class PromptOptimizer(abc.ABC):
    """Base class of prompt optimizers: pure functions of an explicit state.

    An optimizer searches over one prompt tensor of any shape `[*S]` (for a
    soft prompt `S = (P, H)`). Following optax and evosax, the optimizer
    object holds only hyperparameters; everything that changes during a run
    lives in the `state`, which `state_to_bytes` turns into bytes for a
    checkpoint. The same loop drives gradient and derivative-free methods:

    - `init(prompt, seed)` gives the first state;
    - `ask(state)` gives `K` candidate prompts `[K, *S]`. It does not change
      `state`, and asking twice gives identical candidates: any randomness is
      drawn from a generator stored in the state;
    - `tell(state, candidates, losses, grads)` gives the next state and a dict
      of float metrics (e.g. `sigma`, `learning_rate`). `losses` is `[K]`;
      `grads` is `[K, *S]` when `needs_gradients` is True, else ignored;
    - `best(state)` gives the prompt `[*S]` to export.

    Subclasses set `needs_gradients` and implement the abstract methods.
    Candidates are `float32` (`PROMPT_DTYPE`).

    Args:
        (none here; see subclasses.)

    Example:

    ```python
    optimizer = promptopt.optimizers.get_optimizer("cma_es", popsize=8)
    state = optimizer.init(np.zeros((4, 8), "float32"), seed=0)
    for _ in range(10):
        candidates = optimizer.ask(state)  # [8, 4, 8]
        losses = np.sum((candidates - 1.0) ** 2, axis=(1, 2))  # [8]
        state, metrics = optimizer.tell(state, candidates, losses)
    prompt = optimizer.best(state)  # [4, 8]
    ```
    """

    needs_gradients = False

    @abc.abstractmethod
    def init(self, prompt, seed):
        """Returns the state for a search starting at `prompt` `[*S]`."""

    @abc.abstractmethod
    def ask(self, state):
        """Returns the candidates `[K, *S]` to evaluate next."""

    @abc.abstractmethod
    def tell(self, state, candidates, losses, grads=None):
        """Returns `(new_state, metrics)` after evaluating `candidates`."""

    @abc.abstractmethod
    def best(self, state):
        """Returns the prompt `[*S]` to export from `state`."""

    @abc.abstractmethod
    def state_to_bytes(self, state):
        """Returns `state` as bytes; `state_from_bytes` inverts it exactly."""

    @abc.abstractmethod
    def state_from_bytes(self, data):
        """Returns the state that `state_to_bytes` encoded into `data`."""

    @abc.abstractmethod
    def get_config(self):
        """Returns the constructor arguments as a JSON-serializable dict."""

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        arguments = ", ".join(f"{k}={v!r}" for k, v in self.get_config().items())
        return f"{type(self).__name__}({arguments})"

    # Shared checks, so that every optimizer rejects bad input the same way.

    def _check_prompt(self, prompt):
        prompt = np.asarray(prompt)
        if prompt.size == 0 or not np.issubdtype(prompt.dtype, np.number):
            raise ValueError(
                f"{type(self).__name__}.init() needs a non-empty numeric prompt "
                f"array, got shape {prompt.shape} and dtype {prompt.dtype}. "
                "Pass the initial prompt, e.g. a [P, H] embedding array."
            )
        if not np.all(np.isfinite(prompt)):
            raise ValueError(
                f"{type(self).__name__}.init() got a prompt with NaN or inf "
                "entries. Initialize the prompt with finite values."
            )
        return prompt.astype(PROMPT_DTYPE)

    def _check_told(self, state, candidates, losses, grads, expected=None):
        """Checks `tell()` arguments against `ask(state)`; returns arrays.

        `expected` is `ask(state)` when the caller has computed it already.
        """
        if expected is None:
            expected = self.ask(state)
        candidates = np.asarray(candidates)
        if candidates.shape != expected.shape or not np.array_equal(
            candidates.astype(PROMPT_DTYPE), expected
        ):
            raise ValueError(
                f"{type(self).__name__}.tell() got candidates of shape "
                f"{candidates.shape} that are not the ones ask(state) returns "
                f"(shape {expected.shape}). Pass tell() the same state and "
                "the unmodified candidates from ask(state)."
            )
        losses = np.asarray(losses, dtype=np.float64)
        if losses.shape != (len(expected),):
            raise ValueError(
                f"{type(self).__name__}.tell() needs one loss per candidate: "
                f"expected losses of shape ({len(expected)},), got "
                f"{losses.shape}. Return a [K] array of losses."
            )
        if self.needs_gradients:
            if grads is None:
                raise ValueError(
                    f"{type(self).__name__} needs gradients, but tell() got "
                    "grads=None. Use an evaluator that provides gradients."
                )
            grads = np.asarray(grads)
            if grads.shape != expected.shape:
                raise ValueError(
                    f"{type(self).__name__}.tell() needs grads shaped like the "
                    f"candidates {expected.shape}, got {grads.shape}. Return "
                    "one gradient per candidate, [K, *S]."
                )
        return expected, losses, grads
