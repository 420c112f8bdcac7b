"""A slowed-down two-stage run on a quadratic, for the SIGKILL resume test.

Run as `python resumable_quadratic_run.py CHECKPOINT_DIR OUTPUT.npy`; the
test kills it mid-run, reruns it, and compares OUTPUT.npy with the best
prompt of an uninterrupted in-process run of `run_quadratic`.
"""

import json
import os
import sys

import numpy as np

if __name__ == "__main__":
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from promptopt.optimizers import BackpropOptimizer  # noqa: E402
from promptopt.optimizers import CMAESOptimizer  # noqa: E402
from promptopt.runner import Budget  # noqa: E402
from promptopt.runner import PromptTuningRunner  # noqa: E402
from promptopt.runner import Stage  # noqa: E402
from tests.helpers.quadratic import QuadraticEvaluator  # noqa: E402
from tests.helpers.quadratic import make_target  # noqa: E402

STEPS_PER_STAGE = 12


def run_quadratic(checkpoint_dir=None, seconds_per_evaluate=0.0):
    """CMA-ES then AdamW on ||p - target||^2; returns (result, evaluator)."""
    target = make_target(seed=3)
    evaluator = QuadraticEvaluator(target, seconds_per_evaluate=seconds_per_evaluate)
    runner = PromptTuningRunner(evaluator, checkpoint_dir=checkpoint_dir)
    result = runner.run(
        np.zeros(target.shape, "float32"),
        stages=[
            Stage(CMAESOptimizer(subspace_dim=50, popsize=6), Budget(steps=STEPS_PER_STAGE)),
            Stage(BackpropOptimizer("adamw", learning_rate=0.05), Budget(steps=STEPS_PER_STAGE)),
        ],
        seed=11,
    )
    return result, evaluator


if __name__ == "__main__":
    checkpoint_dir, output_path = sys.argv[1], sys.argv[2]
    result, evaluator = run_quadratic(checkpoint_dir, seconds_per_evaluate=0.05)
    np.save(output_path, result.best_prompt)
    with open(output_path + ".json", "w") as file:
        json.dump({"steps_seen": evaluator.steps_seen, "counters": result.counters}, file)
