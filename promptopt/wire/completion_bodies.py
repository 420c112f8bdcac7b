"""Bodies of `/v1/completions`, the subset of OpenAI's legacy API served."""

from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict


class CompletionRequest(BaseModel):
    """The subset of OpenAI's legacy `/v1/completions` this server serves.

    The model scores the next token only (`max_tokens` must be 1, greedy);
    `logprobs` asks for the top-k next-token log-probabilities.
    """

    model_config = ConfigDict(extra="ignore")
    model: str | None = None
    prompt: str | list[str]
    max_tokens: int = 1
    logprobs: int | None = None
    temperature: float = 0.0
    echo: bool = False
    n: int = 1


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None
    text_offset: list[int]


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: CompletionLogprobs | None
    finish_reason: str


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage
