import os
import subprocess
import sys

CHECK = """
import numpy as np
state = np.random.get_state()[1].copy()
import promptopt
import promptopt.adapters, promptopt.callbacks, promptopt.cli.main, promptopt.data
import promptopt.evaluators, promptopt.hub, promptopt.models, promptopt.optimizers
import promptopt.prompts, promptopt.runner, promptopt.tasks
assert (np.random.get_state()[1] == state).all(), "global numpy random state changed"
print("ok")
"""


def test_importing_every_module_writes_nothing_and_keeps_global_random_state(tmp_path):
    repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    # Keras itself creates ~/.keras on first import; HOME is kept apart so
    # that only what promptopt would write into the working directory counts.
    env = {**os.environ, "PYTHONPATH": repo, "HOME": str(tmp_path / "home")}
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    result = subprocess.run(
        [sys.executable, "-c", CHECK], cwd=cwd, env=env,
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("ok")
    assert sorted(os.listdir(cwd)) == []
