import keras
import numpy as np
import pytest
from keras import ops

from promptopt import LanguageModeling
from promptopt import PromptedModel
from promptopt.tasks import deserialize_task
from promptopt.tasks import serialize_task
from promptopt.tasks.text_encoder import tokenize_all
from tests.tiny_models import tiny_gpt2
from tests.tiny_models import tiny_t5


@pytest.fixture(scope="module")
def tokenizer():
    return tiny_gpt2()[1]


def _ids(tokenizer, text):
    return tokenize_all(tokenizer, [text])[0]


def char_tokenizer(texts):
    """A stand-in tokenizer (any `list[str] -> list[list[int]]` works)."""
    return [[3 + ord(c) % 90 for c in text] for text in texts]


SOURCES = ["It was", "The plot: a b"]
TARGETS = [" great", " so good"]


def test_decoder_only_layout_learns_only_the_target_tokens(tokenizer):
    end = tokenizer.end_token_id
    x, y, weight = LanguageModeling().encode(
        tokenizer, SOURCES, TARGETS, is_encoder_decoder=False, max_length=20
    )
    assert set(x) == {"token_ids", "padding_mask"}
    assert x["token_ids"].shape == y.shape == weight.shape == (2, 20)
    for i, (source, target) in enumerate(zip(SOURCES, TARGETS)):
        s, t = _ids(tokenizer, source), _ids(tokenizer, target) + [end]
        row = s + t
        n = len(row)
        np.testing.assert_array_equal(x["token_ids"][i, :n], row)
        np.testing.assert_array_equal(x["padding_mask"][i], [1] * n + [0] * (20 - n))
        # The output at position p is scored against token p + 1.
        np.testing.assert_array_equal(y[i, : n - 1], row[1:])
        # Weight 1 exactly where the label is a target token (the end
        # token included): positions len(s) - 1 .. n - 2.
        expected = np.zeros(20)
        expected[len(s) - 1 : n - 1] = 1.0
        np.testing.assert_array_equal(weight[i], expected)
        np.testing.assert_array_equal(y[i][weight[i] == 1], t)


def test_decoder_only_truncates_the_source_from_the_left(tokenizer):
    source = "abcdefgh"  # 8 single-byte tokens
    x, y, weight = LanguageModeling().encode(
        tokenizer, [source], [" great"], False, max_length=5, end_token_id=-7
    )
    t = _ids(tokenizer, " great") + [-7]
    # Room for 3 source tokens: the last three.
    np.testing.assert_array_equal(
        x["token_ids"][0], _ids(tokenizer, "fgh") + t
    )
    np.testing.assert_array_equal(y[0][weight[0] == 1], t)


def test_decoder_only_truncates_an_overlong_target_keeping_one_source_token(
    tokenizer,
):
    x, y, weight = LanguageModeling().encode(
        tokenizer, ["ab"], ["cdefghij"], False, max_length=4, end_token_id=None
    )
    # end_token_id=None falls back to the tokenizer's end token, which is
    # cut off with the rest of the over-long target.
    np.testing.assert_array_equal(x["token_ids"][0], _ids(tokenizer, "bcde"))
    np.testing.assert_array_equal(y[0][weight[0] == 1], _ids(tokenizer, "cde"))


def test_no_end_token_when_the_tokenizer_has_none():
    x, y, weight = LanguageModeling().encode(
        char_tokenizer, ["ab"], ["cd"], False, max_length=6
    )
    np.testing.assert_array_equal(x["token_ids"][0], char_tokenizer(["abcd"])[0] + [0, 0])
    np.testing.assert_array_equal(y[0][weight[0] == 1], char_tokenizer(["cd"])[0])


def test_encoder_decoder_layout():
    x, y, weight = LanguageModeling().encode(
        char_tokenizer,
        ["abc", "de"],
        ["xy", "z"],
        is_encoder_decoder=True,
        end_token_id=1,
        start_token_id=0,
        pad_id=0,
    )
    a, b, c, d, e = char_tokenizer(["abcde"])[0]
    x_, y_, z = char_tokenizer(["xyz"])[0]
    np.testing.assert_array_equal(x["token_ids"], [[a, b, c], [d, e, 0]])
    np.testing.assert_array_equal(x["padding_mask"], [[1, 1, 1], [1, 1, 0]])
    # Teacher forcing: the decoder reads [start; target] and predicts
    # [target; end]; every real label is learned.
    np.testing.assert_array_equal(
        x["decoder_token_ids"], [[0, x_, y_], [0, z, 0]]
    )
    np.testing.assert_array_equal(
        x["decoder_padding_mask"], [[1, 1, 1], [1, 1, 0]]
    )
    np.testing.assert_array_equal(y, [[x_, y_, 1], [z, 1, 0]])
    np.testing.assert_array_equal(weight, [[1, 1, 1], [1, 1, 0]])


def test_encoder_decoder_truncation_keeps_the_source_end():
    x, y, _ = LanguageModeling().encode(
        char_tokenizer, ["abcdef"], ["xyzw"], True, max_length=3, end_token_id=1
    )
    np.testing.assert_array_equal(x["token_ids"][0], char_tokenizer(["def"])[0])
    np.testing.assert_array_equal(y[0], char_tokenizer(["xyz"])[0])


def test_decoder_only_logits_cover_the_text_positions_only(tokenizer):
    backbone, tokenizer = tiny_gpt2()
    model = PromptedModel(
        backbone, LanguageModeling(), prompt_length=4, tokenizer=tokenizer
    )
    x, _, _ = LanguageModeling().encode(tokenizer, SOURCES, TARGETS, False, 12)
    logits = ops.convert_to_numpy(model(x))
    assert logits.shape == (2, 12, backbone.vocabulary_size)
    # The same logits as a forward pass with the prompt spelled out as
    # embeddings in front of the text, minus the prompt positions.
    adapter = model.adapter
    prompt = model.soft_prompt()
    text = adapter.embed_tokens(x["token_ids"])
    full = ops.concatenate([ops.broadcast_to(prompt[None], (2, 4, 16)), text], 1)
    mask = np.concatenate([np.ones((2, 4), "int32"), x["padding_mask"]], 1)
    reference = ops.convert_to_numpy(
        adapter.token_logits(adapter.decode(full, mask))
    )[:, 4:]
    real = x["padding_mask"].astype(bool)
    np.testing.assert_allclose(logits[real], reference[real], atol=1e-5)


def _per_example_loss(model, x, y, weight):
    """Summed cross-entropy of the target tokens, per example `[N]`."""
    logits = ops.convert_to_numpy(model(x)).astype("float64")
    top = logits.max(axis=-1, keepdims=True)
    log_z = top + np.log(np.exp(logits - top).sum(axis=-1, keepdims=True))
    logp = np.take_along_axis(logits - log_z, y[..., None], axis=-1)[..., 0]
    return -(logp * weight).sum(axis=1)


def _fit(model, x, y, weight, learning_rate, epochs):
    before = _per_example_loss(model, x, y, weight)
    model.compile(optimizer=keras.optimizers.Adam(learning_rate))
    history = model.fit(
        x, y, sample_weight=weight, epochs=epochs, batch_size=len(y), verbose=0
    )
    return history.history["loss"], before, _per_example_loss(model, x, y, weight)


def test_fit_learns_a_fixed_continuation_through_the_prompt():
    backbone, tokenizer = tiny_gpt2()
    model = PromptedModel(
        backbone, LanguageModeling(), prompt_length=4, tokenizer=tokenizer
    )
    sources = ["ab It was", "hello It was", "x y z It was", "The end. It was"]
    x, y, weight = LanguageModeling().encode(
        tokenizer, sources, [" good"] * 4, False, max_length=12
    )
    backbone_before = [np.array(w) for w in backbone.weights]
    losses, before, after = _fit(model, x, y, weight, 0.1, epochs=40)
    assert losses[-1] < 0.3 * losses[0], losses
    # Every example's target got likelier, not just the average.
    assert np.all(after < before), (before, after)
    for b, a in zip(backbone_before, backbone.weights):
        assert np.array_equal(b, np.asarray(a))


def test_fit_learns_a_fixed_continuation_on_t5():
    # T5 is steered only through cross-attention to the prompted encoder
    # output; the tiny model learns slowly, but steadily.
    model = PromptedModel(tiny_t5(), LanguageModeling(), prompt_length=8)
    sources = ["ab", "hello", "xyz", "The end"]
    x, y, weight = LanguageModeling().encode(
        char_tokenizer, sources, ["good"] * 4, True, end_token_id=1
    )
    losses, before, after = _fit(model, x, y, weight, 0.3, epochs=30)
    assert losses[-1] < 0.85 * losses[0], losses
    assert np.all(after < before), (before, after)


def test_config_round_trip():
    config = serialize_task(LanguageModeling())
    assert config == {"name": "language_modeling", "config": {}}
    assert isinstance(deserialize_task(config), LanguageModeling)
