"""Errors in OpenAI's format, `{"error": {"message", "type", "param", "code"}}`."""

from fastapi import HTTPException
from fastapi.responses import JSONResponse

from promptopt.server.prompt_registry import UnknownModelError


class OpenAIError(HTTPException):
    """An HTTP error that OpenAI's clients read as theirs.

    The reply also carries `detail`, the one readable line every other
    error of this server has.

    Args:
        status_code: int.
        message: str, what is wrong and how to fix it.
        type: OpenAI's error type.
        param: the request field at fault, or None.
        code: OpenAI's machine-readable code, or None.
    """

    def __init__(self, status_code, message, type="invalid_request_error", param=None,
                 code=None):
        super().__init__(status_code, message)
        self.error = {"message": message, "type": type, "param": param, "code": code}


async def openai_error(request, error):
    """Exception handler of `OpenAIError`."""
    return JSONResponse(
        {"error": error.error, "detail": error.detail}, status_code=error.status_code
    )


def served_prompt(state, name, generates=True):
    """The `ServedPrompt` a request's `model` names; 404 in OpenAI's format if none.

    With `generates`, an ensemble is refused (422): it combines its
    members' class probabilities, which only `/v1/score` returns.
    """
    try:
        served = state.prompts.get(name)
    except UnknownModelError as error:
        raise OpenAIError(404, str(error), param="model", code="model_not_found") from None
    if generates and served.kind == "ensemble":
        raise OpenAIError(
            422,
            f"'{name}' is an ensemble of {len(served.members)} prompts: it combines their "
            "class probabilities, so it classifies through POST /v1/score with "
            f"model='{name}'. It does not generate; serve a member with --prompt to generate.",
            param="model", code="model_not_generative")
    return served
