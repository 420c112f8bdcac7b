"""`promptopt eval` and `promptopt predict` on saved prompts and prefixes."""

import csv
import json

import numpy as np
import pytest

from promptopt.cli.main import main
from promptopt.tuning.saved_prompt import SavedPrompt
from tests.cli.cli_fixtures import save_tiny_preset
from tests.cli.cli_fixtures import write_data


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A tuned prompt and a tuned prefix on a tiny preset, and the data."""
    root = tmp_path_factory.mktemp("tuned")
    preset = save_tiny_preset(root / "tiny_llama", "llama")
    other = save_tiny_preset(root / "tiny_other", "llama", seed=5)
    data = write_data(root / "data.csv")
    unlabelled = write_data(root / "unlabelled.csv", labelled=False)
    runs = {}
    files = {"prompt": "prompt.npz", "prefix": "prefix.npz", "discrete": "prompt.json",
             "deep_suffix": "prefix.npz"}
    search = ["--forward-calls", "8", "--popsize", "4"]
    for run, method, budget in (
            ("prompt", "prompt", ["--steps", "6"]), ("prefix", "prefix", ["--steps", "6"]),
            ("discrete", "discrete", search),
            ("deep_suffix", "bbtv2", [*search, "--placement", "suffix", "--subspace-dim", "8"])):
        out = root / run
        assert main([
            "tune", "--model", preset, "--train", data, "--test", data,
            "--template", "{review}. It was", "--label-words", "0=terrible,1=great",
            "--prompt-length", "3", "--batch-size", "4", *budget, "--quiet",
            "--method", method, "--output-dir", str(out),
        ]) == 0
        with open(out / "results.json") as f:
            runs[run] = (out / files[run], json.load(f))
    return {"preset": preset, "other": other, "data": data, "unlabelled": unlabelled, **runs}


@pytest.mark.parametrize("method", ["prompt", "prefix", "discrete", "deep_suffix"])
def test_eval_gives_the_accuracy_tune_reported(tuned, method, capsys):
    path, results = tuned[method]
    capsys.readouterr()
    assert main(["eval", "--prompt", str(path), "--data", tuned["data"]]) == 0
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert report["examples"] == 12
    assert report["accuracy"] == pytest.approx(results["test_accuracy_after"], abs=1e-12)


def test_a_deep_suffix_is_tuned_on_shared_heads_and_reloads_with_its_tail(tuned):
    path, results = tuned["deep_suffix"]
    assert [s["evaluator"] for s in results["stages"]] == ["DeepSuffixEvaluator"]
    saved = SavedPrompt.load(path, model_spec=tuned["preset"])
    # "{review}. It was": the tail is the tokens of ". It was".
    tail = len(np.asarray(saved.model.tokenizer(". It was")).reshape(-1))
    assert (saved.model.placement, saved.model.suffix_tail_length) == ("suffix", tail)


@pytest.mark.parametrize("method", ["prompt", "prefix", "discrete"])
@pytest.mark.parametrize("extension", [".csv", ".jsonl"])
def test_predict_writes_classes_and_probabilities(tuned, method, extension, tmp_path, capsys):
    path, _ = tuned[method]
    output = tmp_path / f"predictions{extension}"
    assert main(["predict", "--prompt", str(path), "--data", tuned["unlabelled"],
                 "--output", str(output)]) == 0
    if extension == ".csv":
        with open(output) as f:
            rows = list(csv.DictReader(f))
    else:
        rows = [json.loads(line) for line in output.read_text().splitlines()]
    assert len(rows) == 12
    probabilities = np.array([[float(r["p_0"]), float(r["p_1"])] for r in rows])
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=2e-6)
    assert [r["class"] for r in rows] == [("0", "1")[i] for i in probabilities.argmax(axis=1)]
    # The same predictions as eval's: accuracy recomputed from the file.
    labels = np.array([1] * 6 + [0] * 6)
    capsys.readouterr()
    main(["eval", "--prompt", str(path), "--data", tuned["data"]])
    report = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert np.mean(probabilities.argmax(axis=1) == labels) == pytest.approx(report["accuracy"])


@pytest.mark.parametrize("method", ["prompt", "prefix"])
def test_a_prompt_for_another_model_is_refused(tuned, method, capsys):
    path, _ = tuned[method]
    code = main(["eval", "--prompt", str(path), "--data", tuned["data"], "--model", tuned["other"]])
    assert code == 2
    err = capsys.readouterr().err
    assert "embedding hash" in err and "Load it into the model it was tuned for" in err


def test_eval_of_a_file_that_is_not_a_prompt_is_a_clear_error(tuned, tmp_path, capsys):
    bogus = tmp_path / "bogus.npz"
    np.savez(bogus, values=np.zeros(3))
    assert main(["eval", "--prompt", str(bogus), "--data", tuned["data"]]) == 2
    assert "is not a promptopt prompt file" in capsys.readouterr().err


def test_predict_refuses_an_unknown_output_format(tuned, tmp_path, capsys):
    path, _ = tuned["prompt"]
    code = main(["predict", "--prompt", str(path), "--data", tuned["unlabelled"],
                 "--output", str(tmp_path / "out.xlsx")])
    assert code == 2
    assert "--output must end in .csv or .jsonl, got" in capsys.readouterr().err
