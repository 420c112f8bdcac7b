import keras
import numpy as np
import pytest

from promptopt.evaluators.keras_evaluator import KerasEvaluator
from promptopt.prompts import ResidualReparameterization
from tests.model_factories import classifier
from tests.model_factories import toy_batch


@pytest.mark.parametrize("family", ["gpt2", "t5"])
def test_loss_equals_keras_cross_entropy_of_the_model(family):
    model = classifier(family, prompt_length=3)
    x, y = toy_batch(n=8)
    evaluator = KerasEvaluator(model, x, y, batch_size=8)
    loss = evaluator.evaluate(evaluator.initial_candidate()[None], step=0).losses[0]
    expected = keras.losses.SparseCategoricalCrossentropy(from_logits=True)(y, model(x))
    np.testing.assert_allclose(loss, float(expected), rtol=1e-5)


@pytest.mark.parametrize("parameters", ["prompt", "all"])
def test_gradient_matches_finite_differences(parameters):
    model = classifier("llama", prompt_length=2, parameterization=ResidualReparameterization(bottleneck=4))
    x, y = toy_batch(n=6)
    evaluator = KerasEvaluator(model, x, y, batch_size=6, parameters=parameters)
    p = evaluator.initial_candidate().astype("float64")
    grad = evaluator.evaluate(p[None], 0, compute_gradients=True).grads[0]
    direction = np.random.default_rng(0).normal(size=p.shape)
    direction /= np.linalg.norm(direction)
    eps = 1e-2
    plus = evaluator.evaluate((p + eps * direction)[None], 0).losses[0]
    minus = evaluator.evaluate((p - eps * direction)[None], 0).losses[0]
    numeric = (plus - minus) / (2 * eps)
    np.testing.assert_allclose(np.sum(grad * direction), numeric, rtol=2e-2, atol=1e-4)


def test_candidates_are_scored_independently_and_counted():
    model = classifier("gpt2", prompt_length=2)
    x, y = toy_batch(n=8)
    evaluator = KerasEvaluator(model, x, y, batch_size=8)
    rng = np.random.default_rng(0)
    candidates = rng.normal(size=(3, 2, 16)).astype("float32")
    together = evaluator.evaluate(candidates, 0)
    alone = [evaluator.evaluate(c[None], 0).losses[0] for c in candidates]
    np.testing.assert_allclose(together.losses, alone, rtol=1e-6)
    assert together.forward_calls == 3


def test_mini_batches_depend_only_on_seed_and_step():
    model = classifier("gpt2", prompt_length=2)
    x, y = toy_batch(n=20)
    a = KerasEvaluator(model, x, y, batch_size=5, seed=3)
    b = KerasEvaluator(model, x, y, batch_size=5, seed=3)
    for step in (0, 1, 7):
        np.testing.assert_array_equal(a.batch(step)[1], b.batch(step)[1])
        np.testing.assert_array_equal(a.batch(step)[0]["token_ids"], b.batch(step)[0]["token_ids"])
    assert not all(np.array_equal(a.batch(0)[0]["token_ids"], a.batch(s)[0]["token_ids"]) for s in (1, 2, 3))


def test_negative_accuracy_loss_is_minus_the_accuracy():
    model = classifier("gpt2", prompt_length=2)
    x, y = toy_batch(n=8)
    evaluator = KerasEvaluator(model, x, y, batch_size=8, loss="negative_accuracy")
    loss = evaluator.evaluate(evaluator.initial_candidate()[None], 0).losses[0]
    accuracy = np.mean(np.argmax(np.asarray(model(x)), -1) == y)
    assert loss == pytest.approx(-accuracy)


def test_all_parameters_round_trip_through_assign():
    model = classifier("gpt2", prompt_length=2, parameterization=ResidualReparameterization(bottleneck=4))
    x, y = toy_batch(n=4)
    evaluator = KerasEvaluator(model, x, y, parameters="all")
    values = evaluator.initial_candidate()
    assert values.shape == (sum(int(np.prod(w.shape)) for w in model.soft_prompt.weights),)
    shifted = values + 1.0
    evaluator.assign(shifted)
    np.testing.assert_array_equal(evaluator.initial_candidate(), shifted)


def test_bad_arguments_are_refused():
    model = classifier("gpt2", prompt_length=2)
    x, y = toy_batch(n=4)
    with pytest.raises(ValueError, match="parameters must be 'prompt' or 'all'"):
        KerasEvaluator(model, x, y, parameters="mlp")
    with pytest.raises(ValueError, match="Unknown loss 'l2'"):
        KerasEvaluator(model, x, y, loss="l2")
    with pytest.raises(ValueError, match="got no examples"):
        KerasEvaluator(model, {k: v[:0] for k, v in x.items()}, y[:0])


def test_residual_dropout_masks_gradient_steps_by_seed_and_step_only():
    x, y = toy_batch(n=8)
    model = classifier("llama", prompt_length=3,
                       parameterization=ResidualReparameterization(bottleneck=4, dropout=0.5))
    # The whole set every step, so that only the dropout mask can differ.
    evaluator = KerasEvaluator(model, x, y, batch_size=8, parameters="all", seed=3)
    candidate = evaluator.initial_candidate()[None]
    first, again = (evaluator.evaluate(candidate, 5, compute_gradients=True) for _ in range(2))
    np.testing.assert_array_equal(first.losses, again.losses)  # a resumed step draws the same mask
    np.testing.assert_array_equal(first.grads, again.grads)
    later = evaluator.evaluate(candidate, 6, compute_gradients=True)
    exact = evaluator.evaluate(candidate, 5)  # scoring: no dropout
    plain = classifier("llama", prompt_length=3,
                       parameterization=ResidualReparameterization(bottleneck=4))
    undropped = KerasEvaluator(plain, x, y, batch_size=8, parameters="all", seed=3)
    np.testing.assert_allclose(exact.losses, undropped.evaluate(candidate, 5).losses, atol=1e-6)
    assert abs(first.losses[0] - later.losses[0]) > 1e-4  # another step, another mask
    assert abs(first.losses[0] - exact.losses[0]) > 1e-4
