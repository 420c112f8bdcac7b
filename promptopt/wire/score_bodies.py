"""Bodies of `/v1/score`, as pydantic models (they make the OpenAPI schema)."""

from typing import Literal

from pydantic import BaseModel
from pydantic import ConfigDict
from pydantic import Field

from promptopt.wire.names import LOSSES


class ArrayPayload(BaseModel):
    """A float array: little-endian float32 bytes, C order, base64.

    Args:
        dtype: always "float32".
        shape: the array's shape, e.g. `[P, H]`.
        data: base64 of the `prod(shape) * 4` raw bytes.

    Example:

    ```python
    ArrayPayload(**promptopt.wire.encode_array(prompt))
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
    loss: Literal[LOSSES] = "cross_entropy"
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
