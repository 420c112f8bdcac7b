"""`promptopt tune`: train a soft prompt for a classification task."""

import json
import os
import time

import keras
import numpy as np

from promptopt.callbacks.prompt_checkpoint import PromptCheckpoint
from promptopt.cli.label_words import parse_label_words
from promptopt.data import demo_task
from promptopt.data import get_fewshot_task
from promptopt.data import load_classification_file
from promptopt.data import load_fewshot_split
from promptopt.hub import load_language_model
from promptopt.models import PromptedModel
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
    train.add_argument("--optimizer", default="adamw", choices=["adamw", "adam", "adafactor", "sgd"])
    train.add_argument("--lr", type=float, default=0.03)
    train.add_argument("--epochs", type=int, default=8)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--eval-batch-size", type=int, default=32)
    train.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--output-dir",
        default="promptopt-output",
        help="where the prompt, results and checkpoints go (nothing is written elsewhere)",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


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
    verbalizer = Verbalizer(classes, label_words, loaded.tokenizer)
    return PromptedModel(
        loaded.backbone,
        VerbalizerClassification(verbalizer),
        prompt_length=args.prompt_length,
        prompt_initializer=args.init,
        tokenizer=loaded.tokenizer,
        model_id=loaded.model_id,
        seed=args.seed,
        max_length=args.max_length,
    )


def evaluate_accuracy(model, data, batch_size):
    """Accuracy on a `ClassificationData`, batches grouped by length."""
    x = model.encode_texts(data.texts)
    scores = model.predict(x, batch_size=batch_size, verbose=0)
    return float(np.mean(np.argmax(scores, axis=-1) == data.labels))


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

    model.compile(optimizer=make_optimizer(args.optimizer, args.lr))
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
        callbacks=[checkpoint],
        shuffle=True,
        verbose=0 if args.quiet else 1,
    )
    fit_seconds = time.time() - fit_started
    after = evaluate_accuracy(model, test, args.eval_batch_size)
    log(f"Test accuracy after tuning:  {after:.4f} (best epoch "
        f"{(checkpoint.best_epoch or 0) + 1} by {monitor})")
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
        "lr": args.lr,
        "epochs": args.epochs,
        "batch_size": args.batch_size,
        "test_accuracy_before": before,
        "test_accuracy_after": after,
        "best_epoch": checkpoint.best_epoch,
        "fit_seconds": round(fit_seconds, 1),
        "prompt_file": prompt_path,
    }
    with open(os.path.join(args.output_dir, "results.json"), "w") as f:
        json.dump(results, f, indent=2)
    log(f"Saved the prompt to {prompt_path}")
    return results
