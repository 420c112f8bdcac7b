"""What the routes of one app share: the engine, its batcher, the request log."""

import asyncio

from fastapi import HTTPException
from fastapi import Request

from promptopt.server.batching import MicroBatcher
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

    Example:

    ```python
    state = ServerState(engine, ServerConfig())
    result = await state.run_job(job)
    state.close()
    ```
    """

    def __init__(self, engine, config):
        self.engine = engine
        self.config = config
        self.log = RequestLog(config.log_file)
        self.batcher = MicroBatcher(engine.run, max_rows=config.max_batch_rows)
        # Idempotency key -> the future of the request now computed for it.
        self._in_flight = {}

    def close(self):
        """Stops the model thread (at the app's shutdown)."""
        self.batcher.close()

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
