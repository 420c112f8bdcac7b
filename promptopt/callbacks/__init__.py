"""Callbacks observe a prompt-tuning run (logging, checkpoints, early stop)."""

from promptopt.callbacks.base import RunnerCallback
from promptopt.callbacks.progress_printer import ProgressPrinter
from promptopt.callbacks.prompt_checkpoint import PromptCheckpoint

__all__ = ["ProgressPrinter", "PromptCheckpoint", "RunnerCallback"]
