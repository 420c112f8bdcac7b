"""Checks that the GGUF -> keras-hub conversion of SmolLM2-135M is right.

Fluency alone is not enough: without the RoPE un-permutation the model still
writes fluent text, but its perplexity on plain English rises from about 4.8
to 13.9 (FIELD_NOTES.md). So we bound the perplexity of an encyclopedia-style
paragraph, check that shuffling its words makes it far less likely, and check
a factual greedy completion.
"""

import keras
import numpy as np
import pytest

from promptopt.hub import load_language_model

pytestmark = pytest.mark.slow

WATER_CYCLE = (
    "The water cycle describes how water moves continuously on, above and "
    "below the surface of the Earth. Water evaporates from oceans, lakes and "
    "rivers when it is heated by the Sun. The water vapour rises into the "
    "atmosphere, where it cools and condenses into tiny droplets that form "
    "clouds. When the droplets grow heavy enough, they fall back to the "
    "ground as precipitation, such as rain or snow. Some of this water flows "
    "over the land into streams and rivers, while some soaks into the soil "
    "and becomes groundwater. Eventually, most of the water returns to the "
    "sea, and the cycle begins again."
)


@pytest.fixture(scope="module")
def smollm2(smollm2_preset_dir):
    return load_language_model(str(smollm2_preset_dir))


def _next_token_logits(model, token_ids):
    """Logits (B, T, V) from hidden states (B, T, H) via the tied embedding."""
    token_ids = np.asarray(token_ids, dtype="int32")
    hidden = model.backbone(
        {"token_ids": token_ids, "padding_mask": np.ones_like(token_ids)}
    )
    return model.backbone.token_embedding(hidden, reverse=True)


def _perplexity(model, text):
    token_ids = keras.ops.convert_to_numpy(model.tokenizer(text))[None]
    logits = _next_token_logits(model, token_ids)
    log_probs = keras.ops.convert_to_numpy(
        keras.ops.log_softmax(logits[:, :-1], axis=-1)
    )
    targets = token_ids[:, 1:, None]
    nll = -np.take_along_axis(log_probs, targets, axis=-1).mean()
    return token_ids.shape[1], float(np.exp(nll))


def test_loaded_model_is_smollm2(smollm2):
    assert smollm2.model_id == "smollm2-135m-instruct"
    assert smollm2.backbone.tie_word_embeddings is True
    assert smollm2.backbone.count_params() == pytest.approx(134.5e6, rel=1e-3)
    assert smollm2.tokenizer.start_token == "<|im_start|>"
    assert smollm2.tokenizer.start_token_id == 1
    assert smollm2.tokenizer.end_token_id == 2
    assert smollm2.tokenizer.pad_token_id == 0


def test_perplexity_on_plain_english_is_low_and_shuffling_raises_it(smollm2):
    num_tokens, perplexity = _perplexity(smollm2, WATER_CYCLE)
    words = WATER_CYCLE.split()
    np.random.default_rng(0).shuffle(words)
    _, shuffled_perplexity = _perplexity(smollm2, " ".join(words))
    print(
        f"\nSmolLM2-135M perplexity: {perplexity:.2f} on {num_tokens} tokens; "
        f"shuffled words: {shuffled_perplexity:.1f}"
    )
    assert 80 <= num_tokens <= 150
    assert perplexity < 10
    assert shuffled_perplexity > 20 * perplexity


def test_greedy_continuation_knows_the_capital_of_france(smollm2):
    token_ids = list(
        keras.ops.convert_to_numpy(smollm2.tokenizer("The capital of France is"))
    )
    prompt_length = len(token_ids)
    for _ in range(4):
        logits = _next_token_logits(smollm2, [token_ids])
        token_ids.append(int(keras.ops.argmax(logits[0, -1])))
    continuation = smollm2.tokenizer.detokenize(
        np.asarray(token_ids[prompt_length:])
    )
    continuation = keras.ops.convert_to_numpy(continuation).item()
    if isinstance(continuation, bytes):
        continuation = continuation.decode("utf-8")
    print(f"\nGreedy continuation: {continuation!r}")
    assert "Paris" in continuation
