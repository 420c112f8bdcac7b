import keras
import numpy as np
import pytest

from promptopt import LanguageModeling
from promptopt import PromptedModel
from promptopt import PromptMismatchError
from tests.model_factories import FAMILIES
from tests.model_factories import backbone_and_tokenizer
from tests.model_factories import classifier
from tests.model_factories import toy_batch


def _backbone_logits(backbone, x):
    if "encoder_token_ids" in backbone.input:
        out = backbone(
            {
                "encoder_token_ids": x["token_ids"],
                "encoder_padding_mask": x["padding_mask"],
                "decoder_token_ids": x["decoder_token_ids"],
                "decoder_padding_mask": x["decoder_padding_mask"],
            }
        )["decoder_sequence_output"]
        out = out * backbone.hidden_dim**-0.5  # tied T5 head
    else:
        out = backbone(
            {"token_ids": x["token_ids"], "padding_mask": x["padding_mask"]}
        )
    return backbone.token_embedding(out, reverse=True)


@pytest.mark.parametrize("family", FAMILIES)
def test_zero_length_prompt_matches_backbone_logits(family):
    backbone, _ = backbone_and_tokenizer(family)
    model = PromptedModel(backbone, LanguageModeling(), prompt_length=0)
    x, _ = toy_batch(n=3, length=5)
    x["decoder_token_ids"] = np.array([[0, 3, 4], [0, 5, 0], [0, 7, 8]], "int32")
    x["decoder_padding_mask"] = np.array([[1, 1, 1], [1, 1, 0], [1, 1, 1]], "int32")
    expected = _backbone_logits(backbone, x)
    actual = model(x)
    if family != "t5":  # compare real positions only
        m = x["padding_mask"][:, :, None].astype(bool)
        expected, actual = np.where(m, expected, 0), np.where(m, actual, 0)
    np.testing.assert_allclose(actual, expected, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_left_and_right_padding_give_the_same_scores(family):
    model = classifier(family, prompt_length=3)
    x, _ = toy_batch(n=4, length=6)
    right = model(x)
    ids, mask = x["token_ids"], x["padding_mask"]
    lengths = mask.sum(axis=1)
    left_ids, left_mask = np.zeros_like(ids), np.zeros_like(mask)
    for i, l in enumerate(lengths):
        left_ids[i, -l:] = ids[i, :l]
        left_mask[i, -l:] = 1
    left = model({"token_ids": left_ids, "padding_mask": left_mask})
    np.testing.assert_allclose(left, right, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_only_the_prompt_is_trainable_and_backbone_is_bit_identical(family):
    model = classifier(family, prompt_length=4)
    assert [w.path for w in model.trainable_weights] == ["soft_prompt/prompt"]
    before = [np.array(w) for w in model.backbone.weights]
    prompt_before = model.soft_prompt.materialize()
    x, y = toy_batch(n=8)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    after = [np.array(w) for w in model.backbone.weights]
    assert len(before) == len(after) > 0
    for b, a in zip(before, after):
        assert np.array_equal(b, a)
    assert not np.array_equal(prompt_before, model.soft_prompt.materialize())


@pytest.mark.parametrize("family", FAMILIES)
def test_loss_falls_on_a_learnable_toy_task(family):
    model = classifier(family, prompt_length=4)
    x, y = toy_batch(n=16, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(0.1))
    history = model.fit(x, y, epochs=60, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses
    assert history.history["accuracy"][-1] >= 0.75


@pytest.mark.parametrize("family", FAMILIES)
def test_config_round_trip(family):
    model = classifier(family, prompt_length=3)
    config = model.get_config()
    clone = PromptedModel.from_config(config)
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    x, _ = toy_batch(n=2)
    np.testing.assert_allclose(clone(x), model(x), atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_keras_save_and_load_round_trip(family, tmp_path):
    model = classifier(family, prompt_length=3)
    model.soft_prompt.assign(np.full((3, model.adapter.hidden_dim), 0.25))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x, _ = toy_batch(n=2)
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
    assert np.array_equal(
        loaded.soft_prompt.materialize(), model.soft_prompt.materialize()
    )


@pytest.mark.parametrize("family", FAMILIES)
def test_prompt_file_round_trip(family, tmp_path):
    model = classifier(family, prompt_length=3, seed=0)
    model.soft_prompt.assign(np.random.default_rng(0).normal(size=(3, 16)))
    path = model.save_prompt(tmp_path / "p.npz")
    other = classifier(family, prompt_length=3, seed=0)
    assert not np.array_equal(
        other.soft_prompt.materialize(), model.soft_prompt.materialize()
    )
    other.load_prompt(path)
    assert np.array_equal(
        other.soft_prompt.materialize(), model.soft_prompt.materialize()
    )
    x, _ = toy_batch(n=2)
    np.testing.assert_allclose(other(x), model(x), atol=0)


def test_prompt_refuses_a_model_with_another_hidden_size(tmp_path):
    path = classifier("gpt2", prompt_length=3).save_prompt(tmp_path / "p.npz")
    backbone, tokenizer = backbone_and_tokenizer("gpt2")
    from tests.tiny_models import tiny_gpt2

    wide_backbone, tokenizer = tiny_gpt2(hidden_dim=32)
    wide = PromptedModel(
        wide_backbone,
        classifier("gpt2").task,
        prompt_length=3,
        tokenizer=tokenizer,
        model_id="tiny-gpt2-wide",
    )
    with pytest.raises(
        PromptMismatchError,
        match=r"has hidden size H=16 \(tuned for model 'tiny-gpt2'\), but this "
        r"model \('tiny-gpt2-wide'\) has H=32",
    ):
        wide.load_prompt(path)


def test_prompt_refuses_a_model_with_other_embeddings(tmp_path):
    path = classifier("llama", seed=0).save_prompt(tmp_path / "p.npz")
    other = classifier("llama", seed=1)  # same shapes, other weights
    before = other.soft_prompt.materialize()
    with pytest.raises(
        PromptMismatchError,
        match=r"tuned for model 'tiny-llama' with embedding hash [0-9a-f]{16}, "
        r"but this model \('tiny-llama'\) has embedding hash [0-9a-f]{16}",
    ):
        other.load_prompt(path)
    assert np.array_equal(before, other.soft_prompt.materialize())


def test_prompt_of_another_length_is_refused(tmp_path):
    path = classifier("gpt2", prompt_length=3).save_prompt(tmp_path / "p.npz")
    with pytest.raises(ValueError, match="holds P=3 vectors but this model has prompt_length=5"):
        classifier("gpt2", prompt_length=5).load_prompt(path)


def test_prompt_file_is_small(tmp_path):
    path = classifier("gpt2", prompt_length=20).save_prompt(tmp_path / "p.npz")
    assert (tmp_path / "p.npz").stat().st_size < 20 * 16 * 4 + 4096
    assert str(path).endswith("p.npz")
