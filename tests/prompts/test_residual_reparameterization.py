import json

import keras
import numpy as np
import pytest

from promptopt.prompts import ResidualReparameterization
from promptopt.prompts import SoftPrompt
from tests.model_factories import classifier
from tests.model_factories import toy_batch


def _layer_norm(h, gamma, beta, eps=1e-5):
    mean = h.mean(-1, keepdims=True)
    var = h.var(-1, keepdims=True)
    return (h - mean) / np.sqrt(var + eps) * gamma + beta


@pytest.mark.parametrize("shared", [True, False])
def test_output_is_prompt_plus_layer_norm_of_the_mlp(shared):
    layer = ResidualReparameterization(bottleneck=5, shared=shared, seed=1)
    prompt = np.random.default_rng(0).normal(size=(3, 8)).astype("float32")
    out = np.asarray(layer(prompt))
    w1, b1, w2, b2 = (np.asarray(w) for w in (layer.down_kernel, layer.down_bias, layer.up_kernel, layer.up_bias))
    gamma, beta = (np.asarray(w) for w in layer.layer_norm.weights)
    if shared:
        h = np.maximum(prompt @ w1 + b1, 0) @ w2 + b2
        assert w1.shape == (8, 5)
    else:
        h = np.stack([np.maximum(prompt[i] @ w1[i] + b1[i], 0) @ w2[i] + b2[i] for i in range(3)])
        assert w1.shape == (3, 8, 5)
    np.testing.assert_allclose(out, prompt + _layer_norm(h, gamma, beta), atol=1e-5)


def test_config_round_trip_inside_soft_prompt():
    layer = SoftPrompt(4, 8, parameterization=ResidualReparameterization(bottleneck=6, shared=False, seed=2))
    layer.build()
    config = layer.get_config()
    clone = SoftPrompt.from_config(json.loads(json.dumps(config)))
    clone.build()
    assert json.dumps(clone.get_config()) == json.dumps(config)
    assert len(clone.weights) == len(layer.weights) == 1 + 4 + 2
    clone.set_weights(layer.get_weights())
    np.testing.assert_array_equal(clone.materialize(), layer.materialize())


def test_mlp_is_trained_by_fit_and_dropped_at_export(tmp_path):
    model = classifier("gpt2", prompt_length=3, parameterization=ResidualReparameterization(bottleneck=4))
    assert len(model.trainable_weights) == 1 + 4 + 2
    x, y = toy_batch(n=8)
    before = [np.array(w) for w in model.soft_prompt.parameterization.weights]
    model.compile(optimizer=keras.optimizers.Adam(0.05))
    model.fit(x, y, epochs=2, verbose=0)
    after = [np.array(w) for w in model.soft_prompt.parameterization.weights]
    assert any(not np.array_equal(a, b) for a, b in zip(before, after))
    path = model.save_prompt(tmp_path / "p.npz")
    plain = classifier("gpt2", prompt_length=3)
    plain.load_prompt(path)
    np.testing.assert_allclose(plain(x), model(x), atol=1e-5)
    with pytest.raises(ValueError, match="has a reparameterization; a prompt file holds the final prompt"):
        model.load_prompt(path)


def test_output_scale_sets_the_initial_size_of_the_residual_term():
    prompt = np.random.default_rng(0).normal(size=(3, 32)).astype("float32")
    for scale in (1.0, 0.1):
        layer = ResidualReparameterization(bottleneck=8, output_scale=scale)
        residual = np.asarray(layer(prompt)) - prompt
        np.testing.assert_allclose(residual.std(axis=-1), scale, rtol=1e-3)


def test_without_layer_norm_the_residual_term_is_the_bare_mlp():
    prompt = np.random.default_rng(0).normal(size=(3, 8)).astype("float32")
    layer = ResidualReparameterization(bottleneck=5, seed=1, layer_norm=False)
    out = np.asarray(layer(prompt))
    w1, b1, w2, b2 = (np.asarray(w) for w in layer.weights)
    assert len(layer.weights) == 4  # no LayerNorm gain or bias
    np.testing.assert_allclose(out, prompt + np.maximum(prompt @ w1 + b1, 0) @ w2 + b2, atol=1e-5)
    clone = ResidualReparameterization.from_config(layer.get_config())
    assert clone.get_config()["layer_norm"] is False


def test_dropout_acts_in_training_only_and_survives_the_config():
    prompt = np.random.default_rng(0).normal(size=(4, 8)).astype("float32")
    plain = ResidualReparameterization(bottleneck=6, seed=1)
    dropped = ResidualReparameterization(bottleneck=6, seed=1, dropout=0.5)
    np.testing.assert_array_equal(np.asarray(dropped(prompt)), np.asarray(plain(prompt)))
    assert not np.allclose(np.asarray(dropped(prompt, training=True)), np.asarray(plain(prompt)))
    assert ResidualReparameterization.from_config(dropped.get_config()).dropout == 0.5
    with pytest.raises(ValueError, match=r"dropout must be in \[0, 1\), got 1.0"):
        ResidualReparameterization(dropout=1.0)
