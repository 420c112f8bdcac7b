"""Request and reply bodies of the server, as pydantic models (OpenAPI)."""

from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field


class ArrayPayload(BaseModel):
    """A float array: little-endian float32 bytes, C order, base64.

    Args:
        dtype: always "float32".
        shape: the array's shape, e.g. `[P, H]`.
        data: base64 of the `prod(shape) * 4` raw bytes.

    Example:

    ```python
    ArrayPayload(**promptopt.server.encode_array(prompt))
    ```
    """

    model_config = ConfigDict(extra="forbid")
    dtype: Literal["float32"] = "float32"
    shape: list[int]
    data: str


class ScoreRequest(BaseModel):
    """Score a batch of inputs under one prompt.

    Give at most one of `prompt_embeddings` (a soft prompt `[P, H]` put in
    front of each input's token embeddings) and `prompt_text` (text put in
    front of each input, then tokenized together); with neither, the inputs
    are scored as they are.

    Args:
        inputs: B input texts, already formatted (e.g. "<review> It was").
        classes: C class names, in class-index order.
        label_words: class name -> its label words (e.g. " great"); a class
            scores `log sum_w p(w | prompt, input)` over its words.
        labels: optional B class indices; with them the reply has the loss.
        prompt_embeddings: optional soft prompt `[P, H]`.
        prompt_text: optional text prompt.
        loss: "cross_entropy", "hinge" or "negative_accuracy" (mean over B).
        allow_batching: True lets the server run this request in one
            forward pass with other concurrent ones (faster for small
            requests; scores then agree with a solo pass to float32
            rounding, ~1e-7). False gives results bit-identical to a local
            `KerasEvaluator` on the same model, batch and prompt.

    Example:

    ```python
    {"inputs": ["great fun. It was"], "classes": ["0", "1"],
     "label_words": {"0": [" terrible"], "1": [" great"]}, "labels": [1],
     "prompt_embeddings": encode_array(prompt)}
    ```
    """

    model_config = ConfigDict(extra="forbid")
    inputs: list[str] = Field(min_length=1)
    classes: list[str] = Field(min_length=1)
    label_words: dict[str, list[str]]
    labels: list[int] | None = None
    prompt_embeddings: ArrayPayload | None = None
    prompt_text: str | None = None
    loss: Literal["cross_entropy", "hinge", "negative_accuracy"] = "cross_entropy"
    allow_batching: bool = True


class ScoreResponse(BaseModel):
    """Per-class scores and the loss; no gradients, weights or hidden states.

    Args:
        model: the model id.
        scores: class scores `[B, C]` (log-probabilities of the label words).
        loss: mean loss over the batch, or None when no labels were sent.
        input_tokens: positions the model ran: the inputs' real tokens (with
            a text prompt's tokens) plus P prompt vectors per input.
    """

    model: str
    scores: ArrayPayload
    loss: float | None
    input_tokens: int


class InfoResponse(BaseModel):
    """What a client needs to build prompts for this model, and the limits.

    `embedding_std` is the one statistic of the weights the server reveals:
    the standard deviation of all `V * H` entries of the input embedding
    table, `np.std(E)`. Black-Box Tuning scales its random projection by it
    (`CMAESOptimizer(embedding_std=...)`), so that perturbed prompts stay at
    the scale of real token embeddings. No embedding row, weight or
    gradient is ever returned.
    """

    model: str
    hidden_dim: int
    embedding_std: float
    max_batch_size: int
    max_prompt_length: int
    max_request_bytes: int
    max_logprobs: int
    auth_required: bool


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


class StatsResponse(BaseModel):
    """Counters from the server's own log (see `RequestLog`).

    `forward_passes` counts the model passes since this process started;
    fewer passes than requests means requests were batched together.
    """

    computed_requests: int
    replayed_requests: int
    input_tokens: int
    rows: int
    forward_passes: int
