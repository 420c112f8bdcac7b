import numpy as np
import pytest

from promptopt import PromptedModel
from promptopt import VerbalizerClassification
from promptopt.evaluators import KerasEvaluator
from promptopt.evaluators import SharedInputEvaluator
from promptopt.prompts import ResidualReparameterization
from tests.model_factories import backbone_and_tokenizer
from tests.model_factories import classifier
from tests.model_factories import toy_batch
from tests.model_factories import verbalizer


def suffix_model(prompt_length=3, **kwargs):
    backbone, tokenizer = backbone_and_tokenizer("llama")
    return PromptedModel(
        backbone,
        VerbalizerClassification(verbalizer(tokenizer), placement="suffix"),
        prompt_length=prompt_length,
        prompt_initializer="random",
        tokenizer=tokenizer,
        **kwargs,
    )


def population(evaluator, k=4, scale=0.5):
    start = evaluator.initial_candidate()
    noise = np.random.default_rng(0).normal(size=(k,) + start.shape)
    return (start + scale * noise).astype("float32")


@pytest.mark.parametrize("loss", ["cross_entropy", "hinge"])
def test_losses_equal_the_full_forward_pass(loss):
    model = suffix_model()
    x, y = toy_batch(n=8, length=7)  # rows of 2..7 tokens: padded batch
    full = KerasEvaluator(model, x, y, batch_size=8, loss=loss)
    shared = SharedInputEvaluator(model, x, y, batch_size=8, loss=loss)
    candidates = population(full)
    expected = full.evaluate(candidates, step=0)
    got = shared.evaluate(candidates, step=0)
    np.testing.assert_allclose(got.losses, expected.losses, rtol=1e-4, atol=1e-5)
    assert got.forward_calls == len(candidates)
    assert got.metrics["batch_accuracy"] == pytest.approx(expected.metrics["batch_accuracy"])


def test_all_parameters_run_the_candidates_residual_mlp():
    model = suffix_model(parameterization=ResidualReparameterization(bottleneck=4))
    x, y = toy_batch(n=6)
    full = KerasEvaluator(model, x, y, batch_size=4, parameters="all", seed=1)
    shared = SharedInputEvaluator(model, x, y, batch_size=4, parameters="all", seed=1)
    candidates = population(full, k=3, scale=0.1)
    for step in (0, 1):
        np.testing.assert_allclose(
            shared.evaluate(candidates, step).losses,
            full.evaluate(candidates, step).losses,
            rtol=1e-4,
            atol=1e-5,
        )


def test_refuses_what_it_cannot_score_exactly():
    x, y = toy_batch(n=4)
    with pytest.raises(ValueError, match="needs the prompt after the input"):
        SharedInputEvaluator(classifier("llama"), x, y)
    backbone, tokenizer = backbone_and_tokenizer("gpt2")
    gpt2 = PromptedModel(
        backbone,
        VerbalizerClassification(verbalizer(tokenizer), placement="suffix"),
        prompt_length=2,
    )
    with pytest.raises(ValueError, match="needs a Llama-family backbone"):
        SharedInputEvaluator(gpt2, x, y)
    evaluator = SharedInputEvaluator(suffix_model(), x, y)
    assert not evaluator.provides_gradients
    with pytest.raises(ValueError, match="scores forward only; use KerasEvaluator"):
        evaluator.evaluate(population(evaluator, k=1), 0, compute_gradients=True)
