"""What KerasEvaluator and PrefixEvaluator share through LocalEvaluator."""

import numpy as np
import pytest

from promptopt.evaluators import KerasEvaluator
from promptopt.evaluators import PrefixEvaluator
from promptopt.evaluators.local_evaluator import LocalEvaluator
from tests.model_factories import classifier
from tests.model_factories import toy_batch
from tests.prefixes.helpers import prefix_classifier


def _both(x, y, **kwargs):
    return [
        KerasEvaluator(classifier("gpt2", prompt_length=2), x, y, **kwargs),
        PrefixEvaluator(prefix_classifier("gpt2", prefix_length=2), x, y, **kwargs),
    ]


def test_both_are_local_evaluators_with_gradients():
    x, y = toy_batch(n=4)
    for evaluator in _both(x, y):
        assert isinstance(evaluator, LocalEvaluator)
        assert evaluator.provides_gradients


def test_a_refusal_names_the_evaluator_that_was_built():
    x, y = toy_batch(n=4)
    empty = {k: v[:0] for k, v in x.items()}
    with pytest.raises(ValueError) as error:
        KerasEvaluator(classifier("gpt2", prompt_length=2), empty, y[:0])
    assert str(error.value) == "KerasEvaluator got no examples; give at least one."
    with pytest.raises(ValueError) as error:
        PrefixEvaluator(prefix_classifier("gpt2", prefix_length=2), empty, y[:0])
    assert str(error.value) == "PrefixEvaluator got no examples; give at least one."


def test_forward_and_backward_give_the_same_losses_and_one_call_per_candidate():
    x, y = toy_batch(n=6)
    for evaluator in _both(x, y, batch_size=4):
        start = evaluator.initial_candidate()
        candidates = np.stack([start, start + 0.05])
        forward = evaluator.evaluate(candidates, step=2)
        backward = evaluator.evaluate(candidates, step=2, compute_gradients=True)
        np.testing.assert_allclose(forward.losses, backward.losses, rtol=1e-6)
        assert backward.grads.shape == (2,) + start.shape
        assert forward.grads is None
        assert forward.forward_calls == backward.forward_calls == 2
        assert set(forward.metrics) == {"batch_accuracy"}
