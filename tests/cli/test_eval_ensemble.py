"""`promptopt eval` with several --prompt files: the ensemble from the CLI."""

import json

import numpy as np
import pytest

from promptopt.cli.main import main
from promptopt.tuning.saved_prompt import SavedPrompt
from tests.cli.cli_fixtures import save_tiny_preset
from tests.cli.cli_fixtures import write_data


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """Three prompt.npz files of one task (training seeds 0-2) and a prefix.npz."""
    root = tmp_path_factory.mktemp("ensemble")
    preset = save_tiny_preset(root / "tiny_llama", "llama")
    data = write_data(root / "data.csv")
    paths = []
    for seed, method in ((0, "prompt"), (1, "prompt"), (2, "prompt"), (0, "prefix")):
        out = root / f"{method}{seed}"
        code = main(["tune", "--model", preset, "--train", data, "--test", data,
                     "--template", "{review}. It was", "--label-words", "0=terrible,1=great",
                     "--prompt-length", "3", "--batch-size", "4", "--steps", "3", "--seed", str(seed),
                     "--method", method, "--quiet", "--output-dir", str(out)])
        assert code == 0
        paths.append(str(out / f"{method}.npz"))
    return {"data": data, "prompts": paths[:3], "prefix": paths[3]}


def _eval(capsys, *argv):
    code = main(["eval", *argv])
    captured = capsys.readouterr()
    return code, captured


def _result(captured):
    return json.loads(captured.out.strip().splitlines()[-1])


def test_one_prompt_reports_as_before(tuned, capsys):
    code, captured = _eval(capsys, "--prompt", tuned["prompts"][0], "--data", tuned["data"])
    assert code == 0
    result = _result(captured)
    assert result["prompt"] == tuned["prompts"][0]  # a string, not a list
    assert set(result) == {"prompt", "examples", "accuracy", "per_class_recall"}
    assert captured.out.startswith(f"Accuracy {result['accuracy']:.4f} on 12 examples "
                                   f"({tuned['prompts'][0]}).")


@pytest.mark.parametrize("rule", ["mean", "vote"])
def test_several_prompts_score_their_ensemble(tuned, capsys, rule):
    code, captured = _eval(capsys, *sum((["--prompt", p] for p in tuned["prompts"]), []),
                           "--data", tuned["data"], "--ensemble", rule)
    assert code == 0
    result = _result(captured)
    assert result["prompt"] == tuned["prompts"] and result["ensemble"] == rule
    # Each member's accuracy is what `promptopt eval` gives that prompt alone,
    # and the ensemble's follows from the members' probabilities.
    members, labels = [], None
    for path, member_accuracy in zip(tuned["prompts"], result["member_accuracy"]):
        _eval(capsys, "--prompt", path, "--data", tuned["data"])
        saved = SavedPrompt.load(path)
        from promptopt.cli.eval_command import labelled_data

        class Args:
            task, data, template, label_column = None, tuned["data"], None, "label"

        data = labelled_data(Args, saved)
        labels = data.labels
        members.append(saved.probabilities(data.texts))
        assert member_accuracy == pytest.approx(np.mean(members[-1].argmax(-1) == labels))
    members = np.stack(members)
    if rule == "mean":
        expected = members.mean(0).argmax(-1)
    else:
        expected = (members.argmax(-1).sum(0) >= 2).astype(int)
    assert result["accuracy"] == pytest.approx(np.mean(expected == labels))


def test_a_prefix_in_an_ensemble_is_a_clear_error(tuned, capsys):
    code, captured = _eval(capsys, "--prompt", tuned["prompts"][0], "--prompt", tuned["prefix"],
                           "--data", tuned["data"])
    assert code == 2
    assert captured.err.strip() == (
        f"promptopt eval: error: {tuned['prefix']} is not a soft prompt: an ensemble combines "
        "prompt.npz files (`promptopt tune --method prompt`, residual or bbt). Score a prefix or "
        "a text prompt on its own, with one --prompt.")
