"""The FastAPI application, put together from its parts.

- `server_config.ServerConfig`: the limits and options.
- `server_state.ServerState`: engine, batcher, request log and idempotency,
  one per app (`app.state.server`).
- `auth.authorize`: the bearer-token dependency of every route.
- `limits`: the body-size middleware and the per-request text limits.
- `error_handlers`: one readable `detail` line for 422 and 500.
- `info_routes` (`/info`, `/stats`), `score_routes` (`/v1/score`),
  `completion_routes` (`/v1/completions`), `chat_routes`
  (`/v1/chat/completions`), `model_routes` (`/v1/models`): the endpoints.
- `prompt_registry.PromptRegistry`: the base model and the tuned prompts
  served; a request's `model` field picks one (`openai_errors`: 404 in
  OpenAI's format for an unknown name).
- The request and reply bodies come from `promptopt.wire`, the format the
  server shares with its clients.
"""

import contextlib

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from promptopt.server import chat_routes
from promptopt.server import completion_routes
from promptopt.server import info_routes
from promptopt.server import model_routes
from promptopt.server import score_routes
from promptopt.server.error_handlers import internal_error
from promptopt.server.error_handlers import readable_validation_error
from promptopt.server.limits import limit_body_size
from promptopt.server.openai_errors import OpenAIError
from promptopt.server.openai_errors import openai_error
from promptopt.server.server_config import ServerConfig
from promptopt.server.server_state import ServerState

__all__ = ["ServerConfig", "create_app"]

DESCRIPTION = (
    "A frozen language model as a service. /v1/score returns per-class "
    "scores and the loss of a batch of inputs under a soft prompt "
    "(float32 [P, H], base64) or a text prompt; /v1/completions and "
    "/v1/chat/completions are OpenAI-compatible (generation, streaming, "
    "logprobs), with the base model or a tuned prompt named in `model` "
    "(listed at /v1/models). No gradients, weights "
    "or embeddings are returned; /info publishes one scalar, the "
    "standard deviation of the input embedding table, for "
    "Black-Box Tuning's projection scale. Send an Idempotency-Key "
    "header to make retries free: a repeated key is answered from "
    "the server's log."
)


@contextlib.asynccontextmanager
async def _lifespan(app):
    yield
    app.state.server.close()


def create_app(engine, config=ServerConfig(), prompts=None):
    """Returns the FastAPI app serving `engine` (a `ScoringEngine`).

    Args:
        engine: a `ScoringEngine`.
        config: a `ServerConfig`.
        prompts: optional `PromptRegistry` of tuned prompts to serve by
            name (default: the base model alone).

    Example:

    ```python
    uvicorn.run(create_app(engine, ServerConfig(token="s3cret")), port=8000)
    ```
    """
    app = FastAPI(
        lifespan=_lifespan,
        title="promptopt model server",
        description=DESCRIPTION,
        version="1",
    )
    app.state.server = ServerState(engine, config, prompts)
    app.add_exception_handler(RequestValidationError, readable_validation_error)
    app.add_exception_handler(OpenAIError, openai_error)
    app.add_exception_handler(Exception, internal_error)
    app.middleware("http")(limit_body_size)
    for routes in (info_routes, score_routes, completion_routes, chat_routes, model_routes):
        app.include_router(routes.router)
    return app
