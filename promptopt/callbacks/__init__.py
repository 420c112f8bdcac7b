"""Callbacks observe a prompt-tuning run (logging, checkpoints, early stop)."""

from promptopt.callbacks.base import RunnerCallback
from promptopt.callbacks.progress_printer import ProgressPrinter
from promptopt.callbacks.prompt_checkpoint import PromptCheckpoint
from promptopt.callbacks.tensorboard_logger import TensorBoardLogger

__all__ = ["ProgressPrinter", "PromptCheckpoint", "RunnerCallback", "TensorBoardLogger"]
