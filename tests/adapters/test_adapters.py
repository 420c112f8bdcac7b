import keras
import keras_hub
import numpy as np
import pytest
import tensorflow as tf

from promptopt import LanguageModeling
from promptopt import PromptedModel
from promptopt.adapters import adapter_for
from tests.model_factories import classifier
from tests.model_factories import toy_batch


def _tiny_gemma():
    return keras_hub.models.GemmaBackbone(
        vocabulary_size=300, num_layers=2, num_query_heads=2, num_key_value_heads=1,
        hidden_dim=16, intermediate_dim=32, head_dim=8,
    )


def _tiny_mistral():
    return keras_hub.models.MistralBackbone(
        vocabulary_size=300, num_layers=2, num_query_heads=4, num_key_value_heads=2,
        hidden_dim=16, intermediate_dim=32,
    )


@pytest.mark.parametrize("make", [_tiny_gemma, _tiny_mistral], ids=["gemma", "mistral"])
def test_zero_length_prompt_matches_other_decoder_families(make):
    keras.utils.set_random_seed(0)
    backbone = make()
    model = PromptedModel(backbone, LanguageModeling(), prompt_length=0)
    x, _ = toy_batch(n=3, length=5)
    hidden = backbone(x)
    expected = model.adapter.token_logits(hidden)
    mask = x["padding_mask"][:, :, None].astype(bool)
    np.testing.assert_allclose(
        np.where(mask, model(x), 0), np.where(mask, expected, 0), atol=1e-5
    )


def test_unsupported_backbone_is_a_clear_error():
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=30, num_layers=1, num_heads=1, hidden_dim=4,
        intermediate_dim=8, max_sequence_length=8,
    )
    with pytest.raises(ValueError, match="No promptopt adapter for BertBackbone. Supported backbones: GPT2Backbone"):
        adapter_for(backbone)


def test_fit_on_a_tf_data_pipeline():
    model = classifier("llama", prompt_length=3)
    x, y = toy_batch(n=16, seed=1)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(16, seed=0).batch(8)
    model.compile(optimizer=keras.optimizers.Adam(0.1))
    history = model.fit(dataset, epochs=20, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert "accuracy" in history.history
