import json
import os

import numpy as np
import pytest

from promptopt.cli.main import main
from promptopt.prompts import PromptFile
from tests.tiny_models import tiny_gpt2

POSITIVE = ["a great film", "great fun", "truly great", "great acting", "so great", "great story"]
NEGATIVE = ["a terrible film", "terrible fun", "truly terrible", "terrible acting", "so terrible", "terrible story"]


@pytest.fixture(scope="module")
def tiny_preset(tmp_path_factory):
    directory = tmp_path_factory.mktemp("preset") / "tiny_gpt2"
    backbone, tokenizer = tiny_gpt2()
    backbone.save_to_preset(str(directory))
    tokenizer.save_to_preset(str(directory))
    return str(directory)


@pytest.fixture
def data_files(tmp_path):
    rows = [(t, 1) for t in POSITIVE] + [(t, 0) for t in NEGATIVE]
    path = tmp_path / "data.csv"
    with open(path, "w") as f:
        f.write("review,label\n")
        for text, label in rows:
            f.write(f"{text},{label}\n")
    return str(path)


def _tune(tiny_preset, data_files, out, *extra):
    return main([
        "tune", "--model", tiny_preset, "--train", data_files, "--dev", data_files,
        "--test", data_files, "--template", "{review}. It was",
        "--label-words", "0=terrible,1=great", "--prompt-length", "3",
        "--epochs", "2", "--batch-size", "4", "--quiet", "--output-dir", str(out), *extra,
    ])


def test_tune_writes_prompt_and_results_only_in_output_dir(tiny_preset, data_files, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert _tune(tiny_preset, data_files, "out") == 0
    assert sorted(os.listdir(work)) == ["out"]
    results = json.loads((work / "out" / "results.json").read_text())
    assert 0.0 <= results["test_accuracy_after"] <= 1.0
    prompt = PromptFile.load(work / "out" / "prompt.npz")
    assert prompt.prompt.shape == (3, 16)
    assert prompt.model_id == "tiny_gpt2"


@pytest.mark.parametrize(
    "flags",
    [
        ("--optimizer", "cma-es", "--forward-calls", "20", "--popsize", "4", "--subspace-dim", "8"),
        ("--optimizer", "cma-es", "--forward-calls", "8", "--popsize", "4", "--then", "backprop", "--then-budget", "3"),
        ("--optimizer", "backprop", "--then", "cma-es", "--then-budget", "8", "--popsize", "4"),
        ("--reparam", "residual",),
        ("--reparam", "residual", "--optimizer", "cma-es", "--forward-calls", "8", "--popsize", "4"),
    ],
)
def test_every_optimizer_and_switch_runs_from_the_cli(tiny_preset, data_files, tmp_path, flags):
    assert _tune(tiny_preset, data_files, tmp_path / "out", *flags) == 0
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    prompt = PromptFile.load(tmp_path / "out" / "prompt.npz").prompt
    assert prompt.shape == (3, 16) and np.isfinite(prompt).all()
    assert results["optimizer"] == flags[flags.index("--optimizer") + 1] if "--optimizer" in flags else "backprop"


def test_template_without_the_text_field_is_a_clear_error(tiny_preset, data_files, tmp_path, capsys):
    code = main([
        "tune", "--model", tiny_preset, "--train", data_files, "--test", data_files,
        "--template", "It was", "--label-words", "0=terrible,1=great",
        "--output-dir", str(tmp_path / "out"),
    ])
    assert code == 2
    assert "Template 'It was' has no text field" in capsys.readouterr().err


def test_empty_data_is_a_clear_error(tiny_preset, tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("review,label\n")
    code = main([
        "tune", "--model", tiny_preset, "--train", str(empty), "--test", str(empty),
        "--template", "{review} It was", "--label-words", "0=terrible,1=great",
        "--output-dir", str(tmp_path / "out"),
    ])
    assert code == 2
    assert "No examples in" in capsys.readouterr().err


def test_label_word_outside_the_vocabulary_is_a_clear_error(tiny_preset, data_files, tmp_path, capsys):
    # The tiny vocabulary has " great" as one token, but not " fantastic".
    code = main([
        "tune", "--model", tiny_preset, "--train", data_files, "--test", data_files,
        "--template", "{review} It was", "--label-words", "0=terrible,1=fantastic",
        "--single-token-labels", "--output-dir", str(tmp_path / "out"),
    ])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Label word ' fantastic' is not in the vocabulary as a single token" in err
    assert not (tmp_path / "out").exists()
