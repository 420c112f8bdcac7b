"""Evaluators score candidate prompts (losses, optionally gradients)."""

from promptopt.evaluators.base import Evaluation
from promptopt.evaluators.base import Evaluator
from promptopt.evaluators.keras_evaluator import KerasEvaluator

__all__ = ["Evaluation", "Evaluator", "KerasEvaluator"]
