"""`/v1/completions`: OpenAI's legacy completions, generated or streamed."""

import asyncio
import time
import uuid

from fastapi import APIRouter
from fastapi import Depends
from fastapi import HTTPException
from fastapi import Request

from promptopt.server.auth import authorize
from promptopt.server.generation_call import GenerationCall
from promptopt.server.generation_call import offsets_within
from promptopt.server.generation_call import respond
from promptopt.server.limits import check_texts
from promptopt.server.openai_errors import served_prompt
from promptopt.server.scoring_engine import CompletionJob
from promptopt.server.server_state import server_state
from promptopt.tasks.text_encoder import tokenize_all
from promptopt.wire.completion_bodies import CompletionRequest
from promptopt.wire.completion_bodies import CompletionResponse
from promptopt.wire.names import COMPLETIONS_PATH

router = APIRouter(dependencies=[Depends(authorize)])


@router.post(COMPLETIONS_PATH, response_model=CompletionResponse)
async def completions(body: CompletionRequest, request: Request, state=Depends(server_state)):
    texts = [body.prompt] if isinstance(body.prompt, str) else list(body.prompt)
    if not texts:
        raise HTTPException(422, "prompt is empty; send a string or a list of strings.")
    check_texts(state.config, texts, "prompts")
    served = served_prompt(state, body.model)
    if _scores_next_token(body, served):
        return await _next_token(body, texts, request, state)
    tokenizer = state.engine.tokenizer
    rows = await asyncio.to_thread(tokenize_all, tokenizer, texts)
    end = getattr(tokenizer, "end_token_id", None)
    call = GenerationCall(
        state, served, rows, body, body.max_tokens, () if end is None else (end,), (),
        body.logprobs, echo_texts=texts if body.echo else None,
    )
    writer = _CompletionWriter(state, served.name, rows, texts, body)
    return await respond(state, request, COMPLETIONS_PATH, call, writer, body.stream)


def _scores_next_token(body, served):
    """True for the request the server always served: the base model's next token.

    It keeps its own path (`CompletionJob`, one pass, top-k next-token
    log-probabilities), which `OpenAICompletionsEvaluator` relies on.
    """
    return (
        served.kind == "base" and body.max_tokens == 1 and body.temperature == 0
        and body.n == 1 and not body.echo and not body.stream and body.stop is None
    )


class _CompletionWriter:
    """Writes choices as OpenAI's completion replies and stream chunks."""

    def __init__(self, state, model, rows, texts, body):
        self.state = state
        self.model = model
        self.rows = rows
        self.texts = texts
        self.body = body
        self.id = f"cmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def _reply(self, choices, **extra):
        return {
            "id": self.id, "object": "text_completion", "created": self.created,
            "model": self.model, "choices": choices, **extra,
        }

    def _choice(self, index, text, finish_reason, logprobs=None):
        return {"text": text, "index": index, "logprobs": logprobs,
                "finish_reason": finish_reason}

    def response(self, choices, usage):
        return self._reply(
            [self._choice(c.index, c.text, c.finish_reason, self.logprobs(c)) for c in choices],
            usage=usage,
        )

    async def chunks(self, call, request):
        """The stream: text deltas, each choice's finish, usage if asked, then a log line."""
        finished = []
        async for index, delta, choice in call.stream():
            if choice is not None:
                finished.append(choice)
            if delta or choice is not None:
                reason = None if choice is None else choice.finish_reason
                logprobs = None if choice is None else self.logprobs(choice)
                yield self._reply([self._choice(index, delta, reason, logprobs)])
        usage = call.usage(finished)
        options = self.body.stream_options
        if options is not None and options.include_usage:
            yield self._reply([], usage=usage)
        await self.state.record_stream(
            request, COMPLETIONS_PATH, self.response(finished, usage), len(finished),
            usage["total_tokens"],
        )

    def logprobs(self, choice):
        """OpenAI's `logprobs` of one choice (None unless asked for)."""
        if self.body.logprobs is None:
            return None
        prompt = choice.index // self.body.n
        echo = self.body.echo
        ids = (self.rows[prompt] if echo else []) + choice.tokens
        records = ((choice.prompt_logprobs or []) if echo else []) + (choice.logprobs or [])
        texts = [self.state.engine.token_text(i) for i in ids]
        start = 0 if echo else len(self.texts[prompt])
        offsets = offsets_within(texts, start, start + len(choice.text))
        kept = range(len(offsets))
        return {
            "tokens": [texts[i] for i in kept],
            "token_logprobs": [records[i][0] for i in kept],
            "top_logprobs": [
                None if records[i][1] is None
                else _top_dict((self.state.engine.token_text(t), v) for t, v in records[i][1])
                for i in kept
            ],
            "text_offset": offsets,
        }


async def _next_token(body, texts, request, state):
    """The base model's top-k next tokens, in one pass (`max_tokens=1`, greedy)."""
    config = state.config
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
