"""The wire format of `promptopt serve`, shared by the server and its clients.

Neither side imports the other: the server (`promptopt.server`) and the
HTTP evaluators (`promptopt.evaluators.http_evaluator`,
`openai_completions_evaluator`) both import this package, which needs no
Keras, TensorFlow or keras-hub.

- `array_codec`: `encode_array` / `decode_array`, float arrays as base64
  in JSON (numpy only).
- `names`: route paths, the idempotency header and the `loss` values
  (plain strings).
- `score_bodies`, `completion_bodies`, `info_bodies`: the request and reply
  bodies as pydantic models, from which the server validates requests and
  publishes its OpenAPI schema. A client need not import them: it sends
  plain JSON.

Names load on first use, so that `from promptopt.wire import encode_array`
does not import pydantic.
"""

from promptopt.lazy_names import lazy_exports

_EXPORTS = {
    "ArrayDecodeError": "promptopt.wire.array_codec",
    "decode_array": "promptopt.wire.array_codec",
    "encode_array": "promptopt.wire.array_codec",
    "COMPLETIONS_PATH": "promptopt.wire.names",
    "IDEMPOTENCY_HEADER": "promptopt.wire.names",
    "INFO_PATH": "promptopt.wire.names",
    "LOSSES": "promptopt.wire.names",
    "SCORE_PATH": "promptopt.wire.names",
    "STATS_PATH": "promptopt.wire.names",
    "ArrayPayload": "promptopt.wire.score_bodies",
    "ScoreRequest": "promptopt.wire.score_bodies",
    "ScoreResponse": "promptopt.wire.score_bodies",
    "CompletionChoice": "promptopt.wire.completion_bodies",
    "CompletionLogprobs": "promptopt.wire.completion_bodies",
    "CompletionRequest": "promptopt.wire.completion_bodies",
    "CompletionResponse": "promptopt.wire.completion_bodies",
    "CompletionUsage": "promptopt.wire.completion_bodies",
    "InfoResponse": "promptopt.wire.info_bodies",
    "StatsResponse": "promptopt.wire.info_bodies",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
