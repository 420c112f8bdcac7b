"""The FastAPI application: routes, bearer-token auth, limits, idempotency."""

import asyncio
import contextlib
import dataclasses
import secrets
import time
import uuid

import numpy as np
from fastapi import Depends
from fastapi import FastAPI
from fastapi import HTTPException
from fastapi import Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials
from fastapi.security import HTTPBearer

from promptopt.server.array_codec import ArrayDecodeError
from promptopt.server.array_codec import decode_array
from promptopt.server.array_codec import encode_array
from promptopt.server.batching import MicroBatcher
from promptopt.server.request_log import IdempotencyConflictError
from promptopt.server.request_log import RequestLog
from promptopt.server.schema import CompletionRequest
from promptopt.server.schema import CompletionResponse
from promptopt.server.schema import InfoResponse
from promptopt.server.schema import ScoreRequest
from promptopt.server.schema import ScoreResponse
from promptopt.server.schema import StatsResponse
from promptopt.server.scoring_engine import CompletionJob
from promptopt.server.scoring_engine import ScoreJob


@dataclasses.dataclass(frozen=True)
class ServerConfig:
    """Limits and options of `create_app`.

    Args:
        token: str or None; when set, every route except `/openapi.json`
            and `/docs` needs `Authorization: Bearer <token>` (else 401).
        max_request_bytes: int, larger bodies get 413.
        max_batch_size: int, most inputs per request (else 413).
        max_prompt_length: int, most soft-prompt vectors P (else 422).
        max_input_chars: int, longest input or prompt text (else 413).
        max_logprobs: int, largest `logprobs` for `/v1/completions`.
        max_batch_rows: int, rows merged into one forward pass across
            concurrent requests (`MicroBatcher`; 0 = no merging, the
            default: on the 2-core CPU, 8 clients x 4 SST-2 sentences gave
            3.6 req/s unmerged against 2.3 merged to 32 rows, since merged
            rows pad to the longest text; see experiments/results/
            api_load_test.md). Worth trying on an accelerator.
        log_file: str or None, the `RequestLog` path.

    Example:

    ```python
    app = create_app(engine, ServerConfig(token="s3cret", log_file="log.jsonl"))
    ```
    """

    token: str = None
    max_request_bytes: int = 4 * 1024 * 1024
    max_batch_size: int = 64
    max_prompt_length: int = 128
    max_input_chars: int = 4000
    max_logprobs: int = 20
    max_batch_rows: int = 0
    log_file: str = None


def create_app(engine, config=ServerConfig()):
    """Returns the FastAPI app serving `engine` (a `ScoringEngine`)."""
    log = RequestLog(config.log_file)
    batcher = MicroBatcher(engine.run, max_rows=config.max_batch_rows)

    @contextlib.asynccontextmanager
    async def lifespan(app):
        yield
        batcher.close()

    app = FastAPI(
        lifespan=lifespan,
        title="promptopt model server",
        description=(
            "A frozen language model as a service. /v1/score returns per-class "
            "scores and the loss of a batch of inputs under a soft prompt "
            "(float32 [P, H], base64) or a text prompt; /v1/completions is "
            "OpenAI-compatible (next-token logprobs). No gradients, weights "
            "or embeddings are returned; /info publishes one scalar, the "
            "standard deviation of the input embedding table, for "
            "Black-Box Tuning's projection scale. Send an Idempotency-Key "
            "header to make retries free: a repeated key is answered from "
            "the server's log."
        ),
        version="1",
    )
    in_flight = {}

    @app.exception_handler(RequestValidationError)
    async def readable_validation_error(request, error):
        # One line per problem, e.g. "body.classes: Field required".
        problems = []
        for item in error.errors():
            where = ".".join(str(part) for part in item.get("loc", ()))
            problems.append(f"{where}: {item.get('msg')}")
        return JSONResponse({"detail": "; ".join(problems)}, status_code=422)

    @app.exception_handler(Exception)
    async def internal_error(request, error):
        return JSONResponse(
            {"detail": f"Internal error: {type(error).__name__}: {error}"},
            status_code=500,
        )
    app.state.engine, app.state.log, app.state.batcher = engine, log, batcher
    bearer = HTTPBearer(auto_error=False)

    def authorize(credentials: HTTPAuthorizationCredentials = Depends(bearer)):
        if config.token is None:
            return
        if credentials is None:
            raise HTTPException(
                401,
                "Missing bearer token. Send the header 'Authorization: Bearer <token>'.",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if not secrets.compare_digest(
            credentials.credentials.encode(), config.token.encode()
        ):
            raise HTTPException(
                401,
                "Wrong bearer token. Send the token the server was started with.",
                headers={"WWW-Authenticate": "Bearer"},
            )

    @app.middleware("http")
    async def limit_body_size(request: Request, call_next):
        if request.method == "POST":
            length = request.headers.get("content-length")
            if length is None:
                return JSONResponse(
                    {"detail": "Send a Content-Length header (chunked bodies are not accepted)."},
                    status_code=411,
                )
            if not length.isdigit() or int(length) > config.max_request_bytes:
                return JSONResponse(
                    {
                        "detail": f"Request body of {length} bytes exceeds the "
                        f"limit of {config.max_request_bytes} bytes. Send fewer "
                        "inputs per request."
                    },
                    status_code=413,
                )
        return await call_next(request)

    async def idempotent(request, endpoint, compute):
        """Computes once per Idempotency-Key, even across restarts."""
        key = request.headers.get("idempotency-key")
        digest = RequestLog.body_digest(await request.body())
        try:
            logged = log.lookup(key, digest)
        except IdempotencyConflictError as error:
            raise HTTPException(409, str(error)) from None
        if logged is not None:
            log.record_replayed(endpoint, key)
            return logged
        if key is not None and key in in_flight:
            # The same request is being computed (a retry that overtook a
            # slow first attempt): wait for that one instead of paying again.
            return await asyncio.shield(in_flight[key])
        waiter = asyncio.get_running_loop().create_future()
        if key is not None:
            in_flight[key] = waiter
        try:
            response, rows, tokens = await compute()
            await asyncio.to_thread(
                log.record_computed, endpoint, key, digest, rows, tokens, response
            )
            waiter.set_result(response)
            return response
        except Exception as error:
            waiter.set_exception(error)
            waiter.exception()  # mark retrieved: nobody else may be waiting
            raise
        finally:
            if not waiter.done():
                waiter.cancel()
            in_flight.pop(key, None)

    async def run_job(job):
        try:
            return await asyncio.wrap_future(batcher.submit(job))
        except ValueError as error:
            raise HTTPException(422, str(error)) from None

    def check_texts(texts, what, prompt_text=""):
        if len(texts) > config.max_batch_size:
            raise HTTPException(
                413,
                f"{len(texts)} {what} exceed the limit of {config.max_batch_size} "
                "per request. Split them into several requests.",
            )
        longest = max((len(t) for t in list(texts) + [prompt_text]), default=0)
        if longest > config.max_input_chars:
            raise HTTPException(
                413,
                f"An input of {longest} characters exceeds the limit of "
                f"{config.max_input_chars}. Shorten it.",
            )

    @app.get("/info", response_model=InfoResponse, dependencies=[Depends(authorize)])
    def info():
        return InfoResponse(
            model=engine.model_id,
            hidden_dim=engine.hidden_dim,
            embedding_std=engine.embedding_std,
            max_batch_size=config.max_batch_size,
            max_prompt_length=config.max_prompt_length,
            max_request_bytes=config.max_request_bytes,
            max_logprobs=config.max_logprobs,
            auth_required=config.token is not None,
        )

    @app.get("/stats", response_model=StatsResponse, dependencies=[Depends(authorize)])
    def stats():
        return StatsResponse(
            computed_requests=log.computed_requests,
            replayed_requests=log.replayed_requests,
            input_tokens=log.input_tokens,
            rows=log.rows,
            forward_passes=batcher.passes,
        )

    @app.post("/v1/score", response_model=ScoreResponse, dependencies=[Depends(authorize)])
    async def score(body: ScoreRequest, request: Request):
        check_texts(body.inputs, "inputs", body.prompt_text or "")
        if body.prompt_embeddings is not None and body.prompt_text is not None:
            raise HTTPException(
                422, "Give prompt_embeddings or prompt_text, not both."
            )
        prompt = np.zeros((0, engine.hidden_dim), "float32")
        if body.prompt_embeddings is not None:
            try:
                prompt = decode_array(body.prompt_embeddings)
            except ArrayDecodeError as error:
                raise HTTPException(422, str(error)) from None
            if prompt.ndim != 2 or prompt.shape[1] != engine.hidden_dim:
                raise HTTPException(
                    422,
                    f"prompt_embeddings must have shape [P, {engine.hidden_dim}] "
                    f"(P prompt vectors of the model's hidden size), got "
                    f"{list(prompt.shape)}.",
                )
            if prompt.shape[0] > config.max_prompt_length:
                raise HTTPException(
                    422,
                    f"prompt_embeddings has P={prompt.shape[0]} vectors; the "
                    f"limit is {config.max_prompt_length}.",
                )
            if not np.all(np.isfinite(prompt)):
                raise HTTPException(422, "prompt_embeddings holds NaN or inf values.")
        labels = None
        if body.labels is not None:
            labels = np.asarray(body.labels, "int32")
            if len(labels) != len(body.inputs):
                raise HTTPException(
                    422,
                    f"Got {len(labels)} labels for {len(body.inputs)} inputs; "
                    "send one label per input, or none.",
                )
            if labels.size and (labels.min() < 0 or labels.max() >= len(body.classes)):
                raise HTTPException(
                    422,
                    f"labels must be class indices in [0, {len(body.classes) - 1}].",
                )
        try:
            task_key = await asyncio.to_thread(
                engine.task_key, body.classes, body.label_words
            )
        except ValueError as error:
            raise HTTPException(422, str(error)) from None
        job = ScoreJob(
            task_key, list(body.inputs), labels, prompt, body.prompt_text or "",
            body.loss, batchable=body.allow_batching,
        )

        async def compute():
            result = await run_job(job)
            response = {
                "model": engine.model_id,
                "scores": encode_array(result["scores"]),
                "loss": result["loss"],
                "input_tokens": result["input_tokens"],
            }
            return response, job.rows, result["input_tokens"]

        return await idempotent(request, "/v1/score", compute)

    @app.post(
        "/v1/completions",
        response_model=CompletionResponse,
        dependencies=[Depends(authorize)],
    )
    async def completions(body: CompletionRequest, request: Request):
        texts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
        if not texts:
            raise HTTPException(422, "prompt is empty; send a string or a list of strings.")
        check_texts(texts, "prompts")
        if body.max_tokens != 1:
            raise HTTPException(
                422,
                f"max_tokens={body.max_tokens} is not served: this endpoint "
                "scores the next token only. Send max_tokens=1.",
            )
        if body.echo or body.n != 1:
            raise HTTPException(422, "echo=true and n>1 are not served; send echo=false, n=1.")
        top_k = 1 if body.logprobs is None else int(body.logprobs)
        if not 0 <= top_k <= config.max_logprobs:
            raise HTTPException(
                422, f"logprobs must be in [0, {config.max_logprobs}], got {top_k}."
            )
        job = CompletionJob(texts, max(top_k, 1))

        async def compute():
            result = await run_job(job)
            choices = []
            for index, (text, top) in enumerate(zip(texts, result["top"])):
                token, logprob = top[0]  # greedy
                choices.append(
                    {
                        "text": token,
                        "index": index,
                        "logprobs": None
                        if body.logprobs is None
                        else {
                            "tokens": [token],
                            "token_logprobs": [logprob],
                            "top_logprobs": [_top_dict(top[:top_k])],
                            "text_offset": [len(text)],
                        },
                        "finish_reason": "length",
                    }
                )
            prompt_tokens = sum(result["prompt_tokens"])
            response = {
                "id": f"cmpl-{uuid.uuid4().hex}",
                "object": "text_completion",
                "created": int(time.time()),
                "model": engine.model_id,
                "choices": choices,
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": len(texts),
                    "total_tokens": prompt_tokens + len(texts),
                },
            }
            return response, len(texts), prompt_tokens + len(texts)

        return await idempotent(request, "/v1/completions", compute)

    return app


def _top_dict(pairs):
    """Top alternatives as OpenAI's {token text: logprob}; equal texts keep the max."""
    top = {}
    for text, logprob in pairs:
        if text not in top or logprob > top[text]:
            top[text] = logprob
    return top
