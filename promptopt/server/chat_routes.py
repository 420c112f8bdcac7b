"""`/v1/chat/completions`: the next assistant turn, generated or streamed."""

import asyncio
import time
import uuid

from fastapi import APIRouter
from fastapi import Depends
from fastapi import Request

from promptopt.server.auth import authorize
from promptopt.server.generation_call import GenerationCall
from promptopt.server.generation_call import offsets_within
from promptopt.server.generation_call import respond
from promptopt.server.limits import check_texts
from promptopt.server.openai_errors import served_prompt
from promptopt.server.server_state import server_state
from promptopt.wire.chat_bodies import CHAT_COMPLETIONS_PATH
from promptopt.wire.chat_bodies import ChatCompletionRequest
from promptopt.wire.chat_bodies import ChatCompletionResponse

router = APIRouter(dependencies=[Depends(authorize)])


@router.post(CHAT_COMPLETIONS_PATH, response_model=ChatCompletionResponse)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, state=Depends(server_state)
):
    messages = [(m.role, m.text()) for m in body.messages]
    check_texts(state.config, [text for _, text in messages], "messages")
    served = served_prompt(state, body.model)
    template = state.chat_template
    rows = [await asyncio.to_thread(template.render, messages)]
    top = body.top_logprobs or 0
    call = GenerationCall(
        state, served, rows, body, body.token_budget(), template.stop_token_ids,
        template.stop_strings, top if body.logprobs else None,
    )
    writer = _ChatWriter(state, served.name, body)
    return await respond(state, request, CHAT_COMPLETIONS_PATH, call, writer, body.stream)


class _ChatWriter:
    """Writes choices as OpenAI's chat replies and stream chunks."""

    def __init__(self, state, model, body):
        self.state = state
        self.model = model
        self.body = body
        self.id = f"chatcmpl-{uuid.uuid4().hex}"
        self.created = int(time.time())

    def _reply(self, kind, choices, **extra):
        return {
            "id": self.id, "object": kind, "created": self.created, "model": self.model,
            "choices": choices, **extra,
        }

    def response(self, choices, usage):
        return self._reply(
            "chat.completion",
            [
                {
                    "index": c.index,
                    "message": {"role": "assistant", "content": c.text},
                    "logprobs": self.logprobs(c),
                    "finish_reason": c.finish_reason,
                }
                for c in choices
            ],
            usage=usage,
        )

    def _chunk(self, index, delta, finish_reason=None, logprobs=None):
        return self._reply(
            "chat.completion.chunk",
            [{"index": index, "delta": delta, "logprobs": logprobs,
              "finish_reason": finish_reason}],
        )

    async def chunks(self, call, request):
        """The stream: each choice's role, content deltas and finish; usage if asked."""
        for index in range(self.body.n):
            yield self._chunk(index, {"role": "assistant", "content": ""})
        finished = []
        async for index, delta, choice in call.stream():
            if choice is None:
                yield self._chunk(index, {"content": delta})
                continue
            finished.append(choice)
            yield self._chunk(
                index, {"content": delta} if delta else {}, choice.finish_reason,
                self.logprobs(choice),
            )
        usage = call.usage(finished)
        options = self.body.stream_options
        if options is not None and options.include_usage:
            yield self._reply("chat.completion.chunk", [], usage=usage)
        await self.state.record_stream(
            request, CHAT_COMPLETIONS_PATH, self.response(finished, usage), len(finished),
            usage["total_tokens"],
        )

    def logprobs(self, choice):
        """OpenAI's chat `logprobs` (`{"content": [...]}`), None unless asked for."""
        if not self.body.logprobs:
            return None
        text_of = self.state.engine.token_text
        texts = [text_of(t) for t in choice.tokens]
        kept = len(offsets_within(texts, 0, len(choice.text)))
        content = []
        for text, (logprob, top) in zip(texts[:kept], choice.logprobs[:kept]):
            content.append({
                **_entry(text, logprob),
                "top_logprobs": [_entry(text_of(t), v) for t, v in top],
            })
        return {"content": content}


def _entry(text, logprob):
    return {"token": text, "logprob": logprob, "bytes": list(text.encode("utf-8"))}
