"""`promptopt tune`: every method from the CLI, resume, reproduction, errors."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from promptopt.backends.native_bfloat16 import has_native_bfloat16
from promptopt.cli.main import main
from promptopt.runner.checkpoint import load_checkpoint
from promptopt.tuning.config import METHODS
from tests.cli.cli_fixtures import save_tiny_preset
from tests.cli.cli_fixtures import write_data

# Per method: the optimizer that must have run, the file it writes, its
# budget flags for a short run, and the same flags with no budget at all
# (which exports the initial prompt).
METHOD_RUNS = {
    "prompt": ("BackpropOptimizer", "prompt.npz", ["--steps", "12"], ["--steps", "0"]),
    "residual": ("BackpropOptimizer", "prompt.npz", ["--steps", "12"], ["--steps", "0"]),
    "prefix": ("BackpropOptimizer", "prefix.npz", ["--steps", "12", "--lr", "0.05"],
               ["--steps", "0"]),
    "bbt": ("CMAESOptimizer", "prompt.npz",
            ["--forward-calls", "48", "--popsize", "6", "--subspace-dim", "8"],
            ["--forward-calls", "0"]),
    "bbtv2": ("BBTv2Optimizer", "prefix.npz",
              ["--forward-calls", "48", "--popsize", "6", "--subspace-dim", "8"],
              ["--forward-calls", "0"]),
    "discrete": ("DiscretePromptSearch", "prompt.json", ["--forward-calls", "24", "--popsize", "4"],
                 ["--forward-calls", "0"]),
}


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("presets")
    return {
        "llama": save_tiny_preset(root / "tiny_llama", "llama"),
        "llama_other": save_tiny_preset(root / "tiny_llama_other", "llama", seed=1),
        "gpt2": save_tiny_preset(root / "tiny_gpt2", "gpt2"),
    }


@pytest.fixture(scope="module")
def data_file(tmp_path_factory):
    return write_data(tmp_path_factory.mktemp("data") / "data.csv")


def tune_args(preset, data, out, *extra, dev=False):
    return [
        "tune", "--model", preset, "--train", data, "--test", data,
        *(["--dev", data] if dev else []),
        "--template", "{review}. It was", "--label-words", "0=terrible,1=great",
        "--prompt-length", "3", "--batch-size", "4", "--quiet", "--output-dir", str(out), *extra,
    ]


def results_of(out):
    with open(os.path.join(out, "results.json")) as f:
        return json.load(f)


def saved_tensor(out, filename):
    path = os.path.join(out, filename)
    if filename.endswith(".json"):
        with open(path) as f:
            return np.array(json.load(f)["indices"])
    with np.load(path) as data:
        return np.array(data["prefix" if filename.startswith("prefix") else "prompt"])


def test_help_lists_every_method(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["tune", "--help"])
    assert exit_info.value.code == 0
    text = capsys.readouterr().out
    for method in METHODS:
        assert f"  {method} " in text, method
    assert "{prompt,residual,prefix,bbt,bbtv2,discrete}" in text


def test_bbt_uses_the_shared_input_scorer_on_the_whole_training_set(presets, data_file, tmp_path):
    out = tmp_path / "out"
    assert main(tune_args(presets["llama"], data_file, out, "--method", "bbt",
                          *METHOD_RUNS["bbt"][2], "--chunk-size", "5")) == 0
    results = results_of(out)
    (stage,) = results["stages"]
    assert stage["evaluator"] == "SharedInputEvaluator"
    # bfloat16 only where this machine computes it natively (emulated, it is slower).
    assert results["config"]["placement"] == "suffix"
    assert results["config"]["dtype"] == ("bfloat16" if has_native_bfloat16() else "float32")
    assert results["counters"]["forward_calls"] == 48 and results["counters"]["steps"] == 8


def test_bbtv2_defaults_to_a_deep_suffix_on_llama_and_to_a_front_prefix_elsewhere(
        presets, data_file, tmp_path):
    runs = {}
    for family in ("llama", "gpt2"):
        out = tmp_path / family
        assert main(tune_args(presets[family], data_file, out, "--method", "bbtv2",
                              "--forward-calls", "12", "--popsize", "6",
                              "--subspace-dim", "8")) == 0
        runs[family] = results_of(out)
    assert runs["llama"]["config"]["placement"] == "suffix"
    assert runs["llama"]["stages"][0]["evaluator"] == "DeepSuffixEvaluator"
    assert runs["gpt2"]["config"]["placement"] == "prefix"
    assert runs["gpt2"]["stages"][0]["evaluator"] == "PrefixEvaluator"


def _run_until_killed(args, out, minimum_step):
    """Starts `promptopt tune` in a subprocess and SIGKILLs it mid-run."""
    process = subprocess.Popen(
        [sys.executable, "-m", "promptopt.cli.main", *args],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    checkpoint_dir = os.path.join(out, "checkpoint")
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            try:
                checkpoint = load_checkpoint(checkpoint_dir)
            except Exception:  # the file is being replaced; read it again
                checkpoint = None
            if checkpoint is not None and checkpoint.step >= minimum_step:
                process.send_signal(signal.SIGKILL)
                process.wait()
                return load_checkpoint(checkpoint_dir)
            if process.poll() is not None:
                break
            time.sleep(0.005)
        raise AssertionError("the run ended before it could be killed; raise its budget")
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()


# Long enough that the killed run is still going when step 2 is on disk (the
# poll is 5 ms, a step of these tiny models some tens), short enough that the
# two in-process runs after it stay cheap.
RESUME_BUDGETS = {
    "prompt": ["--steps", "16"], "residual": ["--steps", "16"], "prefix": ["--steps", "16"],
    "bbt": ["--forward-calls", "72", "--popsize", "6", "--subspace-dim", "8"],
    "bbtv2": ["--forward-calls", "72", "--popsize", "6", "--subspace-dim", "8"],
    "discrete": ["--forward-calls", "40", "--popsize", "4"],
}


@pytest.mark.parametrize("method", METHODS)
def test_every_method_trains_and_resumes_from_sigkill_to_the_identical_prompt(
        presets, data_file, tmp_path, method):
    optimizer, filename, _, no_budget = METHOD_RUNS[method]
    flags = ["--method", method, *RESUME_BUDGETS[method]]
    killed, reference, start = tmp_path / "killed", tmp_path / "reference", tmp_path / "start"
    checkpoint = _run_until_killed(
        tune_args(presets["llama"], data_file, killed, *flags, dev=True), killed, minimum_step=2)
    assert not checkpoint.stage_finished  # it really stopped midway
    assert not os.path.exists(killed / "results.json")
    assert main(tune_args(presets["llama"], data_file, killed, *flags, dev=True)) == 0
    assert main(tune_args(presets["llama"], data_file, reference, *flags, dev=True)) == 0
    np.testing.assert_array_equal(saved_tensor(killed, filename), saved_tensor(reference, filename))
    assert results_of(killed)["dev_selection"] == results_of(reference)["dev_selection"]

    results = results_of(reference)
    assert [s["optimizer"] for s in results["stages"]] == [optimizer]
    assert results["config"]["method"] == method
    assert results["train_loss_after"] < results["train_loss_before"]
    # Zero budget exports the initial prompt; training moved it.
    assert main(tune_args(presets["llama"], data_file, start, "--method", method, *no_budget)) == 0
    assert results_of(start)["train_loss_after"] == results_of(start)["train_loss_before"]
    assert not np.array_equal(saved_tensor(reference, filename), saved_tensor(start, filename))
    assert sorted(os.listdir(reference)) == sorted(["checkpoint", "results.json", filename])


def test_the_same_config_twice_and_from_results_json_gives_bit_identical_prompts(
        presets, data_file, tmp_path):
    config = {
        "model": presets["llama"], "train": data_file, "dev": data_file, "test": data_file,
        "template": "{review}. It was", "label_words": "0=terrible,1=great",
        "method": "prompt", "then": "bbt", "steps": 6, "then_budget": 12, "popsize": 4,
        "subspace_dim": 8, "prompt_length": 3, "batch_size": 4, "seed": 3,
    }
    path = tmp_path / "run.json"
    path.write_text(json.dumps(config))
    outs = [tmp_path / name for name in ("first", "second", "again")]
    for out in outs[:2]:
        assert main(["tune", "--config", str(path), "--quiet", "--output-dir", str(out)]) == 0
    assert main(["tune", "--config", str(outs[0] / "results.json"), "--quiet",
                 "--output-dir", str(outs[2])]) == 0
    prompts = [saved_tensor(out, "prompt.npz") for out in outs]
    for prompt in prompts[1:]:
        np.testing.assert_array_equal(prompt, prompts[0])
    results = results_of(outs[0])
    # The file's keys, the defaults and the versions are all recorded.
    assert {k: results["config"][k] for k in config} == config
    assert results["config"]["learning_rate"] == 0.03 and results["config"]["weight_decay"] == 0.0
    assert set(results["versions"]) >= {"promptopt", "keras", "keras_hub", "backend"}


def test_flags_override_the_config_file(presets, data_file, tmp_path):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"model": presets["gpt2"], "train": data_file, "test": data_file,
                                "template": "{review}. It was",
                                "label_words": {"0": " terrible", "1": " great"},
                                "steps": 9, "prompt_length": 2}))
    out = tmp_path / "out"
    assert main(["tune", "--config", str(path), "--steps", "2", "--quiet",
                 "--output-dir", str(out)]) == 0
    results = results_of(out)
    assert results["config"]["steps"] == 2 and results["config"]["prompt_length"] == 2
    assert results["counters"]["steps"] == 2
    assert saved_tensor(out, "prompt.npz").shape == (2, 16)


def test_a_backprop_stage_gives_the_same_prompt_alone_and_in_a_multi_stage_run(
        presets, data_file, tmp_path):
    # A second stage with no budget exports what the first stage exported:
    # the gradient stage is the same computation alone or followed by CMA-ES
    # (and a CMA-ES stage the same alone or followed by backprop).
    pairs = [
        (["--method", "prompt", "--steps", "5"],
         ["--method", "prompt", "--steps", "5", "--then", "bbt", "--then-budget", "0"]),
        # One dtype for both: alone, bbt's default depends on the machine's
        # bfloat16; followed by backprop, it is float32.
        (["--method", "bbt", "--forward-calls", "24", "--popsize", "4", "--dtype", "float32"],
         ["--method", "bbt", "--forward-calls", "24", "--popsize", "4", "--then", "prompt",
          "--then-budget", "0", "--dtype", "float32"]),
    ]
    for index, (alone, staged) in enumerate(pairs):
        a, b = tmp_path / f"alone{index}", tmp_path / f"staged{index}"
        assert main(tune_args(presets["llama"], data_file, a, *alone)) == 0
        assert main(tune_args(presets["llama"], data_file, b, *staged)) == 0
        np.testing.assert_array_equal(saved_tensor(a, "prompt.npz"), saved_tensor(b, "prompt.npz"))
        assert len(results_of(b)["stages"]) == 2


def test_a_gradient_stage_after_a_search_trains_at_its_own_batch_size(
        presets, data_file, tmp_path):
    out = tmp_path / "out"
    assert main(tune_args(presets["llama"], data_file, out, "--method", "bbt", "--forward-calls",
                          "8", "--popsize", "4", "--then", "prompt", "--then-budget", "3")) == 0
    counters = results_of(out)["counters"]
    # 2 generations of 4 candidates, then 3 gradient steps of one candidate.
    assert counters["steps"] == 5 and counters["forward_calls"] == 8 + 3


def test_tune_writes_only_in_its_output_dir(presets, data_file, tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(tune_args(presets["gpt2"], data_file, "out", "--steps", "2", dev=True)) == 0
    assert sorted(os.listdir(work)) == ["out"]
    assert saved_tensor(work / "out", "prompt.npz").shape == (3, 16)


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--method", "prompt", "--loss", "negative_accuracy"],
         "--loss negative_accuracy has no gradient, so prompt cannot train on it. Use --loss "
         "cross_entropy or hinge, or a search method (bbt, bbtv2, discrete)."),
        (["--method", "backprop"], "argument --method: invalid choice: 'backprop'"),
        (["--method", "prefix", "--then", "bbt"],
         "--then bbt tunes a soft prompt [P, H], but --method prefix tunes a prefix "
         "[L, 2, P, N, D]; a later stage starts from the earlier stage's tensor. Pair prompt, "
         "residual and bbt, or prefix and bbtv2."),
        (["--method", "bbt", "--then", "prompt", "--loss", "negative_accuracy"],
         "--loss negative_accuracy has no gradient, so prompt cannot train on it."),
        (["--method", "prefix", "--placement", "suffix"],
         "A deep suffix (placement='suffix') needs a Llama-family backbone (rotary positions); "
         "got GPT2Backbone. Use placement='prefix'."),
        (["--popsize", "1"], "--popsize must be at least 2, got 1."),
    ],
)
def test_bad_combinations_are_clear_errors(presets, data_file, tmp_path, capsys, flags, message):
    try:
        code = main(tune_args(presets["gpt2"], data_file, tmp_path / "out", *flags))
    except SystemExit as error:  # argparse's own refusal
        code = error.code
    assert code == 2
    assert message in capsys.readouterr().err


def test_a_config_file_with_an_unknown_key_is_refused(tmp_path, capsys):
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"methd": "prompt"}))
    assert main(["tune", "--config", str(path)]) == 2
    assert f"Config file {path} has unknown keys ['methd']. Known keys: " in capsys.readouterr().err


def test_template_without_the_text_field_is_a_clear_error(presets, data_file, tmp_path, capsys):
    code = main([
        "tune", "--model", presets["gpt2"], "--train", data_file, "--test", data_file,
        "--template", "It was", "--label-words", "0=terrible,1=great",
        "--output-dir", str(tmp_path / "out"),
    ])
    assert code == 2
    assert "Template 'It was' has no text field" in capsys.readouterr().err


def test_empty_data_is_a_clear_error(presets, tmp_path, capsys):
    empty = tmp_path / "empty.csv"
    empty.write_text("review,label\n")
    code = main([
        "tune", "--model", presets["gpt2"], "--train", str(empty), "--test", str(empty),
        "--template", "{review} It was", "--label-words", "0=terrible,1=great",
        "--output-dir", str(tmp_path / "out"),
    ])
    assert code == 2
    assert "No examples in" in capsys.readouterr().err


def test_label_word_outside_the_vocabulary_is_a_clear_error(presets, data_file, tmp_path, capsys):
    # The tiny vocabulary has " great" as one token, but not " fantastic".
    code = main([
        "tune", "--model", presets["gpt2"], "--train", data_file, "--test", data_file,
        "--template", "{review} It was", "--label-words", "0=terrible,1=fantastic",
        "--single-token-labels", "--output-dir", str(tmp_path / "out"),
    ])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "Label word ' fantastic' is not in the vocabulary as a single token" in err
    assert not (tmp_path / "out").exists()


def test_tune_prints_no_tensorflow_start_up_lines(presets, data_file, tmp_path):
    completed = subprocess.run(
        [sys.executable, "-m", "promptopt.cli.main",
         *tune_args(presets["gpt2"], data_file, tmp_path / "out", "--steps", "2")],
        capture_output=True, text=True, timeout=300,
    )
    assert completed.returncode == 0, completed.stderr
    output = completed.stdout + completed.stderr
    for noise in ("cuda", "oneDNN", "absl", "cpu_feature_guard", "TensorFlow binary"):
        assert noise not in output, output
    assert "Test accuracy after tuning:" in completed.stdout


def test_residual_options_reach_the_mlp_and_its_own_optimizer_group(presets, data_file, tmp_path):
    out = tmp_path / "out"
    assert main(tune_args(presets["llama"], data_file, out, "--method", "residual", "--steps", "3",
                          "--residual-bottleneck", "6", "--no-residual-layer-norm",
                          "--residual-lr", "0.002", "--residual-weight-decay", "0.01",
                          "--residual-dropout", "0.1")) == 0
    results = results_of(out)
    config = results["config"]
    assert (config["residual_bottleneck"], config["residual_layer_norm"], config["residual_lr"],
            config["residual_weight_decay"], config["residual_dropout"]) == (
                6, False, 0.002, 0.01, 0.1)
    (stage,) = results["stages"]
    # The tiny llama's prompt is 3 x 16: its 48 entries come first, the MLP's after.
    assert stage["optimizer_config"]["second_group"] == [48, 0.002, 0.01]
    assert results["train_loss_after"] < results["train_loss_before"]


def test_no_test_before_scores_the_test_set_after_tuning_only(presets, data_file, tmp_path, capsys):
    out = tmp_path / "out"
    assert main([*tune_args(presets["gpt2"], data_file, out, "--steps", "1"), "--no-test-before"]
                ) == 0
    results = results_of(out)
    assert results["test_accuracy_before"] is None and results["config"]["test_before"] is False
    printed = capsys.readouterr().out
    assert "Test accuracy before tuning" not in printed and "Test accuracy after tuning" in printed


def test_a_tuning_jobs_own_callbacks_see_every_step_of_the_run(presets, data_file, tmp_path):
    from promptopt.callbacks import RunnerCallback
    from promptopt.tuning.config import TuneConfig
    from promptopt.tuning.job import TuningJob

    class ResidualTerm(RunnerCallback):
        """The RMS of what the residual MLP adds to the current export, per step."""

        def __init__(self):
            self.steps, self.rms = [], []

        def on_step_end(self, step, logs):
            runner = self.runner
            runner.evaluator.assign(runner.current_optimizer.best(runner.current_state))
            soft_prompt = runner.evaluator.model.soft_prompt
            term = np.asarray(soft_prompt.materialize()) - np.asarray(soft_prompt.prompt)
            self.steps.append(step)
            self.rms.append(float(np.sqrt(np.mean(term ** 2))))

    recorder = ResidualTerm()
    config = TuneConfig(model=presets["llama"], train=data_file, test=data_file,
                        template="{review}. It was", label_words="0=terrible,1=great",
                        method="residual", steps=3, prompt_length=3, batch_size=4,
                        learning_rate=0.1, test_before=False, output_dir=str(tmp_path / "out"))
    TuningJob(config, log=lambda line: None, progress=False, callbacks=[recorder]).run()
    assert recorder.steps == [0, 1, 2]
    # The MLP trains, so the term it adds differs from step to step.
    assert len(set(recorder.rms)) == 3, recorder.rms
