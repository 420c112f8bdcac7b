"""Shared pieces of the paper-comparison experiments (never imported by promptopt).

Every run is cached as `experiments/runs/<experiment>/<run name>.json`; a
rerun reads the cache instead of recomputing, and an interrupted tuning run
resumes from its runner checkpoint (`<run name>/run_checkpoint.bin`). Runs
with the same configuration share one cache entry across experiments (the
run name encodes the whole configuration), so e.g. the prompt-length
ablation reuses the P = 20 run of the methods comparison.
"""

import json
import os
import time

import numpy as np

from promptopt.data import get_fewshot_task
from promptopt.data import load_fewshot_split
from promptopt.evaluators.keras_evaluator import KerasEvaluator
from promptopt.hub import load_language_model
from promptopt.models import PromptedModel
from promptopt.optimizers import BackpropOptimizer
from promptopt.optimizers import CMAESOptimizer
from promptopt.prompts import ResidualReparameterization
from promptopt.runner.budget import Budget
from promptopt.runner.runner import PromptTuningRunner
from promptopt.runner.runner import Stage
from promptopt.tasks import Verbalizer
from promptopt.tasks import VerbalizerClassification

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "runs", "paper_runs")  # shared cache of all runs
RESULTS = os.path.join(HERE, "results")
SEEDS = (13, 21, 42, 87, 100)
TEST_SUBSET_SEED = 0

_LANGUAGE_MODEL = []


def language_model():
    """The embedded SmolLM2-135M-Instruct, loaded once per process."""
    if not _LANGUAGE_MODEL:
        _LANGUAGE_MODEL.append(load_language_model("smollm2-135m"))
    return _LANGUAGE_MODEL[0]


def load_splits(task_name, seed, test_size):
    """`(task, train, dev, test)`; test is a fixed subset when test_size > 0."""
    task = get_fewshot_task(task_name)
    train = load_fewshot_split(task, seed, "train")
    dev = load_fewshot_split(task, seed, "dev")
    test = load_fewshot_split(task, seed, "test")
    if test_size and test_size < len(test):
        # The same subset for every seed and method (the test file is shared).
        test = test.subset(test_size, seed=TEST_SUBSET_SEED)
    return task, train, dev, test


def make_model(task, prompt_length, init="labels", parameterization=None, max_length=128, seed=0):
    lm = language_model()
    verbalizer = Verbalizer(task.classes, dict(task.label_words), lm.tokenizer)
    return PromptedModel(
        lm.backbone,
        VerbalizerClassification(verbalizer),
        prompt_length=prompt_length,
        prompt_initializer=init,
        parameterization=parameterization,
        tokenizer=lm.tokenizer,
        model_id=lm.model_id,
        seed=seed,
        max_length=max_length,
    )


def residual_parameterization(seed=0):
    """Razdaibiedina et al.'s MLP; LayerNorm gain = embedding std (CLI default)."""
    table = language_model().backbone.token_embedding.embeddings.numpy()
    return ResidualReparameterization(seed=seed, output_scale=float(np.std(table)))


def accuracy(model, data, batch_size=32, bucket=16):
    """Test accuracy, scoring examples grouped by length (less padding).

    `model.classify` pads every text to the longest one; here texts of
    similar length share a batch padded to a multiple of `bucket` tokens,
    which halves the cost on SST-2 without changing any prediction (the
    padding is masked).
    """
    encoded = model.encode_texts(data.texts)
    lengths = encoded["padding_mask"].sum(axis=1)
    order = np.argsort(lengths, kind="stable")
    predictions = np.zeros(len(data), dtype=np.int64)
    for start in range(0, len(order), batch_size):
        index = order[start : start + batch_size]
        width = int(-(-lengths[index].max() // bucket) * bucket)
        x = {k: v[index, :width] for k, v in encoded.items()}
        scores = model.predict_on_batch(x)
        predictions[index] = np.argmax(np.asarray(scores), axis=-1)
    return float(np.mean(predictions == data.labels))


def in_context_texts(task, train, texts, per_class=2, seed=0):
    """Prepends `per_class` demonstrations of each class to every text.

    A demonstration is a training text (already templated, e.g. "... It
    was") followed by its class's first label word; demonstrations are
    drawn with `seed`, interleaved by class, and end with a newline.
    """
    rng = np.random.default_rng(seed)
    chosen = []
    for label in range(len(task.classes)):
        candidates = np.flatnonzero(train.labels == label)
        chosen.append(rng.choice(candidates, size=per_class, replace=False))
    order = [int(c[i]) for i in range(per_class) for c in chosen]
    prefix = "".join(
        f"{train.texts[i]}{task.label_words[task.classes[train.labels[i]]][0]}\n"
        for i in order
    )
    return [prefix + text for text in texts]


def tune_with_runner(
    model,
    train,
    run_dir,
    steps,
    learning_rate,
    batch_size=8,
    seed=0,
    optimizer="backprop",
    forward_calls=None,
    logdir=None,
    hparams=None,
):
    """Tunes `model`'s prompt through the runner loop (resumable); returns seconds.

    Backprop trains every prompt weight (the residual MLP included) on
    mini-batches; CMA-ES searches the raw prompt, scoring each candidate on
    the whole training set (as BBT). The last iterate (backprop) or the
    best-so-far candidate (CMA-ES) is written into the model.
    """
    x = model.encode_texts(train.texts)
    if optimizer == "cma-es":
        evaluator = KerasEvaluator(model, x, train.labels, batch_size=len(train), parameters="prompt", seed=seed)
        prompt_optimizer = CMAESOptimizer(embedding_std=float(np.std(model.embedding_table())))
        budget = Budget(forward_calls=forward_calls)
    else:
        evaluator = KerasEvaluator(model, x, train.labels, batch_size=batch_size, parameters="all", seed=seed)
        prompt_optimizer = BackpropOptimizer("adamw", learning_rate)
        budget = Budget(steps=steps)
    callbacks = []
    if logdir is not None:
        from promptopt.callbacks.tensorboard_logger import TensorBoardLogger

        callbacks.append(
            TensorBoardLogger(
                logdir,
                embedding_table=model.embedding_table(),
                tokenizer=model.tokenizer,
                hparams=hparams,
                # Candidates are flat (prompt and MLP weights); show the
                # materialized [P, H] prompt that the model would use.
                prompt_fn=lambda candidate: _materialized(evaluator, model, candidate),
                text_every=max(steps or 1, 1),
                histogram_every=10,
            )
        )
    runner = PromptTuningRunner(evaluator, callbacks=callbacks, checkpoint_dir=run_dir)
    started = time.time()
    result = runner.run(evaluator.initial_candidate(), [Stage(prompt_optimizer, budget)], seed=seed)
    evaluator.assign(result.best_prompt)
    return time.time() - started, result


def _materialized(evaluator, model, candidate):
    evaluator.assign(candidate)  # harmless: evaluations take explicit candidates
    return model.soft_prompt.materialize()


def cached(experiment, name, compute):
    """Returns the cached row `runs/<experiment>/<name>.json`, or computes it."""
    directory = os.path.join(HERE, "runs", experiment)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, f"{name}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    row = compute(os.path.join(directory, name))
    row["name"] = name
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(row, f, indent=2)
    os.replace(tmp, path)
    print(json.dumps(row), flush=True)
    return row


def mean_std(values):
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return "-"
    if len(values) == 1:
        return f"{100 * values[0]:.1f}"
    return f"{100 * values.mean():.1f} ± {100 * values.std(ddof=1):.1f}"


def write_markdown(filename, lines):
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, filename)
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)
    return path


def pyplot():
    """matplotlib's pyplot on the file-only Agg backend (experiments only)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
