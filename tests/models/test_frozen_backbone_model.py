"""FrozenBackboneModel: what PromptedModel and PrefixModel take from it."""

import numpy as np
import pytest
from keras import ops

from promptopt import LanguageModeling
from promptopt import PromptedModel
from promptopt import VerbalizerClassification
from promptopt.models import FrozenBackboneModel
from promptopt.prefixes import PrefixModel
from tests.model_factories import backbone_and_tokenizer
from tests.model_factories import classifier
from tests.model_factories import toy_batch
from tests.model_factories import verbalizer
from tests.prefixes.helpers import prefix_classifier

BOTH = {
    "PromptedModel": (classifier, 0.03),
    "PrefixModel": (prefix_classifier, 1e-3),
}


class BareModel(FrozenBackboneModel):
    """The docstring's example: nothing trained, an empty prompt."""

    default_learning_rate = 0.01

    def _adapter_and_prompt(self, trained=None):
        return self.adapter, ops.zeros((0, self.adapter.hidden_dim))

    def call(self, inputs, training=False):
        return self.task(*self._adapter_and_prompt(), inputs)


@pytest.mark.parametrize("name", sorted(BOTH))
def test_compile_defaults_come_from_the_base(name):
    make, learning_rate = BOTH[name]
    model = make("gpt2")
    assert isinstance(model, FrozenBackboneModel)
    assert not model.backbone.trainable
    model.compile()
    assert type(model.optimizer).__name__ == "AdamW"
    assert np.isclose(float(model.optimizer.learning_rate), learning_rate)
    assert float(model.optimizer.weight_decay) == 0.0
    x, y = toy_batch(n=4)
    metrics = model.evaluate(x, y, verbose=0, return_dict=True)
    assert set(metrics) == {"loss", "accuracy"}


@pytest.mark.parametrize("model_class", [PromptedModel, PrefixModel])
def test_text_without_a_tokenizer_names_the_model_class(model_class):
    backbone, _ = backbone_and_tokenizer("gpt2")
    model = model_class(backbone, LanguageModeling(), 2)
    with pytest.raises(ValueError) as error:
        model.encode_texts(["hello"])
    assert str(error.value) == (
        "This model has no tokenizer; pass tokenizer= to "
        f"{model_class.__name__}, or feed token_ids/padding_mask yourself."
    )


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_both_models_serialize_the_shared_arguments_alike(family):
    backbone, tokenizer = backbone_and_tokenizer(family)
    task = VerbalizerClassification(verbalizer(tokenizer))
    prompted = PromptedModel(backbone, task, 2, tokenizer=tokenizer, seed=3)
    prefixed = PrefixModel(backbone, task, 2, tokenizer=tokenizer, seed=3)
    shared = {"backbone", "task", "tokenizer", "model_id", "seed", "max_length"}
    a, b = prompted.get_config(), prefixed.get_config()
    assert shared < set(a) and shared < set(b)
    for key in shared:
        assert a[key] == b[key], key
    # One backbone, one fingerprint: prompts and prefixes are checked alike.
    assert prompted.embedding_hash() == prefixed.embedding_hash()


def test_a_subclass_only_says_how_its_tensor_reaches_the_task():
    backbone, tokenizer = backbone_and_tokenizer("gpt2")
    bare = BareModel(backbone, LanguageModeling(), tokenizer=tokenizer)
    empty = PromptedModel(
        backbone, LanguageModeling(), prompt_length=0, tokenizer=tokenizer
    )
    x = bare.encode_texts(["a tiny text", "another"])
    np.testing.assert_allclose(
        ops.convert_to_numpy(bare(x)), ops.convert_to_numpy(empty(x)), atol=1e-6
    )
    texts = ["a tiny text"]
    assert bare.generate(texts, max_new_tokens=3) == empty.generate(
        texts, max_new_tokens=3
    )
    config = bare.get_config()
    assert BareModel.from_config(config).get_config() == config


def test_a_subclass_without_the_hook_says_what_is_missing():
    backbone, tokenizer = backbone_and_tokenizer("gpt2")
    model = FrozenBackboneModel(backbone, LanguageModeling(), tokenizer)
    with pytest.raises(NotImplementedError, match="define _adapter_and_prompt"):
        model.generate(["hello"], max_new_tokens=1)
