"""Evaluators score candidate prompts (losses, optionally gradients)."""

from promptopt.evaluators.base import Evaluation
from promptopt.evaluators.base import Evaluator
