"""DeepSuffixEvaluator: the shared-head population path equals the model's own pass."""

import keras
import numpy as np
import pytest

from promptopt import VerbalizerClassification
from promptopt.evaluators.deep_suffix_evaluator import DeepSuffixEvaluator
from promptopt.evaluators.prefix_evaluator import PrefixEvaluator
from promptopt.prefixes import PrefixModel
from tests.model_factories import backbone_and_tokenizer
from tests.model_factories import verbalizer
from tests.prefixes.helpers import prefix_classifier


def _suffix_model(family="llama", tail=2):
    backbone, tokenizer = backbone_and_tokenizer(family)
    return PrefixModel(backbone, VerbalizerClassification(verbalizer(tokenizer), placement="suffix"),
                       prefix_length=3, tokenizer=tokenizer, model_id=f"tiny-{family}",
                       suffix_tail_length=tail, prefix_initializer="random")


def _padded_batch(n=10, width=9, seed=0):
    rng = np.random.default_rng(seed)
    ids = np.zeros((n, width), "int32")
    mask = np.zeros((n, width), "int32")
    for row in range(n):
        length = int(rng.integers(3, width + 1))
        ids[row, :length] = rng.integers(40, 200, size=length)
        mask[row, :length] = 1
    return {"token_ids": ids, "padding_mask": mask}, (ids[:, 0] % 2).astype("int32")


def test_population_losses_equal_the_models_own_forward_pass():
    model = _suffix_model()
    x, y = _padded_batch()
    shared = DeepSuffixEvaluator(model, x, y, batch_size=len(y), chunk_size=4)
    own = PrefixEvaluator(model, x, y, batch_size=len(y))  # model(x, prefix=...) per candidate
    start = shared.initial_candidate()
    population = start[None] + np.random.default_rng(1).normal(
        scale=0.5, size=(3,) + start.shape).astype("float32")
    np.testing.assert_allclose(shared.evaluate(population, step=0).losses,
                               own.evaluate(population, step=0).losses, rtol=1e-5, atol=1e-6)
    # The whole set's caches are kept: a second generation reuses them.
    again = shared.evaluate(population[::-1], step=1).losses
    np.testing.assert_allclose(again, shared.evaluate(population, step=0).losses[::-1],
                               rtol=1e-6)


def test_a_saved_deep_suffix_model_scores_the_same_after_loading(tmp_path):
    model = _suffix_model()
    x, _ = _padded_batch(n=4)
    path = str(tmp_path / "model.keras")
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert (loaded.placement, loaded.suffix_tail_length) == ("suffix", 2)
    np.testing.assert_allclose(np.asarray(loaded(x)), np.asarray(model(x)), rtol=1e-5, atol=1e-6)


def test_a_prefix_in_front_is_refused_with_the_evaluator_to_use():
    model = prefix_classifier("llama")
    x, y = _padded_batch(n=4)
    with pytest.raises(ValueError, match="placement='suffix'.*Use PrefixEvaluator"):
        DeepSuffixEvaluator(model, x, y)


def test_a_deep_suffix_needs_a_llama_family_backbone():
    with pytest.raises(ValueError, match="needs a Llama-family backbone.*Use placement='prefix'"):
        _suffix_model("gpt2")


def test_a_deep_suffix_model_refuses_generation_with_the_reason():
    with pytest.raises(ValueError, match="scores classes only"):
        _suffix_model().generate(["a b c"], max_new_tokens=2)
