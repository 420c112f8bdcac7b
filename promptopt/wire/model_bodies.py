"""Replies of `/v1/models`: the base model and the tuned prompts served."""

from typing import Literal

from pydantic import BaseModel

MODELS_PATH = "/v1/models"


class ModelCard(BaseModel):
    """One servable name, in OpenAI's model format plus what it is.

    Args:
        id: the name a request's `model` field selects it by.
        created: int, Unix time the server loaded it.
        owned_by: str, "promptopt".
        kind: "base" (the frozen model alone), "soft_prompt" (`[P, H]`
            vectors in front of the input) or "prefix" (per-layer keys and
            values `[L, 2, P, N, D]`).
        prompt_length: int, P (0 for the base model).
        base_model: str, the frozen model it runs on.
    """

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "promptopt"
    kind: Literal["base", "soft_prompt", "prefix"]
    prompt_length: int
    base_model: str


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
