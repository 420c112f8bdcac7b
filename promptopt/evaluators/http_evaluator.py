"""Scores prompts through a `promptopt serve` API (no gradients)."""

import numpy as np

from promptopt.evaluators.black_box_evaluator import accuracy_of
from promptopt.evaluators.verbalizer_api_evaluator import VerbalizerAPIEvaluator
from promptopt.wire.array_codec import decode_array
from promptopt.wire.array_codec import encode_array
from promptopt.wire.names import INFO_PATH
from promptopt.wire.names import SCORE_PATH


class HTTPEvaluator(VerbalizerAPIEvaluator):
    """Losses of candidate prompts from a model served by `promptopt serve`.

    With `prompt="embeddings"` a candidate is a soft prompt `[P, H]`, sent
    as base64 float32; the server's loss for it equals `KerasEvaluator`'s on
    the same model, batch and prompt, bit for bit, so CMA-ES through the API
    follows a local run exactly. With `prompt="text"` a candidate is a
    vector `[P]` of indices into `phrases` (a discrete optimizer's
    candidates), sent as the text `separator.join(phrases[i] ...)`.
    With `exact=True` requests ask the server not to batch them with
    others (`allow_batching=False`), which is what makes the losses
    bit-identical; `exact=False` lets small requests share forward passes
    (losses then agree to float32 rounding).

    `placement="suffix"` puts a soft prompt after each input (BBT's
    `[x; prompt]`); the losses then equal `SharedInputEvaluator`'s on a
    Llama-family model, bit for bit. With `population_requests=True` the
    K candidates of one `evaluate` call go to the server in one request,
    `[K, P, H]` with one key per candidate: one round trip, the inputs
    tokenized once, and with a suffix prompt on a Llama-family model their
    keys and values computed once, for the same losses bit for bit. The
    budget still counts K forward calls (`Evaluation.forward_calls`,
    `journal.paid_calls`) and one request (`journal.requests`, the
    `api_requests` metric), and the journal and the server's log still
    hold one entry per candidate, so a resumed run re-sends only the
    candidates it has no entry for and the server computes none twice.
    Concurrency, retries, the journal and exact call counting come from
    `BlackBoxEvaluator` and `JSONHTTPClient`, the verbalizer and client
    set-up from `VerbalizerAPIEvaluator`.

    With `prompt="deep_suffix"` (BBTv2's per-layer search) a candidate is a
    deep suffix of `prefix_shape` `(L, 2, P, N, D)`, flat `[L*2*P*N*D]` or
    shaped, sent as `prefix_embeddings` with `placement="suffix"` and
    `suffix_tail_length=k`: the server reads it from each input's last k
    tokens, as `DeepSuffixEvaluator` does locally (losses equal to float
    rounding, ~1e-7), and a population goes as `[K, L, 2, P, N, D]`.

    Args:
        base_url: str, the server, e.g. "http://127.0.0.1:8000".
        texts: N formatted input texts ("<review> It was").
        labels: N class indices.
        classes: C class names.
        label_words: class name -> list of label words.
        prompt: "embeddings", "text" or "deep_suffix".
        phrases: list of str, the text pieces a text candidate indexes.
        separator: str joining phrases.
        exact: bool, see above.
        placement: "prefix" (default) or "suffix", where a soft prompt goes.
        population_requests: bool, one request per `evaluate` call rather
            than one per candidate (soft prompts and deep suffixes; see above).
        prefix_shape: `(L, 2, P, N, D)`, with `prompt="deep_suffix"` only.
        suffix_tail_length: int k >= 1, with `prompt="deep_suffix"` only.
        token: bearer token or None.
        timeout, max_retries, backoff_seconds: see `JSONHTTPClient`.
        batch_size, loss, seed, concurrency, journal_path: see
            `BlackBoxEvaluator`.

    Example:

    ```python
    evaluator = HTTPEvaluator("http://127.0.0.1:8000", train.texts, train.labels,
                              ["0", "1"], {"0": [" terrible"], "1": [" great"]},
                              placement="suffix", population_requests=True,
                              journal_path="runs/api/journal.jsonl")
    optimizer = CMAESOptimizer(embedding_std=evaluator.info()["embedding_std"])
    PromptTuningRunner(evaluator).run(initial_prompt, [Stage(optimizer, Budget(steps=10))])
    # BBTv2 as a deep suffix: candidates [L * 2 * P * N * D] or [L, 2, P, N, D].
    deep = HTTPEvaluator("http://127.0.0.1:8000", train.texts, train.labels, ["0", "1"],
                         {"0": [" terrible"], "1": [" great"]}, prompt="deep_suffix",
                         prefix_shape=(30, 2, 5, 3, 64), suffix_tail_length=2,
                         placement="suffix", population_requests=True)
    ```
    """

    endpoint = SCORE_PATH

    def __init__(self, base_url, texts, labels, classes, label_words, prompt="embeddings",
                 phrases=None, separator="", exact=True, token=None, timeout=60.0,
                 max_retries=5, backoff_seconds=0.5, batch_size=32, loss="cross_entropy",
                 seed=0, concurrency=4, journal_path=None, placement="prefix",
                 population_requests=False, prefix_shape=None, suffix_tail_length=None):
        if prompt not in ("embeddings", "text", "deep_suffix"):
            raise ValueError(
                f"prompt must be 'embeddings', 'text' or 'deep_suffix', got {prompt!r}.")
        deep = prompt == "deep_suffix"
        if deep and (prefix_shape is None or len(prefix_shape) != 5
                     or suffix_tail_length is None or int(suffix_tail_length) < 1
                     or placement != "suffix"):
            raise ValueError(
                "prompt='deep_suffix' needs prefix_shape=(L, 2, P, N, D), "
                "suffix_tail_length=k >= 1 and placement='suffix'; got "
                f"prefix_shape={prefix_shape!r}, suffix_tail_length="
                f"{suffix_tail_length!r}, placement={placement!r}.")
        if not deep and (prefix_shape is not None or suffix_tail_length is not None):
            raise ValueError(
                "prefix_shape and suffix_tail_length describe a deep suffix; use "
                "them with prompt='deep_suffix'.")
        if prompt == "text" and not phrases:
            raise ValueError(
                "prompt='text' needs phrases=[...], the text pieces that a "
                "discrete candidate's indices select."
            )
        if placement not in ("prefix", "suffix"):
            raise ValueError(f"placement must be 'prefix' or 'suffix', got {placement!r}.")
        if prompt == "text" and (placement != "prefix" or population_requests):
            raise ValueError(
                "placement='suffix' and population_requests=True are for soft "
                "prompts; use them with prompt='embeddings' or 'deep_suffix' (a text prompt "
                "goes in front of the input, one per request)."
            )
        self.prompt = prompt
        self.exact = bool(exact)
        self.placement = placement
        self.population_requests = bool(population_requests)
        self.prefix_shape = None if prefix_shape is None else tuple(int(n) for n in prefix_shape)
        self.suffix_tail_length = None if suffix_tail_length is None else int(suffix_tail_length)
        super().__init__(
            base_url, texts, labels, classes, label_words, phrases=phrases,
            separator=separator, token=token, timeout=timeout, max_retries=max_retries,
            backoff_seconds=backoff_seconds, batch_size=batch_size, loss=loss, seed=seed,
            concurrency=concurrency, journal_path=journal_path,
        )

    def _identity(self):
        identity = {**super()._identity(), "prompt": self.prompt, "exact": self.exact}
        # Only when not the default, so that journals written before the
        # placement existed keep their keys. `population_requests` is not
        # part of it: it changes how candidates travel, not their losses.
        if self.placement != "prefix":
            identity["placement"] = self.placement
        if self.prompt == "deep_suffix":
            identity["prefix_shape"] = list(self.prefix_shape)
            identity["suffix_tail_length"] = self.suffix_tail_length
        return identity

    def info(self):
        """The server's `/info` (model, hidden_dim, embedding_std, limits)."""
        return self.client.get(INFO_PATH)[0]

    def request_body(self, candidate, texts, labels, population=False):
        """The `/v1/score` body of one candidate, or of K with `population`."""
        body = {
            "inputs": list(texts),
            "classes": self.classes,
            "label_words": self.label_words,
            "loss": self.loss,
            "allow_batching": not self.exact,
        }
        if labels is not None:
            body["labels"] = [int(y) for y in labels]
        if self.placement != "prefix":
            body["placement"] = self.placement  # servers before it refuse the field
        if self.prompt == "embeddings":
            body["prompt_embeddings"] = encode_array(candidate)  # [P, H] or [K, P, H]
        elif self.prompt == "deep_suffix":
            # Flat or shaped candidates -> [L, 2, P, N, D] or [K, L, 2, P, N, D].
            shape = ((-1,) if population else ()) + self.prefix_shape
            body["prefix_embeddings"] = encode_array(
                np.asarray(candidate, "float32").reshape(shape))
            body["suffix_tail_length"] = self.suffix_tail_length
        else:
            body["prompt_text"] = self.prompt_text(candidate)
        return body

    def _call(self, candidate, texts, labels, key):
        reply, attempts = self.client.post(
            self.endpoint, self.request_body(candidate, texts, labels), idempotency_key=key
        )
        scores = decode_array(reply["scores"])
        return {
            "loss": float(reply["loss"]),
            "accuracy": accuracy_of(scores, labels),
            "input_tokens": int(reply["input_tokens"]),
            "http_requests": attempts,
        }

    def _call_population(self, candidates, texts, labels, keys):
        body = self.request_body(candidates, texts, labels, population=True)
        # The keys travel per candidate, so no Idempotency-Key header: a
        # retry (same body) is answered from the server's log for every
        # candidate it already computed.
        body["candidate_keys"] = list(keys)
        reply, attempts = self.client.post(self.endpoint, body)
        results = [
            {
                "loss": float(c["loss"]),
                "accuracy": accuracy_of(decode_array(c["scores"]), labels),
                "input_tokens": int(c["input_tokens"]),
            }
            for c in reply["candidates"]
        ]
        return results, attempts

    def predict(self, candidate, texts, batch_size=32):
        """Predicted class indices `[N]` for `texts` under `candidate`.

        Unjournaled (not part of a tuning run's budget); one request per
        `batch_size` texts.
        """
        predictions = []
        for start in range(0, len(texts), batch_size):
            chunk = list(texts[start : start + batch_size])
            reply, _ = self.client.post(self.endpoint, self.request_body(candidate, chunk, None))
            predictions.append(np.argmax(decode_array(reply["scores"]), axis=-1))
        return np.concatenate(predictions)
