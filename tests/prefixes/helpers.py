"""Tiny prefixed models shared by the prefix tests."""

import numpy as np
from keras import ops

from promptopt import LanguageModeling
from promptopt import VerbalizerClassification
from promptopt.prefixes import PrefixModel
from tests.model_factories import backbone_and_tokenizer
from tests.model_factories import verbalizer


def lm_model(family, prefix_length=3, seed=0, **kwargs):
    backbone, tokenizer = backbone_and_tokenizer(family, seed)
    return PrefixModel(
        backbone,
        LanguageModeling(),
        prefix_length=prefix_length,
        tokenizer=tokenizer,
        model_id=f"tiny-{family}",
        seed=seed,
        **kwargs,
    )


def prefix_classifier(family, prefix_length=3, seed=0, **kwargs):
    backbone, tokenizer = backbone_and_tokenizer(family, seed)
    return PrefixModel(
        backbone,
        VerbalizerClassification(verbalizer(tokenizer)),
        prefix_length=prefix_length,
        tokenizer=tokenizer,
        model_id=f"tiny-{family}",
        seed=seed,
        **kwargs,
    )


def random_ids(shape, seed=0):
    return np.random.default_rng(seed).integers(40, 200, size=shape).astype("int32")


def numpy(x):
    return np.asarray(ops.convert_to_numpy(x))
