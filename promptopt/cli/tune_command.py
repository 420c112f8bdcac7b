"""`promptopt tune`: train a soft prompt for a classification task."""

import argparse
import json
import os
import time

import keras
import numpy as np

from promptopt.callbacks.progress_printer import ProgressPrinter
from promptopt.callbacks.prompt_checkpoint import PromptCheckpoint
from promptopt.callbacks.tensorboard_logger import TensorBoardLogger
from promptopt.cli.label_words import parse_label_words
from promptopt.data import demo_task
from promptopt.data import get_fewshot_task
from promptopt.data import load_classification_file
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


def add_arguments(parser):
    data = parser.add_argument_group(
        "data (none given: a built-in demo sentiment task)"
    )
    data.add_argument("--train", help="CSV, TSV or JSONL file of training examples")
    data.add_argument("--dev", help="dev file, for choosing the best prompt")
    data.add_argument("--test", help="test file, scored before and after tuning")
    data.add_argument(
        "--task",
        help="a built-in 16-shot task instead of files: sst2, sst5 or trec",
    )
    data.add_argument("--fewshot-seed", type=int, default=42, help="split seed (13, 21, 42, 87, 100)")
    data.add_argument("--data-dir", help="folder holding lmbff_16shot/ (default ../shared/data)")
    data.add_argument("--template", help="e.g. '{sentence} It was'; fields are column names")
    data.add_argument("--label-column", default="label")
    data.add_argument(
        "--label-words",
        help="'0=terrible,1=great' (a space is prepended to each word) or JSON",
    )
    data.add_argument(
        "--single-token-labels",
        action="store_true",
        help="require every label word to be one vocabulary token",
    )
    model = parser.add_argument_group("model and prompt")
    model.add_argument(
        "--model",
        default="smollm2-135m",
        help="smollm2-135m (embedded), a keras-hub preset name, or a preset folder",
    )
    model.add_argument("--prompt-length", type=int, default=20)
    model.add_argument(
        "--init",
        default="labels",
        help="labels (Lester et al.'s best), vocab, random, 'text:<words>', or a .npy/prompt file",
    )
    model.add_argument("--max-length", type=int, default=128, help="max tokens per example")
    train = parser.add_argument_group("training")
    train.add_argument(
        "--optimizer",
        default="backprop",
        choices=["backprop", "cma-es"],
        help="backprop (prompt tuning, with fit()) or cma-es (Black-Box Tuning)",
    )
    train.add_argument(
        "--then",
        choices=["backprop", "cma-es"],
        help="continue with this optimizer on the same prompt (e.g. cma-es then backprop)",
    )
    train.add_argument(
        "--reparam",
        default="none",
        choices=["none", "residual"],
        help="residual: Residual Prompt Tuning's MLP (dropped at export)",
    )
    train.add_argument(
        "--residual-scale",
        default="embedding",
        type=_residual_scale,
        help="initial LayerNorm gain of the residual MLP: 'embedding' (std of the "
        "embedding table, so the term starts at token scale) or a number (1 = paper)",
    )
    train.add_argument(
        "--backprop-optimizer", default="adamw", choices=["adamw", "adam", "adafactor", "sgd"]
    )
    train.add_argument("--lr", type=float, default=0.03)
    train.add_argument("--forward-calls", type=int, default=400, help="CMA-ES budget")
    train.add_argument("--then-budget", type=int, help="steps (backprop) or forward calls (cma-es) of --then")
    train.add_argument("--popsize", type=int, default=20)
    train.add_argument("--subspace-dim", type=int, default=500)
    train.add_argument("--sigma", type=float, default=1.0)
    train.add_argument(
        "--loss", default="cross_entropy", choices=["cross_entropy", "hinge", "negative_accuracy"],
        help="loss that CMA-ES minimizes",
    )
    train.add_argument("--epochs", type=int, default=8)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--eval-batch-size", type=int, default=32)
    train.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output-dir",
        default="promptopt-output",
        help="where the prompt, results and checkpoints go (nothing is written elsewhere)",
    )
    parser.add_argument(
        "--logdir",
        help="write TensorBoard logs (loss, accuracy, prompt norms, nearest tokens, hparams) here",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _residual_scale(text):
    if text == "embedding":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"takes 'embedding' or a number such as 1.0, not {text!r}"
        ) from None


def resolve_data(args):
    """Returns `(train, dev, test, label_words, template_text, description)`."""
    if args.train or args.dev or args.test:
        missing = [n for n in ("train", "test") if not getattr(args, n)]
        if missing:
            raise ValueError(
                f"--{missing[0]} is missing: give --train and --test (and "
                "optionally --dev), or no data arguments for the demo task."
            )
        if not args.template or not args.label_words:
            raise ValueError(
                "Your own files need --template (e.g. '{sentence} It was') and "
                "--label-words (e.g. '0=terrible,1=great')."
            )
        label_words = parse_label_words(args.label_words, args.template)
        classes = tuple(label_words)

        def load(path):
            return load_classification_file(
                path, args.template, label_column=args.label_column, classes=classes
            )

        train, test = load(args.train), load(args.test)
        dev = load(args.dev) if args.dev else None
        return train, dev, test, label_words, args.template, f"files {args.train}"
    if args.task:
        task = get_fewshot_task(args.task)
        template = args.template or task.template

        def load(split):
            return load_fewshot_split(
                task, args.fewshot_seed, split, template=template, data_dir=args.data_dir
            )

        label_words = (
            parse_label_words(args.label_words, template)
            if args.label_words
            else {c: list(w) for c, w in task.label_words.items()}
        )
        description = f"{task.name} 16-shot, seed {args.fewshot_seed}"
        return load("train"), load("dev"), load("test"), label_words, template, description
    train, dev, test, task = demo_task()
    label_words = {c: list(w) for c, w in task.label_words.items()}
    return train, dev, test, label_words, task.template, "built-in demo sentiment task"


def make_optimizer(name, learning_rate):
    if name == "adamw":
        return keras.optimizers.AdamW(learning_rate=learning_rate, weight_decay=0.0)
    if name == "adam":
        return keras.optimizers.Adam(learning_rate=learning_rate)
    if name == "adafactor":
        return keras.optimizers.Adafactor(learning_rate=learning_rate)
    return keras.optimizers.SGD(learning_rate=learning_rate)


def build_model(args, label_words, classes):
    loaded = load_language_model(args.model)
    verbalizer = Verbalizer(
        classes, label_words, loaded.tokenizer, single_token=args.single_token_labels
    )
    parameterization = None
    if args.reparam == "residual":
        if args.residual_scale == "embedding":
            embeddings = loaded.backbone.token_embedding.embeddings
            scale = float(np.std(keras.ops.convert_to_numpy(embeddings)))
        else:
            scale = args.residual_scale
        parameterization = ResidualReparameterization(seed=args.seed, output_scale=scale)
    return PromptedModel(
        loaded.backbone,
        VerbalizerClassification(verbalizer),
        prompt_length=args.prompt_length,
        prompt_initializer=args.init,
        tokenizer=loaded.tokenizer,
        model_id=loaded.model_id,
        seed=args.seed,
        max_length=args.max_length,
        parameterization=parameterization,
    )


def evaluate_accuracy(model, data, batch_size):
    """Accuracy on a `ClassificationData`."""
    predictions = model.classify(data.texts, batch_size=batch_size)
    return float(np.mean(predictions == data.labels))


def run_tune(args, log=print):
    train, dev, test, label_words, template, description = resolve_data(args)
    classes = train.classes
    log(f"Task: {description}; {len(train)} train / "
        f"{len(dev) if dev is not None else 0} dev / {len(test)} test; "
        f"template {template!r}; label words {label_words}")
    started = time.time()
    model = build_model(args, label_words, classes)
    log(f"Model: {model.model_id} (H={model.adapter.hidden_dim}), "
        f"loaded in {time.time() - started:.1f} s; prompt P={args.prompt_length}, "
        f"init {args.init!r}")
    os.makedirs(args.output_dir, exist_ok=True)
    keras.utils.set_random_seed(args.seed)

    before = evaluate_accuracy(model, test, args.eval_batch_size)
    log(f"Test accuracy before tuning: {before:.4f}")

    if args.epochs <= 0 or args.prompt_length == 0:
        log("No training: --epochs 0 or --prompt-length 0.")
        fit_seconds, best_epoch, after = 0.0, None, before
    else:
        if args.optimizer == "backprop" and not args.then:
            fit_seconds, best_epoch = _fit(args, model, train, dev, log)
        else:
            fit_seconds, best_epoch = _run_stages(args, model, train, log)
        after = evaluate_accuracy(model, test, args.eval_batch_size)
        log(f"Test accuracy after tuning:  {after:.4f}")
    if model.soft_prompt.parameterization is not None:
        model = _export_without_reparameterization(model)
    prompt_path = model.save_prompt(
        os.path.join(args.output_dir, "prompt.npz"),
        extra={"template": template, "label_words": label_words},
    )
    results = {
        "task": description,
        "model": model.model_id,
        "prompt_length": args.prompt_length,
        "init": args.init,
        "optimizer": args.optimizer,
        "then": args.then,
        "reparam": args.reparam,
        "backprop_optimizer": args.backprop_optimizer,
        "lr": args.lr,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "test_accuracy_before": before,
        "test_accuracy_after": after,
        "best_epoch": best_epoch,
        "fit_seconds": round(fit_seconds, 1),
        "prompt_file": prompt_path,
    }
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    log(f"Saved the prompt to {prompt_path}")
    return results


def _tensorboard_callbacks(args):
    """A `TensorBoardLogger` for `--logdir` (or none), with the run's hparams."""
    if not getattr(args, "logdir", None):
        return []
    names = ("task", "fewshot_seed", "model", "prompt_length", "init", "optimizer", "then",
             "reparam", "backprop_optimizer", "lr", "epochs", "batch_size", "seed",
             "forward_calls", "popsize", "sigma", "loss")
    hparams = {n: getattr(args, n) for n in names if getattr(args, n, None) is not None}
    return [TensorBoardLogger(args.logdir, hparams=hparams)]


def _fit(args, model, train, dev, log):
    """Backprop with `fit()`: progress bar, dev selection, epoch resume."""
    model.compile(optimizer=make_optimizer(args.backprop_optimizer, args.lr))
    validation = None
    monitor = "accuracy"
    if dev is not None:
        validation = (model.encode_texts(dev.texts), dev.labels)
        monitor = "val_accuracy"
    checkpoint = PromptCheckpoint(
        os.path.join(args.output_dir, "checkpoint"), monitor=monitor
    )
    initial_epoch = checkpoint.restore(model)
    if initial_epoch:
        log(f"Resuming from the checkpoint after epoch {initial_epoch}.")
    fit_started = time.time()
    model.fit(
        model.encode_texts(train.texts),
        train.labels,
        batch_size=args.batch_size,
        epochs=args.epochs,
        initial_epoch=initial_epoch,
        validation_data=validation,
        callbacks=[checkpoint] + _tensorboard_callbacks(args),
        shuffle=True,
        verbose=0 if args.quiet else 1,
    )
    log(f"Best epoch {(checkpoint.best_epoch or 0) + 1} by {monitor}.")
    return time.time() - fit_started, checkpoint.best_epoch


def _run_stages(args, model, train, log):
    """Any optimizer, or one then another, through the one runner loop."""
    kinds = [args.optimizer] + ([args.then] if args.then else [])
    uses_search = "cma-es" in kinds
    # CMA-ES scores each candidate on the whole 16-shot training set (as BBT);
    # a gradient-only run takes mini-batches of --batch-size.
    batch_size = 32 if uses_search else args.batch_size
    evaluator = KerasEvaluator(
        model,
        model.encode_texts(train.texts),
        train.labels,
        batch_size=batch_size,
        loss=args.loss if uses_search else "cross_entropy",
        # Search acts on the prompt; gradients also train the residual MLP.
        parameters="prompt" if uses_search else "all",
        seed=args.seed,
    )
    steps_per_epoch = -(-len(train) // args.batch_size)
    stages = []
    for i, kind in enumerate(kinds):
        override = args.then_budget if i == 1 else None
        if kind == "backprop":
            steps = override or args.epochs * steps_per_epoch
            stages.append(Stage(BackpropOptimizer(args.backprop_optimizer, args.lr), Budget(steps=steps)))
        else:
            embedding_std = float(np.std(model.embedding_table()))
            optimizer = CMAESOptimizer(
                subspace_dim=args.subspace_dim,
                popsize=args.popsize,
                sigma=args.sigma,
                embedding_std=embedding_std,
            )
            stages.append(Stage(optimizer, Budget(forward_calls=override or args.forward_calls)))
    log("Stages: " + " -> ".join(f"{k} ({s.budget})" for k, s in zip(kinds, stages)))
    runner = PromptTuningRunner(
        evaluator,
        callbacks=([] if args.quiet else [ProgressPrinter(log)]) + _tensorboard_callbacks(args),
        checkpoint_dir=os.path.join(args.output_dir, "runner_checkpoint"),
    )
    started = time.time()
    result = runner.run(evaluator.initial_candidate(), stages, seed=args.seed)
    evaluator.assign(result.best_prompt)
    return time.time() - started, None


def _export_without_reparameterization(model):
    """A copy whose prompt is the materialized one, MLP dropped."""
    return PromptedModel(
        model.backbone,
        model.task,
        prompt_length=model.prompt_length,
        prompt_initializer=model.soft_prompt.materialize(),
        tokenizer=model.tokenizer,
        model_id=model.model_id,
        max_length=model.max_length,
    )
