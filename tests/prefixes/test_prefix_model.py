"""PrefixModel: only the prefix trains, fit() learns, configs and files round-trip."""

import keras
import numpy as np
import pytest

from promptopt.prefixes import KeyValuePrefix
from promptopt.prefixes import PrefixMLP
from promptopt.prefixes import PrefixModel
from promptopt.prefixes import initial_prefix
from promptopt.prefixes import prefix_shape
from promptopt.prefixes import real_word_prefix
from promptopt.prompts import PromptMismatchError
from promptopt.tasks.text_encoder import tokenize_all
from tests.model_factories import FAMILIES
from tests.model_factories import toy_batch
from tests.prefixes.helpers import numpy
from tests.prefixes.helpers import prefix_classifier


@pytest.mark.parametrize("family", FAMILIES)
def test_only_the_prefix_trains_and_the_backbone_is_bit_identical(family):
    model = prefix_classifier(family, prefix_length=3)
    assert [w.path for w in model.trainable_weights] == ["prefix/prefix"]
    before = [np.array(w) for w in model.backbone.weights]
    prefix_before = model.prefix.materialize()
    x, y = toy_batch(n=8)
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    model.fit(x, y, epochs=2, batch_size=4, verbose=0)
    for b, a in zip(before, model.backbone.weights):
        assert np.array_equal(b, np.array(a))
    assert not np.array_equal(prefix_before, model.prefix.materialize())


@pytest.mark.parametrize("family", FAMILIES)
def test_fit_loss_falls_on_a_learnable_toy_task(family):
    model = prefix_classifier(family, prefix_length=3)
    x, y = toy_batch(n=16, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(0.1))
    history = model.fit(x, y, epochs=40, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.5 * losses[0], losses


def test_prefix_mlp_starts_at_the_real_word_prefix_trains_and_is_dropped_at_export(
    tmp_path,
):
    mlp = PrefixMLP(input_dim=8, hidden_units=16)
    model = prefix_classifier("llama", prefix_length=3, reparameterization=mlp)
    words = initial_prefix("vocab", model.adapter, 3, seed=0)
    # fit_output makes MLP(P') equal the real words' keys/values at init.
    np.testing.assert_allclose(model.prefix.materialize(), words, rtol=1e-4, atol=1e-4)
    paths = sorted(w.path for w in model.trainable_weights)
    assert "prefix/prefix_input" in paths and len(paths) == 5
    x, y = toy_batch(n=16, seed=1)
    model.compile(optimizer=keras.optimizers.Adam(0.01))
    history = model.fit(x, y, epochs=30, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    path = model.save_prefix(tmp_path / "p.npz")
    plain = prefix_classifier("llama", prefix_length=3)
    plain.load_prefix(path)  # no MLP: the exported prefix alone
    np.testing.assert_allclose(numpy(plain(x)), numpy(model(x)), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_config_round_trip(family):
    model = prefix_classifier(family, prefix_length=2)
    config = model.get_config()
    clone = PrefixModel.from_config(config)
    assert clone.get_config() == config
    clone.set_weights(model.get_weights())
    x, _ = toy_batch(n=2)
    np.testing.assert_allclose(numpy(clone(x)), numpy(model(x)), atol=1e-6)


def test_keras_save_and_load_round_trip_with_the_mlp(tmp_path):
    model = prefix_classifier(
        "gpt2", prefix_length=2, reparameterization=PrefixMLP(8, 16)
    )
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    x, _ = toy_batch(n=2)
    np.testing.assert_allclose(numpy(loaded(x)), numpy(model(x)), atol=1e-6)


@pytest.mark.parametrize("family", FAMILIES)
def test_prefix_file_round_trip(family, tmp_path):
    model = prefix_classifier(family, prefix_length=2, seed=0)
    model.prefix.assign(model.prefix.materialize() + 0.5)
    path = model.save_prefix(tmp_path / "p.npz")
    other = prefix_classifier(family, prefix_length=2, seed=0)
    other.load_prefix(path)
    assert np.array_equal(other.prefix.materialize(), model.prefix.materialize())
    x, _ = toy_batch(n=2)
    np.testing.assert_array_equal(numpy(other(x)), numpy(model(x)))


def test_prefix_file_refuses_other_weights_and_other_shapes(tmp_path):
    path = prefix_classifier("gpt2", prefix_length=2, seed=0).save_prefix(tmp_path / "p.npz")
    with pytest.raises(PromptMismatchError, match="embedding hash"):
        prefix_classifier("gpt2", prefix_length=2, seed=1).load_prefix(path)
    with pytest.raises(ValueError, match="Build the model with prefix_length=2"):
        prefix_classifier("gpt2", prefix_length=3, seed=0).load_prefix(path)


def test_t5_prefix_file_records_its_sites(tmp_path):
    model = prefix_classifier("t5", prefix_length=2, sites=("decoder",))
    path = model.save_prefix(tmp_path / "p.npz")
    with pytest.raises(ValueError, match=r"sites=\('decoder',\)"):
        prefix_classifier("t5", prefix_length=2).load_prefix(path)


def test_bad_input_gives_clear_errors():
    with pytest.raises(ValueError) as error:
        prefix_classifier("t5", prefix_length=2, sites=("encoder", "ffn"))
    assert str(error.value) == (
        "sites must be a non-empty subset of ('encoder', 'decoder', 'cross'), "
        "got ('encoder', 'ffn')."
    )
    with pytest.raises(ValueError) as error:
        prefix_classifier("gpt2", prefix_length=2, sites=("encoder",))
    assert str(error.value) == (
        "A decoder-only model has one attention site, 'decoder'; got "
        "sites=('encoder',). Leave sites=None."
    )
    with pytest.raises(ValueError, match="Unknown prefix initializer 'words'"):
        prefix_classifier("gpt2", prefix_initializer="words")
    with pytest.raises(ValueError) as error:
        KeyValuePrefix((2, 3, 4, 2, 8))
    assert str(error.value).startswith("A prefix has shape (L, 2, P, N, D)")


def test_text_initializer_repeats_the_words_to_the_prefix_length():
    model = prefix_classifier("gpt2", prefix_length=5, prefix_initializer="text: great")
    (word,) = tokenize_all(model.tokenizer, [" great"])  # one token
    expected = real_word_prefix(model.adapter, word * 5)
    assert expected.shape == prefix_shape(model.adapter, 5)
    np.testing.assert_array_equal(model.prefix.materialize(), expected)
