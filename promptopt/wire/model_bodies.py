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
            vectors in front of the input), "prefix" (per-layer keys and
            values `[L, 2, P, N, D]`) or "ensemble" (N soft prompts whose
            class probabilities `/v1/score` combines).
        prompt_length: int, P (0 for the base model; an ensemble's longest).
        base_model: str, the frozen model it runs on.
        ensemble_size: int, an ensemble's N (None for the others).
    """

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "promptopt"
    kind: Literal["base", "soft_prompt", "prefix", "ensemble"]
    prompt_length: int
    base_model: str
    ensemble_size: int | None = None


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]
