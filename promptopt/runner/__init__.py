"""The run loop: stages of optimizers, budgets, checkpoints and resume."""

from promptopt.runner.budget import Budget
from promptopt.runner.checkpoint import RunCheckpoint
from promptopt.runner.checkpoint import load_checkpoint
from promptopt.runner.checkpoint import save_checkpoint
from promptopt.runner.runner import CheckpointMismatchError
from promptopt.runner.runner import IncompatibleOptimizerError
from promptopt.runner.runner import PromptTuningRunner
from promptopt.runner.runner import RunResult
from promptopt.runner.runner import Stage
