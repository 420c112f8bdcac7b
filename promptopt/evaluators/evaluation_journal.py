"""A crash-safe record of paid black-box evaluations."""

import json
import os
import threading


class EvaluationJournal:
    """Append-only JSON-lines file of every evaluation an API answered.

    One line per paid call (one candidate), `{"key", "step", "loss",
    "accuracy", "input_tokens", "http_requests"}`, written and fsynced as
    soon as the reply arrives, before the candidate's loss is used. The key
    is a hash of the evaluator's configuration, the step and the
    candidate's bytes, so a run resumed after a crash (or a server restart)
    finds every evaluation it already paid for and does not pay or count it
    again. A reply for K candidates (a population request) is K lines,
    written with one fsync by `record_many`; the first carries the
    request's `http_requests` (attempts) and `"requests": 1`, the others 0,
    so the totals count each request once. A line without `"requests"` is
    one request of its own. `paid_calls` (candidates, BBT's forward calls),
    `requests`, `http_requests` (attempts, retries included) and
    `input_tokens` are exact totals over the file.

    Args:
        path: str or None; None keeps the journal in memory.

    Example:

    ```python
    journal = EvaluationJournal("runs/sst2/journal.jsonl")
    if journal.get(key) is None:
        journal.record(key, {"step": 0, "loss": 0.69, ...})
    journal.paid_calls
    ```
    """

    def __init__(self, path=None):
        self.path = None if path is None else str(path)
        self._entries = {}
        self._lock = threading.Lock()
        self.input_tokens = 0
        self.http_requests = 0
        self.requests = 0
        if self.path is not None:
            os.makedirs(os.path.dirname(os.path.abspath(self.path)), exist_ok=True)
            if os.path.exists(self.path):
                with open(self.path, encoding="utf-8") as f:
                    for line in f:
                        try:
                            entry = json.loads(line)
                        except json.JSONDecodeError:
                            continue  # cut short by a crash: re-asked, replayed
                        self._add(entry)

    def _add(self, entry):
        if entry["key"] in self._entries:
            return
        self._entries[entry["key"]] = entry
        self.input_tokens += int(entry.get("input_tokens", 0))
        self.http_requests += int(entry.get("http_requests", 0))
        self.requests += int(entry.get("requests", 1))

    @property
    def paid_calls(self):
        return len(self._entries)

    def get(self, key):
        with self._lock:
            return self._entries.get(key)

    def record(self, key, entry):
        self.record_many([(key, entry)])

    def record_many(self, entries):
        """Records `[(key, entry)]` (one reply's candidates) with one fsync.

        Keys already recorded are skipped. A crash halfway keeps the whole
        lines before the cut; the rest are paid for again on resume (the
        server answers them from its log, so it computes none twice).
        """
        with self._lock:
            new = {}
            for key, entry in entries:
                if key not in self._entries and key not in new:
                    new[key] = {"key": key, **entry}
            if not new:
                return
            if self.path is not None:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write("".join(json.dumps(e) + "\n" for e in new.values()))
                    f.flush()
                    os.fsync(f.fileno())
            for entry in new.values():
                self._add(entry)
