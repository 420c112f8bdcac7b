"""Bodies of `/v1/completions`, the subset of OpenAI's legacy API served."""

from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field
from pydantic import model_validator

# OpenAI's default for max_tokens on /v1/completions.
DEFAULT_MAX_TOKENS = 16


class OpenAIRequest(BaseModel):
    """A request body in which `null` means "the default", as OpenAI reads it.

    Fields the server does not serve (`frequency_penalty`, `user`, ...) are
    ignored rather than refused, so that stock clients work unchanged.
    """

    model_config = ConfigDict(extra="ignore")

    @model_validator(mode="before")
    @classmethod
    def _nulls_are_defaults(cls, data):
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data


class StreamOptions(BaseModel):
    """`stream_options`: `include_usage` adds a last chunk with the usage."""

    model_config = ConfigDict(extra="ignore")
    include_usage: bool = False


class SamplingFields(OpenAIRequest):
    """What completions and chat share: the model, sampling and streaming.

    `temperature` 0 is greedy decoding (the default here, unlike OpenAI's
    1, so that replies are reproducible unless sampling is asked for);
    above 0 the next token is drawn from the softmax at that temperature,
    restricted to the `top_k` most likely tokens and/or the smallest set
    of probability `top_p` (keras-hub's samplers). A `seed` makes a sampled
    request reproducible: it then runs in a forward pass of its own.
    `stop` strings end a choice and are not part of its text. `n` choices
    are drawn per prompt.
    """

    model: str | None = None
    temperature: float = Field(0.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int | None = Field(None, ge=1)
    stop: str | list[str] | None = None
    seed: int | None = None
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None


class CompletionRequest(SamplingFields):
    """OpenAI's legacy `/v1/completions`: continue each prompt.

    `max_tokens` new tokens at most per choice (0 with `echo` only scores
    the prompt). `logprobs` k returns each chosen token's log-probability
    and its k most likely alternatives; with `echo` the prompt comes back
    in front of the completion, its tokens with their log-probabilities
    too. `max_tokens=1` on the base model, greedy, with `n=1` and no echo,
    stop or stream, is the one-pass next-token scoring path that
    `OpenAICompletionsEvaluator` uses.
    """

    prompt: str | list[str]
    max_tokens: int = Field(DEFAULT_MAX_TOKENS, ge=0)
    logprobs: int | None = Field(None, ge=0)
    echo: bool = False


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float | None]
    top_logprobs: list[dict[str, float] | None] | None
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
