"""PromptRegistry: what a server serves by name, and the files it refuses."""

import numpy as np
import pytest

from promptopt import LanguageModeling
from promptopt import PromptedModel
from promptopt.prefixes import PrefixModel
from promptopt.prefixes.prefix_file import PrefixFile
from promptopt.prompts.prompt_file import PromptFile
from promptopt.prompts.prompt_file import PromptMismatchError
from promptopt.server.prompt_registry import PromptRegistry
from promptopt.server.prompt_registry import UnknownModelError
from tests.tiny_models import tiny_llama


@pytest.fixture(scope="module")
def models():
    backbone, tokenizer = tiny_llama()
    common = dict(tokenizer=tokenizer, model_id="tiny")
    return (
        PromptedModel(backbone, LanguageModeling(), prompt_length=3, **common),
        PrefixModel(backbone, LanguageModeling(), prefix_length=2, **common),
    )


def test_prompts_and_prefixes_load_under_their_names(models, tmp_path):
    prompted, prefixed = models
    registry = PromptRegistry(prompted.adapter, "tiny")
    soft = registry.load("sst2", prompted.save_prompt(tmp_path / "prompt.npz"))
    prefix = registry.load("e2e", prefixed.save_prefix(tmp_path / "prefix.npz"))
    assert [s.name for s in registry.entries()] == ["tiny", "sst2", "e2e"]
    assert (soft.kind, soft.length, prefix.kind, prefix.length) == ("soft_prompt", 3, "prefix", 2)
    np.testing.assert_array_equal(soft.value, prompted.soft_prompt.materialize())
    assert registry.get(None).kind == "base" and registry.get("tiny").length == 0
    assert soft.batch_kind == registry.get(None).batch_kind != prefix.batch_kind
    with pytest.raises(UnknownModelError, match="The model 'nope' does not exist on this "
                       "server. Served models: tiny, sst2, e2e"):
        registry.get("nope")


def test_files_for_another_model_or_shape_are_refused(models, tmp_path):
    prompted, prefixed = models
    registry = PromptRegistry(prompted.adapter, "tiny")
    other = PromptFile(np.zeros((2, 16), "float32"), "other", "0123456789abcdef")
    with pytest.raises(PromptMismatchError, match="was tuned for model 'other' with embedding"):
        registry.load("a", other.save(tmp_path / "other.npz"))
    wide = PromptFile(np.zeros((2, 8), "float32"), "wide", "0123456789abcdef")
    with pytest.raises(PromptMismatchError, match="has hidden size H=8"):
        registry.load("b", wide.save(tmp_path / "wide.npz"))
    shape = (1,) + prefixed.prefix.prefix_shape[1:]  # one layer, not two
    cut = PrefixFile(np.zeros(shape, "float32"), "tiny", prefixed.embedding_hash(), ("decoder",))
    with pytest.raises(ValueError, match=r"but this model's prefix is \(2, 2, 2"):
        registry.load("c", cut.save(tmp_path / "cut.npz"))
    np.save(tmp_path / "bare.npy", np.zeros(3))
    with pytest.raises(ValueError, match="is neither a promptopt prompt file nor a prefix"):
        registry.load("d", tmp_path / "bare.npy")
    with pytest.raises(FileNotFoundError, match="No prompt or prefix file at"):
        registry.load("e", tmp_path / "missing.npz")
    assert [s.name for s in registry.entries()] == ["tiny"]


def test_names_must_be_new_and_plain(models, tmp_path):
    prompted, _ = models
    registry = PromptRegistry(prompted.adapter, "tiny")
    path = prompted.save_prompt(tmp_path / "prompt.npz")
    with pytest.raises(ValueError, match="The name 'tiny' is already served .by the base model"):
        registry.load("tiny", path)
    registry.load("sst2", path)
    with pytest.raises(ValueError, match="'sst2' is already served"):
        registry.load("sst2", path)
    with pytest.raises(ValueError, match="is empty or has surrounding spaces"):
        registry.load(" sst2", path)
