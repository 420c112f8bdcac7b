"""A crash-safe record of paid black-box evaluations."""

import json
import os
import threading


class EvaluationJournal:
    """Append-only JSON-lines file of every evaluation an API answered.

    One line per paid call, `{"key", "step", "loss", "accuracy",
    "input_tokens", "http_requests"}`, written and fsynced as soon as the
    reply arrives, before the candidate's loss is used. The key is a hash
    of the evaluator's configuration, the step and the candidate's bytes,
    so a run resumed after a crash (or a server restart) finds every
    evaluation it already paid for and does not pay or count it again.
    `paid_calls` and `input_tokens` are exact totals over the file.

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

    @property
    def paid_calls(self):
        return len(self._entries)

    def get(self, key):
        with self._lock:
            return self._entries.get(key)

    def record(self, key, entry):
        entry = {"key": key, **entry}
        with self._lock:
            if key in self._entries:
                return
            if self.path is not None:
                with open(self.path, "a", encoding="utf-8") as f:
                    f.write(json.dumps(entry) + "\n")
                    f.flush()
                    os.fsync(f.fileno())
            self._add(entry)
