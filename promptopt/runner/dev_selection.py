"""Dev-set selection of the prompt to export, the same for every optimizer."""

import math

import numpy as np


class DevSelection:
    """Scores the optimizer's export on a dev set and keeps the best one.

    Every `every` steps of a stage (gradient steps or search generations),
    and at the end of each stage, the runner hands `optimizer.best(state)`
    to `score`. The export with the highest dev accuracy is kept; equal
    accuracies go to the lower dev loss, and exact ties to the earlier
    prompt, i.e. the one found with fewer forward calls (BBT keeps the best
    dev prompt among each generation's best). With 32 dev examples accuracy
    moves in steps of 1/32, so the loss tie-break decides often.

    Its state (the selected prompt and every evaluation) is part of the
    runner's checkpoint, so a resumed run selects what an uninterrupted one
    would.

    Args:
        score: callable, candidate `[*S]` -> `(accuracy, loss)` on dev.
        every: int, steps between dev evaluations within a stage.

    Example:

    ```python
    selection = DevSelection(lambda c: dev_evaluator.accuracy_and_loss(c), every=4)
    result = PromptTuningRunner(evaluator, selection=selection).run(prompt, stages)
    result.selected_prompt  # [*S], best on dev
    ```
    """

    def __init__(self, score, every=1):
        if not callable(score):
            raise ValueError(
                f"DevSelection needs a callable score(candidate) -> (accuracy, loss), "
                f"got {type(score).__name__}.")
        if isinstance(every, bool) or not isinstance(every, int) or every < 1:
            raise ValueError(f"every must be a positive int, got {every!r}. Pass e.g. every=4.")
        self.score = score
        self.every = every
        self.reset()

    def reset(self):
        self.prompt = None
        self.accuracy = -math.inf
        self.loss = math.inf
        self.step = None
        self.forward_calls = None
        self.evaluations = []

    def due(self, stage_steps):
        """Whether the step that made `stage_steps` steps in a stage is scored."""
        return stage_steps % self.every == 0

    def observe(self, candidate, step, forward_calls):
        """Scores `candidate` (the export after global `step`); returns its logs."""
        if self.evaluations and self.evaluations[-1]["step"] == step:
            return {}  # scored already (a stage's last step was also due)
        accuracy, loss = self.score(np.asarray(candidate))
        accuracy, loss = float(accuracy), float(loss)
        better = (accuracy, -loss) > (self.accuracy, -self.loss)
        if better:
            self.prompt = np.array(candidate, copy=True)
            self.accuracy, self.loss = accuracy, loss
            self.step, self.forward_calls = int(step), int(forward_calls)
        self.evaluations.append(
            {"step": int(step), "forward_calls": int(forward_calls), "dev_accuracy": accuracy,
             "dev_loss": loss})
        return {"dev_accuracy": accuracy, "dev_loss": loss, "best_dev_accuracy": self.accuracy}

    def get_state(self):
        """`(json_dict, prompt_or_None)`, what a checkpoint stores."""
        return (
            {"accuracy": self.accuracy, "loss": self.loss, "step": self.step,
             "forward_calls": self.forward_calls, "evaluations": list(self.evaluations)},
            self.prompt,
        )

    def set_state(self, values, prompt):
        self.reset()
        if not values:
            return
        self.accuracy, self.loss = values["accuracy"], values["loss"]
        self.step, self.forward_calls = values["step"], values["forward_calls"]
        self.evaluations = list(values["evaluations"])
        self.prompt = None if prompt is None else np.array(prompt, copy=True)
