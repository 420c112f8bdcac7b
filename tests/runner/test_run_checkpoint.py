import math
import os

import numpy as np
import pytest

from promptopt.optimizers import StateFormatError
from promptopt.runner import RunCheckpoint
from promptopt.runner import load_checkpoint
from promptopt.runner import save_checkpoint


def _checkpoint(**overrides):
    fields = dict(
        fingerprint="abc",
        stage_index=1,
        stage_finished=False,
        optimizer_state=b"\x00\x01state",
        step=7,
        forward_calls=42,
        elapsed_seconds=1.5,
        stage_steps=3,
        stage_forward_calls=3,
        stage_seconds=0.25,
        lowest_loss=0.125,
        lowest_loss_prompt=np.arange(6, dtype="float32").reshape(2, 3),
        history=[{"loss": 1.0, "best_loss": math.inf}],
    )
    fields.update(overrides)
    return RunCheckpoint(**fields)


@pytest.mark.parametrize("prompt", [np.arange(6, dtype="float32").reshape(2, 3), None])
def test_checkpoint_round_trips_exactly(tmp_path, prompt):
    checkpoint = _checkpoint(lowest_loss_prompt=prompt)
    save_checkpoint(tmp_path / "run", checkpoint)
    loaded = load_checkpoint(tmp_path / "run")
    assert loaded == checkpoint
    assert loaded.history[0]["best_loss"] == math.inf


def test_overwriting_leaves_one_file_and_no_temporary_files(tmp_path):
    save_checkpoint(tmp_path, _checkpoint(step=1))
    save_checkpoint(tmp_path, _checkpoint(step=2))
    assert os.listdir(tmp_path) == ["run_checkpoint.bin"]
    assert load_checkpoint(tmp_path).step == 2


def test_missing_checkpoint_loads_as_none(tmp_path):
    assert load_checkpoint(tmp_path / "nothing_here") is None


def test_foreign_file_is_refused(tmp_path):
    (tmp_path / "run_checkpoint.bin").write_bytes(b"PK\x03\x04 not ours")
    with pytest.raises(
        StateFormatError,
        match=r"These bytes are not a promptopt state \(bad magic header\)\. Pass "
        r"bytes produced by state_to_bytes\(\) or a promptopt checkpoint\.",
    ):
        load_checkpoint(tmp_path)
