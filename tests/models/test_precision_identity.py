"""Saved prompts and prefixes load across float32 and bfloat16 copies of a model."""

import hashlib
import json

import numpy as np
import pytest

from promptopt import PromptedModel
from promptopt import PromptMismatchError
from promptopt import VerbalizerClassification
from promptopt.models.precision import cast_backbone
from promptopt.prefixes import PrefixModel
from tests.model_factories import backbone_and_tokenizer
from tests.model_factories import verbalizer


def _models(model_class, family, seed=0, length=3):
    """The same backbone as float32 and bfloat16 models: `(full, half)`."""
    backbone, tokenizer = backbone_and_tokenizer(family, seed)
    task = VerbalizerClassification(verbalizer(tokenizer))

    def build(b):
        return model_class(
            b, task, length, tokenizer=tokenizer, model_id=f"tiny-{family}"
        )

    return build(backbone), build(cast_backbone(backbone, "bfloat16"))


def _trained_prompt(model, seed):
    prompt = np.random.default_rng(seed).normal(size=(3, 16)).astype("float32")
    model.soft_prompt.assign(prompt)
    return prompt


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_a_prompt_saved_in_bfloat16_loads_into_float32_exactly(family, tmp_path):
    full, half = _models(PromptedModel, family)
    assert half.backbone.token_embedding.embeddings.dtype == "bfloat16"
    prompt = _trained_prompt(half, seed=1)
    path = half.save_prompt(tmp_path / "p.npz")
    assert not np.array_equal(full.soft_prompt.materialize(), prompt)
    full.load_prompt(path)
    np.testing.assert_array_equal(full.soft_prompt.materialize(), prompt)


@pytest.mark.parametrize("family", ["llama", "gpt2"])
def test_a_prompt_saved_in_float32_loads_into_bfloat16_exactly(family, tmp_path):
    full, half = _models(PromptedModel, family)
    prompt = _trained_prompt(full, seed=2)
    half.load_prompt(full.save_prompt(tmp_path / "p.npz"))
    np.testing.assert_array_equal(half.soft_prompt.materialize(), prompt)
    assert half.soft_prompt.weights[0].dtype == "float32"


def test_a_prefix_loads_across_precisions_both_ways(tmp_path):
    full, half = _models(PrefixModel, "llama", length=2)
    shape = full.prefix.prefix_shape
    prefix = np.random.default_rng(3).normal(size=shape).astype("float32")
    half.prefix.assign(prefix)
    full.load_prefix(half.save_prefix(tmp_path / "half.npz"))
    np.testing.assert_array_equal(full.prefix.materialize(), prefix)
    full.prefix.assign(prefix + 1.0)
    half.load_prefix(full.save_prefix(tmp_path / "full.npz"))
    np.testing.assert_array_equal(half.prefix.materialize(), prefix + 1.0)


def test_a_prompt_for_another_backbone_is_still_refused(tmp_path):
    _, half = _models(PromptedModel, "llama", seed=0)
    other, other_half = _models(PromptedModel, "llama", seed=1)
    path = half.save_prompt(tmp_path / "p.npz")
    for model in (other, other_half):
        before = model.soft_prompt.materialize()
        with pytest.raises(
            PromptMismatchError,
            match=r"tuned for model 'tiny-llama' with embedding hash "
            r"[0-9a-f]{16}, but this model \('tiny-llama'\) has embedding hash "
            r"[0-9a-f]{16}: the weights differ, so the prompt would mean "
            r"something else\. Load it into the model it was tuned for\.$",
        ):
            model.load_prompt(path)
        np.testing.assert_array_equal(model.soft_prompt.materialize(), before)


def test_a_prefix_for_another_backbone_is_still_refused(tmp_path):
    _, half = _models(PrefixModel, "gpt2", seed=0, length=2)
    other, _ = _models(PrefixModel, "gpt2", seed=1, length=2)
    with pytest.raises(PromptMismatchError, match="Load it into the model it was tuned for"):
        other.load_prefix(half.save_prefix(tmp_path / "p.npz"))


def _version_1_hash(table):
    # The version 1 fingerprint, written out: shape, then exact float32 bytes.
    array = np.ascontiguousarray(table, dtype="float32")
    digest = hashlib.sha256(str(array.shape).encode())
    digest.update(array.tobytes())
    return digest.hexdigest()[:16]


def test_an_old_prompt_file_loads_into_the_float32_model_only(tmp_path):
    full, half = _models(PromptedModel, "gpt2")
    prompt = np.random.default_rng(4).normal(size=(3, 16)).astype("float32")
    metadata = {  # exactly what version 1 save_prompt wrote
        "format": "promptopt.prompt",
        "format_version": 1,
        "model_id": "tiny-gpt2",
        "hidden_dim": 16,
        "prompt_length": 3,
        "embedding_hash": _version_1_hash(full.embedding_table()),
        "extra": {},
    }
    path = tmp_path / "old.npz"
    np.savez(path, prompt=prompt, metadata=np.array(json.dumps(metadata)))
    full.load_prompt(path)
    np.testing.assert_array_equal(full.soft_prompt.materialize(), prompt)
    # Its hash is of the float32 bytes, so the bfloat16 copy refuses it and
    # says how to get a file that loads into both.
    with pytest.raises(
        PromptMismatchError,
        match=r"Its format version 1 hash is of the exact float32 weights: "
        r"load it into the float32 model, not a cast_backbone copy, and save "
        r"it again to get a file that loads into either precision\.",
    ):
        half.load_prompt(path)
    half.load_prompt(full.save_prompt(tmp_path / "renewed.npz"))
    np.testing.assert_array_equal(half.soft_prompt.materialize(), prompt)


def test_an_old_prefix_file_without_a_version_loads_into_float32(tmp_path):
    full, _ = _models(PrefixModel, "llama", length=2)
    prefix = np.random.default_rng(5).normal(size=full.prefix.prefix_shape)
    metadata = {  # version 1 prefix files stated no format_version
        "format": "promptopt.prefix",
        "model_id": "tiny-llama",
        "embedding_hash": _version_1_hash(full.embedding_table()),
        "sites": ["decoder"],
        "shape": list(prefix.shape),
        "extra": {},
    }
    path = tmp_path / "old.npz"
    np.savez(path, prefix=prefix.astype("float32"), metadata=np.array(json.dumps(metadata)))
    full.load_prefix(path)
    np.testing.assert_array_equal(full.prefix.materialize(), prefix.astype("float32"))


def test_the_model_hash_is_the_same_in_both_precisions_and_differs_by_seed():
    full, half = _models(PromptedModel, "llama")
    other, _ = _models(PromptedModel, "llama", seed=1)
    assert full.embedding_hash() == half.embedding_hash()
    assert full.embedding_hash() != other.embedding_hash()
    # Version 1 is the exact float32 bytes: the copies differ there.
    assert full.embedding_hash(1) == _version_1_hash(full.embedding_table())
    assert full.embedding_hash(1) != half.embedding_hash(1)
