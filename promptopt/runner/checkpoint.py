"""Crash-safe snapshots of a run, written atomically and read back exactly."""

import dataclasses
import os

import numpy as np

from promptopt.optimizers.serialization import pack_state
from promptopt.optimizers.serialization import unpack_state

CHECKPOINT_FILENAME = "run_checkpoint.bin"


@dataclasses.dataclass
class RunCheckpoint:
    """Everything a `PromptTuningRunner` needs to continue a run.

    Args:
        fingerprint: str, identifies the run (optimizers, seed, initial
            prompt); a checkpoint resumes only the run that wrote it.
        stage_index: int, the stage the optimizer state belongs to.
        stage_finished: bool, whether that stage has ended.
        optimizer_state: bytes, `optimizer.state_to_bytes(state)`.
        step: int, steps done in the whole run.
        forward_calls: int, forward passes in the whole run.
        elapsed_seconds: float, wall-clock seconds in the whole run.
        stage_steps: int, steps done in the current stage.
        stage_forward_calls: int, forward passes in the current stage.
        stage_seconds: float, seconds spent in the current stage.
        lowest_loss: float, the lowest loss evaluated so far (inf if none).
        lowest_loss_prompt: np.ndarray `[*S]` or None, the candidate with it.
        history: list of dict, the logs of every step so far.
        selection: dict, a `DevSelection`'s record (empty without one).
        selected_prompt: np.ndarray `[*S]` or None, its selected prompt.

    Example:

    ```python
    save_checkpoint("runs/sst2", checkpoint)
    assert load_checkpoint("runs/sst2") == checkpoint
    ```
    """

    fingerprint: str
    stage_index: int
    stage_finished: bool
    optimizer_state: bytes
    step: int
    forward_calls: int
    elapsed_seconds: float
    stage_steps: int
    stage_forward_calls: int
    stage_seconds: float
    lowest_loss: float
    lowest_loss_prompt: np.ndarray
    history: list
    selection: dict = dataclasses.field(default_factory=dict)
    selected_prompt: np.ndarray = None

    def __eq__(self, other):
        if not isinstance(other, RunCheckpoint):
            return NotImplemented
        mine, theirs = dataclasses.asdict(self), dataclasses.asdict(other)
        same_prompts = all(
            _same_array(mine.pop(name), theirs.pop(name))
            for name in ("lowest_loss_prompt", "selected_prompt")
        )
        return same_prompts and mine == theirs


def _same_array(a, b):
    if a is None or b is None:
        return a is None and b is None
    return np.array_equal(a, b)


def checkpoint_path(directory):
    return os.path.join(os.fspath(directory), CHECKPOINT_FILENAME)


def save_checkpoint(directory, checkpoint):
    """Writes `checkpoint` into `directory`, atomically.

    The bytes go to a temporary file in the same directory, are flushed to
    disk, and then `os.replace` swaps it in: a process killed at any moment
    leaves either the previous checkpoint or the new one, never a torn one.
    """
    os.makedirs(directory, exist_ok=True)
    fields = dataclasses.asdict(checkpoint)
    fields["optimizer_state"] = np.frombuffer(checkpoint.optimizer_state, np.uint8)
    for name in ("lowest_loss_prompt", "selected_prompt"):
        if fields[name] is None:
            del fields[name]
    data = pack_state(fields)
    path = checkpoint_path(directory)
    temporary_path = f"{path}.tmp-{os.getpid()}"
    with open(temporary_path, "wb") as file:
        file.write(data)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary_path, path)


def load_checkpoint(directory):
    """Returns the `RunCheckpoint` in `directory`, or None if there is none."""
    path = checkpoint_path(directory)
    if not os.path.exists(path):
        return None
    with open(path, "rb") as file:
        fields = unpack_state(file.read())
    fields["optimizer_state"] = fields["optimizer_state"].tobytes()
    fields.setdefault("lowest_loss_prompt", None)
    fields.setdefault("selected_prompt", None)
    fields.setdefault("selection", {})
    return RunCheckpoint(**fields)
