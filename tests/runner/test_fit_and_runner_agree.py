"""Keras `fit()` and the runner loop train a prompt to the same values."""

import keras
import numpy as np
import pytest

from promptopt.evaluators.keras_evaluator import KerasEvaluator
from promptopt.optimizers import BackpropOptimizer
from promptopt.runner.budget import Budget
from promptopt.runner.runner import PromptTuningRunner
from promptopt.runner.runner import Stage
from tests.model_factories import classifier
from tests.model_factories import toy_batch


@pytest.mark.parametrize("name, keras_optimizer", [
    ("adamw", lambda: keras.optimizers.AdamW(0.05, weight_decay=0.0)),
    ("sgd", lambda: keras.optimizers.SGD(0.5)),
])
def test_fit_and_the_runner_give_the_same_prompt(name, keras_optimizer):
    # The same full-batch gradient steps with the same update rule: the
    # Python path (fit) and the CLI's path (the runner) must not drift apart.
    x, y = toy_batch(n=8)
    steps = 4
    fitted = classifier("gpt2", prompt_length=3)
    fitted.compile(optimizer=keras_optimizer())
    fitted.fit(x, y, batch_size=8, epochs=steps, shuffle=False, verbose=0)

    tuned = classifier("gpt2", prompt_length=3)
    np.testing.assert_array_equal(tuned.soft_prompt.materialize(), classifier(
        "gpt2", prompt_length=3).soft_prompt.materialize())  # same start
    evaluator = KerasEvaluator(tuned, x, y, batch_size=8)
    learning_rate = 0.05 if name == "adamw" else 0.5
    optimizer = BackpropOptimizer(name, learning_rate, weight_decay=0.0)
    result = PromptTuningRunner(evaluator).run(
        evaluator.initial_candidate(), [Stage(optimizer, Budget(steps=steps))])

    start = classifier("gpt2", prompt_length=3).soft_prompt.materialize()
    assert not np.allclose(result.best_prompt, start)  # training moved it
    np.testing.assert_allclose(
        result.best_prompt, fitted.soft_prompt.materialize(), rtol=0, atol=1e-6)
