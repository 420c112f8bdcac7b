"""Shared pieces of the paper-comparison experiments (never imported by promptopt).

Every run is cached as `experiments/runs/<experiment>/<run name>.json`; a
rerun reads the cache instead of recomputing, and an interrupted tuning run
resumes from its runner checkpoint (`<run name>/run_checkpoint.bin`). Runs
with the same configuration share one cache entry across experiments (the
run name encodes the whole configuration), so e.g. the prompt-length
ablation reuses the P = 20 run of the methods comparison. Each finished
run's row is also kept in the committed ledger (`experiments/ledger.py`), so
a fresh checkout reports it and does not run it again.
"""

import glob
import json
import os
import time

import numpy as np

from experiments.ledger import RunLedger
from promptopt.data import get_fewshot_task
from promptopt.data import load_fewshot_split
from promptopt.evaluators.keras_evaluator import KerasEvaluator
from promptopt.hub import load_language_model
from promptopt.models import PromptedModel
from promptopt.models.precision import cast_backbone
from promptopt.optimizers import BackpropOptimizer
from promptopt.optimizers import CMAESOptimizer
from promptopt.prefixes import PrefixModel
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
_CAST_BACKBONES = {}


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


def backbone(dtype="float32"):
    """The embedded backbone, or a `dtype` copy of it (one per process)."""
    lm = language_model()
    if dtype == "float32":
        return lm.backbone
    if dtype not in _CAST_BACKBONES:
        _CAST_BACKBONES[dtype] = cast_backbone(lm.backbone, dtype)
    return _CAST_BACKBONES[dtype]


def verbalizer(task):
    return Verbalizer(task.classes, dict(task.label_words), language_model().tokenizer)


def make_model(task, prompt_length, init="labels", parameterization=None, max_length=128, seed=0,
               placement="prefix", dtype="float32"):
    lm = language_model()
    return PromptedModel(
        backbone(dtype),
        VerbalizerClassification(verbalizer(task), placement=placement),
        prompt_length=prompt_length,
        prompt_initializer=init,
        parameterization=parameterization,
        tokenizer=lm.tokenizer,
        model_id=lm.model_id,
        seed=seed,
        max_length=max_length,
    )


def make_prefix_model(task, prefix_length, init, seed=0, max_length=128):
    lm = language_model()
    return PrefixModel(
        lm.backbone,
        VerbalizerClassification(verbalizer(task)),
        prefix_length=prefix_length,
        prefix_initializer=init,
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


def backprop_stage(learning_rate, steps):
    """AdamW at `learning_rate` for `steps` runner steps (last iterate)."""
    return Stage(BackpropOptimizer("adamw", learning_rate), Budget(steps=steps))


def cma_es_stage(model, forward_calls, popsize=20):
    """BBT's CMA-ES (d = 500, popsize 20) for `forward_calls` candidate scorings."""
    std = float(np.std(model.embedding_table()))
    return Stage(CMAESOptimizer(popsize=popsize, embedding_std=std),
                 Budget(forward_calls=forward_calls))


def tune(evaluator, stage, run_dir, seed=0, logdir=None, hparams=None, prompt_fn=None):
    """Runs one stage through the runner loop (resumable); returns `(seconds, result)`.

    The runner checkpoints into `run_dir` after every step, so an
    interrupted experiment resumes where it stopped. The result's best
    candidate (the last iterate for backprop, the best-so-far for CMA-ES) is
    written into the evaluator's model. With `logdir`, a `TensorBoardLogger`
    records the run (`prompt_fn` maps a candidate to the `[P, H]` prompt
    shown as norms, histograms and nearest tokens).
    """
    callbacks = []
    if logdir is not None:
        from promptopt.callbacks.tensorboard_logger import TensorBoardLogger

        model = evaluator.model
        callbacks.append(
            TensorBoardLogger(
                logdir,
                embedding_table=model.embedding_table(),
                tokenizer=model.tokenizer,
                hparams=hparams,
                prompt_fn=prompt_fn,
                text_every=max(stage.budget.steps or 1, 1),
                histogram_every=10,
            )
        )
    runner = PromptTuningRunner(evaluator, callbacks=callbacks, checkpoint_dir=run_dir)
    started = time.time()
    result = runner.run(evaluator.initial_candidate(), [stage], seed=seed)
    evaluator.assign(result.best_prompt)
    return time.time() - started, result


def tune_prompt(model, train, run_dir, steps, learning_rate, batch_size=8, seed=0,
                logdir=None, hparams=None):
    """Backprop prompt tuning of every prompt weight (the residual MLP too).

    Candidates are flat (prompt and MLP weights); the TensorBoard view shows
    the materialized `[P, H]` prompt that the model would use.
    """
    x = model.encode_texts(train.texts)
    evaluator = KerasEvaluator(model, x, train.labels, batch_size=batch_size,
                               parameters="all", seed=seed)

    def materialized(candidate):
        evaluator.assign(candidate)  # harmless: evaluations take explicit candidates
        return model.soft_prompt.materialize()

    return tune(evaluator, backprop_stage(learning_rate, steps), run_dir, seed,
                logdir, hparams, materialized)


def final_train_loss(result, last=4):
    """Mean training loss of the last `last` runner steps."""
    return float(np.mean([h["loss"] for h in result.history[-last:]]))


def cached(experiment, name, compute):
    """Returns the row of run `name` of `experiment`, or computes it.

    A row is read from `runs/<experiment>/<name>.json` or, on a checkout
    without that run, from the committed ledger (`experiments/ledger.py`);
    a computed row is written to both. With `compute=None` a missing row is
    not computed: None is returned (reports use this to include every
    finished run).
    """
    ledger = RunLedger(experiment)
    directory = os.path.join(HERE, "runs", experiment)
    path = os.path.join(directory, f"{name}.json")
    if os.path.exists(path):
        with open(path) as f:
            row = json.load(f)
        if ledger.get(name) is None:
            ledger.record(name, row)  # a run made before the ledger existed
        return row
    row = ledger.get(name)
    if row is not None or compute is None:
        return row
    os.makedirs(directory, exist_ok=True)
    row = compute(os.path.join(directory, name))
    row["name"] = name
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(row, f, indent=2)
    os.replace(tmp, path)
    ledger.record(name, row)
    print(json.dumps(row), flush=True)
    return row


def finished_rows(experiment):
    """Every finished row of `experiment`: this checkout's runs and the ledger's."""
    ledger = RunLedger(experiment)
    rows = ledger.rows()
    for path in sorted(glob.glob(os.path.join(HERE, "runs", experiment, "*.json"))):
        with open(path) as f:
            row = json.load(f)
        name = row.get("name", os.path.basename(path)[:-len(".json")])
        if name not in rows:
            ledger.record(name, row)  # a run made before the ledger existed
        rows[name] = row
    return [rows[name] for name in sorted(rows)]


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
