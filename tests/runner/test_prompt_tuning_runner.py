import math

import numpy as np
import pytest

from promptopt.callbacks import RunnerCallback
from promptopt.evaluators import Evaluation
from promptopt.optimizers import BackpropOptimizer
from promptopt.optimizers import CMAESOptimizer
from promptopt.runner import Budget
from promptopt.runner import CheckpointMismatchError
from promptopt.runner import IncompatibleOptimizerError
from promptopt.runner import PromptTuningRunner
from promptopt.runner import Stage
from promptopt.runner import load_checkpoint
from tests.helpers.quadratic import GradientFreeQuadraticEvaluator
from tests.helpers.quadratic import QuadraticEvaluator
from tests.helpers.quadratic import make_target
from tests.helpers.quadratic import quadratic_loss

PROMPT = np.zeros((4, 8), "float32")


def _cma(**kwargs):
    return CMAESOptimizer(**{"subspace_dim": 50, "popsize": 6, **kwargs})


class Recorder(RunnerCallback):
    def __init__(self):
        self.events = []
        self.step_logs = []

    def on_run_begin(self, logs):
        self.events.append(("run_begin", logs["step"]))

    def on_stage_begin(self, stage_index, logs):
        self.events.append(("stage_begin", stage_index))

    def on_step_end(self, step, logs):
        self.step_logs.append((step, logs))

    def on_stage_end(self, stage_index, logs):
        self.events.append(("stage_end", stage_index, logs["stop_reason"]))

    def on_run_end(self, logs):
        self.events.append(("run_end", logs["step"]))


class CrashAtStep(RunnerCallback):
    """Simulates a crash: raises after `step` has been run (and saved)."""

    def __init__(self, step):
        self.step = step

    def on_step_end(self, step, logs):
        if step == self.step:
            raise KeyboardInterrupt


def recording(optimizer_class):
    """A subclass that records the prompts its init() and best() see."""

    class Recording(optimizer_class):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.init_prompts = []
            self.exports = []

        def init(self, prompt, seed):
            self.init_prompts.append(np.array(prompt))
            return super().init(prompt, seed)

        def best(self, state):
            self.exports.append(super().best(state))
            return self.exports[-1]

    return Recording


def test_gradient_optimizer_with_gradient_free_evaluator_is_refused_before_evaluating():
    evaluator = GradientFreeQuadraticEvaluator(make_target())
    runner = PromptTuningRunner(evaluator)
    stages = [
        Stage(_cma(), Budget(steps=3)),
        Stage(BackpropOptimizer(), Budget(steps=3)),
    ]
    with pytest.raises(
        IncompatibleOptimizerError,
        match=r"^BackpropOptimizer \(stage 1\) needs gradients, but "
        r"GradientFreeQuadraticEvaluator does not provide them "
        r"\(provides_gradients=False\)\. Use a gradient-free optimizer such "
        r"as CMAESOptimizer, or an evaluator that computes gradients\.$",
    ):
        runner.run(PROMPT, stages)
    assert evaluator.steps_seen == []


def test_gradients_are_computed_only_for_optimizers_that_need_them():
    evaluator = QuadraticEvaluator(make_target())
    PromptTuningRunner(evaluator).run(
        PROMPT,
        [Stage(_cma(), Budget(steps=2)), Stage(BackpropOptimizer(), Budget(steps=3))],
    )
    assert evaluator.gradient_requests == [False, False, True, True, True]
    assert evaluator.steps_seen == [0, 1, 2, 3, 4]


@pytest.mark.parametrize(
    "optimizer, budget, steps, forward_calls",
    [
        (BackpropOptimizer(), Budget(steps=7), 7, 7),
        (_cma(), Budget(steps=4), 4, 24),
        (BackpropOptimizer(), Budget(forward_calls=5), 5, 5),
        # A generation is never cut short: 2 x 6 = 12 calls reach 10.
        (_cma(), Budget(forward_calls=10), 2, 12),
        (_cma(), Budget(steps=3, forward_calls=100), 3, 18),
        (_cma(), Budget(steps=100, forward_calls=13), 3, 18),
    ],
)
def test_budget_in_steps_or_forward_calls_stops_the_run(optimizer, budget, steps, forward_calls):
    evaluator = QuadraticEvaluator(make_target())
    result = PromptTuningRunner(evaluator).run(PROMPT, [Stage(optimizer, budget)])
    assert result.counters["steps"] == steps
    assert result.counters["forward_calls"] == forward_calls
    assert len(result.history) == steps == len(evaluator.steps_seen)


def test_budget_in_seconds_stops_the_run():
    evaluator = QuadraticEvaluator(make_target(), seconds_per_evaluate=0.02)
    result = PromptTuningRunner(evaluator).run(
        PROMPT, [Stage(BackpropOptimizer(), Budget(seconds=0.2, steps=1000))]
    )
    assert 0.2 <= result.counters["wall_time"] < 2.0
    assert 3 <= result.counters["steps"] < 50


@pytest.mark.parametrize(
    "first, second",
    [
        (recording(CMAESOptimizer)(), recording(BackpropOptimizer)()),
        # Refining a prompt: CMA-ES's first population perturbs each entry by
        # about embedding_std, so a smaller one suits a later stage.
        (recording(BackpropOptimizer)(optimizer="adamw", learning_rate=0.05), recording(CMAESOptimizer)(embedding_std=0.3)),
    ],
    ids=["cma_es_then_backprop", "backprop_then_cma_es"],
)
def test_switching_optimizers_starts_each_stage_from_the_previous_export(first, second):
    target = make_target()
    evaluator = QuadraticEvaluator(target)
    recorder = Recorder()
    result = PromptTuningRunner(evaluator, callbacks=[recorder]).run(
        PROMPT,
        [Stage(first, Budget(steps=10)), Stage(second, Budget(steps=30))],
        seed=4,
    )
    np.testing.assert_array_equal(first.init_prompts[0], PROMPT)
    stage_one_export = first.exports[-1]
    np.testing.assert_array_equal(second.init_prompts[0], stage_one_export)
    np.testing.assert_array_equal(result.best_prompt, second.exports[-1])
    stage_one_loss = quadratic_loss(stage_one_export[None], target)[0]
    final_loss = quadratic_loss(result.best_prompt[None], target)[0]
    assert stage_one_loss < quadratic_loss(PROMPT[None], target)[0]
    assert final_loss < 0.5 * stage_one_loss
    assert recorder.events == [
        ("run_begin", 0),
        ("stage_begin", 0),
        ("stage_end", 0, "steps"),
        ("stage_begin", 1),
        ("stage_end", 1, "steps"),
        ("run_end", 40),
    ]
    assert [logs["stage"] for _, logs in recorder.step_logs] == [0] * 10 + [1] * 30


def test_step_logs_carry_runner_and_optimizer_metrics():
    target = make_target()
    recorder = Recorder()
    result = PromptTuningRunner(QuadraticEvaluator(target), callbacks=[recorder]).run(
        PROMPT, [Stage(_cma(), Budget(steps=3)), Stage(BackpropOptimizer(), Budget(steps=2))]
    )
    steps = [step for step, _ in recorder.step_logs]
    assert steps == [0, 1, 2, 3, 4]
    logs = [logs for _, logs in recorder.step_logs]
    assert {"loss", "mean_loss", "best_loss", "forward_calls", "wall_time", "stage", "sigma", "candidates"} <= set(logs[0])
    assert {"learning_rate", "gradient_norm"} <= set(logs[-1])
    assert [entry["forward_calls"] for entry in logs] == [6, 12, 18, 19, 20]
    assert [entry["best_loss"] for entry in logs] == list(
        np.minimum.accumulate([entry["loss"] for entry in logs])
    )
    assert result.lowest_loss == logs[-1]["best_loss"]
    assert quadratic_loss(result.lowest_loss_prompt[None], target)[0] == result.lowest_loss
    assert result.history == logs


def test_callback_can_stop_a_stage_early():
    class StopAtStep(RunnerCallback):
        def on_step_end(self, step, logs):
            if step == 2:
                self.runner.stop_requested = True

    recorder = Recorder()
    result = PromptTuningRunner(
        QuadraticEvaluator(make_target()), callbacks=[StopAtStep(), recorder]
    ).run(PROMPT, [Stage(_cma(), Budget(steps=10)), Stage(BackpropOptimizer(), Budget(steps=4))])
    assert ("stage_end", 0, "callback") in recorder.events
    assert result.counters["steps"] == 3 + 4


def _two_stage_run(checkpoint_dir, callbacks=(), seed=0, checkpoint_every=1):
    evaluator = QuadraticEvaluator(make_target())
    runner = PromptTuningRunner(
        evaluator, callbacks=callbacks, checkpoint_dir=checkpoint_dir, checkpoint_every=checkpoint_every
    )
    result = runner.run(
        PROMPT,
        [Stage(_cma(), Budget(steps=6)), Stage(BackpropOptimizer("adamw"), Budget(steps=6))],
        seed=seed,
    )
    return result, evaluator


@pytest.mark.parametrize("crash_step", [2, 5, 6, 9])
def test_resume_after_a_crash_gives_the_uninterrupted_result(tmp_path, crash_step):
    reference, _ = _two_stage_run(None)
    with pytest.raises(KeyboardInterrupt):
        _two_stage_run(tmp_path, callbacks=[CrashAtStep(crash_step)])
    assert load_checkpoint(tmp_path).step == crash_step + 1
    resumed, evaluator = _two_stage_run(tmp_path)
    np.testing.assert_array_equal(resumed.best_prompt, reference.best_prompt)
    assert evaluator.steps_seen == list(range(crash_step + 1, 12))
    assert resumed.counters["forward_calls"] == reference.counters["forward_calls"]
    assert [h["loss"] for h in resumed.history] == [h["loss"] for h in reference.history]
    assert resumed.lowest_loss == reference.lowest_loss


def test_resume_with_sparse_checkpoints_repeats_only_unsaved_steps(tmp_path):
    reference, _ = _two_stage_run(None)
    with pytest.raises(KeyboardInterrupt):
        _two_stage_run(tmp_path, callbacks=[CrashAtStep(4)], checkpoint_every=4)
    assert load_checkpoint(tmp_path).step == 4
    resumed, evaluator = _two_stage_run(tmp_path, checkpoint_every=4)
    assert evaluator.steps_seen == list(range(4, 12))
    np.testing.assert_array_equal(resumed.best_prompt, reference.best_prompt)


def test_finished_run_is_returned_from_its_checkpoint_without_evaluating(tmp_path):
    first, _ = _two_stage_run(tmp_path)
    again, evaluator = _two_stage_run(tmp_path)
    assert evaluator.steps_seen == []
    np.testing.assert_array_equal(again.best_prompt, first.best_prompt)
    assert again.counters["steps"] == 12
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run_checkpoint.bin"]


def test_checkpoint_of_another_run_is_refused(tmp_path):
    _two_stage_run(tmp_path, seed=0)
    with pytest.raises(
        CheckpointMismatchError,
        match=r"The checkpoint .*run_checkpoint\.bin was written by a different "
        r"run \(other optimizers, seed or initial prompt\)\. Pass a new "
        r"checkpoint_dir, or delete that file to start over\.",
    ):
        _two_stage_run(tmp_path, seed=1)


class WrongShapeEvaluator(QuadraticEvaluator):
    def evaluate(self, candidates, step, compute_gradients=False):
        evaluation = super().evaluate(candidates, step, compute_gradients)
        return Evaluation(evaluation.losses[:-1], None, forward_calls=1)


def test_evaluator_returning_too_few_losses_is_reported():
    runner = PromptTuningRunner(WrongShapeEvaluator(make_target()))
    with pytest.raises(
        ValueError,
        match=r"WrongShapeEvaluator\.evaluate\(\) returned losses of shape "
        r"\(5,\) for 6 candidates\. Return one loss per candidate, shape \(6,\)\.",
    ):
        runner.run(PROMPT, [Stage(_cma(), Budget(steps=1))])


class ForgetfulEvaluator(QuadraticEvaluator):
    def evaluate(self, candidates, step, compute_gradients=False):
        evaluation = super().evaluate(candidates, step, compute_gradients)
        return Evaluation(evaluation.losses, None, forward_calls=1)


def test_evaluator_returning_no_gradients_to_a_gradient_optimizer_is_reported():
    runner = PromptTuningRunner(ForgetfulEvaluator(make_target()))
    with pytest.raises(
        ValueError,
        match=r"ForgetfulEvaluator\.evaluate\(compute_gradients=True\) returned "
        r"grads of shape None; the candidates have shape \(1, 4, 8\)\.",
    ):
        runner.run(PROMPT, [Stage(BackpropOptimizer(), Budget(steps=1))])


@pytest.mark.parametrize(
    "stages, message",
    [
        ([], r"run\(\) needs a non-empty list of Stage\(optimizer, budget\), got \[\]\."),
        (["cma_es"], r"run\(\) needs a non-empty list of Stage\(optimizer, budget\), got \['cma_es'\]\."),
    ],
)
def test_run_rejects_bad_stages(stages, message):
    with pytest.raises(ValueError, match=message):
        PromptTuningRunner(QuadraticEvaluator(make_target())).run(PROMPT, stages)


def test_stage_rejects_a_non_optimizer():
    with pytest.raises(
        ValueError,
        match=r"Stage\.optimizer must be a PromptOptimizer, got str\. Pass e\.g\. "
        r"get_optimizer\('cma_es'\)\.",
    ):
        Stage("cma_es", Budget(steps=1))


def test_runner_rejects_bad_checkpoint_every():
    with pytest.raises(
        ValueError,
        match=r"checkpoint_every must be a positive int, got 0\. Pass e\.g\. "
        r"checkpoint_every=10\.",
    ):
        PromptTuningRunner(QuadraticEvaluator(make_target()), checkpoint_every=0)


def test_result_lowest_loss_is_inf_only_without_steps():
    result = PromptTuningRunner(QuadraticEvaluator(make_target())).run(
        PROMPT, [Stage(_cma(), Budget(steps=0))]
    )
    assert result.lowest_loss == math.inf and result.lowest_loss_prompt is None
    np.testing.assert_array_equal(result.best_prompt, PROMPT)
