"""The README's main command, end to end on the embedded SmolLM2 (slow)."""

import json

import pytest

from promptopt.cli.main import main
from promptopt.prompts import PromptFile


@pytest.mark.slow
def test_demo_tune_on_the_embedded_model(smollm2_preset_dir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    code = main(["tune", "--epochs", "2", "--quiet", "--output-dir", "out"])
    output = capsys.readouterr().out
    assert code == 0, output
    assert "Test accuracy before tuning:" in output
    assert "Test accuracy after tuning:" in output
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["model"] == "smollm2-135m-instruct"
    # Two epochs on 24 examples already beat the label-word prompt's guess.
    assert results["test_accuracy_after"] > results["test_accuracy_before"]
    prompt = PromptFile.load(tmp_path / "out" / "prompt.npz")
    assert prompt.prompt.shape == (20, 576)
