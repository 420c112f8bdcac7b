"""Analytic evaluators for optimizer and runner tests: f(p) = ||p - target||^2."""

import time

import numpy as np

from promptopt.evaluators import Evaluation
from promptopt.evaluators import Evaluator

PROMPT_SHAPE = (4, 8)


def make_target(seed=0, shape=PROMPT_SHAPE):
    """A target prompt [*S] with N(0, 1) entries, the scale of embeddings."""
    return np.random.default_rng(seed).normal(size=shape).astype("float32")


def quadratic_loss(prompts, target):
    """||p - target||^2 for prompts [K, *S]; returns [K] float64."""
    residual = np.asarray(prompts, np.float64) - target
    return np.sum(residual**2, axis=tuple(range(1, residual.ndim)))


class QuadraticEvaluator(Evaluator):
    """Exact losses and gradients of ||p - target||^2; one call per candidate.

    Args:
        target: np.ndarray [*S].
        seconds_per_evaluate: float, sleep per evaluate() (to slow runs down).

    Example:

    ```python
    evaluator = QuadraticEvaluator(make_target())
    evaluator.evaluate(np.zeros((2, 4, 8)), step=0).losses  # [2]
    ```
    """

    provides_gradients = True

    def __init__(self, target, seconds_per_evaluate=0.0):
        self.target = np.asarray(target)
        self.seconds_per_evaluate = seconds_per_evaluate
        self.steps_seen = []
        self.gradient_requests = []
        self.candidates_seen = []

    def evaluate(self, candidates, step, compute_gradients=False):
        self.steps_seen.append(step)
        self.gradient_requests.append(compute_gradients)
        self.candidates_seen.append(np.array(candidates))
        if self.seconds_per_evaluate:
            time.sleep(self.seconds_per_evaluate)
        grads = None
        if compute_gradients:
            grads = (2.0 * (candidates - self.target)).astype("float32")
        return Evaluation(
            losses=quadratic_loss(candidates, self.target),
            grads=grads,
            forward_calls=len(candidates),
            metrics={"candidates": float(len(candidates))},
        )


class GradientFreeQuadraticEvaluator(QuadraticEvaluator):
    """The same losses, but it cannot compute gradients."""

    provides_gradients = False

    def evaluate(self, candidates, step, compute_gradients=False):
        if compute_gradients:
            raise AssertionError("the runner asked a gradient-free evaluator for gradients")
        return super().evaluate(candidates, step)
