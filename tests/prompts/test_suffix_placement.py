import numpy as np
import pytest
from keras import ops

from promptopt import PromptedModel
from promptopt import VerbalizerClassification
from promptopt.prompts.suffix_placement import append_prompt
from tests.model_factories import backbone_and_tokenizer
from tests.model_factories import toy_batch
from tests.model_factories import verbalizer


def suffix_classifier(family, prompt_length=3, seed=0):
    backbone, tokenizer = backbone_and_tokenizer(family, seed)
    return PromptedModel(
        backbone,
        VerbalizerClassification(verbalizer(tokenizer), placement="suffix"),
        prompt_length=prompt_length,
        prompt_initializer="random",
        tokenizer=tokenizer,
        seed=seed,
    )


def test_prompt_follows_each_rows_last_token_then_padding():
    embeddings = np.arange(2 * 4 * 1, dtype="float32").reshape(2, 4, 1) + 1
    mask = np.array([[1, 1, 1, 1], [1, 0, 0, 0]], "int32")
    prompt = np.array([[-1.0], [-2.0]], "float32")
    x, out_mask = append_prompt(prompt, embeddings, mask)
    x, out_mask = ops.convert_to_numpy(x)[..., 0], ops.convert_to_numpy(out_mask)
    np.testing.assert_array_equal(x[0], [1, 2, 3, 4, -1, -2])
    np.testing.assert_array_equal(x[1, :3], [5, -1, -2])
    np.testing.assert_array_equal(out_mask, [[1] * 6, [1, 1, 1, 0, 0, 0]])


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_suffix_scores_do_not_depend_on_padding(family):
    model = suffix_classifier(family)
    x, _ = toy_batch(n=6, length=7)
    batched = ops.convert_to_numpy(model(x))
    for row in range(6):
        n = int(x["padding_mask"][row].sum())
        alone = {k: v[row : row + 1, :n] for k, v in x.items()}
        np.testing.assert_allclose(ops.convert_to_numpy(model(alone))[0], batched[row], rtol=1e-5, atol=1e-5)


def test_suffix_and_prefix_agree_without_a_prompt():
    prefix = suffix_classifier("llama", prompt_length=0)
    backbone, tokenizer = prefix.backbone, prefix.tokenizer
    plain = PromptedModel(backbone, VerbalizerClassification(verbalizer(tokenizer)), prompt_length=0)
    x, _ = toy_batch(n=4)
    np.testing.assert_allclose(
        ops.convert_to_numpy(prefix(x)), ops.convert_to_numpy(plain(x)), rtol=1e-6
    )


def test_suffix_prompt_changes_the_scores_and_trains():
    model = suffix_classifier("llama")
    x, y = toy_batch(n=8)
    before = ops.convert_to_numpy(model(x))
    model.compile()
    history = model.fit(x, y, epochs=8, batch_size=8, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    assert not np.allclose(before, ops.convert_to_numpy(model(x)))


def test_suffix_placement_errors_name_the_fix():
    with pytest.raises(ValueError, match="placement must be 'prefix' or 'suffix', got 'middle'"):
        VerbalizerClassification(None, placement="middle")
    backbone, tokenizer = backbone_and_tokenizer("llama")
    from promptopt import Verbalizer

    words = Verbalizer(["0", "1"], {"0": " awful", "1": " great"}, tokenizer)
    with pytest.raises(ValueError, match="placement='suffix' needs single-token label words"):
        VerbalizerClassification(words, placement="suffix")


def test_placement_survives_the_task_config():
    from promptopt.tasks import deserialize_task
    from promptopt.tasks import serialize_task

    task = suffix_classifier("llama").task
    assert deserialize_task(serialize_task(task)).placement == "suffix"
