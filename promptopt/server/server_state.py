"""What the routes of one app share: the engine, its batcher, the request log."""

import asyncio
import functools

from fastapi import HTTPException
from fastapi import Request

from promptopt.server.batching import MicroBatcher
from promptopt.server.chat_template import ChatTemplate
from promptopt.server.generation_engine import GenerationEngine
from promptopt.server.generation_engine import GenerationJob
from promptopt.server.prompt_registry import PromptRegistry
from promptopt.server.request_log import IdempotencyConflictError
from promptopt.server.request_log import RequestLog
from promptopt.wire.names import IDEMPOTENCY_HEADER


class ServerState:
    """The engine and limits of one app, with its batcher and request log.

    `create_app` makes one per app and keeps it in `app.state.server`;
    routes get it with `Depends(server_state)`.

    Args:
        engine: a `ScoringEngine`.
        config: a `ServerConfig`.
        prompts: the `PromptRegistry` of the names served (default: the
            base model alone). Generation (`GenerationEngine`) shares the
            engine's backbone and the one model thread.

    Example:

    ```python
    state = ServerState(engine, ServerConfig())
    result = await state.run_job(job)
    state.close()
    ```
    """

    def __init__(self, engine, config, prompts=None):
        self.engine = engine
        self.config = config
        self.prompts = prompts or PromptRegistry(engine.adapter, engine.model_id)
        self.generator = GenerationEngine(engine.adapter)
        self.log = RequestLog(config.log_file)
        self.batcher = MicroBatcher(self._run_group, max_rows=config.max_batch_rows)
        # Idempotency key -> the future of the request now computed for it.
        self._in_flight = {}

    def close(self):
        """Stops the model thread (at the app's shutdown)."""
        self.batcher.close()

    @functools.cached_property
    def chat_template(self):
        """The model's `ChatTemplate`, made on first use (it reads the vocabulary)."""
        return ChatTemplate(self.engine.tokenizer)

    def _run_group(self, jobs):
        # On the model thread: a group holds jobs of one kind (their
        # group keys agree), so its first job says which engine runs it.
        if isinstance(jobs[0], GenerationJob):
            return self.generator.run(jobs)
        return self.engine.run(jobs)

    async def record_stream(self, request, endpoint, response, rows, tokens):
        """Logs a streamed request once it is sent: counted, never replayed.

        A stream cannot be replayed from the log as it was sent, so it is
        logged without its Idempotency-Key.
        """
        digest = RequestLog.body_digest(await request.body())
        await asyncio.to_thread(
            self.log.record_computed, endpoint, None, digest, rows, tokens, response
        )

    async def run_job(self, job):
        """Runs `job` on the model thread; the engine's ValueErrors become 422."""
        try:
            return await asyncio.wrap_future(self.batcher.submit(job))
        except ValueError as error:
            raise HTTPException(422, str(error)) from None

    async def idempotent(self, request, endpoint, compute):
        """Computes once per Idempotency-Key, even across restarts.

        Args:
            request: the FastAPI `Request` (its key header and raw body).
            endpoint: str, the path, as the log records it.
            compute: async callable returning `(response dict, rows, tokens)`.

        Returns:
            The response dict: computed now, or replayed from the log.
        """
        key = request.headers.get(IDEMPOTENCY_HEADER)
        digest = RequestLog.body_digest(await request.body())
        try:
            logged = self.log.lookup(key, digest)
        except IdempotencyConflictError as error:
            raise HTTPException(409, str(error)) from None
        if logged is not None:
            self.log.record_replayed(endpoint, key)
            return logged
        if key is not None and key in self._in_flight:
            # The same request is being computed (a retry that overtook a
            # slow first attempt): wait for that one instead of paying again.
            return await asyncio.shield(self._in_flight[key])
        waiter = asyncio.get_running_loop().create_future()
        if key is not None:
            self._in_flight[key] = waiter
        try:
            response, rows, tokens = await compute()
            await asyncio.to_thread(
                self.log.record_computed, endpoint, key, digest, rows, tokens, response
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
            self._in_flight.pop(key, None)


def server_state(request: Request):
    """FastAPI dependency: the `ServerState` of the app serving `request`."""
    return request.app.state.server
