"""The committed ledger of finished runs: rows round-trip and replace."""

import json
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", ".."))

from experiments.ledger import RunLedger  # noqa: E402


def test_rows_round_trip_and_a_record_replaces_only_its_own_row(tmp_path):
    ledger = RunLedger("protocol", directory=str(tmp_path))
    assert ledger.rows() == {}
    assert ledger.get("prefix/sst2-s13") is None

    ledger.record("prefix/sst2-s13", {"test_accuracy_after": 0.75, "seed": 13})
    ledger.record("prefix/sst2-s21", {"test_accuracy_after": 0.5, "seed": 21})
    ledger.record("prefix/sst2-s13", {"test_accuracy_after": 0.8, "seed": 13})

    reopened = RunLedger("protocol", directory=str(tmp_path))
    assert reopened.rows() == {"prefix/sst2-s13": {"test_accuracy_after": 0.8, "seed": 13},
                               "prefix/sst2-s21": {"test_accuracy_after": 0.5, "seed": 21}}
    with open(tmp_path / "protocol.json") as f:
        assert json.load(f) == reopened.rows()
    assert not os.path.exists(tmp_path / "protocol.json.tmp")
