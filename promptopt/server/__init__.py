"""A frozen model behind an HTTP API ("language model as a service").

- `create_app(engine, config)`: the FastAPI app (`/info`, `/v1/score`,
  `/v1/completions`, `/stats`, OpenAPI at `/openapi.json`).
- `ScoringEngine`: class scores and next-token log-probabilities of a
  frozen keras-hub model; nothing else leaves it.
- `MicroBatcher`: runs concurrent requests together on one model thread.
- `RequestLog`: the server's own record of every computed request, which
  also replays answers to repeated idempotency keys.
- `encode_array` / `decode_array`: float arrays as base64 in JSON (from
  `promptopt.wire`, the wire format the server shares with its clients).

Names load on first use: the web stack (fastapi, pydantic) and the model
stack (Keras, TensorFlow) only when `create_app` or `ScoringEngine` is
asked for, so clients can use the array codec without them.

Run it with `promptopt serve --model smollm2-135m --port 8000`.
"""

from promptopt.lazy_names import lazy_exports

_EXPORTS = {
    "MicroBatcher": "promptopt.server.batching",
    "RequestLog": "promptopt.server.request_log",
    "ScoringEngine": "promptopt.server.scoring_engine",
    "ServerConfig": "promptopt.server.server_config",
    "create_app": "promptopt.server.app",
    "decode_array": "promptopt.wire.array_codec",
    "encode_array": "promptopt.wire.array_codec",
}

__all__ = sorted(_EXPORTS)
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
