import json
import os
import signal
import subprocess
import sys
import time

import numpy as np

from promptopt.runner import load_checkpoint
from tests.runner import resumable_quadratic_run
from tests.runner.resumable_quadratic_run import STEPS_PER_STAGE
from tests.runner.resumable_quadratic_run import run_quadratic

TOTAL_STEPS = 2 * STEPS_PER_STAGE


def _start(checkpoint_dir, output_path):
    return subprocess.Popen(
        [sys.executable, resumable_quadratic_run.__file__, str(checkpoint_dir), str(output_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"},
    )


def test_run_killed_with_sigkill_resumes_to_the_uninterrupted_result(tmp_path):
    reference, _ = run_quadratic()
    checkpoint_dir = tmp_path / "checkpoints"
    output_path = tmp_path / "best_prompt.npy"

    process = _start(checkpoint_dir, output_path)
    deadline = time.monotonic() + 180
    killed_at_step = None
    while time.monotonic() < deadline and process.poll() is None:
        checkpoint = load_checkpoint(checkpoint_dir)
        if checkpoint is not None and checkpoint.step >= 5:
            process.send_signal(signal.SIGKILL)
            process.wait()
            killed_at_step = checkpoint.step
            break
        time.sleep(0.01)
    assert killed_at_step is not None, process.communicate()[1].decode()[-2000:]
    assert process.returncode == -signal.SIGKILL
    assert not output_path.exists()
    interrupted = load_checkpoint(checkpoint_dir)
    assert 5 <= interrupted.step < TOTAL_STEPS

    process = _start(checkpoint_dir, output_path)
    _, stderr = process.communicate(timeout=180)
    assert process.returncode == 0, stderr.decode()[-2000:]

    np.testing.assert_array_equal(np.load(output_path), reference.best_prompt)
    with open(str(output_path) + ".json") as file:
        resumed = json.load(file)
    # The second process evaluated only the steps that the first had not
    # checkpointed, and the whole run spent what an uninterrupted one does.
    assert resumed["steps_seen"] == list(range(interrupted.step, TOTAL_STEPS))
    assert resumed["counters"]["steps"] == reference.counters["steps"] == TOTAL_STEPS
    assert resumed["counters"]["forward_calls"] == reference.counters["forward_calls"]
