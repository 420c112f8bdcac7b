import numpy as np
import pytest
from keras import ops

from promptopt import PromptedModel
from promptopt import VerbalizerClassification
from promptopt.evaluators import KerasEvaluator
from promptopt.models.precision import cast_backbone
from tests.model_factories import backbone_and_tokenizer
from tests.model_factories import toy_batch
from tests.model_factories import verbalizer


def test_bfloat16_copy_keeps_the_original_and_nearly_its_scores():
    backbone, tokenizer = backbone_and_tokenizer("llama")
    half = cast_backbone(backbone, "bfloat16")
    assert backbone.token_embedding.embeddings.dtype == "float32"
    assert half.token_embedding.embeddings.dtype == "bfloat16"
    assert half.tie_word_embeddings == backbone.tie_word_embeddings
    task = VerbalizerClassification(verbalizer(tokenizer))
    full = PromptedModel(backbone, task, prompt_length=2, prompt_initializer="labels")
    low = PromptedModel(half, task, prompt_length=2, prompt_initializer=full.soft_prompt.materialize())
    x, y = toy_batch(n=6)
    a, b = ops.convert_to_numpy(full(x)), ops.convert_to_numpy(low(x))
    assert b.dtype == np.float32
    np.testing.assert_allclose(b, a, atol=0.05 * np.abs(a).max())
    # The prompt stays float32 and gets a gradient through the cast.
    assert low.soft_prompt.weights[0].dtype == "float32"
    grads = KerasEvaluator(low, x, y, batch_size=6).evaluate(
        low.soft_prompt.materialize()[None], 0, compute_gradients=True
    ).grads
    assert np.isfinite(grads).all() and np.abs(grads).sum() > 0


def test_unknown_dtype_is_refused():
    backbone, _ = backbone_and_tokenizer("gpt2")
    with pytest.raises(ValueError, match="dtype must be 'bfloat16', 'float16' or 'float32', got 'int8'"):
        cast_backbone(backbone, "int8")
