"""What the runner needs from whatever scores candidate prompts."""

import abc
import dataclasses

import numpy as np


@dataclasses.dataclass
class Evaluation:
    """The scores of one batch of candidates.

    Args:
        losses: np.ndarray `[K]`, one loss per candidate (lower is better).
        grads: np.ndarray `[K, *S]` or None, `d loss_k / d candidate_k`.
            None unless gradients were asked for.
        forward_calls: int, how many model forward passes this cost (the
            unit of `Budget(forward_calls=...)`; BBT counts one per candidate
            and mini-batch).
        metrics: dict of str to float, anything else worth logging (e.g.
            accuracy on the mini-batch).

    Example:

    ```python
    Evaluation(losses=np.array([0.7, 0.4]), grads=None, forward_calls=2)
    ```
    """

    losses: np.ndarray
    grads: np.ndarray = None
    forward_calls: int = 0
    metrics: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        self.losses = np.asarray(self.losses, dtype=np.float64)
        if self.losses.ndim != 1:
            raise ValueError(
                f"Evaluation.losses must be one loss per candidate, shape [K], "
                f"got shape {self.losses.shape}. Reduce each candidate's loss "
                "over its examples (e.g. the mean) before returning it."
            )
        if self.grads is not None:
            self.grads = np.asarray(self.grads)
            if self.grads.ndim < 1 or len(self.grads) != len(self.losses):
                raise ValueError(
                    f"Evaluation.grads must hold one gradient per candidate, "
                    f"shape [K, *S] with K = {len(self.losses)}, got shape "
                    f"{self.grads.shape}. Stack the candidates' gradients."
                )
        if (
            isinstance(self.forward_calls, bool)
            or not isinstance(self.forward_calls, (int, np.integer))
            or self.forward_calls < 0
        ):
            raise ValueError(
                f"Evaluation.forward_calls must be a non-negative int, got "
                f"{self.forward_calls!r}. Count the model forward passes made."
            )
        self.forward_calls = int(self.forward_calls)


class Evaluator(abc.ABC):
    """Scores candidate prompts: the model side of a prompt-tuning run.

    An evaluator maps candidates `[K, *S]` to losses `[K]` (and, if it
    `provides_gradients`, gradients `[K, *S]`). `step` is the runner's global
    step; an evaluator that samples mini-batches must choose them from
    `step` alone (e.g. `np.random.default_rng([seed, step])`), so that a run
    resumed from a checkpoint sees the same batches as an uninterrupted one.
    Gradients are computed only when the runner asks for them
    (`compute_gradients=True`, for optimizers that need them), so derivative-
    free search does not pay for a backward pass.

    Args:
        (none here; subclasses take the model, data and loss.)

    Example:

    ```python
    class QuadraticEvaluator(Evaluator):
        provides_gradients = True

        def evaluate(self, candidates, step, compute_gradients=False):
            residual = candidates - target  # [K, *S]
            losses = np.sum(residual**2, axis=tuple(range(1, residual.ndim)))
            grads = 2 * residual if compute_gradients else None
            return Evaluation(losses, grads, forward_calls=len(candidates))
    ```
    """

    provides_gradients = False

    @abc.abstractmethod
    def evaluate(self, candidates, step, compute_gradients=False):
        """Returns an `Evaluation` of `candidates` `[K, *S]` at `step`."""
