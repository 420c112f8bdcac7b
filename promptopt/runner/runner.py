"""The one loop that drives any prompt optimizer with any evaluator."""

import dataclasses
import hashlib
import json
import math
import time

import numpy as np

from promptopt.callbacks.base import RunnerCallback
from promptopt.evaluators.base import Evaluation
from promptopt.optimizers.base import PROMPT_DTYPE
from promptopt.optimizers.base import PromptOptimizer
from promptopt.runner.budget import Budget
from promptopt.runner.checkpoint import RunCheckpoint
from promptopt.runner.checkpoint import checkpoint_path
from promptopt.runner.checkpoint import load_checkpoint
from promptopt.runner.checkpoint import save_checkpoint
from promptopt.runner.dev_selection import DevSelection


class IncompatibleOptimizerError(ValueError):
    """An optimizer needs gradients that the evaluator cannot provide."""


class CheckpointMismatchError(ValueError):
    """The checkpoint directory holds a different run's checkpoint."""


@dataclasses.dataclass(frozen=True)
class Stage:
    """One optimizer with its budget; a run is a sequence of stages.

    Args:
        optimizer: `PromptOptimizer`, started from the previous stage's
            exported prompt (`best(state)`), or from the run's prompt.
        budget: `Budget`, when this stage ends.
        evaluator: `Evaluator` or None (the runner's). Stages may score
            differently, e.g. CMA-ES on the whole training set and a
            gradient stage on mini-batches of 8, on the same candidates.

    Example:

    ```python
    stages = [
        Stage(CMAESOptimizer(), Budget(forward_calls=2000)),
        Stage(BackpropOptimizer(), Budget(steps=300)),
    ]
    ```
    """

    optimizer: PromptOptimizer
    budget: Budget
    evaluator: object = None

    def __post_init__(self):
        if not isinstance(self.optimizer, PromptOptimizer):
            raise ValueError(
                f"Stage.optimizer must be a PromptOptimizer, got "
                f"{type(self.optimizer).__name__}. Pass e.g. "
                "get_optimizer('cma_es')."
            )
        if not isinstance(self.budget, Budget):
            raise ValueError(
                f"Stage.budget must be a Budget, got "
                f"{type(self.budget).__name__}. Pass e.g. Budget(steps=100)."
            )
        if self.evaluator is not None:
            _check_evaluator(self.evaluator)


@dataclasses.dataclass
class RunResult:
    """What a run produced.

    Args:
        best_prompt: np.ndarray `[*S]`, the last stage's exported prompt
            (`optimizer.best(state)`: best-so-far for search methods, the
            final iterate for gradient descent).
        history: list of dict, the logs of every step (see `RunnerCallback`).
        counters: dict with `"steps"`, `"forward_calls"` and `"wall_time"`
            (seconds) over the whole run.
        lowest_loss: float, the lowest loss evaluated in the run. Losses on
            mini-batches are noisy, so this is an optimistic estimate.
        lowest_loss_prompt: np.ndarray `[*S]` or None, the candidate with it.
        selected_prompt: np.ndarray `[*S]` or None, the export that scored
            best on dev (with a `DevSelection`).
        selection: dict, the dev selection's record: best `accuracy`,
            `loss`, `step`, `forward_calls` and every evaluation.

    Example:

    ```python
    result = runner.run(prompt, stages)
    np.save("prompt.npy", result.best_prompt)
    ```
    """

    best_prompt: np.ndarray
    history: list
    counters: dict
    lowest_loss: float = math.inf
    lowest_loss_prompt: np.ndarray = None
    selected_prompt: np.ndarray = None
    selection: dict = None


class PromptTuningRunner:
    """Runs prompt optimizers against an evaluator, with budgets and resume.

    One loop serves every optimizer: `ask` for candidates `[K, *S]`,
    `evaluate` them (with gradients only when the optimizer needs them),
    `tell` the losses `[K]` back. A run is a list of `Stage`s; each stage
    starts from the previous stage's `best(state)`, so CMA-ES then backprop
    (or the reverse) is a single `run()` call. Stage `i` is initialized with
    seed `seed + i`.

    With `checkpoint_dir`, the runner writes a checkpoint atomically every
    `checkpoint_every` steps and at the end of each stage, and `run()` with
    the same directory and arguments resumes from it: the stage, optimizer
    state, counters, lowest loss and history are restored, and because
    evaluators pick batches from the global step, the resumed run follows
    the uninterrupted one exactly. Budgets are not part of what must match,
    so a resumed run may be given new budgets for its unfinished stages.

    Args:
        evaluator: `Evaluator`, scores candidates.
        callbacks: sequence of `RunnerCallback`.
        checkpoint_dir: str, path or None, where to keep the checkpoint.
        checkpoint_every: int, steps between checkpoints.
        selection: `DevSelection` or None: scores the export on dev every
            few steps and at each stage's end, before the checkpoint is
            written, so its choice survives a resume.
        write_checkpoints: bool. False reads a checkpoint from
            `checkpoint_dir` to resume but writes none: the processes other
            than the first of a multi-process run, which hold the same state.

    Example:

    ```python
    runner = PromptTuningRunner(evaluator, checkpoint_dir="runs/sst2")
    result = runner.run(
        initial_prompt,  # [P, H]
        stages=[Stage(get_optimizer("backprop"), Budget(steps=300))],
        seed=42,
    )
    result.best_prompt  # [P, H]
    ```
    """

    def __init__(
        self, evaluator, callbacks=(), checkpoint_dir=None, checkpoint_every=1,
        selection=None, write_checkpoints=True,
    ):
        _check_evaluator(evaluator)
        if selection is not None and not isinstance(selection, DevSelection):
            raise ValueError(
                f"selection must be a DevSelection or None, got "
                f"{type(selection).__name__}."
            )
        self.selection = selection
        self.stages = []
        callbacks = list(callbacks)
        for callback in callbacks:
            if not isinstance(callback, RunnerCallback):
                raise ValueError(
                    f"callbacks must be RunnerCallback instances, got "
                    f"{type(callback).__name__}. Subclass "
                    "promptopt.callbacks.RunnerCallback."
                )
        if (
            isinstance(checkpoint_every, bool)
            or not isinstance(checkpoint_every, int)
            or checkpoint_every < 1
        ):
            raise ValueError(
                f"checkpoint_every must be a positive int, got "
                f"{checkpoint_every!r}. Pass e.g. checkpoint_every=10."
            )
        self.evaluator = evaluator
        self.callbacks = callbacks
        self.checkpoint_dir = checkpoint_dir
        self.checkpoint_every = checkpoint_every
        self.write_checkpoints = write_checkpoints
        self.stop_requested = False
        self.current_optimizer = None
        self.current_state = None

    def _check_stages(self, stages):
        if isinstance(stages, Stage):
            stages = [stages]
        stages = list(stages)
        if not stages or not all(isinstance(s, Stage) for s in stages):
            raise ValueError(
                "run() needs a non-empty list of Stage(optimizer, budget), got "
                f"{stages!r}. Pass e.g. stages=[Stage(get_optimizer('cma_es'), "
                "Budget(steps=100))]."
            )
        for index, stage in enumerate(stages):
            evaluator = self._evaluator_of(stage)
            provides_gradients = bool(getattr(evaluator, "provides_gradients", False))
            if stage.optimizer.needs_gradients and not provides_gradients:
                raise IncompatibleOptimizerError(
                    f"{type(stage.optimizer).__name__} (stage {index}) needs "
                    f"gradients, but {type(evaluator).__name__} does not "
                    "provide them (provides_gradients=False). Use a "
                    "gradient-free optimizer such as CMAESOptimizer, or an "
                    "evaluator that computes gradients."
                )
        return stages

    def _evaluator_of(self, stage):
        return self.evaluator if stage.evaluator is None else stage.evaluator

    @staticmethod
    def _fingerprint(prompt, stages, seed):
        description = {
            "prompt_shape": list(prompt.shape),
            "prompt_sha256": hashlib.sha256(prompt.tobytes()).hexdigest(),
            "seed": seed,
            "optimizers": [
                [
                    f"{type(s.optimizer).__module__}.{type(s.optimizer).__qualname__}",
                    s.optimizer.get_config(),
                ]
                for s in stages
            ],
        }
        text = json.dumps(description, sort_keys=True, default=repr)
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def _check_evaluation(self, evaluator, evaluation, candidates, needs_gradients):
        name = type(evaluator).__name__
        if not isinstance(evaluation, Evaluation):
            raise ValueError(
                f"{name}.evaluate() returned {type(evaluation).__name__}, not "
                "an Evaluation. Return Evaluation(losses, grads, forward_calls)."
            )
        if evaluation.losses.shape != (len(candidates),):
            raise ValueError(
                f"{name}.evaluate() returned losses of shape "
                f"{evaluation.losses.shape} for {len(candidates)} candidates. "
                f"Return one loss per candidate, shape ({len(candidates)},)."
            )
        if needs_gradients and (
            evaluation.grads is None or evaluation.grads.shape != candidates.shape
        ):
            shape = None if evaluation.grads is None else evaluation.grads.shape
            raise ValueError(
                f"{name}.evaluate(compute_gradients=True) returned grads of "
                f"shape {shape}; the candidates have shape {candidates.shape}. "
                "Return one gradient per candidate, shaped like the candidates."
            )

    def _call(self, hook, *args):
        for callback in self.callbacks:
            getattr(callback, hook)(*args)

    def run(self, prompt, stages, seed=0):
        """Runs `stages` from `prompt` `[*S]`; returns a `RunResult`."""
        stages = self._check_stages(stages)
        self.stages = stages
        prompt = np.asarray(prompt)
        if prompt.size == 0 or not np.issubdtype(prompt.dtype, np.number):
            raise ValueError(
                f"run() needs a non-empty numeric prompt array, got shape "
                f"{prompt.shape} and dtype {prompt.dtype}. Pass the initial "
                "prompt, e.g. a [P, H] embedding array."
            )
        prompt = prompt.astype(PROMPT_DTYPE)
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(
                f"seed must be an int, got {seed!r}. Pass e.g. seed=0."
            )
        seed = int(seed)
        fingerprint = self._fingerprint(prompt, stages, seed)

        checkpoint = None
        if self.checkpoint_dir is not None:
            checkpoint = load_checkpoint(self.checkpoint_dir)
        if checkpoint is not None and checkpoint.fingerprint != fingerprint:
            raise CheckpointMismatchError(
                f"The checkpoint {checkpoint_path(self.checkpoint_dir)} was "
                "written by a different run (other optimizers, seed or "
                "initial prompt). Pass a new checkpoint_dir, or delete that "
                "file to start over."
            )
        if checkpoint is None:
            checkpoint = RunCheckpoint(
                fingerprint=fingerprint,
                stage_index=0,
                stage_finished=False,
                optimizer_state=b"",
                step=0,
                forward_calls=0,
                elapsed_seconds=0.0,
                stage_steps=0,
                stage_forward_calls=0,
                stage_seconds=0.0,
                lowest_loss=math.inf,
                lowest_loss_prompt=None,
                history=[],
            )
            state = stages[0].optimizer.init(prompt, seed=seed)
            if self.selection is not None:
                self.selection.reset()
        else:
            optimizer = stages[checkpoint.stage_index].optimizer
            state = optimizer.state_from_bytes(checkpoint.optimizer_state)
            if self.selection is not None:
                self.selection.set_state(checkpoint.selection, checkpoint.selected_prompt)
        progress = checkpoint  # Updated in place; saved as the checkpoint.

        self.stop_requested = False
        for callback in self.callbacks:
            callback.set_runner(self)
        clock_origin = time.monotonic() - progress.elapsed_seconds
        stage_clock_origin = time.monotonic() - progress.stage_seconds

        def elapsed():
            return time.monotonic() - clock_origin

        def save():
            progress.elapsed_seconds = elapsed()
            progress.stage_seconds = time.monotonic() - stage_clock_origin
            if self.checkpoint_dir is not None and self.write_checkpoints:
                progress.optimizer_state = stages[
                    progress.stage_index
                ].optimizer.state_to_bytes(state)
                if self.selection is not None:
                    progress.selection, progress.selected_prompt = self.selection.get_state()
                save_checkpoint(self.checkpoint_dir, progress)

        def summary():
            return {
                "stage": progress.stage_index,
                "step": progress.step,
                "best_loss": progress.lowest_loss,
                "forward_calls": progress.forward_calls,
                "stage_steps": progress.stage_steps,
                "stage_forward_calls": progress.stage_forward_calls,
                "wall_time": elapsed(),
            }

        def select(logs):
            """Dev-scores the current export (after the step just counted)."""
            if self.selection is not None:
                logs.update(self.selection.observe(
                    stages[progress.stage_index].optimizer.best(state),
                    progress.step - 1, progress.forward_calls))

        self._call("on_run_begin", summary())
        while True:
            stage = stages[progress.stage_index]
            optimizer = stage.optimizer
            evaluator = self._evaluator_of(stage)
            if not progress.stage_finished:
                self._call("on_stage_begin", progress.stage_index, summary())
                stop_reason = None
                while True:
                    stop_reason = stage.budget.exhausted_by(
                        progress.stage_steps,
                        progress.stage_forward_calls,
                        time.monotonic() - stage_clock_origin,
                    )
                    if stop_reason is None and self.stop_requested:
                        stop_reason = "callback"
                    if stop_reason is not None:
                        break
                    candidates = optimizer.ask(state)
                    evaluation = evaluator.evaluate(
                        candidates,
                        step=progress.step,
                        compute_gradients=optimizer.needs_gradients,
                    )
                    self._check_evaluation(
                        evaluator, evaluation, candidates, optimizer.needs_gradients
                    )
                    state, optimizer_metrics = optimizer.tell(
                        state,
                        candidates,
                        evaluation.losses,
                        evaluation.grads if optimizer.needs_gradients else None,
                    )
                    # Callbacks may read the current export, e.g.
                    # current_optimizer.best(current_state) (TensorBoard).
                    self.current_optimizer, self.current_state = optimizer, state
                    winner = int(np.argmin(evaluation.losses))
                    if evaluation.losses[winner] < progress.lowest_loss:
                        progress.lowest_loss = float(evaluation.losses[winner])
                        progress.lowest_loss_prompt = candidates[winner].copy()
                    progress.forward_calls += evaluation.forward_calls
                    progress.stage_forward_calls += evaluation.forward_calls
                    logs = {
                        **{k: float(v) for k, v in evaluation.metrics.items()},
                        **{k: float(v) for k, v in optimizer_metrics.items()},
                        **summary(),
                        "loss": float(evaluation.losses[winner]),
                        "mean_loss": float(np.mean(evaluation.losses)),
                    }
                    step = progress.step
                    progress.step += 1
                    progress.stage_steps += 1
                    logs["stage_steps"] = progress.stage_steps
                    if self.selection is not None and self.selection.due(progress.stage_steps):
                        select(logs)
                    progress.history.append(logs)
                    # Save before the callbacks run, so that a crash inside
                    # one does not lose the step.
                    if progress.stage_steps % self.checkpoint_every == 0:
                        save()
                    self._call("on_step_end", step, logs)
                progress.stage_finished = True
                if progress.stage_steps:
                    select({})
                save()
                self._call(
                    "on_stage_end",
                    progress.stage_index,
                    {**summary(), "stop_reason": stop_reason},
                )
            exported = optimizer.best(state)
            if progress.stage_index + 1 == len(stages):
                break
            # Switching optimizers: the next stage starts from this export.
            progress.stage_index += 1
            progress.stage_finished = False
            progress.stage_steps = 0
            progress.stage_forward_calls = 0
            stage_clock_origin = time.monotonic()
            self.stop_requested = False
            state = stages[progress.stage_index].optimizer.init(
                exported, seed=seed + progress.stage_index
            )

        progress.elapsed_seconds = elapsed()
        result = RunResult(
            best_prompt=exported,
            history=list(progress.history),
            counters={
                "steps": progress.step,
                "forward_calls": progress.forward_calls,
                "wall_time": progress.elapsed_seconds,
            },
            lowest_loss=progress.lowest_loss,
            lowest_loss_prompt=progress.lowest_loss_prompt,
        )
        if self.selection is not None:
            result.selection, result.selected_prompt = self.selection.get_state()
        self._call("on_run_end", summary())
        return result


def _check_evaluator(evaluator):
    if not callable(getattr(evaluator, "evaluate", None)):
        raise ValueError(
            f"evaluator must have an evaluate(candidates, step, "
            f"compute_gradients) method, got {type(evaluator).__name__}. "
            "Subclass promptopt.evaluators.Evaluator."
        )
