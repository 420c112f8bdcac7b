"""PEFT adapter files on tiny models: layout, the CLI round trip, refusals.

The real-weights comparison with PEFT itself is tests/interop/test_peft_roundtrip.py.
"""

import json
import os

import numpy as np
import pytest

from promptopt.adapters import adapter_for
from promptopt.cli.main import main
from promptopt.interop import safetensors_io
from promptopt.interop.peft_adapter import PEFTAdapter
from promptopt.interop.peft_adapter import PEFTFormatError
from promptopt.prefixes import PrefixFile
from promptopt.prompts import PromptFile
from tests.cli.cli_fixtures import save_tiny_preset
from tests.cli.cli_fixtures import write_data
from tests.tiny_models import tiny_gpt2
from tests.tiny_models import tiny_llama

# Tiny Llama: 2 layers, 4 query heads, 2 key/value heads of 4, H = 16.
LAYERS, KV_HEADS, HEAD_DIM, HIDDEN = 2, 2, 4, 16


@pytest.fixture(scope="module")
def llama_adapter():
    return adapter_for(tiny_llama()[0])


def _prefix(length=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.normal(size=(LAYERS, 2, length, KV_HEADS, HEAD_DIM)).astype("float32")


def test_prompt_config_holds_peft_fields(llama_adapter):
    prompt = np.random.default_rng(0).normal(size=(5, HIDDEN)).astype("float32")
    adapter = PEFTAdapter.for_prompt(prompt, llama_adapter, "org/tiny")
    assert {k: adapter.config[k] for k in (
        "peft_type", "task_type", "num_virtual_tokens", "token_dim", "num_transformer_submodules",
        "num_attention_heads", "num_layers", "base_model_name_or_path", "prompt_tuning_init",
        "inference_mode")} == {
        "peft_type": "PROMPT_TUNING", "task_type": "CAUSAL_LM", "num_virtual_tokens": 5,
        "token_dim": HIDDEN, "num_transformer_submodules": 1, "num_attention_heads": 4,
        "num_layers": LAYERS, "base_model_name_or_path": "org/tiny",
        "prompt_tuning_init": "RANDOM", "inference_mode": True}
    np.testing.assert_array_equal(adapter.prompt(llama_adapter), prompt)


def test_prefix_layout_is_peft_s_layer_kv_head_order(llama_adapter, tmp_path):
    prefix = _prefix()
    adapter = PEFTAdapter.for_prefix(prefix, llama_adapter, "org/tiny")
    assert adapter.tensor.shape == (3, LAYERS * 2 * KV_HEADS * HEAD_DIM)
    # PEFT's get_prompt reads column ((2l + kv) * N + n) * D + d as layer l's
    # key (kv = 0) or value (kv = 1) of KV head n, dimension d.
    for layer, kv, p, n, d in [(0, 0, 0, 0, 0), (1, 1, 2, 1, 3), (1, 0, 1, 0, 2), (0, 1, 2, 1, 1)]:
        column = ((2 * layer + kv) * KV_HEADS + n) * HEAD_DIM + d
        assert adapter.tensor[p, column] == prefix[layer, kv, p, n, d]
    assert adapter.config["token_dim"] == KV_HEADS * HEAD_DIM
    assert adapter.config["num_attention_heads"] == KV_HEADS
    adapter.save(tmp_path)
    np.testing.assert_array_equal(PEFTAdapter.load(tmp_path).prefix(llama_adapter), prefix)


def test_another_hidden_size_is_refused(llama_adapter, tmp_path):
    small = adapter_for(tiny_llama(hidden_dim=8)[0])
    prompt = np.zeros((5, HIDDEN), "float32")
    PEFTAdapter.for_prompt(prompt, llama_adapter, "org/tiny").save(tmp_path)
    with pytest.raises(PEFTFormatError) as error:
        PEFTAdapter.load(tmp_path).prompt(small)
    assert str(error.value) == (
        "This PEFT prompt has token_dim=16 (16 columns), but the model has H=8: it was tuned for "
        "another model. Import it with the --model it was tuned on.")
    PEFTAdapter.for_prefix(_prefix(), llama_adapter, "org/tiny").save(tmp_path / "prefix")
    with pytest.raises(PEFTFormatError, match=r"num_layers, num_attention_heads, token_dim = "
                                              r"\[2, 2, 8\] \(32 columns\), but the model's cache "
                                              r"has 2 layers of 2 key/value heads of 2"):
        PEFTAdapter.load(tmp_path / "prefix").prefix(small)


def test_unreadable_folders_are_refused_with_the_reason(llama_adapter, tmp_path):
    with pytest.raises(FileNotFoundError, match="has no adapter_config.json"):
        PEFTAdapter.load(tmp_path)
    PEFTAdapter.for_prompt(np.zeros((5, HIDDEN), "float32"), llama_adapter, "x").save(tmp_path)
    config = json.loads((tmp_path / "adapter_config.json").read_text())
    (tmp_path / "adapter_config.json").write_text(json.dumps(dict(config, peft_type="LORA")))
    with pytest.raises(PEFTFormatError, match="holds a 'LORA' adapter; promptopt reads PEFT's "
                                              "PROMPT_TUNING and PREFIX_TUNING adapters only"):
        PEFTAdapter.load(tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps(dict(
        config, task_type="SEQ_2_SEQ_LM", num_transformer_submodules=2)))
    with pytest.raises(PEFTFormatError, match="num_transformer_submodules=2"):
        PEFTAdapter.load(tmp_path)
    (tmp_path / "adapter_config.json").write_text(json.dumps(config))
    safetensors_io.save_file({"weight": np.zeros((5, HIDDEN), "float32")},
                             tmp_path / "adapter_model.safetensors")
    with pytest.raises(PEFTFormatError, match=r"has no tensor 'prompt_embeddings' \(it has \['weight'\]\)"):
        PEFTAdapter.load(tmp_path)
    safetensors_io.save_file({"prompt_embeddings": np.zeros((4, HIDDEN), "float32")},
                             tmp_path / "adapter_model.safetensors")
    with pytest.raises(PEFTFormatError, match=r"has shape \[4, 16\], but the config says "
                                              r"num_virtual_tokens=5"):
        PEFTAdapter.load(tmp_path)


# --- the CLI ---------------------------------------------------------------------

@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    root = tmp_path_factory.mktemp("peft_cli")
    presets = {"llama": save_tiny_preset(root / "tiny_llama", "llama"),
               "gpt2": save_tiny_preset(root / "tiny_gpt2", "gpt2")}
    data = write_data(root / "data.csv")
    files = {}
    for method, placement in (("prompt", "prefix"), ("prefix", None), ("prompt", "suffix")):
        out = root / f"{method}_{placement}"
        code = main(["tune", "--model", presets["llama"], "--train", data, "--test", data,
                     "--template", "{review}. It was", "--label-words", "0=terrible,1=great",
                     "--prompt-length", "3", "--batch-size", "4", "--steps", "2", "--method", method,
                     *(["--placement", placement] if placement else []),
                     "--quiet", "--output-dir", str(out)])
        assert code == 0
        files[(method, placement)] = str(out / f"{method}.npz")
    return {"root": root, "presets": presets, "files": files, "data": data}


@pytest.mark.parametrize("method, placement", [("prompt", "prefix"), ("prefix", None)])
def test_export_then_import_gives_back_the_identical_file_contents(tuned, capsys, method, placement):
    source = tuned["files"][(method, placement)]
    out = tuned["root"] / f"export_{method}"
    assert main(["export", "--prompt", source, "--format", "peft", "--output-dir", str(out)]) == 0
    assert sorted(os.listdir(out)) == ["adapter_config.json", "adapter_model.safetensors"]
    config = json.loads((out / "adapter_config.json").read_text())
    assert config["peft_type"] == ("PROMPT_TUNING" if method == "prompt" else "PREFIX_TUNING")
    assert config["base_model_name_or_path"] == "tiny_llama"  # a local preset's own name
    imported = str(tuned["root"] / f"imported_{method}.npz")
    assert main(["import", "--peft", str(out), "--output", imported, "--model",
                 tuned["presets"]["llama"], "--template", "{review}. It was", "--label-words",
                 "0=terrible,1=great"]) == 0
    file_class = PromptFile if method == "prompt" else PrefixFile
    before, after = file_class.load(source), file_class.load(imported)
    np.testing.assert_array_equal(getattr(after, method), getattr(before, method))
    assert (after.model_id, after.embedding_hash) == (before.model_id, before.embedding_hash)
    assert after.extra["task"] == before.extra["task"]
    capsys.readouterr()
    # The imported file is a promptopt prompt like any other: eval scores it the same.
    accuracies = []
    for path in (source, imported):
        assert main(["eval", "--prompt", path, "--data", tuned["data"]]) == 0
        accuracies.append(json.loads(capsys.readouterr().out.strip().splitlines()[-1])["accuracy"])
    assert accuracies[0] == accuracies[1]


def test_import_into_another_model_is_refused_and_stamps_the_target(tuned, capsys):
    out = tuned["root"] / "export_for_gpt2"
    assert main(["export", "--prompt", tuned["files"][("prompt", "prefix")], "--format", "peft",
                 "--output-dir", str(out), "--base-model", "org/tiny-llama"]) == 0
    assert json.loads((out / "adapter_config.json").read_text())["base_model_name_or_path"] == \
        "org/tiny-llama"
    # Same H = 16: the import is allowed, and the file is stamped for the model given.
    imported = str(tuned["root"] / "on_gpt2.npz")
    assert main(["import", "--peft", str(out), "--output", imported, "--model",
                 tuned["presets"]["gpt2"]]) == 0
    assert PromptFile.load(imported).model_id == "tiny_gpt2"
    assert PromptFile.load(imported).extra["task"]["name"] == "language_modeling"
    small = tuned["root"] / "tiny_llama_h8"
    backbone, tokenizer = tiny_llama(hidden_dim=8)
    backbone.save_to_preset(str(small))
    tokenizer.save_to_preset(str(small))
    (small / "promptopt_source.json").write_text(json.dumps({
        "model_id": "tiny_llama_h8", "backbone_kwargs": {"tie_word_embeddings": True},
        "tokenizer_kwargs": {"bos_token": "<s>", "eos_token": "</s>", "misc_special_tokens": []}}))
    capsys.readouterr()
    assert main(["import", "--peft", str(out), "--output", str(tuned["root"] / "x.npz"),
                 "--model", str(small)]) == 2
    assert capsys.readouterr().err.strip() == (
        "promptopt import: error: This PEFT prompt has token_dim=16 (16 columns), but the model "
        "has H=8: it was tuned for another model. Import it with the --model it was tuned on.")


def test_a_suffix_prompt_is_not_exported(tuned, capsys):
    source = tuned["files"][("prompt", "suffix")]
    assert main(["export", "--prompt", source, "--format", "peft", "--output-dir",
                 str(tuned["root"] / "suffix")]) == 2
    assert capsys.readouterr().err.strip() == (
        f"promptopt export: error: {source} was tuned with placement 'suffix' (after the input), "
        "but PEFT always puts the prompt before the input, where this one would mean something "
        "else. Tune with --placement prefix to export to PEFT.")
    assert not os.path.exists(tuned["root"] / "suffix")


# --- against PEFT's own code, on a tiny transformers Llama ------------------------

def _peft():
    for name in ("torch", "transformers", "peft"):
        pytest.importorskip(name, reason=f"{name} is not installed (pip install .[compare])")
    import torch
    from transformers import LlamaConfig
    from transformers import LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=64, hidden_size=HIDDEN, intermediate_size=32,
                         num_hidden_layers=LAYERS, num_attention_heads=4,
                         num_key_value_heads=KV_HEADS, tie_word_embeddings=True)
    return torch, LlamaForCausalLM(config)


def test_peft_reads_our_prefix_as_the_same_per_layer_keys_and_values(llama_adapter, tmp_path):
    torch, base = _peft()
    from peft import PeftModel

    prefix = _prefix()
    PEFTAdapter.for_prefix(prefix, llama_adapter, "org/tiny").save(tmp_path)
    model = PeftModel.from_pretrained(base, str(tmp_path))
    cache = model.get_prompt(batch_size=1)
    for layer in range(LAYERS):
        keys, values = cache.layers[layer].keys, cache.layers[layer].values  # [1, N, P, D]
        np.testing.assert_array_equal(keys[0].detach().numpy(), prefix[layer, 0].transpose(1, 0, 2))
        np.testing.assert_array_equal(values[0].detach().numpy(), prefix[layer, 1].transpose(1, 0, 2))


def test_peft_loads_our_prompt_and_we_load_peft_s(llama_adapter, tmp_path):
    torch, base = _peft()
    from peft import PeftModel
    from peft import PromptTuningConfig
    from peft import get_peft_model

    prompt = np.random.default_rng(1).normal(size=(5, HIDDEN)).astype("float32")
    PEFTAdapter.for_prompt(prompt, llama_adapter, "org/tiny").save(tmp_path / "ours")
    model = PeftModel.from_pretrained(base, str(tmp_path / "ours"))
    np.testing.assert_array_equal(model.get_prompt(batch_size=1)[0].detach().numpy(), prompt)
    theirs = get_peft_model(_peft()[1], PromptTuningConfig(task_type="CAUSAL_LM",
                                                           num_virtual_tokens=4))
    theirs.save_pretrained(str(tmp_path / "theirs"))
    expected = theirs.get_prompt(batch_size=1)[0].detach().numpy()
    np.testing.assert_array_equal(PEFTAdapter.load(tmp_path / "theirs").prompt(llama_adapter),
                                  expected)
