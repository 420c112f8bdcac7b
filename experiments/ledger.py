"""The committed record of every finished run's summary row.

`experiments/runs/` holds what a run needs to resume (checkpoints, prompts,
the run's own row) and is not committed: it is large and machine-bound, and
a fresh checkout has none of it. A report built only from it would drop
every run made on another machine. The ledger,
`experiments/results/ledger/<experiment>.json`, keeps the summary row of
each finished run (`{run name: row}`), so that a report regenerated on any
checkout includes every run that ever finished there or elsewhere, and a
finished run is read back instead of run again.

Rows are small by construction (accuracies, timings, a curve of a few
points); the ledger is rewritten whole, under a lock, because two
experiments may finish at the same time on one machine.
"""

import contextlib
import fcntl
import json
import os

LEDGERS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "ledger")


class RunLedger:
    """`{run name: summary row}` of one experiment, in a committed JSON file."""

    def __init__(self, experiment, directory=LEDGERS):
        self.path = os.path.join(directory, f"{experiment}.json")

    def rows(self):
        """Every recorded row, by run name."""
        if not os.path.exists(self.path):
            return {}
        with open(self.path) as f:
            return json.load(f)

    def get(self, name):
        """The row of run `name`, or None if it never finished."""
        return self.rows().get(name)

    def record(self, name, row):
        """Adds (or replaces) the row of run `name`, atomically."""
        with self._locked():
            rows = self.rows()
            rows[name] = row
            tmp = self.path + ".tmp"
            with open(tmp, "w") as f:
                json.dump(rows, f, indent=1, sort_keys=True)
                f.write("\n")
            os.replace(tmp, self.path)

    @contextlib.contextmanager
    def _locked(self):
        os.makedirs(os.path.dirname(self.path), exist_ok=True)
        with open(self.path + ".lock", "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)
