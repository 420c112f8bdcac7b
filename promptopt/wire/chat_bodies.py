"""Bodies of `/v1/chat/completions`, the subset of OpenAI's chat API served."""

from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field

from promptopt.wire.completion_bodies import DEFAULT_MAX_TOKENS
from promptopt.wire.completion_bodies import CompletionUsage
from promptopt.wire.completion_bodies import SamplingFields

CHAT_COMPLETIONS_PATH = "/v1/chat/completions"


class TextPart(BaseModel):
    """One part of a message's content; only text parts are served."""

    model_config = ConfigDict(extra="ignore")
    type: Literal["text"]
    text: str


class ChatMessage(BaseModel):
    """One turn. `developer` is OpenAI's newer name for `system`."""

    model_config = ConfigDict(extra="ignore")
    role: Literal["system", "developer", "user", "assistant"]
    content: str | list[TextPart]

    def text(self):
        if isinstance(self.content, str):
            return self.content
        return "".join(part.text for part in self.content)


class ChatCompletionRequest(SamplingFields):
    """OpenAI's `/v1/chat/completions`: the next assistant turn.

    The messages are rendered with the model's chat template
    (`ChatTemplate`: ChatML for SmolLM2-Instruct) and the reply is
    generated after the assistant header. `max_completion_tokens` is
    OpenAI's newer name for `max_tokens`. `logprobs` returns each chosen
    token's log-probability, with its `top_logprobs` most likely
    alternatives. Sampling fields: see `SamplingFields`.
    """

    messages: list[ChatMessage] = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=0)
    max_completion_tokens: int | None = Field(None, ge=0)
    logprobs: bool = False
    top_logprobs: int | None = Field(None, ge=0)

    def token_budget(self):
        """The most new tokens per choice."""
        for value in (self.max_completion_tokens, self.max_tokens):
            if value is not None:
                return value
        return DEFAULT_MAX_TOKENS


class ChatMessageOut(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChatLogprobs(BaseModel):
    content: list[TokenLogprob]


class ChatChoice(BaseModel):
    index: int
    message: ChatMessageOut
    logprobs: ChatLogprobs | None
    finish_reason: str


class ChatCompletionResponse(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    choices: list[ChatChoice]
    usage: CompletionUsage
