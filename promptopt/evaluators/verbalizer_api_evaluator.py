"""Set-up shared by evaluators that classify through a JSON API by label words."""

from promptopt.evaluators.black_box_evaluator import BlackBoxEvaluator
from promptopt.evaluators.black_box_evaluator import phrases_to_text
from promptopt.evaluators.json_http_client import JSONHTTPClient


class VerbalizerAPIEvaluator(BlackBoxEvaluator):
    """A `BlackBoxEvaluator` whose classes are scored by label words over HTTP.

    Holds what `HTTPEvaluator` and `OpenAICompletionsEvaluator` both need:
    the classes and their label words (a verbalizer), the phrases that a
    discrete candidate `[P]` indexes, and the `JSONHTTPClient`. All of them
    enter the journal identity (`_identity`), with the `endpoint` requests
    go to, so a changed verbalizer or endpoint is never answered from an
    old journal. Subclasses add their own fields to `_identity` and build
    the requests (`_call`).

    Args:
        base_url, texts, labels: the API root and the N training examples.
        classes, label_words: C class names; class name -> word or words.
        phrases, separator: the text pieces a text candidate `[P]` indexes
            (list of str, or None), and the str that joins them.
        token, timeout, max_retries, backoff_seconds: the `JSONHTTPClient`'s.
        batch_size, loss, seed, concurrency, journal_path: the
            `BlackBoxEvaluator`'s.

    Example:

    ```python
    class MyScoreEvaluator(VerbalizerAPIEvaluator):
        endpoint = "/v1/my_score"

        def _call(self, candidate, texts, labels, key):
            reply, attempts = self.client.post(self.endpoint, {...}, idempotency_key=key)
            return {"loss": ..., "accuracy": ..., "input_tokens": ...,
                    "http_requests": attempts}
    ```
    """

    # Subclasses: the path their paid requests go to.
    endpoint = None

    def __init__(self, base_url, texts, labels, classes, label_words, *, phrases, separator,
                 token, timeout, max_retries, backoff_seconds, batch_size, loss, seed,
                 concurrency, journal_path):
        self.classes = [str(c) for c in classes]
        self.label_words = {
            str(c): [w] if isinstance(w, str) else list(w) for c, w in label_words.items()
        }
        self.phrases = None if phrases is None else [str(p) for p in phrases]
        self.separator = str(separator)
        self.client = JSONHTTPClient(
            base_url, token=token, timeout=timeout, max_retries=max_retries,
            backoff_seconds=backoff_seconds,
        )
        super().__init__(texts, labels, batch_size=batch_size, loss=loss, seed=seed,
                         concurrency=concurrency, journal_path=journal_path)

    def _identity(self):
        return {
            **super()._identity(),
            "endpoint": self.endpoint,
            "classes": self.classes,
            "label_words": self.label_words,
            "phrases": self.phrases,
            "separator": self.separator,
        }

    def prompt_text(self, candidate):
        """The text of a discrete candidate `[P]` of phrase indices."""
        return phrases_to_text(candidate, self.phrases, self.separator)
