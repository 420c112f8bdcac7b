"""Tiny prompted models of every family, plus a learnable toy task."""

import numpy as np

from promptopt import PromptedModel
from promptopt import Verbalizer
from promptopt import VerbalizerClassification
from tests.tiny_models import tiny_gpt2
from tests.tiny_models import tiny_llama
from tests.tiny_models import tiny_t5

FAMILIES = ("gpt2", "llama", "t5")
CLASSES = ("0", "1")
LABEL_WORDS = {"0": " terrible", "1": " great"}
# Word ids for the T5 tests, which use token ids directly (no tokenizer).
T5_LABEL_IDS = [[11], [12]]


def backbone_and_tokenizer(family, seed=0):
    if family == "gpt2":
        return tiny_gpt2(seed=seed)
    if family == "llama":
        return tiny_llama(seed=seed)
    return tiny_t5(seed=seed), None


def verbalizer(tokenizer):
    if tokenizer is None:
        return Verbalizer(CLASSES, LABEL_WORDS, token_ids=T5_LABEL_IDS)
    return Verbalizer(CLASSES, LABEL_WORDS, tokenizer)


def classifier(family, prompt_length=4, seed=0, **kwargs):
    backbone, tokenizer = backbone_and_tokenizer(family, seed)
    task = VerbalizerClassification(verbalizer(tokenizer))
    return PromptedModel(
        backbone,
        task,
        prompt_length=prompt_length,
        tokenizer=tokenizer,
        model_id=f"tiny-{family}",
        seed=seed,
        **kwargs,
    )


def toy_batch(n=16, length=6, vocabulary_size=200, seed=0):
    """Random token sequences labelled by their last token (30 or 31).

    The frozen random model does not map token 30/31 to " terrible"/" great";
    a falling loss shows the prompt learned to.
    """
    rng = np.random.default_rng(seed)
    lengths = rng.integers(2, length + 1, size=n)
    labels = (np.arange(n) % 2).astype("int32")
    token_ids = np.zeros((n, length), "int32")
    mask = np.zeros((n, length), "int32")
    for i, l in enumerate(lengths):
        token_ids[i, :l] = rng.integers(40, vocabulary_size, size=l)
        token_ids[i, l - 1] = 30 + labels[i]
        mask[i, :l] = 1
    return {"token_ids": token_ids, "padding_mask": mask}, labels
