"""Exception handlers: every error reply is `{"detail": "<one readable line>"}`."""

from fastapi.responses import JSONResponse


async def readable_validation_error(request, error):
    """422 for a body that fails its pydantic model."""
    # One line per problem, e.g. "body.classes: Field required".
    problems = []
    for item in error.errors():
        where = ".".join(str(part) for part in item.get("loc", ()))
        problems.append(f"{where}: {item.get('msg')}")
    return JSONResponse({"detail": "; ".join(problems)}, status_code=422)


async def internal_error(request, error):
    """500 naming the exception, instead of a bare "Internal Server Error"."""
    return JSONResponse(
        {"detail": f"Internal error: {type(error).__name__}: {error}"},
        status_code=500,
    )
