"""Server-sent events in OpenAI's streaming format."""

import json

from fastapi import HTTPException
from fastapi.responses import StreamingResponse


def event_stream(chunks):
    """A `StreamingResponse` sending each chunk as `data: {json}\\n\\n`, then `data: [DONE]`.

    An error after the stream has begun (the status line is already sent)
    goes out as one `data: {"error": {...}}` event, which OpenAI's clients
    raise as an `APIError`.

    Args:
        chunks: async iterator of JSON-able dicts.
    """

    async def body():
        try:
            async for chunk in chunks:
                yield f"data: {json.dumps(chunk)}\n\n"
        except HTTPException as error:
            yield _error_event(str(error.detail), "invalid_request_error")
        except ValueError as error:  # the engine's refusals, as run_job's 422
            yield _error_event(str(error), "invalid_request_error")
        except Exception as error:  # noqa: BLE001 - reported to the client
            yield _error_event(f"Internal error: {type(error).__name__}: {error}", "server_error")
        yield "data: [DONE]\n\n"

    return StreamingResponse(
        body(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
    )


def _error_event(message, kind):
    error = {"message": message, "type": kind, "param": None, "code": None}
    return f"data: {json.dumps({'error': error})}\n\n"
