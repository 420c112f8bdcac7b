import keras_hub
import numpy as np
import pytest
from keras import ops

from promptopt import LanguageModeling
from promptopt import PromptedModel
from promptopt.models import CachedGenerator
from promptopt.tasks.text_encoder import tokenize_all
from tests.tiny_models import tiny_gpt2
from tests.tiny_models import tiny_llama
from tests.tiny_models import tiny_t5

PROMPT_LENGTH = 3
LENGTHS = (2, 5, 1, 4)  # rows of different lengths
TOTAL = 11


def _model(family, prompt_length=PROMPT_LENGTH):
    backbone, tokenizer = tiny_gpt2() if family == "gpt2" else tiny_llama()
    return PromptedModel(
        backbone,
        LanguageModeling(),
        prompt_length=prompt_length,
        prompt_initializer="random",
        tokenizer=tokenizer,
    )


def _batch(pad_id=0, seed=0):
    rng = np.random.default_rng(seed)
    token_ids = np.full((len(LENGTHS), TOTAL), pad_id, "int32")
    mask = np.zeros((len(LENGTHS), TOTAL), "int32")
    for i, n in enumerate(LENGTHS):
        token_ids[i, :n] = rng.integers(40, 200, size=n)
        mask[i, :n] = 1
    return token_ids, mask


def _greedy_reference(model, token_ids, mask):
    """Greedy decoding by full forward passes of `PromptedModel` itself."""
    token_ids, mask = token_ids.copy(), mask.copy()
    for position in range(min(LENGTHS), TOTAL):
        logits = ops.convert_to_numpy(
            model({"token_ids": token_ids, "padding_mask": mask})
        )
        last = mask.sum(axis=1) - 1  # each row's newest token
        chosen = logits[np.arange(len(token_ids)), last].argmax(axis=-1)
        fill = mask[:, position] == 0
        token_ids[fill, position] = chosen[fill]
        mask[fill, position] = 1
    return token_ids


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_cached_greedy_equals_uncached_token_for_token(family):
    model = _model(family)
    token_ids, mask = _batch()
    generator = CachedGenerator(model.adapter)
    prompt = model.soft_prompt()
    cached = np.asarray(ops.convert_to_numpy(generator(prompt, token_ids, mask)))
    uncached = np.asarray(generator(prompt, token_ids, mask, use_cache=False))
    np.testing.assert_array_equal(cached, uncached)
    # The given text is kept; every padding slot was generated.
    np.testing.assert_array_equal(cached[mask == 1], token_ids[mask == 1])
    # And both equal greedy decoding with the model's own forward pass.
    np.testing.assert_array_equal(cached, _greedy_reference(model, token_ids, mask))


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_the_prompt_changes_what_is_generated(family):
    model = _model(family)
    token_ids, mask = _batch()
    generator = CachedGenerator(model.adapter)
    with_prompt = np.asarray(generator(model.soft_prompt(), token_ids, mask))
    other = np.random.default_rng(5).normal(size=(PROMPT_LENGTH, 16))
    other_prompt = np.asarray(generator(other.astype("float32"), token_ids, mask))
    assert not np.array_equal(with_prompt, other_prompt)


def test_cached_generation_goes_on_when_padding_is_the_stop_token():
    # GPT-2 pads with its end token <|endoftext|> (id 0). keras-hub's sampler
    # counts stop ids in the padding, so generation must not stop at once.
    model = _model("gpt2")
    end = model.tokenizer.end_token_id
    token_ids, mask = _batch(pad_id=end)
    generator = CachedGenerator(model.adapter)
    prompt = model.soft_prompt()
    cached = np.asarray(
        generator(prompt, token_ids, mask, stop_token_ids=(end,))
    )
    uncached = np.asarray(
        generator(prompt, token_ids, mask, stop_token_ids=(end,), use_cache=False)
    )
    assert not np.all(cached[mask == 0] == end)
    for row_cached, row_uncached, n in zip(cached, uncached, LENGTHS):
        # Equal up to and including the first stop token (after it the
        # cached sampler goes on while other rows finish).
        stop = list(row_uncached[n:]).index(end) + n + 1 if end in row_uncached[n:] else TOTAL
        np.testing.assert_array_equal(row_cached[:stop], row_uncached[:stop])


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_generate_returns_strings_equal_with_and_without_cache(family):
    model = _model(family)
    texts = ["It was", "The plot drags and the", "a"]
    cached = model.generate(texts, max_new_tokens=6)
    uncached = model.generate(texts, max_new_tokens=6, use_cache=False)
    assert cached == uncached
    assert all(isinstance(t, str) for t in cached)
    assert any(cached)  # something was generated


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_generate_gives_each_text_at_most_max_new_tokens(family):
    model = _model(family)
    short_alone = model.generate(["a"], max_new_tokens=3)
    # Batched with a long text, the short one has room for many more
    # tokens; it must still get only max_new_tokens, i.e. the same text.
    short_batched = model.generate(["a", "a much longer text here"], max_new_tokens=3)
    assert short_batched[0] == short_alone[0]
    assert short_alone[0] != model.generate(["a"], max_new_tokens=4)[0]


def test_generate_new_text_matches_the_reference_tokens():
    model = _model("llama")  # end id 2 is not the pad id 0
    texts = ["It was", "x"]
    rows = tokenize_all(model.tokenizer, texts)
    token_ids = np.zeros((2, max(map(len, rows)) + 4), "int32")
    mask = np.zeros_like(token_ids)
    for i, r in enumerate(rows):
        token_ids[i, : len(r)], mask[i, : len(r)] = r, 1
    reference = CachedGenerator(model.adapter)(
        model.soft_prompt(), token_ids, mask, use_cache=False
    )
    end = model.tokenizer.end_token_id
    expected = []
    for i, r in enumerate(rows):
        new = list(reference[i, len(r) : len(r) + 4])
        new = new[: new.index(end)] if end in new else new
        expected.append(model.tokenizer.detokenize([new]))
    expected = [
        e if isinstance(e, str) else np.asarray(e).reshape(-1)[0] for e in expected
    ]
    expected = [e.decode() if isinstance(e, bytes) else e for e in expected]
    assert model.generate(texts, max_new_tokens=4) == expected


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_generate_from_the_prompt_alone(family):
    model = _model(family)
    cached = model.generate(["", "It was"], max_new_tokens=4)
    uncached = model.generate(["", "It was"], max_new_tokens=4, use_cache=False)
    assert cached == uncached
    assert cached[0] == model.generate([""], max_new_tokens=4)[0]


def test_an_empty_text_without_a_prompt_is_refused():
    model = _model("gpt2", prompt_length=0)
    with pytest.raises(
        ValueError,
        match=r"Row 1 has no text and the prompt is empty \(P = 0\), so there "
        r"is nothing to continue\. Give every row at least one token, or "
        r"generate with a prompt\.",
    ):
        model.generate(["It was", ""], max_new_tokens=2)


def test_top_k_of_one_is_greedy_and_top_k_samples_run():
    model = _model("llama")
    token_ids, mask = _batch()
    generator = CachedGenerator(model.adapter)
    prompt = model.soft_prompt()
    greedy = np.asarray(generator(prompt, token_ids, mask))
    top_1 = np.asarray(
        generator(prompt, token_ids, mask, sampler=keras_hub.samplers.TopKSampler(k=1))
    )
    np.testing.assert_array_equal(top_1, greedy)
    sampled = np.asarray(
        generator(
            prompt,
            token_ids,
            mask,
            sampler=keras_hub.samplers.TopKSampler(k=5, seed=0),
        )
    )
    assert sampled.shape == token_ids.shape
    np.testing.assert_array_equal(sampled[mask == 1], token_ids[mask == 1])
    assert sampled.min() >= 0 and sampled.max() < model.adapter.vocabulary_size
    texts = model.generate(["It was", "a"], max_new_tokens=4, sampler="top_k")
    assert len(texts) == 2 and all(isinstance(t, str) for t in texts)


def test_t5_greedy_generation_is_consistent_with_teacher_forcing():
    model = PromptedModel(
        tiny_t5(), LanguageModeling(), prompt_length=2, prompt_initializer="random"
    )
    token_ids = np.array([[40, 41, 42, 0, 0], [50, 0, 0, 0, 0]], "int32")
    mask = (token_ids > 0).astype("int32")
    out = np.asarray(
        CachedGenerator(model.adapter)(model.soft_prompt(), token_ids, mask)
    )
    assert out.shape == token_ids.shape
    decoder_ids = np.concatenate([np.zeros((2, 1), "int32"), out[:, :-1]], 1)
    logits = model(
        {
            "token_ids": token_ids,
            "padding_mask": mask,
            "decoder_token_ids": decoder_ids,
            "decoder_padding_mask": np.ones_like(decoder_ids),
        }
    )
    np.testing.assert_array_equal(
        ops.convert_to_numpy(logits).argmax(axis=-1), out
    )
