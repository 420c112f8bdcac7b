"""`/v1/completions`: OpenAI's legacy completions, for the next token only."""

import time
import uuid

from fastapi import APIRouter
from fastapi import Depends
from fastapi import HTTPException
from fastapi import Request

from promptopt.server.auth import authorize
from promptopt.server.limits import check_texts
from promptopt.server.scoring_engine import CompletionJob
from promptopt.server.server_state import server_state
from promptopt.wire.completion_bodies import CompletionRequest
from promptopt.wire.completion_bodies import CompletionResponse
from promptopt.wire.names import COMPLETIONS_PATH

router = APIRouter(dependencies=[Depends(authorize)])


@router.post(COMPLETIONS_PATH, response_model=CompletionResponse)
async def completions(body: CompletionRequest, request: Request, state=Depends(server_state)):
    config = state.config
    texts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
    if not texts:
        raise HTTPException(422, "prompt is empty; send a string or a list of strings.")
    check_texts(config, texts, "prompts")
    if body.max_tokens != 1:
        raise HTTPException(
            422,
            f"max_tokens={body.max_tokens} is not served: this endpoint "
            "scores the next token only. Send max_tokens=1.",
        )
    if body.echo or body.n != 1:
        raise HTTPException(422, "echo=true and n>1 are not served; send echo=false, n=1.")
    top_k = 1 if body.logprobs is None else int(body.logprobs)
    if not 0 <= top_k <= config.max_logprobs:
        raise HTTPException(
            422, f"logprobs must be in [0, {config.max_logprobs}], got {top_k}."
        )
    job = CompletionJob(texts, max(top_k, 1))

    async def compute():
        result = await state.run_job(job)
        choices = []
        for index, (text, top) in enumerate(zip(texts, result["top"])):
            token, logprob = top[0]  # greedy
            choices.append(
                {
                    "text": token,
                    "index": index,
                    "logprobs": None
                    if body.logprobs is None
                    else {
                        "tokens": [token],
                        "token_logprobs": [logprob],
                        "top_logprobs": [_top_dict(top[:top_k])],
                        "text_offset": [len(text)],
                    },
                    "finish_reason": "length",
                }
            )
        prompt_tokens = sum(result["prompt_tokens"])
        response = {
            "id": f"cmpl-{uuid.uuid4().hex}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": state.engine.model_id,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": len(texts),
                "total_tokens": prompt_tokens + len(texts),
            },
        }
        return response, len(texts), prompt_tokens + len(texts)

    return await state.idempotent(request, COMPLETIONS_PATH, compute)


def _top_dict(pairs):
    """Top alternatives as OpenAI's {token text: logprob}; equal texts keep the max."""
    top = {}
    for text, logprob in pairs:
        if text not in top or logprob > top[text]:
            top[text] = logprob
    return top
