"""A progress bar with ETA for any runner stage: budget done, best loss, dev."""

import sys
import time

from promptopt.callbacks.base import RunnerCallback


class ProgressBar(RunnerCallback):
    """Shows each stage's progress against its budget, with an ETA.

    On a terminal the bar is redrawn in place; into a file or pipe it
    writes a line every `line_every` of the budget, so logs stay short. The
    line shows work done against the budget (steps, or forward calls for
    search), elapsed time and ETA, the step's loss, the best loss so far,
    and the latest and best dev accuracy when a `DevSelection` runs.

    Args:
        labels: list of str, a name per stage (e.g. "prompt tuning").
        stream: file to write to (default sys.stderr).
        line_every: float in (0, 1], the fraction of a stage's budget
            between lines when `stream` is not a terminal.
        width: int, characters of the bar.

    Example:
    ```python
    PromptTuningRunner(evaluator, callbacks=[ProgressBar(["prompt tuning"])])
    ```
    """

    def __init__(self, labels=(), stream=None, line_every=0.1, width=24):
        self.labels = list(labels)
        self.stream = stream
        self.line_every = line_every
        self.width = width
        self._last_fraction = -1.0
        self._started = None
        self._done_at_start = 0
        self._dev = None
        self._best_dev = None

    def _out(self):
        return self.stream if self.stream is not None else sys.stderr

    def _budget(self, stage_index):
        budget = self.runner.stages[stage_index].budget
        if budget.steps is not None:
            return budget.steps, "steps", "stage_steps"
        if budget.forward_calls is not None:
            return budget.forward_calls, "forward calls", "stage_forward_calls"
        return None, "steps", "stage_steps"

    def on_stage_begin(self, stage_index, logs):
        self._started = time.monotonic()
        total, _, key = self._budget(stage_index)
        self._done_at_start = logs.get(key, 0)
        self._last_fraction = -1.0

    def on_step_end(self, step, logs):
        stage = logs.get("stage", 0)
        total, unit, key = self._budget(stage)
        done = logs.get(key, 0)
        if "dev_accuracy" in logs:
            self._dev, self._best_dev = logs["dev_accuracy"], logs["best_dev_accuracy"]
        fraction = min(done / total, 1.0) if total else 0.0
        interactive = getattr(self._out(), "isatty", lambda: False)()
        if not interactive and fraction < 1.0 and fraction - self._last_fraction < self.line_every:
            return
        self._last_fraction = fraction
        line = self._line(stage, done, total, unit, fraction, logs)
        if interactive:
            self._out().write("\r" + line + ("\n" if fraction >= 1.0 else ""))
        else:
            self._out().write(line + "\n")
        self._out().flush()

    def _line(self, stage, done, total, unit, fraction, logs):
        label = self.labels[stage] if stage < len(self.labels) else f"stage {stage + 1}"
        elapsed = time.monotonic() - self._started
        new_work = done - self._done_at_start
        remaining = (total - done) * elapsed / new_work if new_work > 0 and total else None
        filled = int(round(fraction * self.width))
        bar = "#" * filled + "-" * (self.width - filled)
        parts = [
            f"{label} {done}/{total if total else '?'} {unit} |{bar}| {100 * fraction:3.0f}%",
            f"{_clock(elapsed)}<{_clock(remaining) if remaining is not None else '?'}",
            f"loss {logs['loss']:.4f}, best {logs['best_loss']:.4f}",
        ]
        if self._dev is not None:
            parts.append(f"dev acc {self._dev:.3f} (best {self._best_dev:.3f})")
        return "  ".join(parts)


def _clock(seconds):
    seconds = int(round(seconds))
    minutes, seconds = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}:{minutes:02d}:{seconds:02d}" if hours else f"{minutes:02d}:{seconds:02d}"
