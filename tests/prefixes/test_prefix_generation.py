"""Generation with prefixes through keras-hub's cached samplers."""

import numpy as np
import pytest

from promptopt.models import CachedGenerator
from promptopt.prefixes import real_word_prefix
from tests.prefixes.helpers import lm_model
from tests.prefixes.helpers import numpy
from tests.prefixes.helpers import random_ids

LENGTHS = (2, 5, 1, 4)
TOTAL = 11


def _batch():
    token_ids = np.zeros((len(LENGTHS), TOTAL), "int32")
    mask = np.zeros_like(token_ids)
    for i, n in enumerate(LENGTHS):
        token_ids[i, :n] = random_ids((n,), seed=i)
        mask[i, :n] = 1
    return token_ids, mask


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_cached_greedy_equals_uncached_token_for_token(family):
    model = lm_model(family, prefix_length=3, prefix_initializer="random")
    token_ids, mask = _batch()
    generator = CachedGenerator(model.bound_adapter())
    no_prompt = np.zeros((0, model.adapter.hidden_dim), "float32")
    cached = numpy(generator(no_prompt, token_ids, mask))
    uncached = np.asarray(generator(no_prompt, token_ids, mask, use_cache=False))
    np.testing.assert_array_equal(cached, uncached)
    np.testing.assert_array_equal(cached[mask == 1], token_ids[mask == 1])


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_generating_with_a_real_word_prefix_equals_generating_after_the_words(family):
    model = lm_model(family, prefix_length=3)
    words = random_ids((3,), seed=9)
    model.prefix.assign(real_word_prefix(model.adapter, words))
    token_ids, mask = _batch()
    generator = CachedGenerator(model.bound_adapter())
    no_prompt = np.zeros((0, model.adapter.hidden_dim), "float32")
    with_prefix = numpy(generator(no_prompt, token_ids, mask))
    # The same continuation as plain cached generation after the words.
    plain = CachedGenerator(model.adapter)
    words_ids = np.concatenate([np.tile(words, (len(LENGTHS), 1)), token_ids], 1)
    words_mask = np.concatenate([np.ones((len(LENGTHS), 3), "int32"), mask], 1)
    after_words = numpy(plain(no_prompt, words_ids, words_mask))[:, 3:]
    np.testing.assert_array_equal(with_prefix, after_words)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_generate_strings_agree_with_and_without_cache(family):
    model = lm_model(family, prefix_length=3, prefix_initializer="random")
    texts = ["It was", "The plot drags and the", "a"]
    cached = model.generate(texts, max_new_tokens=6)
    assert cached == model.generate(texts, max_new_tokens=6, use_cache=False)
    assert any(cached)


@pytest.mark.parametrize("sampler", ["top_k", "beam"])
def test_keras_hub_samplers_run_with_a_prefix(sampler):
    model = lm_model("llama", prefix_length=3, prefix_initializer="random")
    out = model.generate(["It was", "a"], max_new_tokens=4, sampler=sampler)
    assert len(out) == 2 and all(isinstance(t, str) for t in out)


def test_the_prefix_changes_what_is_generated():
    model = lm_model("gpt2", prefix_length=3, prefix_initializer="random")
    first = model.generate(["It was", "a"], max_new_tokens=6)
    model.prefix.assign(model.prefix.materialize() * -3.0)
    assert model.generate(["It was", "a"], max_new_tokens=6) != first


def test_t5_generates_greedily_with_prefixes_on_every_site():
    model = lm_model("t5", prefix_length=2, prefix_initializer="random")
    generator = CachedGenerator(model.bound_adapter())
    token_ids, mask = random_ids((2, 5)), np.ones((2, 5), "int32")
    out = np.asarray(
        generator(np.zeros((0, 16), "float32"), token_ids, mask, max_new_tokens=4)
    )
    assert out.shape == (2, 4)
