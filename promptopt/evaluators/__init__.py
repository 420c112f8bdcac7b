"""Evaluators score candidate prompts (losses, optionally gradients).

Names load on first use: `HTTPEvaluator` and `OpenAICompletionsEvaluator`
need neither Keras nor TensorFlow, and importing
`promptopt.evaluators.http_evaluator` runs this file first.
"""

from promptopt.lazy_names import lazy_exports

_EXPORTS = {
    "APIRequestError": "promptopt.evaluators.json_http_client",
    "APIUnavailableError": "promptopt.evaluators.json_http_client",
    "BlackBoxEvaluator": "promptopt.evaluators.black_box_evaluator",
    "Evaluation": "promptopt.evaluators.base",
    "EvaluationJournal": "promptopt.evaluators.evaluation_journal",
    "Evaluator": "promptopt.evaluators.base",
    "HTTPEvaluator": "promptopt.evaluators.http_evaluator",
    "JSONHTTPClient": "promptopt.evaluators.json_http_client",
    "KerasEvaluator": "promptopt.evaluators.keras_evaluator",
    "OpenAICompletionsEvaluator": "promptopt.evaluators.openai_completions_evaluator",
    "PrefixEvaluator": "promptopt.evaluators.prefix_evaluator",
    "SharedInputEvaluator": "promptopt.evaluators.shared_input_evaluator",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
