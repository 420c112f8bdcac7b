import numpy as np
import pytest

from promptopt.prompts import FromArray
from promptopt.prompts import FromClassLabels
from promptopt.prompts import FromText
from promptopt.prompts import PromptFile
from promptopt.prompts import RandomUniform
from promptopt.prompts import SampledVocabulary
from promptopt.prompts import get_initializer

VOCABULARY_SIZE, HIDDEN_DIM = 50, 6
# Every row distinct, so a prompt row names the token it was copied from.
EMBEDDINGS = (
    np.random.default_rng(123).normal(size=(VOCABULARY_SIZE, HIDDEN_DIM))
).astype("float32")
TEXT_IDS = {"a b c": [7, 3, 9], "hi": [4]}


def _tokenize(text):
    return list(TEXT_IDS[text])


def _row_ids(prompt):
    """The token id each prompt row was copied from (exact match)."""
    ids = []
    for row in prompt:
        matches = np.flatnonzero((EMBEDDINGS == row).all(axis=1))
        assert len(matches) == 1, "prompt row is not a vocabulary row"
        ids.append(int(matches[0]))
    return ids


ALL = [
    RandomUniform(seed=1),
    RandomUniform(limit="embedding", seed=1),
    SampledVocabulary(num_tokens=20, seed=1),
    FromText("a b c"),
    FromClassLabels([[1], [2, 3]], seed=1, num_tokens=20),
]


@pytest.mark.parametrize("initializer", ALL, ids=lambda i: type(i).__name__)
@pytest.mark.parametrize("length", [0, 1, 7])
def test_shape_and_dtype(initializer, length):
    prompt = initializer(length, EMBEDDINGS, _tokenize)
    assert prompt.shape == (length, HIDDEN_DIM)
    assert prompt.dtype == np.float32


@pytest.mark.parametrize("cls", [RandomUniform, SampledVocabulary])
def test_random_initializers_are_deterministic_per_seed(cls):
    a = cls(seed=3)(8, EMBEDDINGS)
    b = cls(seed=3)(8, EMBEDDINGS)
    c = cls(seed=4)(8, EMBEDDINGS)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_class_labels_remainder_is_deterministic_per_seed():
    a = FromClassLabels([[1]], seed=3)(8, EMBEDDINGS)
    b = FromClassLabels([[1]], seed=3)(8, EMBEDDINGS)
    c = FromClassLabels([[1]], seed=4)(8, EMBEDDINGS)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a[0], c[0])  # the label row is fixed
    assert not np.array_equal(a[1:], c[1:])


def test_random_uniform_stays_within_its_limit():
    prompt = RandomUniform(limit=0.5, seed=0)(200, EMBEDDINGS)
    assert prompt.min() >= -0.5 and prompt.max() <= 0.5
    assert prompt.max() > 0.45 and prompt.min() < -0.45  # fills the range


def test_random_uniform_embedding_limit_matches_the_table_std():
    scaled = EMBEDDINGS * 10.0
    prompt = RandomUniform(limit="embedding", seed=0)(2000, scaled)
    limit = np.sqrt(3.0) * np.std(scaled)
    assert np.abs(prompt).max() <= limit
    # Uniform on [-l, l] has std l / sqrt(3), i.e. the table's std.
    np.testing.assert_allclose(np.std(prompt), np.std(scaled), rtol=0.05)


def test_sampled_vocabulary_draws_distinct_real_rows_from_the_first_ids():
    prompt = SampledVocabulary(num_tokens=12, seed=0, skip_ids=(0, 5))(
        10, EMBEDDINGS
    )
    ids = _row_ids(prompt)
    assert all(0 <= i < 12 for i in ids)
    assert not {0, 5} & set(ids)
    assert len(set(ids)) == 10  # without replacement


def test_sampled_vocabulary_reuses_rows_only_when_the_pool_is_too_small():
    prompt = SampledVocabulary(num_tokens=3, seed=0)(9, EMBEDDINGS)
    ids = _row_ids(prompt)
    assert set(ids) <= {0, 1, 2}


def test_sampled_vocabulary_pool_is_capped_at_the_vocabulary():
    ids = _row_ids(SampledVocabulary(num_tokens=10**6, seed=0)(40, EMBEDDINGS))
    assert len(set(ids)) == 40 and max(ids) < VOCABULARY_SIZE


def test_from_text_repeats_the_text_tokens_to_fill_the_prompt():
    prompt = FromText("a b c")(8, EMBEDDINGS, _tokenize)
    np.testing.assert_array_equal(prompt, EMBEDDINGS[[7, 3, 9, 7, 3, 9, 7, 3]])


def test_from_text_truncates_a_long_text():
    prompt = FromText("a b c")(2, EMBEDDINGS, _tokenize)
    np.testing.assert_array_equal(prompt, EMBEDDINGS[[7, 3]])


def test_from_text_with_a_real_tokenizer():
    from promptopt.tasks.text_encoder import tokenize_all
    from tests.tiny_models import tiny_gpt2

    _, tokenizer = tiny_gpt2()
    embeddings = np.random.default_rng(0).normal(size=(300, 4)).astype("float32")
    ids = tokenize_all(tokenizer, [" It was great"])[0]
    assert len(ids) == 3  # " It", " was", " great" are merged tokens
    prompt = FromText(" It was great")(
        4, embeddings, lambda t: tokenize_all(tokenizer, [t])[0]
    )
    np.testing.assert_array_equal(prompt, embeddings[ids + ids[:1]])


def test_from_text_needs_a_tokenizer():
    with pytest.raises(
        ValueError,
        match=r"FromText needs a tokenizer; build the model with one, or pass "
        r"an explicit array instead\.",
    ):
        FromText("a b c")(3, EMBEDDINGS)


def test_from_text_refuses_a_text_without_tokens():
    with pytest.raises(
        ValueError,
        match=r"Initialization text '' has no tokens; give a non-empty text\.",
    ):
        FromText("")(3, EMBEDDINGS, lambda text: [])


def test_from_class_labels_rows_are_label_words_then_sampled_rows():
    labels = [[4], [10, 20, 30], [8]]
    prompt = FromClassLabels(labels, seed=5, num_tokens=15)(6, EMBEDDINGS)
    np.testing.assert_array_equal(prompt[0], EMBEDDINGS[4])
    # A multi-token word starts as the mean of its token embeddings.
    np.testing.assert_allclose(
        prompt[1], EMBEDDINGS[[10, 20, 30]].mean(axis=0), rtol=1e-6
    )
    np.testing.assert_array_equal(prompt[2], EMBEDDINGS[8])
    expected_rest = SampledVocabulary(num_tokens=15, seed=5)(3, EMBEDDINGS)
    np.testing.assert_array_equal(prompt[3:], expected_rest)
    assert all(i < 15 for i in _row_ids(prompt[3:]))


def test_from_class_labels_keeps_the_first_words_when_the_prompt_is_short():
    prompt = FromClassLabels([[4], [8], [9]])(2, EMBEDDINGS)
    np.testing.assert_array_equal(prompt, EMBEDDINGS[[4, 8]])


def test_from_array_takes_an_array():
    value = np.arange(3 * HIDDEN_DIM, dtype="float64").reshape(3, HIDDEN_DIM)
    prompt = FromArray(value)(3, EMBEDDINGS)
    assert prompt.dtype == np.float32
    np.testing.assert_array_equal(prompt, value)


def test_from_array_loads_a_npy_file(tmp_path):
    value = np.random.default_rng(0).normal(size=(4, HIDDEN_DIM)).astype("float32")
    path = tmp_path / "init.npy"
    np.save(path, value)
    np.testing.assert_array_equal(FromArray(path)(4, EMBEDDINGS), value)
    np.testing.assert_array_equal(FromArray(str(path))(4, EMBEDDINGS), value)


def test_from_array_loads_a_prompt_file(tmp_path):
    value = np.random.default_rng(1).normal(size=(2, HIDDEN_DIM)).astype("float32")
    path = PromptFile(value, "m", "0" * 16).save(tmp_path / "p.prompt.npz")
    np.testing.assert_array_equal(FromArray(path)(2, EMBEDDINGS), value)


def test_from_array_refuses_the_wrong_shape():
    with pytest.raises(
        ValueError,
        match=r"Initial prompt array has shape \(3, 6\), but this model needs "
        r"\[P, H\] = \(5, 6\)\. Use an array of that shape or set "
        r"prompt_length=3\.",
    ):
        FromArray(np.zeros((3, HIDDEN_DIM)))(5, EMBEDDINGS)


def test_get_initializer_resolves_spec_strings(tmp_path):
    random = get_initializer("random", seed=7)
    assert isinstance(random, RandomUniform)
    assert random.get_config() == {"limit": "embedding", "seed": 7}
    vocab = get_initializer("vocab", seed=7)
    assert isinstance(vocab, SampledVocabulary) and vocab.seed == 7
    assert isinstance(get_initializer(None), SampledVocabulary)
    labels = get_initializer("labels", label_token_ids=[[1], [2, 3]], seed=7)
    assert isinstance(labels, FromClassLabels)
    assert labels.get_config()["label_token_ids"] == [[1], [2, 3]]
    assert labels.seed == 7
    text = get_initializer("text:Classify: this review")
    assert isinstance(text, FromText) and text.text == "Classify: this review"
    path = tmp_path / "init.npy"
    np.save(path, np.ones((2, HIDDEN_DIM)))
    from_path = get_initializer(path)
    assert isinstance(from_path, FromArray)
    np.testing.assert_array_equal(from_path(2, EMBEDDINGS), np.ones((2, 6)))
    from_array = get_initializer(np.zeros((2, HIDDEN_DIM)))
    assert isinstance(from_array, FromArray)
    given = FromText("x")
    assert get_initializer(given) is given


def test_get_initializer_seed_reaches_the_values():
    a = get_initializer("vocab", seed=1)(5, EMBEDDINGS)
    b = get_initializer("vocab", seed=2)(5, EMBEDDINGS)
    assert not np.array_equal(a, b)


def test_get_initializer_labels_needs_label_words():
    with pytest.raises(
        ValueError,
        match=r"Initializer 'labels' needs label words; it works with a "
        r"classification task\. Use 'vocab', 'random' or 'text:\.\.\.' for "
        r"other tasks\.",
    ):
        get_initializer("labels")


def test_get_initializer_refuses_an_unknown_spec():
    with pytest.raises(
        ValueError,
        match=r"Unknown prompt initializer 'vocabulary'\. Use 'random', "
        r"'vocab', 'labels', 'text:<words>', or the path of a \.npy/prompt "
        r"file\.",
    ):
        get_initializer("vocabulary")
