"""The server's own record of computed requests, with idempotent replay."""

import hashlib
import json
import os
import threading
import time


class IdempotencyConflictError(ValueError):
    """An idempotency key came back with a different request body."""


class RequestLog:
    """Append-only JSON-lines log of every request the model computed.

    Each computed request is one line, written and fsynced before the reply
    is sent: `{"event": "computed", "endpoint", "key", "body_sha256",
    "rows", "input_tokens", "time", "response"}`. A request that carries an
    `Idempotency-Key` already in the log is answered from it (a
    `"replayed"` line, not computed or counted again), so a client that
    retries after a lost reply, or after the server restarted, is never
    charged twice. The log is read back at start-up.

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
                self._responses[entry["key"]] = (entry["body_sha256"], entry["response"])
        elif entry.get("event") == "replayed":
            self.replayed_requests += 1

    @staticmethod
    def body_digest(body):
        return hashlib.sha256(body).hexdigest()

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
        if found[0] != body_sha256:
            raise IdempotencyConflictError(
                f"Idempotency-Key {key!r} was already used for a different "
                "request body. Use a new key for a new request."
            )
        return found[1]

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

    def record_replayed(self, endpoint, key):
        self._append(
            {"event": "replayed", "endpoint": endpoint, "key": key, "time": time.time()}
        )

    def _append(self, entry):
        with self._lock:
            if self.path is not None:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            self._count(entry)
