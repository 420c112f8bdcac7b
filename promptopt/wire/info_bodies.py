"""Replies of `/info` and `/stats`."""

from pydantic import BaseModel


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
