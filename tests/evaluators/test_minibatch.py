"""One mini-batch rule for local and remote evaluators alike."""

import numpy as np

from promptopt.evaluators import HTTPEvaluator
from promptopt.evaluators import KerasEvaluator
from promptopt.evaluators import PrefixEvaluator
from promptopt.evaluators.minibatch import minibatch_indices
from tests.model_factories import classifier
from tests.model_factories import toy_batch
from tests.prefixes.helpers import prefix_classifier


def test_indices_come_from_seed_and_step_alone():
    for step in (0, 1, 9):
        expected = np.sort(
            np.random.default_rng([4, step]).choice(20, size=6, replace=False)
        )
        np.testing.assert_array_equal(minibatch_indices(20, 6, 4, step), expected)
    batches = {tuple(minibatch_indices(20, 6, 4, step)) for step in range(5)}
    assert len(batches) > 1


def test_a_batch_as_large_as_the_data_is_all_of_it_in_order():
    np.testing.assert_array_equal(minibatch_indices(5, 5, 0, 3), np.arange(5))
    np.testing.assert_array_equal(minibatch_indices(5, 32, 0, 3), np.arange(5))


def test_every_evaluator_draws_the_same_examples():
    x, y = toy_batch(n=12)
    keras_evaluator = KerasEvaluator(classifier("gpt2", prompt_length=2), x, y, batch_size=5, seed=7)
    prefix_evaluator = PrefixEvaluator(prefix_classifier("gpt2", prefix_length=2), x, y,
                                       batch_size=5, seed=7)
    texts = [f"text {i}" for i in range(12)]
    http_evaluator = HTTPEvaluator("http://127.0.0.1:1", texts, y, ["0", "1"],
                                   {"0": " bad", "1": " good"}, batch_size=5, seed=7)
    for step in (0, 3):
        index = minibatch_indices(12, 5, 7, step)
        np.testing.assert_array_equal(http_evaluator.batch_indices(step), index)
        _, labels = keras_evaluator.batch(step)
        np.testing.assert_array_equal(labels, y[index])
        prefix_x, labels, _ = prefix_evaluator.batch(step)
        np.testing.assert_array_equal(labels, y[index])
        np.testing.assert_array_equal(prefix_x["token_ids"], x["token_ids"][index])
