"""Scores text prompts through any OpenAI-compatible completions endpoint."""

import numpy as np

from promptopt.evaluators.black_box_evaluator import accuracy_of
from promptopt.evaluators.numpy_losses import numpy_classification_loss
from promptopt.evaluators.verbalizer_api_evaluator import VerbalizerAPIEvaluator


class OpenAICompletionsEvaluator(VerbalizerAPIEvaluator):
    """Discrete-prompt losses from `/v1/completions` with `logprobs`.

    Text-only APIs take no embeddings, so a candidate is a vector `[P]` of
    indices into `phrases` (as `DiscretePromptSearch` gives), and the
    request sends `prompt_text + input` for each input of the mini-batch
    (one API call per candidate, `max_tokens=1`, `temperature=0`,
    `logprobs=top_logprobs`). A class scores `log sum_w p(w)` over its label
    words, read from the returned top next-token alternatives; a label word
    is matched on its exact token text (e.g. " great"). A word missing from
    the top-k has probability below the k-th; it gets the k-th
    log-probability minus `missing_penalty` nats. Tokens are counted from
    the reply's `usage.total_tokens`.

    Args:
        base_url: str, the API root with its version, e.g.
            "http://127.0.0.1:8000/v1" (requests go to `<base_url>/completions`).
        texts, labels: the training examples.
        classes: C class names; label_words: class name -> words.
        phrases: list of str; separator: str joining them.
        model: str or None, the `model` field of requests.
        top_logprobs: int, alternatives asked for (OpenAI allows up to 5).
        missing_penalty: float, nats below the k-th alternative.
        api_key: str or None, sent as a bearer token.
        timeout, max_retries, backoff_seconds: see `JSONHTTPClient`.
        batch_size, loss, seed, concurrency, journal_path: see
            `BlackBoxEvaluator`.

    Example:

    ```python
    evaluator = OpenAICompletionsEvaluator(
        "http://127.0.0.1:8000/v1", texts, labels, ["0", "1"],
        {"0": [" terrible"], "1": [" great"]}, phrases=[" Review:", " Movie", ...])
    ```
    """

    endpoint = "/completions"

    def __init__(self, base_url, texts, labels, classes, label_words, phrases,
                 separator="", model=None, top_logprobs=5, missing_penalty=1.0,
                 api_key=None, timeout=60.0, max_retries=5, backoff_seconds=0.5,
                 batch_size=32, loss="cross_entropy", seed=0, concurrency=4,
                 journal_path=None):
        if not phrases:
            raise ValueError("phrases must be a non-empty list of text pieces.")
        self.model = model
        self.top_logprobs = int(top_logprobs)
        self.missing_penalty = float(missing_penalty)
        super().__init__(
            base_url, texts, labels, classes, label_words, phrases=phrases,
            separator=separator, token=api_key, timeout=timeout, max_retries=max_retries,
            backoff_seconds=backoff_seconds, batch_size=batch_size, loss=loss, seed=seed,
            concurrency=concurrency, journal_path=journal_path,
        )
        missing = [c for c in self.classes if not self.label_words.get(c)]
        if missing:
            raise ValueError(f"No label words for class(es) {missing}.")

    def _identity(self):
        return {
            **super()._identity(),
            "model": self.model,
            "top_logprobs": self.top_logprobs,
            "missing_penalty": self.missing_penalty,
        }

    def class_scores(self, candidate, texts, key=None):
        """`(scores [B, C], total_tokens, attempts)` for `texts`."""
        prefix = self.prompt_text(candidate)
        body = {
            "prompt": [prefix + t for t in texts],
            "max_tokens": 1,
            "temperature": 0,
            "logprobs": self.top_logprobs,
        }
        if self.model is not None:
            body["model"] = self.model
        reply, attempts = self.client.post(self.endpoint, body, idempotency_key=key)
        choices = sorted(reply["choices"], key=lambda c: c["index"])
        if len(choices) != len(texts):
            raise ValueError(
                f"The API returned {len(choices)} choices for {len(texts)} prompts."
            )
        scores = np.stack([self._scores_of(choice) for choice in choices])
        return scores, int(reply["usage"]["total_tokens"]), attempts

    def _scores_of(self, choice):
        top = (choice.get("logprobs") or {}).get("top_logprobs") or [{}]
        top = top[0] or {}
        if not top:
            raise ValueError(
                "The API returned no top_logprobs; send logprobs>0 to an "
                "endpoint that supports it."
            )
        floor = min(top.values()) - self.missing_penalty
        scores = []
        for c in self.classes:
            word_logprobs = np.array([top.get(w, floor) for w in self.label_words[c]])
            scores.append(np.logaddexp.reduce(word_logprobs))
        return np.array(scores, dtype="float32")

    def _call(self, candidate, texts, labels, key):
        scores, tokens, attempts = self.class_scores(candidate, texts, key)
        loss = np.mean(numpy_classification_loss(scores, labels, self.loss))
        return {
            "loss": float(loss),
            "accuracy": accuracy_of(scores, labels),
            "input_tokens": tokens,
            "http_requests": attempts,
        }

    def predict(self, candidate, texts, batch_size=32):
        """Predicted class indices `[N]` (unjournaled)."""
        predictions = []
        for start in range(0, len(texts), batch_size):
            scores, _, _ = self.class_scores(candidate, list(texts[start : start + batch_size]))
            predictions.append(np.argmax(scores, axis=-1))
        return np.concatenate(predictions)
