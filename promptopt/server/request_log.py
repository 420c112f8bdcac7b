"""The server's own record of computed requests, with idempotent replay."""

import concurrent.futures
import dataclasses
import hashlib
import json
import os
import threading
import time

import numpy as np


class IdempotencyConflictError(ValueError):
    """An idempotency key came back with a different request body."""


@dataclasses.dataclass
class CandidateClaim:
    """What a population request may do with one candidate key (`RequestLog.claim`).

    Exactly one of three holds:
    - `response` is set: the log holds the candidate; answer from it.
    - `pending` is set: another request is computing it now; wait for this
      future (its result is the logged response).
    - neither: this request owns the key and must end the claim with
      `record_computed_candidates` or `release`.
    """

    key: str
    response: dict = None
    pending: concurrent.futures.Future = None

    @property
    def owned(self):
        return self.response is None and self.pending is None


class RequestLog:
    """Append-only JSON-lines log of every request the model computed.

    Each computed request is one line, written and fsynced before the reply
    is sent: `{"event": "computed", "endpoint", "key", "body_sha256",
    "rows", "input_tokens", "time", "response"}`. A request that carries an
    `Idempotency-Key` already in the log is answered from it (a
    `"replayed"` line, not computed or counted again), so a client that
    retries after a lost reply, or after the server restarted, is never
    charged twice. The log is read back at start-up.

    A population request (K candidates, `[K, P, H]`) is logged per
    candidate: one `"computed"` line each, with `"candidate": true`, the
    candidate's own key (`candidate_keys`) and, as `body_sha256`, a digest
    of that candidate and the request's inputs, so a later request holding
    the same candidate is answered from its line even though its other
    candidates differ. `claim` also hands each key to one request at a
    time, so two overlapping requests never compute the same candidate.
    The counters count candidates: `computed_requests` grows by K for a
    population computed in full, as it would for K single requests.

    Args:
        path: str or None; None keeps the log in memory only.

    Example:

    ```python
    log = RequestLog("server.log.jsonl")
    log.record_computed("/v1/score", key, body_sha256, rows=32,
                        input_tokens=900, response=reply)
    log.lookup(key, body_sha256)  # -> reply
    ```
    """

    def __init__(self, path=None):
        self.path = None if path is None else str(path)
        self.computed_requests = 0
        self.replayed_requests = 0
        self.input_tokens = 0
        self.rows = 0
        self._responses = {}
        self._pending = {}  # candidate key -> Future of the request computing it
        self._lock = threading.Lock()
        if self.path is not None and os.path.exists(self.path):
            with open(self.path, encoding="utf-8") as f:
                for line in f:
                    try:
                        entry = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut short by a crash: never answered
                    self._count(entry)

    def _count(self, entry):
        if entry.get("event") == "computed":
            self.computed_requests += 1
            self.input_tokens += int(entry["input_tokens"])
            self.rows += int(entry["rows"])
            if entry.get("key") is not None:
                self._responses[entry["key"]] = (
                    entry["body_sha256"], entry["response"], bool(entry.get("candidate")),
                )
        elif entry.get("event") == "replayed":
            self.replayed_requests += 1

    @staticmethod
    def body_digest(body):
        return hashlib.sha256(body).hexdigest()

    @staticmethod
    def candidate_digest(inputs_sha256, candidate):
        """Digest of one candidate `[P, H]` (float32 bytes) and its inputs.

        Args:
            inputs_sha256: str, digest of everything else in the request
                that changes the candidate's result (inputs, labels, loss...).
            candidate: float32 array `[P, H]`.
        """
        candidate = np.ascontiguousarray(candidate, dtype="<f4")
        digest = hashlib.sha256(inputs_sha256.encode("ascii"))
        digest.update(str(candidate.shape).encode("ascii"))
        digest.update(candidate.tobytes())
        return digest.hexdigest()

    def lookup(self, key, body_sha256):
        """The logged response for `key`, or None.

        Raises:
            IdempotencyConflictError: `key` was used for another body.
        """
        if key is None:
            return None
        with self._lock:
            found = self._responses.get(key)
        if found is None:
            return None
        if found[2]:
            raise IdempotencyConflictError(
                f"Idempotency-Key {key!r} names a candidate of a population "
                "request ([K, P, H] with candidate_keys). Send that candidate "
                "the same way again (HTTPEvaluator(population_requests=True)), "
                "or use a new key."
            )
        if found[0] != body_sha256:
            raise IdempotencyConflictError(
                f"Idempotency-Key {key!r} was already used for a different "
                "request body. Use a new key for a new request."
            )
        return found[1]

    def claim(self, key, candidate_sha256):
        """Looks up one candidate of a population request and reserves it.

        Args:
            key: str, the candidate's key, or None (computed, not reserved).
            candidate_sha256: str, digest of the candidate and its inputs.

        Returns:
            A `CandidateClaim`.

        Raises:
            IdempotencyConflictError: `key` was used for another candidate,
                or by a single-candidate request.
        """
        if key is None:
            return CandidateClaim(key)
        with self._lock:
            found = self._responses.get(key)
            if found is None:
                pending = self._pending.get(key)
                if pending is not None:
                    return CandidateClaim(key, pending=pending)
                self._pending[key] = concurrent.futures.Future()
                return CandidateClaim(key)
        if not found[2]:
            raise IdempotencyConflictError(
                f"Candidate key {key!r} was used by a single-candidate request "
                "(Idempotency-Key). Send that candidate the same way again "
                "(HTTPEvaluator(population_requests=False)), or use a new key."
            )
        if found[0] != candidate_sha256:
            raise IdempotencyConflictError(
                f"Candidate key {key!r} was already used for a different "
                "candidate or different inputs. Use a new key for a new candidate."
            )
        return CandidateClaim(key, response=found[1])

    def release(self, keys, error):
        """Ends the claims on `keys` without logging them (the request failed).

        Requests waiting on them get `error`; the keys can be claimed again.
        """
        with self._lock:
            futures = [self._pending.pop(key, None) for key in keys if key is not None]
        for future in futures:
            if future is not None and not future.done():
                future.set_exception(error)

    def record_computed(self, endpoint, key, body_sha256, rows, input_tokens, response):
        self._append(
            {
                "event": "computed",
                "endpoint": endpoint,
                "key": key,
                "body_sha256": body_sha256,
                "rows": int(rows),
                "input_tokens": int(input_tokens),
                "time": time.time(),
                "response": response,
            }
        )

    def record_computed_candidates(self, endpoint, candidates):
        """Logs the computed candidates of one population request, one fsync.

        Args:
            endpoint: str, the path.
            candidates: list of `(key, candidate_sha256, rows, input_tokens,
                response)`, one per candidate this request computed; their
                claims end, and requests waiting on them get `response`.
        """
        now = time.time()
        self._append(
            *(
                {
                    "event": "computed",
                    "endpoint": endpoint,
                    "key": key,
                    "body_sha256": digest,
                    "rows": int(rows),
                    "input_tokens": int(input_tokens),
                    "time": now,
                    "response": response,
                    "candidate": True,
                }
                for key, digest, rows, input_tokens, response in candidates
            )
        )
        with self._lock:
            futures = [(self._pending.pop(c[0], None), c[4]) for c in candidates]
        for future, response in futures:
            if future is not None and not future.done():
                future.set_result(response)

    def record_replayed(self, endpoint, key):
        self.record_replayed_many(endpoint, [key])

    def record_replayed_many(self, endpoint, keys):
        """One `"replayed"` line per key (population candidates), one fsync."""
        now = time.time()
        self._append(
            *({"event": "replayed", "endpoint": endpoint, "key": key, "time": now} for key in keys)
        )

    def _append(self, *entries):
        # All lines of one request in one write and one fsync. A crash
        # halfway leaves whole lines before the cut (those candidates are
        # answered from the log on a retry) and one cut-off line, skipped
        # at start-up (that candidate is computed again): none twice.
        if not entries:
            return
        with self._lock:
            if self.path is not None:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write("".join(json.dumps(entry) + "\n" for entry in entries))
                    f.flush()
                    os.fsync(f.fileno())
            for entry in entries:
                self._count(entry)
