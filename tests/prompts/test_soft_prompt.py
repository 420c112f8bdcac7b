import json

import keras
import numpy as np
import pytest

from promptopt.prompts import SoftPrompt


def _rows(length, hidden_dim, seed=0):
    return np.random.default_rng(seed).normal(size=(length, hidden_dim)).astype(
        "float32"
    )


def _config_json(layer):
    return json.dumps(layer.get_config(), sort_keys=True)


@pytest.mark.parametrize("with_parameterization", [False, True])
def test_config_round_trips_to_identical_json(with_parameterization):
    parameterization = (
        keras.layers.Dense(8, activation="relu", name="mlp")
        if with_parameterization
        else None
    )
    layer = SoftPrompt(
        5, 8, parameterization=parameterization, name="my_prompt"
    )
    config = layer.get_config()
    assert config["length"] == 5 and config["hidden_dim"] == 8
    clone = SoftPrompt.from_config(config)
    assert _config_json(clone) == _config_json(layer)
    # Also through Keras' generic (de)serialization, as in a .keras file.
    revived = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(layer)
    )
    assert isinstance(revived, SoftPrompt)
    assert _config_json(revived) == _config_json(layer)
    assert (revived.parameterization is None) == (not with_parameterization)


def test_clone_from_config_computes_the_same_prompt_after_set_weights():
    layer = SoftPrompt(
        4, 6, initial_value=_rows(4, 6), parameterization=keras.layers.Dense(6)
    )
    layer.build()
    clone = SoftPrompt.from_config(layer.get_config())
    clone.build()
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone.materialize(), layer.materialize())


def test_weight_counts_without_and_with_parameterization():
    plain = SoftPrompt(3, 4)
    plain.build()
    assert len(plain.weights) == 1
    assert len(plain.trainable_weights) == 1
    assert len(plain.non_trainable_weights) == 0
    assert tuple(plain.prompt.shape) == (3, 4)

    mlp = SoftPrompt(3, 4, parameterization=keras.layers.Dense(4))
    mlp.build()
    # The prompt, plus the Dense kernel and bias.
    assert len(mlp.trainable_weights) == 3
    assert len(mlp.non_trainable_weights) == 0


def test_initial_value_is_the_variable_and_call_returns_it():
    value = _rows(3, 4)
    layer = SoftPrompt(3, 4, initial_value=value)
    layer.build()
    np.testing.assert_array_equal(np.asarray(layer.prompt), value)
    np.testing.assert_array_equal(np.asarray(layer()), value)


def test_default_initial_value_is_zeros():
    layer = SoftPrompt(2, 3)
    np.testing.assert_array_equal(layer.materialize(), np.zeros((2, 3)))


def test_materialize_equals_call_with_parameterization():
    dense = keras.layers.Dense(4, activation="tanh")
    layer = SoftPrompt(3, 4, initial_value=_rows(3, 4), parameterization=dense)
    layer.build()
    called = keras.ops.convert_to_numpy(layer())
    materialized = layer.materialize()
    assert materialized.dtype == np.float32
    assert materialized.shape == (3, 4)
    np.testing.assert_array_equal(materialized, called)
    # The reparameterization is really applied: tanh(prompt @ W + b).
    kernel, bias = (np.asarray(w) for w in dense.weights)
    expected = np.tanh(_rows(3, 4) @ kernel + bias)
    np.testing.assert_allclose(materialized, expected, atol=1e-6)


def test_materialize_builds_an_unbuilt_layer():
    layer = SoftPrompt(2, 3, initial_value=np.ones((2, 3)))
    assert not layer.built
    np.testing.assert_array_equal(layer.materialize(), np.ones((2, 3)))
    assert layer.built


def test_length_zero_is_an_empty_prompt():
    layer = SoftPrompt(0, 7)
    layer.build()
    assert layer.materialize().shape == (0, 7)
    assert tuple(keras.ops.shape(layer())) == (0, 7)
    assert len(layer.trainable_weights) == 1
    clone = SoftPrompt.from_config(layer.get_config())
    assert clone.length == 0


def test_negative_length_is_refused():
    with pytest.raises(
        ValueError,
        match=r"Prompt length must be >= 0, got -1\. Use 0 for no prompt, or "
        r"a positive number of prompt vectors\.",
    ):
        SoftPrompt(-1, 4)


def test_initial_value_of_the_wrong_shape_is_refused():
    with pytest.raises(
        ValueError,
        match=r"Initial prompt has shape \(3, 5\), but the prompt is \[P, H\] "
        r"= \(3, 4\)\. Pass an array of that shape, or change "
        r"length/hidden_dim to match the array\.",
    ):
        SoftPrompt(3, 4, initial_value=np.zeros((3, 5)))


def test_assign_sets_the_raw_prompt_and_refuses_other_shapes():
    layer = SoftPrompt(2, 3)
    value = _rows(2, 3, seed=4)
    layer.assign(value)  # builds the layer first
    np.testing.assert_array_equal(layer.materialize(), value)
    with pytest.raises(
        ValueError,
        match=r"Cannot assign a prompt of shape \(3, 2\) to a SoftPrompt of "
        r"shape \(2, 3\)\.",
    ):
        layer.assign(np.zeros((3, 2)))
    np.testing.assert_array_equal(layer.materialize(), value)


@pytest.mark.skipif(
    keras.backend.backend() != "tensorflow", reason="uses tf.GradientTape"
)
def test_gradient_reaches_the_prompt_through_the_parameterization():
    import tensorflow as tf

    layer = SoftPrompt(
        2, 3, initial_value=_rows(2, 3), parameterization=keras.layers.Dense(3)
    )
    layer.build()
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.square(layer()))
    grads = tape.gradient(loss, layer.trainable_weights)
    assert all(g is not None for g in grads)
    assert np.abs(np.asarray(grads[0])).sum() > 0


def test_reparameterized_prompt_survives_config_and_keras_file(tmp_path):
    # A built parameterization is revived built (Keras stores its
    # build_config); SoftPrompt.build must not build it a second time.
    from tests.model_factories import classifier
    from tests.model_factories import toy_batch

    model = classifier(
        "gpt2", prompt_length=3, parameterization=keras.layers.Dense(16)
    )
    x, _ = toy_batch(n=2)
    clone = type(model).from_config(model.get_config())
    clone.set_weights(model.get_weights())
    np.testing.assert_array_equal(clone(x), model(x))
    model.save(tmp_path / "m.keras")
    loaded = keras.saving.load_model(tmp_path / "m.keras")
    np.testing.assert_array_equal(
        loaded.soft_prompt.materialize(), model.soft_prompt.materialize()
    )
    np.testing.assert_allclose(loaded(x), model(x), atol=1e-6)
