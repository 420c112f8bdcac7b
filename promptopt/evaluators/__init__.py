"""Evaluators score candidate prompts (losses, optionally gradients)."""

from promptopt.evaluators.base import Evaluation
from promptopt.evaluators.base import Evaluator
from promptopt.evaluators.black_box_evaluator import BlackBoxEvaluator
from promptopt.evaluators.evaluation_journal import EvaluationJournal
from promptopt.evaluators.http_evaluator import HTTPEvaluator
from promptopt.evaluators.json_http_client import APIRequestError
from promptopt.evaluators.json_http_client import APIUnavailableError
from promptopt.evaluators.json_http_client import JSONHTTPClient
from promptopt.evaluators.keras_evaluator import KerasEvaluator
from promptopt.evaluators.openai_completions_evaluator import OpenAICompletionsEvaluator
from promptopt.evaluators.prefix_evaluator import PrefixEvaluator
from promptopt.evaluators.shared_input_evaluator import SharedInputEvaluator

__all__ = [
    "APIRequestError",
    "APIUnavailableError",
    "BlackBoxEvaluator",
    "Evaluation",
    "EvaluationJournal",
    "Evaluator",
    "HTTPEvaluator",
    "JSONHTTPClient",
    "KerasEvaluator",
    "OpenAICompletionsEvaluator",
    "PrefixEvaluator",
    "SharedInputEvaluator",
]
