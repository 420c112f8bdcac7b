"""The text of a choice as its tokens arrive, cut at the first stop string."""


def cut_at_stop(text, stop_strings):
    """`(text before the first stop string, whether one was found)`."""
    found = [text.find(s) for s in stop_strings if s and s in text]
    if not found:
        return text, False
    return text[: min(found)], True


class TextStream:
    """Turns a choice's growing token ids into the text deltas to send.

    Each delta extends what was sent before, so the deltas of a stream
    concatenate to the final text, `cut_at_stop(detokenize(tokens))`, that a
    non-streamed reply holds. Text is held back while it could still change:
    a trailing U+FFFD (a multi-byte character whose last bytes are in the
    next token) and a tail that could be the start of a stop string.

    Args:
        detokenize: callable, token ids -> str.
        stop_strings: the request's stop strings.
        prefix: str, text sent before any token (the prompt, for `echo`).

    Example:
    ```python
    stream = TextStream(lambda ids: detokenize(tokenizer, ids), ["\\n\\n"])
    stream.update([464]) + stream.update([464, 3139]) + stream.finish([464, 3139])
    ```
    """

    def __init__(self, detokenize, stop_strings=(), prefix=""):
        self.detokenize = detokenize
        self.stop_strings = tuple(s for s in stop_strings if s)
        self.prefix = prefix
        self.sent = ""

    def text(self, tokens):
        """`(the full text of tokens, cut at a stop string; whether it was)`."""
        text, stopped = cut_at_stop(self.detokenize(tokens), self.stop_strings)
        return self.prefix + text, stopped

    def update(self, tokens):
        """The new text that is safe to send now ("" if none)."""
        text, stopped = self.text(tokens)
        if not stopped:
            text = text.rstrip("\ufffd")
            text = text[: len(text) - self._stop_start(text)]
        return self._advance(text)

    def finish(self, tokens):
        """The rest of the text, once `tokens` are all there is."""
        text, _ = self.text(tokens)
        return self._advance(text)

    def _advance(self, text):
        if not text.startswith(self.sent):
            return ""  # a tail that re-tokenized differently: wait for more
        delta, self.sent = text[len(self.sent) :], text
        return delta

    def _stop_start(self, text):
        """Length of the longest tail of `text` that begins a stop string."""
        longest = 0
        for stop in self.stop_strings:
            for size in range(min(len(stop) - 1, len(text)), longest, -1):
                if text.endswith(stop[:size]):
                    longest = size
                    break
        return longest
