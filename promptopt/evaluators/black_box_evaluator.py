"""Shared machinery of evaluators that score prompts through a remote API."""

import abc
import concurrent.futures
import hashlib
import json

import numpy as np

from promptopt.evaluators.base import Evaluation
from promptopt.evaluators.base import Evaluator
from promptopt.evaluators.evaluation_journal import EvaluationJournal
from promptopt.evaluators.minibatch import minibatch_indices
from promptopt.wire.names import LOSSES


class BlackBoxEvaluator(Evaluator):
    """Scores candidates through an API: concurrent, journaled, no gradients.

    Each `evaluate` call picks the mini-batch from `step` exactly as
    `KerasEvaluator` does (`np.random.default_rng([seed, step])`), sends one
    request per candidate (up to `concurrency` at a time), and records
    every reply in an `EvaluationJournal` before using it. A candidate
    already in the journal is not sent again, so resuming a run after a
    crash or a server restart pays for nothing twice. Every request carries
    its journal key as `Idempotency-Key`, so a retry whose first reply was
    lost is answered from the server's log. Subclasses build and parse the
    requests (`_call`).

    With `population_requests` on (a subclass that implements
    `_call_population`), the candidates of one `evaluate` call that the
    journal lacks go in one request instead of one each, with one key per
    candidate; the journal still records one entry per candidate, and a
    run resumed after a crash sends only the candidates it has no entry
    for.

    Counters: `journal.paid_calls` (candidates paid, exact: BBT's forward
    calls), `journal.requests` (requests paid: one per population),
    `journal.input_tokens` (as reported by the server), and
    `journal.http_requests` (attempts, retries included). Each
    `Evaluation` reports `api_calls` (candidates paid) and `api_requests`
    (requests sent) in its metrics. `Evaluation.forward_calls` is one per
    candidate, journaled or not, the same unit as `KerasEvaluator`, so
    budgets mean the same thing locally and remotely.

    Args:
        texts: N formatted input texts.
        labels: N class indices.
        batch_size: examples per evaluation (all N if larger).
        loss: "cross_entropy", "hinge" or "negative_accuracy".
        seed: int, for mini-batch sampling.
        concurrency: int, requests in flight at once.
        journal_path: str or None, the journal file.

    Example:

    ```python
    class MyAPIEvaluator(BlackBoxEvaluator):
        def _call(self, candidate, texts, labels, key):
            ...  # one request
            return {"loss": loss, "accuracy": acc, "input_tokens": n,
                    "http_requests": attempts}
    ```
    """

    provides_gradients = False
    # Subclasses that implement `_call_population` may turn this on.
    population_requests = False

    def __init__(self, texts, labels, batch_size=32, loss="cross_entropy", seed=0,
                 concurrency=4, journal_path=None):
        self.texts = [str(t) for t in texts]
        self.labels = np.asarray(labels, dtype="int32")
        if len(self.texts) == 0 or len(self.texts) != len(self.labels):
            raise ValueError(
                f"{type(self).__name__} needs one label per text and at least "
                f"one example; got {len(self.texts)} texts and "
                f"{len(self.labels)} labels."
            )
        if loss not in LOSSES:
            raise ValueError(f"Unknown loss {loss!r}; choose one of {', '.join(LOSSES)}.")
        if int(concurrency) < 1:
            raise ValueError(f"concurrency must be at least 1, got {concurrency}.")
        self.batch_size = int(batch_size)
        self.loss = loss
        self.seed = int(seed)
        self.concurrency = int(concurrency)
        self.journal = EvaluationJournal(journal_path)

    def _identity(self):
        """JSON-able description of everything that changes a reply."""
        return {
            "texts": self.texts,
            "labels": self.labels.tolist(),
            "batch_size": self.batch_size,
            "loss": self.loss,
            "seed": self.seed,
        }

    def batch_indices(self, step):
        """The example indices of `step`'s mini-batch (as `KerasEvaluator`)."""
        return minibatch_indices(len(self.labels), self.batch_size, self.seed, step)

    def candidate_key(self, candidate, step):
        """Journal and idempotency key: hash of config, step and candidate."""
        if not hasattr(self, "_config_digest"):
            text = json.dumps(self._identity(), sort_keys=True)
            self._config_digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
        digest = hashlib.sha256()
        digest.update(self._config_digest.encode("ascii"))
        digest.update(str(int(step)).encode("ascii"))
        candidate = np.ascontiguousarray(candidate, dtype="<f4")
        digest.update(str(candidate.shape).encode("ascii"))
        digest.update(candidate.tobytes())
        return digest.hexdigest()

    @abc.abstractmethod
    def _call(self, candidate, texts, labels, key):
        """One paid request; returns `{"loss", "accuracy", "input_tokens",
        "http_requests"}`."""

    def _call_population(self, candidates, texts, labels, keys):
        """One paid request for K candidates `[K, *S]`, one key each.

        Returns `(results, attempts)`: K dicts `{"loss", "accuracy",
        "input_tokens"}` in order, and the request's HTTP attempts.
        """
        raise NotImplementedError(
            f"{type(self).__name__} sends one candidate per request; set "
            "population_requests=False."
        )

    def evaluate(self, candidates, step, compute_gradients=False):
        if compute_gradients:
            raise ValueError(
                f"{type(self).__name__} scores through an API and has no "
                "gradients. Use a derivative-free optimizer (e.g. cma_es)."
            )
        candidates = np.asarray(candidates, dtype="float32")
        index = self.batch_indices(step)
        texts = [self.texts[i] for i in index]
        labels = self.labels[index]
        keys = [self.candidate_key(c, step) for c in candidates]
        results = [self.journal.get(key) for key in keys]
        # Each distinct missing candidate is paid for once, even if the
        # optimizer asked for it twice in this step.
        missing = list({keys[i]: i for i, r in enumerate(results) if r is None}.values())
        paid_tokens = requests = 0

        def pay(i):
            result = self._call(candidates[i], texts, labels, keys[i])
            self.journal.record(keys[i], {"step": int(step), **result})
            return keys[i], result

        if missing and self.population_requests:
            paid = self._pay_population(candidates, missing, keys, texts, labels, step)
            requests = 1
        elif missing:
            workers = min(self.concurrency, len(missing))
            with concurrent.futures.ThreadPoolExecutor(workers) as pool:
                paid = dict(pool.map(pay, missing))
            requests = len(missing)
        if missing:
            paid_tokens = sum(int(r["input_tokens"]) for r in paid.values())
            results = [paid.get(key, result) for key, result in zip(keys, results)]
        return Evaluation(
            losses=np.array([r["loss"] for r in results]),
            forward_calls=len(candidates),
            metrics={
                "batch_accuracy": float(np.mean([r["accuracy"] for r in results])),
                "api_calls": float(len(missing)),
                "api_requests": float(requests),
                "api_input_tokens": float(paid_tokens),
            },
        )

    def _pay_population(self, candidates, missing, keys, texts, labels, step):
        """Pays for the `missing` candidates in one request; `{key: result}`."""
        sent_keys = [keys[i] for i in missing]
        results, attempts = self._call_population(
            candidates[missing], texts, labels, sent_keys
        )
        # The request's attempts go on its first candidate's entry, so the
        # journal's totals count the request once and each candidate once.
        self.journal.record_many(
            [
                (key, {"step": int(step), **result,
                       "http_requests": attempts if j == 0 else 0,
                       "requests": 1 if j == 0 else 0})
                for j, (key, result) in enumerate(zip(sent_keys, results))
            ]
        )
        return dict(zip(sent_keys, results))


def accuracy_of(scores, labels):
    """Fraction of rows whose highest class score is the label."""
    return float(np.mean(np.argmax(scores, axis=-1) == np.asarray(labels)))


def phrases_to_text(candidate, phrases, separator=""):
    """Text of a discrete candidate `[P]` of indices into `phrases`."""
    candidate = np.asarray(candidate)
    indices = np.rint(candidate).astype("int64")
    if candidate.ndim != 1 or not np.array_equal(indices, candidate):
        raise ValueError(
            f"A text-prompt candidate must be a [P] vector of integer phrase "
            f"indices, got shape {candidate.shape}. Use a discrete optimizer "
            "(promptopt.optimizers.DiscretePromptSearch)."
        )
    if indices.size and (indices.min() < 0 or indices.max() >= len(phrases)):
        raise ValueError(
            f"Phrase index out of range [0, {len(phrases) - 1}] in candidate "
            f"{indices.tolist()}. Give the optimizer num_choices=len(phrases)."
        )
    return separator.join(phrases[i] for i in indices)
