"""Size limits: the body-size middleware and the per-request text checks."""

from fastapi import HTTPException
from fastapi import Request
from fastapi.responses import JSONResponse


async def limit_body_size(request: Request, call_next):
    """HTTP middleware: 411 without Content-Length, 413 over `max_request_bytes`.

    It runs before the body is read, so an oversized body is refused
    without being parsed.
    """
    if request.method == "POST":
        limit = request.app.state.server.config.max_request_bytes
        length = request.headers.get("content-length")
        if length is None:
            return JSONResponse(
                {"detail": "Send a Content-Length header (chunked bodies are not accepted)."},
                status_code=411,
            )
        if not length.isdigit() or int(length) > limit:
            return JSONResponse(
                {
                    "detail": f"Request body of {length} bytes exceeds the "
                    f"limit of {limit} bytes. Send fewer "
                    "inputs per request."
                },
                status_code=413,
            )
    return await call_next(request)


def check_texts(config, texts, what, prompt_text=""):
    """Raises 413 for more than `max_batch_size` texts or one too long.

    Args:
        config: the `ServerConfig`.
        texts: list of str, the request's inputs or prompts.
        what: str naming them in the message ("inputs", "prompts").
        prompt_text: str, a text prompt, held to the same length limit.
    """
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
