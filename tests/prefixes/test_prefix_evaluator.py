"""PrefixEvaluator: exact gradients, and every optimizer tunes a prefix."""

import numpy as np
import pytest

from promptopt import LanguageModeling
from promptopt.evaluators.prefix_evaluator import PrefixEvaluator
from promptopt.optimizers import available_optimizers
from promptopt.optimizers import get_optimizer
from promptopt.prefixes import PrefixMLP
from promptopt.runner import Budget
from promptopt.runner import PromptTuningRunner
from promptopt.runner import Stage
from tests.model_factories import toy_batch
from tests.prefixes.helpers import lm_model
from tests.prefixes.helpers import prefix_classifier


def _finite_difference(evaluator, candidate, direction, eps=1e-2):
    # Central difference along a unit direction.
    plus = evaluator.evaluate((candidate + eps * direction)[None], step=0).losses[0]
    minus = evaluator.evaluate((candidate - eps * direction)[None], step=0).losses[0]
    return (plus - minus) / (2 * eps)


@pytest.mark.parametrize("family", ["gpt2", "llama", "t5"])
def test_gradients_match_finite_differences(family):
    model = prefix_classifier(family, prefix_length=2)
    x, y = toy_batch(n=8)
    evaluator = PrefixEvaluator(model, x, y, batch_size=8)
    candidate = evaluator.initial_candidate()
    evaluation = evaluator.evaluate(candidate[None], step=0, compute_gradients=True)
    direction = np.random.default_rng(0).normal(size=candidate.shape).astype("float32")
    direction /= np.linalg.norm(direction)
    analytic = float(np.sum(evaluation.grads[0] * direction))
    numeric = _finite_difference(evaluator, candidate, direction)
    assert np.isclose(analytic, numeric, rtol=1e-2, atol=1e-4), (analytic, numeric)


def test_language_modeling_loss_is_the_weighted_token_cross_entropy():
    model = lm_model("gpt2", prefix_length=2, prefix_initializer="random")
    x, y, w = LanguageModeling().encode(
        model.tokenizer, ["name : Aromi |", "food : Thai |"], [" A pub.", " Thai food."],
        is_encoder_decoder=False, max_length=16,
    )
    evaluator = PrefixEvaluator(model, x, y, sample_weight=w, batch_size=2)
    loss = evaluator.evaluate(evaluator.initial_candidate()[None], step=0).losses[0]
    logits = np.asarray(model(x), "float64")
    logp = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    token = np.take_along_axis(logp, y[..., None], axis=-1)[..., 0]
    np.testing.assert_allclose(loss, -(token * w).sum() / w.sum(), rtol=1e-5)


@pytest.mark.parametrize("name", available_optimizers())
def test_every_optimizer_lowers_the_loss_of_a_prefix(name):
    model = prefix_classifier("llama", prefix_length=2)
    x, y = toy_batch(n=16, seed=1)
    evaluator = PrefixEvaluator(model, x, y, batch_size=16)
    start = evaluator.initial_candidate()
    options = {"cma_es": dict(popsize=8, subspace_dim=20)}.get(name, {})
    result = PromptTuningRunner(evaluator).run(
        start, [Stage(get_optimizer(name, **options), Budget(steps=15))], seed=0
    )
    before = evaluator.evaluate(start[None], step=0).losses[0]
    after = evaluator.evaluate(result.best_prompt[None], step=0).losses[0]
    assert result.best_prompt.shape == start.shape
    assert after < before, (before, after)


def test_all_parameters_include_the_mlp_and_assign_writes_them_back():
    model = prefix_classifier(
        "gpt2", prefix_length=2, reparameterization=PrefixMLP(8, 16)
    )
    x, y = toy_batch(n=8)
    evaluator = PrefixEvaluator(model, x, y, batch_size=8, parameters="all")
    candidate = evaluator.initial_candidate()
    assert candidate.shape == (sum(int(np.prod(w.shape)) for w in model.prefix.weights),)
    evaluation = evaluator.evaluate(candidate[None], step=0, compute_gradients=True)
    assert evaluation.grads.shape == (1,) + candidate.shape
    assert np.abs(evaluation.grads).sum() > 0
    moved = candidate - 0.1 * evaluation.grads[0]
    evaluator.assign(moved)
    np.testing.assert_array_equal(evaluator.initial_candidate(), moved)


def test_bad_parameters_are_refused():
    model = prefix_classifier("gpt2", prefix_length=2)
    x, y = toy_batch(n=4)
    with pytest.raises(ValueError) as error:
        PrefixEvaluator(model, x, y, parameters="prompt")
    assert str(error.value) == "parameters must be 'prefix' or 'all', got 'prompt'."
