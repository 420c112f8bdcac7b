"""The defining identities of prefix tuning, on tiny GPT-2, Llama and T5."""

import numpy as np
import pytest

from promptopt.adapters import adapter_for
from promptopt.prefixes import PrefixedT5Adapter
from promptopt.prefixes import prefix_shape
from promptopt.prefixes import real_word_prefix
from tests.model_factories import backbone_and_tokenizer
from tests.prefixes.helpers import lm_model
from tests.prefixes.helpers import numpy
from tests.prefixes.helpers import random_ids

# float32 round-off of the same sums taken over differently shaped matmuls.
TOLERANCE = dict(rtol=1e-5, atol=2e-5)


def _lm_inputs(token_ids):
    return {"token_ids": token_ids, "padding_mask": np.ones_like(token_ids)}


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_prefix_length_zero_gives_the_backbones_own_outputs(family):
    model = lm_model(family, prefix_length=0)
    token_ids = random_ids((2, 7))
    mask = np.ones_like(token_ids)
    mask[1, 5:] = 0  # right padding
    hidden = model.bound_adapter().decode(model.adapter.embed_tokens(token_ids), mask)
    own = model.backbone({"token_ids": token_ids, "padding_mask": mask})
    real = mask.astype(bool)
    np.testing.assert_array_equal(numpy(hidden)[real], numpy(own)[real])


def test_prefix_length_zero_gives_t5s_own_outputs():
    model = lm_model("t5", prefix_length=0)
    token_ids, decoder_ids = random_ids((2, 6)), random_ids((2, 4), seed=1)
    mask, decoder_mask = np.ones_like(token_ids), np.ones_like(decoder_ids)
    mask[0, 4:] = 0
    own = model.backbone(
        {
            "encoder_token_ids": token_ids,
            "encoder_padding_mask": mask,
            "decoder_token_ids": decoder_ids,
            "decoder_padding_mask": decoder_mask,
        }
    )
    logits = model(
        {
            "token_ids": token_ids,
            "padding_mask": mask,
            "decoder_token_ids": decoder_ids,
            "decoder_padding_mask": decoder_mask,
        }
    )
    expected = model.adapter.token_logits(own["decoder_sequence_output"])
    np.testing.assert_allclose(numpy(logits), numpy(expected), **TOLERANCE)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_a_prefix_of_real_tokens_equals_prepending_them_as_text(family):
    model = lm_model(family, prefix_length=4)
    words = random_ids((4,), seed=3)
    model.prefix.assign(real_word_prefix(model.adapter, words))
    text = random_ids((3, 6), seed=4)
    with_prefix = numpy(model(_lm_inputs(text)))  # [B, T, V]
    as_text = np.concatenate([np.tile(words, (3, 1)), text], axis=1)
    own = model.backbone(_lm_inputs(as_text))
    expected = numpy(model.adapter.token_logits(own))[:, 4:]
    np.testing.assert_allclose(with_prefix, expected, **TOLERANCE)
    # And the identity is not vacuous: another prefix changes the logits.
    model.prefix.assign(real_word_prefix(model.adapter, random_ids((4,), seed=5)))
    assert np.abs(numpy(model(_lm_inputs(text))) - expected).max() > 1e-2


def test_t5_encoder_prefix_of_real_tokens_equals_prepending_them():
    backbone, _ = backbone_and_tokenizer("t5")
    adapter = adapter_for(backbone)
    words, text = random_ids((1, 4), seed=3), random_ids((1, 6), seed=4)
    full = np.concatenate([words, text], axis=1)
    empty = np.zeros(prefix_shape(adapter, 0), "float32")
    full_run = PrefixedT5Adapter(adapter, empty)
    encoded, key_values = full_run.encode_with_key_values(
        adapter.embed_tokens(full), np.ones_like(full)
    )
    # Bidirectional encoder: the words' keys/values depend on the text, so
    # the prefix is taken from the run over [words; text].
    prefix = numpy(key_values)[0][:, :, :4]  # [L, 2, 4, N, D]
    prefixed = PrefixedT5Adapter(adapter, prefix, sites=("encoder",))
    encoded_text = prefixed.encode(adapter.embed_tokens(text), np.ones_like(text))
    np.testing.assert_allclose(
        numpy(encoded_text), numpy(encoded)[:, 4:], **TOLERANCE
    )


def test_t5_encoder_and_cross_prefixes_reproduce_the_decoders_logits():
    backbone, _ = backbone_and_tokenizer("t5")
    adapter = adapter_for(backbone)
    words, text = random_ids((1, 4), seed=3), random_ids((1, 6), seed=4)
    decoder_ids = random_ids((1, 5), seed=6)
    full = np.concatenate([words, text], axis=1)
    every_site = PrefixedT5Adapter(adapter, np.zeros(prefix_shape(adapter, 0), "float32"))
    encoded, encoder_kv = every_site.encode_with_key_values(
        adapter.embed_tokens(full), np.ones_like(full)
    )
    _, (_, cross_kv) = every_site.decode_with_key_values(
        decoder_ids, np.ones_like(decoder_ids), encoded, np.ones_like(full)
    )
    expected = adapter.decode_from_encoder(
        decoder_ids, np.ones_like(decoder_ids), encoded, np.ones_like(full)
    )
    prefix = np.concatenate(
        [numpy(encoder_kv)[0][:, :, :4], numpy(cross_kv)[0][:, :, :4]], axis=0
    )
    prefixed = PrefixedT5Adapter(adapter, prefix, sites=("encoder", "cross"))
    encoded_text = prefixed.encode(adapter.embed_tokens(text), np.ones_like(text))
    hidden = prefixed.decode_from_encoder(
        decoder_ids, np.ones_like(decoder_ids), encoded_text, np.ones_like(text)
    )
    np.testing.assert_allclose(
        numpy(adapter.token_logits(hidden)),
        numpy(adapter.token_logits(expected)),
        **TOLERANCE,
    )


def test_t5_prefixes_reach_all_three_attention_sites():
    model = lm_model("t5", prefix_length=2, prefix_initializer="random")
    inputs = {
        "token_ids": random_ids((2, 5)),
        "padding_mask": np.ones((2, 5), "int32"),
        "decoder_token_ids": random_ids((2, 3), seed=1),
        "decoder_padding_mask": np.ones((2, 3), "int32"),
    }
    base = numpy(model(inputs))
    prefix = model.prefix.materialize()
    layers = prefix.shape[0] // 3
    for site in range(3):  # encoder, decoder self, cross
        changed = prefix.copy()
        changed[site * layers : (site + 1) * layers] += 1.0
        assert np.abs(numpy(model(inputs, prefix=changed)) - base).max() > 1e-3
