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
    """Score a batch of inputs under one prompt, or under K candidate prompts.

    Give at most one of `prompt_embeddings` (soft prompts) and
    `prompt_text` (text put in front of each input, then tokenized
    together); with neither, the inputs are scored as they are.

    `prompt_embeddings` `[P, H]` is one candidate, and the reply is a
    `ScoreResponse`. `[K, P, H]` is a population of K candidates scored on
    the same B inputs (one CMA-ES generation in one request), and the reply
    is a `PopulationScoreResponse`, one result per candidate in order. The
    inputs are tokenized once for all K; with `placement="suffix"` on a
    Llama-family model their keys and values are computed once too, and
    each candidate runs only its `B * P` prompt rows. Either way each
    candidate's result is bit-identical to a single `[P, H]` request with
    `allow_batching=False`. A population is exactly-once per candidate:
    `candidate_keys` gives each its own idempotency key, so a retry, or a
    request repeating a candidate an earlier one computed, is answered
    from the server's log for that candidate and computes only the rest.

    `prefix_embeddings` instead scores a *deep suffix* (BBTv2's per-layer
    keys and values, `promptopt.prefixes.deep_suffix`): `[L, 2, P, N, D]`
    put after each input's head, read only by its last `suffix_tail_length`
    tokens, with `placement="suffix"` on a Llama-family model. `[K, L, 2, P,
    N, D]` is a population, exactly-once per candidate through
    `candidate_keys` as above; the heads' keys and values are computed once
    per request and each candidate runs its `B * k` tail rows, as
    `DeepSuffixEvaluator` does locally.

    Args:
        inputs: B input texts, already formatted (e.g. "<review> It was").
        classes: C class names, in class-index order.
        label_words: class name -> its label words (e.g. " great"); a class
            scores `log sum_w p(w | prompt, input)` over its words.
        labels: optional B class indices; with them the reply has the loss.
        prompt_embeddings: optional soft prompt `[P, H]`, or K of them
            `[K, P, H]`.
        candidate_keys: with `[K, P, H]`, optional K distinct idempotency
            keys, one per candidate (send no `Idempotency-Key` header then).
        prefix_embeddings: optional deep suffix `[L, 2, P, N, D]` (keys
            after RoPE at positions 0..P-1), or K of them `[K, L, 2, P, N, D]`;
            not with prompt_embeddings or prompt_text.
        suffix_tail_length: int k >= 1, with prefix_embeddings only: how
            many of each input's last tokens read the deep suffix (the
            template's tail, ending at the answer position).
        prompt_text: optional text prompt.
        model: optional name of a prompt or ensemble the server serves
            (GET /v1/models), instead of prompt_embeddings and prompt_text.
            An ensemble's N prompts are scored on the inputs together and
            their class probabilities combined by its rule ("mean" or
            "vote"); the reply's scores are then the log of the combined
            probabilities (normalized over the C classes).
        placement: where a soft prompt goes: "prefix" (default), in front
            of each input's token embeddings; "suffix", right after each
            input's last token, `[x; prompt]`, with the answer read at the
            last prompt vector (BBT's `SharedInputEvaluator`). "suffix"
            needs single-token label words and a decoder-only model.
        loss: "cross_entropy", "hinge" or "negative_accuracy" (mean over B).
        allow_batching: True lets the server run a single-candidate request
            in one forward pass with other concurrent ones (faster for small
            requests; scores then agree with a solo pass to float32
            rounding, ~1e-7). False gives results bit-identical to a local
            `KerasEvaluator` (`SharedInputEvaluator` for a suffix prompt on
            a Llama-family model) on the same model, batch and prompt. A
            population always runs on its own, so it is exact either way.

    Example:

    ```python
    {"inputs": ["great fun. It was"], "classes": ["0", "1"],
     "label_words": {"0": [" terrible"], "1": [" great"]}, "labels": [1],
     "prompt_embeddings": encode_array(prompt)}  # [P, H]; or population [K, P, H]
    ```
    """

    model_config = ConfigDict(extra="forbid")
    inputs: list[str] = Field(min_length=1)
    classes: list[str] = Field(min_length=1)
    label_words: dict[str, list[str]]
    labels: list[int] | None = None
    prompt_embeddings: ArrayPayload | None = None
    candidate_keys: list[str] | None = None
    prefix_embeddings: ArrayPayload | None = None
    # Checked by the route (not `Field(ge=1)`), so a bad value gets a 422
    # that names the fix.
    suffix_tail_length: int | None = None
    prompt_text: str | None = None
    model: str | None = None
    placement: Literal["prefix", "suffix"] = "prefix"
    loss: Literal[LOSSES] = "cross_entropy"
    allow_batching: bool = True


class ScoreResponse(BaseModel):
    """Per-class scores and the loss; no gradients, weights or hidden states.

    Args:
        model: the model id.
        scores: class scores `[B, C]` (log-probabilities of the label words).
        loss: mean loss over the batch, or None when no labels were sent.
        input_tokens: positions the model ran: the inputs' real tokens (with
            a text prompt's tokens) plus P prompt vectors per input. For a
            deep suffix: the heads' real tokens plus `B * (k + P)` (the
            tails' rows and the prompt positions they attend to).
    """

    model: str
    scores: ArrayPayload
    loss: float | None
    input_tokens: int


class CandidateScore(BaseModel):
    """One candidate's result in a population reply.

    Args:
        scores: class scores `[B, C]`.
        loss: mean loss over the batch, or None when no labels were sent.
        input_tokens: positions the model ran for this candidate: P prompt
            vectors per input, plus the inputs' real tokens, which a
            shared-input pass runs once per request and charges to the
            first candidate it computes. A deep suffix's candidate is
            charged `B * (k + P)` (its tail rows and prompt positions), the
            heads' real tokens (run once) going to the first candidate.
        replayed: True when the server answered from its log (an earlier
            request computed this candidate key), not by computing now.
    """

    scores: ArrayPayload
    loss: float | None
    input_tokens: int
    replayed: bool


class PopulationScoreResponse(BaseModel):
    """The reply to a `[K, P, H]` request: one `CandidateScore` per candidate.

    Args:
        model: the model id.
        candidates: K results, in the request's order.
    """

    model: str
    candidates: list[CandidateScore]
