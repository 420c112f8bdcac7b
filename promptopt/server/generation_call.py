"""One OpenAI-style generation request: checked, run, and read back as choices."""

import asyncio
import dataclasses

from fastapi import HTTPException

from promptopt.server.event_stream import event_stream
from promptopt.server.generation_engine import GenerationJob
from promptopt.server.generation_engine import Sampling
from promptopt.server.text_stream import TextStream
from promptopt.tasks.text_encoder import detokenize


@dataclasses.dataclass
class Choice:
    """One finished choice.

    Args:
        index: int, its place in the reply (prompt index * n + draw).
        text: str, what the reply holds (the echoed prompt, then the new
            text up to the first stop string).
        finish_reason: "stop" (a stop id or string ended it) or "length".
        tokens: the new ids (cut before a stop id).
        prompt_tokens: int, positions in front of the new text.
        logprobs: per new token `(logprob, [(id, logprob)])`, or None.
        prompt_logprobs: the same per echoed prompt token, or None.
    """

    index: int
    text: str
    finish_reason: str
    tokens: list
    prompt_tokens: int
    logprobs: list = None
    prompt_logprobs: list = None


class GenerationCall:
    """Runs one request's rows through the server's batcher, as choices.

    Completions and chat differ only in how their prompts become token rows
    and how choices are written; both go through here: the limits, the job
    (one row per prompt and draw), the reply's choices and usage, and the
    stream of text deltas.

    Args:
        state: the app's `ServerState`.
        served: the `ServedPrompt` the request's `model` named.
        token_rows: one id list per prompt.
        body: the request (`SamplingFields`: sampling, stop, n).
        max_tokens: int, most new tokens per choice.
        stop_token_ids: ids that end a choice.
        stop_strings: strings that end a choice (the request's `stop`, and
            the chat template's).
        logprobs: int or None, top alternatives per token.
        echo_texts: per prompt, the text to echo in front (None: no echo).

    Example:
    ```python
    call = GenerationCall(state, served, rows, body, 16, (2,), (), None)
    choices = await call.choices()
    ```
    """

    def __init__(self, state, served, token_rows, body, max_tokens, stop_token_ids,
                 stop_strings, logprobs, echo_texts=None):
        self.state = state
        self.served = served
        self.token_rows = [list(row) for row in token_rows]
        self.n = int(body.n)
        self.max_tokens = int(max_tokens)
        self.sampling = Sampling(body.temperature, body.top_p, body.top_k, body.seed)
        self.stop_token_ids = tuple(stop_token_ids)
        stop = body.stop
        self.stop_strings = tuple([stop] if isinstance(stop, str) else stop or ()) + tuple(
            stop_strings
        )
        self.logprobs = logprobs
        self.echo_texts = echo_texts
        self._check()

    def _check(self):
        """413 for too many rows, 422 for a prompt or reply too long."""
        config, engine = self.state.config, self.state.engine
        rows = len(self.token_rows) * self.n
        if rows > config.max_batch_size:
            raise HTTPException(
                413,
                f"{len(self.token_rows)} prompts x n={self.n} make {rows} rows, over "
                f"the limit of {config.max_batch_size} per request. Send fewer "
                "prompts or a smaller n.",
            )
        if self.max_tokens > config.max_new_tokens:
            raise HTTPException(
                422,
                f"max_tokens={self.max_tokens} exceeds this server's limit of "
                f"{config.max_new_tokens} new tokens. Ask for fewer.",
            )
        if self.logprobs is not None and self.logprobs > config.max_logprobs:
            raise HTTPException(
                422, f"logprobs must be in [0, {config.max_logprobs}], got {self.logprobs}."
            )
        longest = max(len(row) for row in self.token_rows)
        if longest > engine.max_length:
            raise HTTPException(
                422,
                f"A prompt has {longest} tokens; this server takes at most "
                f"{engine.max_length} (promptopt serve --max-length). Shorten it.",
            )
        continues_nothing = self.served.kind != "soft_prompt" or self.served.length == 0
        if continues_nothing and min(len(row) for row in self.token_rows) == 0:
            raise HTTPException(
                422,
                f"A prompt is empty, and '{self.served.name}' ({self.served.kind}) has no "
                "soft prompt to continue. Send at least one token of text.",
            )
        context = self.state.generator.context_length
        total = self.served.length + longest + self.max_tokens
        if context is not None and total > context:
            raise HTTPException(
                422,
                f"The prompt ({longest} tokens, plus {self.served.length} prompt "
                f"vectors) and max_tokens={self.max_tokens} make {total} "
                f"positions, over the model's {context}. Ask for fewer tokens.",
            )

    def job(self, on_tokens=None):
        """The `GenerationJob`: row `i * n + c` is draw c of prompt i."""
        return GenerationJob(
            token_rows=[row for row in self.token_rows for _ in range(self.n)],
            prompt=self.served,
            max_tokens=self.max_tokens,
            sampling=self.sampling,
            stop_token_ids=self.stop_token_ids,
            logprobs=self.logprobs,
            echo_logprobs=self.echo_texts is not None and self.logprobs is not None,
            on_tokens=on_tokens,
            max_merged_rows=self.state.config.max_generation_rows,
        )

    def text_stream(self, index):
        echo = "" if self.echo_texts is None else self.echo_texts[index // self.n]
        return TextStream(self._detokenize, self.stop_strings, prefix=echo)

    def _detokenize(self, ids):
        return detokenize(self.state.engine.tokenizer, ids) if ids else ""

    def choices_of(self, rows):
        """The engine's row results -> `Choice`s, in reply order."""
        choices = []
        for index, row in enumerate(rows):
            text, cut = self.text_stream(index).text(row["tokens"])
            choices.append(Choice(
                index=index,
                text=text,
                finish_reason="stop" if row["stopped"] or cut else "length",
                tokens=row["tokens"],
                prompt_tokens=row["prompt_tokens"],
                logprobs=row.get("logprobs"),
                prompt_logprobs=row.get("prompt_logprobs"),
            ))
        return choices

    def usage(self, choices):
        """OpenAI's usage: each prompt counted once, each choice's new tokens."""
        prompt = sum(c.prompt_tokens for c in choices[:: self.n])
        completion = sum(len(c.tokens) for c in choices)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    async def choices(self):
        """Runs the job; returns its `Choice`s (422 for the engine's ValueErrors)."""
        rows = await self.state.run_job(self.job())
        if self.logprobs is not None:
            # Token texts are decoded for the whole vocabulary on first use:
            # do it off the event loop.
            await asyncio.to_thread(self.state.engine.token_text, 0)
        return self.choices_of(rows)

    async def stream(self):
        """Yields `(index, text delta, None)` as tokens arrive, then `(index, rest, Choice)`.

        Deltas come while the model generates (keras-hub's loop runs
        eagerly on TensorFlow); with `logprobs`, each choice's text comes
        whole at the end with its log-probabilities.
        """
        loop = asyncio.get_running_loop()
        queue = asyncio.Queue()

        def on_tokens(row, tokens):  # on the model thread
            loop.call_soon_threadsafe(queue.put_nowait, (row, tokens))

        streams = [self.text_stream(i) for i in range(len(self.token_rows) * self.n)]
        incremental = self.logprobs is None
        future = self.state.batcher.submit(self.job(on_tokens if incremental else None))
        # Runs after every on_tokens call of the job, so it arrives last.
        future.add_done_callback(
            lambda _: loop.call_soon_threadsafe(queue.put_nowait, None)
        )
        if incremental:
            for index, stream in enumerate(streams):
                if stream.prefix:
                    yield index, stream.update([]), None
        while (event := await queue.get()) is not None:
            index, tokens = event
            delta = streams[index].update(tokens)
            if delta:
                yield index, delta, None
        if self.logprobs is not None:
            await asyncio.to_thread(self.state.engine.token_text, 0)  # as in choices()
        for choice in self.choices_of(future.result()):
            yield choice.index, streams[choice.index].finish(choice.tokens), choice


def offsets_within(token_texts, start, limit):
    """Text offsets of the tokens that begin before `limit`.

    Token i starts at `start + len(texts[0]) + ... + len(texts[i - 1])`;
    tokens at or past `limit` (cut off by a stop string) are dropped.

    Returns:
        list of int, one per kept token.
    """
    offsets, offset = [], start
    for text in token_texts:
        if offset >= limit:
            break
        offsets.append(offset)
        offset += len(text)
    return offsets


async def respond(state, request, path, call, writer, stream):
    """The reply to a generation request, streamed or not.

    Args:
        state: the app's `ServerState`.
        request: the FastAPI `Request`.
        path: str, the endpoint, as the request log records it.
        call: the request's `GenerationCall`.
        writer: writes choices in the endpoint's format: `response(choices,
            usage)` and the async iterator `chunks(call, request)`.
        stream: bool; True sends server-sent events (logged, not replayed),
            False one JSON reply (replayed for a repeated Idempotency-Key).
    """
    if stream:
        return event_stream(writer.chunks(call, request))

    async def compute():
        choices = await call.choices()
        response = writer.response(choices, call.usage(choices))
        return response, len(choices), response["usage"]["total_tokens"]

    return await state.idempotent(request, path, compute)
