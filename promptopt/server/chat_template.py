"""Chat messages as the token ids a model was tuned to read."""

from promptopt.tasks.text_encoder import tokenize_all

CHATML_START = "<|im_start|>"
CHATML_END = "<|im_end|>"


class ChatTemplate:
    """Renders chat messages as token ids, in the model's own chat format.

    - **ChatML**, when the vocabulary has `<|im_start|>` and `<|im_end|>`
      (SmolLM2-Instruct, Qwen): each message is
      `<|im_start|>{role}\\n{content}<|im_end|>\\n`, and the reply follows
      `<|im_start|>assistant\\n` and ends at `<|im_end|>`. The special
      tokens are written as their ids, not tokenized from text.
      SmolLM2's own template also adds a default system message when none
      is given; this one adds nothing that was not sent.
    - **Plain text** otherwise (base models, the tests' tiny tokenizers):
      `{role}: {content}\\n` per message, then `assistant:`; the reply ends
      at the end token or where the model starts a new `user:` or
      `system:` line.

    Args:
        tokenizer: the model's keras-hub tokenizer.

    Example:
    ```python
    template = ChatTemplate(tokenizer)
    ids = template.render([("system", "Be brief."), ("user", "Hi!")])
    template.stop_token_ids  # (<|im_end|> id,) for ChatML
    ```
    """

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        vocabulary = tokenizer.get_vocabulary()
        self.is_chatml = CHATML_START in vocabulary and CHATML_END in vocabulary
        end = getattr(tokenizer, "end_token_id", None)
        stops = [] if end is None else [int(end)]
        if self.is_chatml:
            self._start = int(tokenizer.token_to_id(CHATML_START))
            self._end = int(tokenizer.token_to_id(CHATML_END))
            stops.insert(0, self._end)
            self.stop_strings = ()
        else:
            self.stop_strings = ("\nuser:", "\nsystem:")
        self.stop_token_ids = tuple(dict.fromkeys(stops))

    @property
    def name(self):
        return "chatml" if self.is_chatml else "plain"

    def render(self, messages):
        """Token ids of the conversation followed by the assistant's header.

        Args:
            messages: list of `(role, text)`; role "developer" is read as
                "system".
        """
        turns = [("system" if role == "developer" else role, text) for role, text in messages]
        if not self.is_chatml:
            text = "".join(f"{role}: {content}\n" for role, content in turns)
            return tokenize_all(self.tokenizer, [text + "assistant:"])[0]
        pieces = [f"{role}\n{content}" for role, content in turns] + ["\n", "assistant\n"]
        ids = tokenize_all(self.tokenizer, pieces)
        newline, header = ids[-2], ids[-1]
        rendered = []
        for body in ids[:-2]:
            rendered += [self._start] + body + [self._end] + newline
        return rendered + [self._start] + header
