import numpy as np
import pytest

from promptopt.evaluators import KerasEvaluator
from tests.model_factories import classifier
from tests.model_factories import toy_batch


@pytest.mark.parametrize("family", ["llama", "t5"])
def test_bucketed_losses_and_gradients_equal_one_padded_batch(family):
    model = classifier(family, prompt_length=2)
    x, y = toy_batch(n=9, length=7)
    one = KerasEvaluator(model, x, y, batch_size=9)
    three = KerasEvaluator(model, x, y, batch_size=9, length_buckets=3)
    candidates = (one.initial_candidate() + np.random.default_rng(0).normal(size=(2,) + one.initial_candidate().shape)).astype("float32")
    a = one.evaluate(candidates, 0, compute_gradients=True)
    b = three.evaluate(candidates, 0, compute_gradients=True)
    np.testing.assert_allclose(b.losses, a.losses, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(b.grads, a.grads, rtol=1e-4, atol=1e-6)
    assert b.metrics["batch_accuracy"] == pytest.approx(a.metrics["batch_accuracy"])
    assert b.forward_calls == a.forward_calls == 2


def test_length_buckets_must_be_positive():
    x, y = toy_batch(n=4)
    with pytest.raises(ValueError, match="length_buckets must be a positive int, got 0"):
        KerasEvaluator(classifier("gpt2"), x, y, length_buckets=0)
