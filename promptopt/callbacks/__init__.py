"""Callbacks observe a prompt-tuning run (logging, TensorBoard, early stop)."""

from promptopt.callbacks.base import RunnerCallback
