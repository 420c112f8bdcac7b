import os

import keras
import numpy as np
import pytest

from promptopt.callbacks.tensorboard_logger import TensorBoardLogger
from promptopt.cli.main import main
from promptopt.evaluators.keras_evaluator import KerasEvaluator
from promptopt.optimizers import BackpropOptimizer
from promptopt.optimizers import CMAESOptimizer
from promptopt.runner.budget import Budget
from promptopt.runner.dev_selection import DevSelection
from promptopt.runner.runner import PromptTuningRunner
from promptopt.runner.runner import Stage
from promptopt.tasks.text_encoder import tokenize_all
from tests.helpers.tensorboard_events import read_events
from tests.model_factories import classifier
from tests.model_factories import toy_batch
from tests.tiny_models import tiny_gpt2


def assert_only_event_files(logdir):
    for root, _, files in os.walk(logdir):
        assert os.path.relpath(root, logdir) in (".", "train", "validation")
        assert all(f.startswith("events.out.tfevents.") for f in files)


def session_hparams(summaries):
    [(_, plugin, data)] = summaries["_hparams_/session_start_info"]
    assert plugin == "hparams"
    info = data.session_start_info.hparams
    return {k: (v.number_value if v.HasField("number_value") else v.string_value) for k, v in info.items()}


def histogram_count(value):
    # tf.summary.histogram stores [buckets, 3] rows of (left, right, count).
    return float(np.sum(value[:, 2]))


def test_fit_writes_scalars_histograms_text_and_hparams(tmp_path, monkeypatch):
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    logdir = tmp_path / "logs" / "fit-run"
    model = classifier("llama", prompt_length=4)
    x, y = toy_batch(n=16)
    model.compile(optimizer=keras.optimizers.AdamW(0.05))
    logger = TensorBoardLogger(logdir, hparams={"lr": 0.05, "init": "vocab"}, text_every=2)
    assert not logdir.exists()  # writers are created lazily
    history = model.fit(
        x, y, batch_size=8, epochs=3, validation_data=(x, y), callbacks=[logger], verbose=0
    )

    assert os.listdir(work) == []
    assert_only_event_files(logdir)
    train = read_events(logdir / "train")
    validation = read_events(logdir / "validation")
    for tag, expected in (("loss", history.history["loss"]), ("accuracy", history.history["accuracy"])):
        assert [s for s, _, _ in train[tag]] == [0, 1, 2]
        np.testing.assert_allclose([float(v) for _, _, v in train[tag]], expected, rtol=1e-6)
    np.testing.assert_allclose(
        [float(v) for _, _, v in validation["accuracy"]], history.history["val_accuracy"], rtol=1e-6
    )
    np.testing.assert_allclose([float(v) for _, _, v in train["learning_rate"]], 0.05, rtol=1e-6)
    assert [float(v) for _, _, v in train["forward_calls"]] == [2, 4, 6]  # 2 batches/epoch
    wall = [float(v) for _, _, v in train["wall_time"]]
    assert wall == sorted(wall) and wall[0] > 0

    # Histograms: all P*H values, and one norm per prompt vector.
    p, h = 4, model.adapter.hidden_dim
    assert train["prompt/values"][0][1] == "histograms"
    assert histogram_count(train["prompt/values"][-1][2]) == p * h
    assert histogram_count(train["prompt/norms"][-1][2]) == p
    final_norms = np.linalg.norm(model.soft_prompt.materialize(), axis=-1)
    np.testing.assert_allclose(float(train["prompt/norm_mean"][-1][2]), final_norms.mean(), rtol=1e-5)

    # Text: a nearest-token table with one row per prompt vector.
    step, plugin, text = train["prompt/nearest_tokens"][-1]
    assert plugin == "text" and step == 2
    table = text.item().decode("utf-8")
    assert table.startswith("| prompt vector | nearest tokens")
    assert len(table.splitlines()) == 2 + p

    assert session_hparams(train) == {"lr": pytest.approx(0.05), "init": "vocab"}


def test_runner_writes_loss_learning_rate_calls_and_prompt_views(tmp_path):
    logdir = tmp_path / "runner-run"
    model = classifier("gpt2", prompt_length=3)
    x, y = toy_batch(n=16)
    evaluator = KerasEvaluator(model, x, y, batch_size=8, parameters="prompt")
    logger = TensorBoardLogger(logdir, hparams={"optimizer": "adamw", "steps": 5}, text_every=5)
    result = PromptTuningRunner(evaluator, callbacks=[logger]).run(
        evaluator.initial_candidate(),
        [Stage(BackpropOptimizer("adamw", 0.05), Budget(steps=5))],
        seed=0,
    )

    assert_only_event_files(logdir)
    train = read_events(logdir / "train")
    assert [s for s, _, _ in train["loss"]] == list(range(5))
    np.testing.assert_allclose(
        [float(v) for _, _, v in train["loss"]], [h["loss"] for h in result.history], rtol=1e-6
    )
    np.testing.assert_allclose([float(v) for _, _, v in train["accuracy"]],
                               [h["batch_accuracy"] for h in result.history], rtol=1e-6)
    np.testing.assert_allclose([float(v) for _, _, v in train["learning_rate"]], 0.05, rtol=1e-6)
    assert [float(v) for _, _, v in train["forward_calls"]] == [1, 2, 3, 4, 5]
    assert [float(v) for _, _, v in train["best_so_far_loss"]] == [
        min(h["loss"] for h in result.history[: i + 1]) for i in range(5)
    ]
    # The last histogram is of the exported prompt.
    assert histogram_count(train["prompt/values"][-1][2]) == result.best_prompt.size
    np.testing.assert_allclose(
        float(train["prompt/norm_mean"][-1][2]),
        np.linalg.norm(result.best_prompt, axis=-1).mean(), rtol=1e-5,
    )
    assert any(plugin == "text" for _, plugin, _ in train["prompt/nearest_tokens"])
    assert session_hparams(train) == {"optimizer": "adamw", "steps": 5}


def test_runner_logs_cma_es_sigma_and_a_real_dev_selection(tmp_path):
    logdir = tmp_path / "cma"
    model = classifier("gpt2", prompt_length=2)
    x, y = toy_batch(n=8)
    dev_x, dev_y = toy_batch(n=6, seed=1)
    evaluator = KerasEvaluator(model, x, y, batch_size=8, parameters="prompt")
    dev_evaluator = KerasEvaluator(model, dev_x, dev_y, batch_size=6, parameters="prompt")

    def dev_score(candidate):
        evaluation = dev_evaluator.evaluate(candidate[None], step=0)
        return evaluation.metrics["batch_accuracy"], evaluation.losses[0]

    logger = TensorBoardLogger(logdir)
    result = PromptTuningRunner(
        evaluator, callbacks=[logger], selection=DevSelection(dev_score, every=2)
    ).run(
        evaluator.initial_candidate(),
        [Stage(CMAESOptimizer(subspace_dim=4, popsize=4), Budget(steps=5))],
        seed=0,
    )
    train = read_events(logdir / "train")
    assert len(train["sigma"]) == 5 and all(float(v) > 0 for _, _, v in train["sigma"])
    assert [float(v) for _, _, v in train["forward_calls"]] == [4, 8, 12, 16, 20]
    validation = read_events(logdir / "validation")
    # Scored after steps 2 and 4 (every 2); the stage's end is logged by the
    # selection but not as a step. Each value is the dev loss of that
    # step's export, recomputed here from the selection's record.
    evaluations = result.selection["evaluations"]
    assert [e["step"] for e in evaluations] == [1, 3, 4]
    assert [s for s, _, _ in validation["loss"]] == [1, 3]
    np.testing.assert_allclose(
        [float(v) for _, _, v in validation["loss"]],
        [e["dev_loss"] for e in evaluations[:2]], rtol=1e-6)
    # The selected prompt is the export with the best dev score, and its
    # dev accuracy, recomputed independently, is the one recorded.
    best = max(evaluations, key=lambda e: (e["dev_accuracy"], -e["dev_loss"]))
    assert result.selection["step"] == best["step"]
    model.soft_prompt.assign(result.selected_prompt)
    recomputed = np.mean(np.argmax(np.asarray(model(dev_x)), axis=-1) == dev_y)
    assert recomputed == pytest.approx(best["dev_accuracy"])
    assert "_hparams_/session_start_info" not in train  # none given, none written


def test_nearest_tokens_of_embedding_rows_are_those_tokens():
    backbone, tokenizer = tiny_gpt2()
    table = np.asarray(backbone.token_embedding.embeddings.numpy())
    words = [" great", " terrible"]
    rows = tokenize_all(tokenizer, words)
    assert [len(r) for r in rows] == [1, 1]  # one token each
    ids = [r[0] for r in rows]
    logger = TensorBoardLogger("unused", embedding_table=table, tokenizer=tokenizer, top_k=3)
    rows = logger.nearest_tokens(2.5 * table[ids])  # cosine ignores the scale
    for word, row in zip(words, rows):
        assert row[0][0] == word
        assert row[0][1] == pytest.approx(1.0, abs=1e-5)
        assert len(row) == 3 and row[0][1] >= row[1][1] >= row[2][1]


def test_cli_logdir_holds_the_run_and_nothing_else_is_written(tmp_path, monkeypatch):
    backbone, tokenizer = tiny_gpt2()
    preset = tmp_path / "preset"
    backbone.save_to_preset(str(preset))
    tokenizer.save_to_preset(str(preset))
    data = tmp_path / "data.csv"
    data.write_text("review,label\na great film,1\nso great,1\na terrible film,0\nso terrible,0\n")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    code = main([
        "tune", "--model", str(preset), "--train", str(data), "--dev", str(data),
        "--test", str(data), "--template", "{review}. It was", "--label-words",
        "0=terrible,1=great", "--prompt-length", "2", "--epochs", "2", "--batch-size", "2",
        "--quiet", "--output-dir", "out", "--logdir", "tb",
    ])
    assert code == 0
    assert sorted(os.listdir(work)) == ["out", "tb"]
    assert_only_event_files(work / "tb")
    train = read_events(work / "tb" / "train")
    # 2 epochs of 2 batches of 2: 4 runner steps, dev-scored once an epoch.
    assert [s for s, _, _ in train["loss"]] == [0, 1, 2, 3] and "prompt/nearest_tokens" in train
    assert session_hparams(train)["prompt_length"] == 2
    assert [s for s, _, _ in read_events(work / "tb" / "validation")["accuracy"]] == [1, 3]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"logdir": None}, "TensorBoardLogger needs a logdir, got None. Pass e.g. TensorBoardLogger('logs/run1')."),
        ({"logdir": "x", "text_every": 0},
         "TensorBoardLogger(text_every=...) must be a positive int, got 0. Pass e.g. text_every=10."),
        ({"logdir": "x", "hparams": {"layers": [1, 2]}},
         "hparams['layers'] is a list; the HParams plugin takes bool, int, float or str values. "
         "Convert it, e.g. hparams['layers'] = str(value)."),
    ],
)
def test_bad_arguments_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError) as error:
        TensorBoardLogger(**kwargs)
    assert str(error.value) == message
