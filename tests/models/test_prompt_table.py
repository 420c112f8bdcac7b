"""A batch whose rows carry different prompts equals a pass per prompt."""

import numpy as np
import pytest

from promptopt import LanguageModeling
from promptopt.prefixes import PrefixModel
from promptopt import PromptedModel
from promptopt import Verbalizer
from promptopt import VerbalizerClassification
from promptopt.models.prefix_table import PrefixTable
from promptopt.models.prompt_table import PromptTable
from promptopt.models.prompt_table import per_row_class_scores
from tests.tiny_models import tiny_gpt2
from tests.tiny_models import tiny_llama

TEXTS = ["a great film. It was", "so", "truly terrible acting. It was", "great fun", "a film"]
# Prompt lengths 3, 0 (the base model) and 5: rows of one batch differ in P.
LENGTHS = (3, 0, 5)
PROMPT_IDS = [2, 0, 1, 2, 0]


def _backbone(family):
    return tiny_gpt2() if family == "gpt2" else tiny_llama()


def _prompts(hidden_dim=16, seed=3):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(n, hidden_dim)).astype("float32") for n in LENGTHS]


def _classifier(backbone, tokenizer, prompt):
    task = VerbalizerClassification(
        Verbalizer(["0", "1"], {"0": [" terrible"], "1": [" great", " good"]}, tokenizer)
    )
    return PromptedModel(
        backbone, task, prompt_length=len(prompt), prompt_initializer=prompt,
        tokenizer=tokenizer,
    )


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_mixed_soft_prompt_scores_equal_a_pass_per_prompt(family):
    backbone, tokenizer = _backbone(family)
    prompts = _prompts()
    model = _classifier(backbone, tokenizer, prompts[0])

    mixed = per_row_class_scores(model, TEXTS, PromptTable(prompts), PROMPT_IDS, batch_size=8)
    for row, (text, n) in enumerate(zip(TEXTS, PROMPT_IDS)):
        alone = np.asarray(model(model.encode_texts([text]), prompt=prompts[n]))
        np.testing.assert_allclose(mixed[row], alone[0], atol=1e-5)
    np.testing.assert_array_equal(
        model.classify(TEXTS, prompts=PromptTable(prompts), prompt_ids=PROMPT_IDS),
        mixed.argmax(axis=-1),
    )
    # The prompts matter: the same texts under one prompt score otherwise.
    same = per_row_class_scores(model, TEXTS, PromptTable(prompts), [0] * len(TEXTS))
    assert np.abs(same - mixed).max() > 1e-3


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_mixed_soft_prompt_generation_equals_generation_per_prompt(family):
    backbone, tokenizer = _backbone(family)
    prompts = _prompts()
    mixed = PromptedModel(backbone, LanguageModeling(), prompt_length=0, tokenizer=tokenizer)
    got = mixed.generate(TEXTS, max_new_tokens=6, prompts=PromptTable(prompts),
                         prompt_ids=PROMPT_IDS)
    for text, n, out in zip(TEXTS, PROMPT_IDS, got):
        alone = PromptedModel(backbone, LanguageModeling(), prompt_length=LENGTHS[n],
                              prompt_initializer=prompts[n], tokenizer=tokenizer)
        assert alone.generate([text], max_new_tokens=6) == [out]
    assert got != mixed.generate(TEXTS, max_new_tokens=6, prompts=PromptTable(prompts),
                                 prompt_ids=[1] * len(TEXTS))


def test_a_row_may_continue_its_prompt_alone():
    backbone, tokenizer = tiny_llama()
    prompts = _prompts()
    model = PromptedModel(backbone, LanguageModeling(), prompt_length=0, tokenizer=tokenizer)
    table = PromptTable(prompts)
    [mixed, _] = model.generate(["", "so"], max_new_tokens=4, prompts=table, prompt_ids=[0, 1])
    alone = PromptedModel(backbone, LanguageModeling(), prompt_length=3,
                          prompt_initializer=prompts[0], tokenizer=tokenizer)
    assert alone.generate([""], max_new_tokens=4) == [mixed]


def _prefix_model(backbone, tokenizer, seed):
    return PrefixModel(backbone, LanguageModeling(), prefix_length=2,
                       prefix_initializer="random", tokenizer=tokenizer, seed=seed)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_mixed_prefixes_equal_a_pass_per_prefix(family):
    backbone, tokenizer = _backbone(family)
    models = [_prefix_model(backbone, tokenizer, seed) for seed in (1, 2)]
    prefixes = [m.prefix.materialize() for m in models]
    ids = [1, 0, 0, 1, 1]
    table = PrefixTable(prefixes)
    got = models[0].generate(TEXTS, max_new_tokens=5, prompts=table, prompt_ids=ids)
    for text, n, out in zip(TEXTS, ids, got):
        assert models[n].generate([text], max_new_tokens=5) == [out]
    x = models[0].encode_texts(TEXTS)
    adapter, _ = table.bind(models[0].adapter, ids, [[]] * len(TEXTS))
    mixed = np.asarray(models[0].task(adapter, np.zeros((0, 16), "float32"), x))
    for row, n in enumerate(ids):
        alone = np.asarray(models[n](models[n].encode_texts([TEXTS[row]])))
        length = int(x["padding_mask"][row].sum())
        np.testing.assert_allclose(mixed[row, :length], alone[0, :length], atol=1e-5)


def test_bad_tables_and_ids_are_refused_with_the_fix():
    backbone, tokenizer = tiny_llama()
    model = PromptedModel(backbone, LanguageModeling(), prompt_length=0, tokenizer=tokenizer)
    table = PromptTable(_prompts())
    with pytest.raises(ValueError, match="Got 1 prompt_ids for 2 texts; give one prompt id"):
        model.generate(["a", "b"], prompts=table, prompt_ids=[0])
    with pytest.raises(ValueError, match=r"must index the 3 prompts, i.e. lie in \[0, 2\]; got \[3\]"):
        model.generate(["a"], prompts=table, prompt_ids=[3])
    with pytest.raises(ValueError, match="one H; got shapes"):
        PromptTable([np.zeros((2, 16)), np.zeros((2, 8))])
    with pytest.raises(ValueError, match="H=8, but this model has H=16"):
        model.generate(["a"], prompts=PromptTable([np.zeros((2, 8))]), prompt_ids=[0])
    with pytest.raises(ValueError, match="of one shape"):
        PrefixTable([np.zeros((2, 2, 1, 2, 4)), np.zeros((2, 2, 3, 2, 4))])
