"""A frozen model behind an HTTP API ("language model as a service").

- `create_app(engine, config)`: the FastAPI app (`/info`, `/v1/score`,
  `/v1/completions`, `/stats`, OpenAPI at `/openapi.json`).
- `ScoringEngine`: class scores and next-token log-probabilities of a
  frozen keras-hub model; nothing else leaves it.
- `MicroBatcher`: runs concurrent requests together on one model thread.
- `RequestLog`: the server's own record of every computed request, which
  also replays answers to repeated idempotency keys.
- `encode_array` / `decode_array`: float arrays as base64 in JSON.

Run it with `promptopt serve --model smollm2-135m --port 8000`.
"""

from promptopt.server.array_codec import decode_array
from promptopt.server.array_codec import encode_array
from promptopt.server.batching import MicroBatcher
from promptopt.server.request_log import RequestLog
from promptopt.server.scoring_engine import ScoringEngine


def __getattr__(name):
    # The web stack (fastapi, pydantic) loads only when the app is asked
    # for, so clients can use the array codec without it.
    if name in ("create_app", "ServerConfig"):
        from promptopt.server import app

        return getattr(app, name)
    raise AttributeError(f"module 'promptopt.server' has no attribute {name!r}")


__all__ = [
    "MicroBatcher",
    "RequestLog",
    "ScoringEngine",
    "ServerConfig",
    "create_app",
    "decode_array",
    "encode_array",
]
