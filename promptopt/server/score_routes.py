"""`/v1/score`: class scores and the loss of a batch under one prompt."""

import asyncio

import numpy as np
from fastapi import APIRouter
from fastapi import Depends
from fastapi import HTTPException
from fastapi import Request

from promptopt.server.auth import authorize
from promptopt.server.limits import check_texts
from promptopt.server.scoring_engine import ScoreJob
from promptopt.server.server_state import server_state
from promptopt.wire.array_codec import ArrayDecodeError
from promptopt.wire.array_codec import decode_array
from promptopt.wire.array_codec import encode_array
from promptopt.wire.names import SCORE_PATH
from promptopt.wire.score_bodies import ScoreRequest
from promptopt.wire.score_bodies import ScoreResponse

router = APIRouter(dependencies=[Depends(authorize)])


@router.post(SCORE_PATH, response_model=ScoreResponse)
async def score(body: ScoreRequest, request: Request, state=Depends(server_state)):
    engine = state.engine
    check_texts(state.config, body.inputs, "inputs", body.prompt_text or "")
    if body.prompt_embeddings is not None and body.prompt_text is not None:
        raise HTTPException(
            422, "Give prompt_embeddings or prompt_text, not both."
        )
    prompt = soft_prompt_of(body, engine.hidden_dim, state.config.max_prompt_length)
    labels = labels_of(body)
    try:
        task_key = await asyncio.to_thread(
            engine.task_key, body.classes, body.label_words
        )
    except ValueError as error:
        raise HTTPException(422, str(error)) from None
    job = ScoreJob(
        task_key, list(body.inputs), labels, prompt, body.prompt_text or "",
        body.loss, batchable=body.allow_batching,
    )

    async def compute():
        result = await state.run_job(job)
        response = {
            "model": engine.model_id,
            "scores": encode_array(result["scores"]),
            "loss": result["loss"],
            "input_tokens": result["input_tokens"],
        }
        return response, job.rows, result["input_tokens"]

    return await state.idempotent(request, SCORE_PATH, compute)


def soft_prompt_of(body, hidden_dim, max_prompt_length):
    """The request's soft prompt, float32 `[P, H]` (P = 0 without one); 422 if unfit."""
    if body.prompt_embeddings is None:
        return np.zeros((0, hidden_dim), "float32")
    try:
        prompt = decode_array(body.prompt_embeddings)
    except ArrayDecodeError as error:
        raise HTTPException(422, str(error)) from None
    if prompt.ndim != 2 or prompt.shape[1] != hidden_dim:
        raise HTTPException(
            422,
            f"prompt_embeddings must have shape [P, {hidden_dim}] "
            f"(P prompt vectors of the model's hidden size), got "
            f"{list(prompt.shape)}.",
        )
    if prompt.shape[0] > max_prompt_length:
        raise HTTPException(
            422,
            f"prompt_embeddings has P={prompt.shape[0]} vectors; the "
            f"limit is {max_prompt_length}.",
        )
    if not np.all(np.isfinite(prompt)):
        raise HTTPException(422, "prompt_embeddings holds NaN or inf values.")
    return prompt


def labels_of(body):
    """The request's labels, int32 `[B]`, or None; 422 if they do not fit the inputs."""
    if body.labels is None:
        return None
    labels = np.asarray(body.labels, "int32")
    if len(labels) != len(body.inputs):
        raise HTTPException(
            422,
            f"Got {len(labels)} labels for {len(body.inputs)} inputs; "
            "send one label per input, or none.",
        )
    if labels.size and (labels.min() < 0 or labels.max() >= len(body.classes)):
        raise HTTPException(
            422,
            f"labels must be class indices in [0, {len(body.classes) - 1}].",
        )
    return labels
