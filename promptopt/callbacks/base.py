"""The hooks a `PromptTuningRunner` calls during a run."""


class RunnerCallback:
    """Base class for observers of a prompt-tuning run; every hook is a no-op.

    `logs` passed to `on_step_end` hold at least:

    - `"stage"`: index of the current stage;
    - `"loss"`: the lowest loss among this step's candidates (for `K = 1`
      the candidate's loss); `"mean_loss"`: their mean;
    - `"best_loss"`: the lowest loss seen in the run so far;
    - `"forward_calls"`: forward passes so far (whole run);
    - `"wall_time"`: seconds spent so far (whole run, across resumes);
    - what the optimizer's `tell` reported (e.g. `"sigma"`,
      `"learning_rate"`) and the evaluator's `metrics`. Keys of the
      optimizer and evaluator never override the runner's own.

    The runner sets `self.runner` before `on_run_begin`; a callback may set
    `self.runner.stop_requested = True` to end the current stage after this
    step (e.g. early stopping on a dev set).

    Args:
        (none.)

    Example:

    ```python
    class PrintLoss(RunnerCallback):
        def on_step_end(self, step, logs):
            print(step, logs["loss"], logs["best_loss"])

    PromptTuningRunner(evaluator, callbacks=[PrintLoss()])
    ```
    """

    runner = None

    def set_runner(self, runner):
        self.runner = runner

    def on_run_begin(self, logs):
        """Called once per `run()`, also when it resumes from a checkpoint."""

    def on_stage_begin(self, stage_index, logs):
        """Called when a stage starts or resumes."""

    def on_step_end(self, step, logs):
        """Called after each optimizer step; `step` counts from 0 over the run."""

    def on_stage_end(self, stage_index, logs):
        """Called when a stage's budget is spent or a stop was requested."""

    def on_run_end(self, logs):
        """Called once when the last stage has ended."""
