"""Prints one line per runner step."""

from promptopt.callbacks.base import RunnerCallback


class ProgressPrinter(RunnerCallback):
    """One line per runner step: loss, best loss, forward calls, time.

    Args:
        log: callable that takes one string (default `print`).
        every: print every this many steps.

    Example:
    ```python
    PromptTuningRunner(evaluator, callbacks=[ProgressPrinter(every=10)])
    ```
    """

    def __init__(self, log=print, every=1):
        self.log = log
        self.every = every

    def on_step_end(self, step, logs):
        if step % self.every == 0:
            self.log(
                f"step {step + 1}: loss {logs['loss']:.4f}, best {logs['best_loss']:.4f}, "
                f"forward calls {logs['forward_calls']}, {logs['wall_time']:.0f} s"
            )
