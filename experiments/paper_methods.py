"""Methods of the three papers on the LM-BFF 16-shot splits, all 5 seeds.

The methods compared in Lester et al. (prompt tuning), Razdaibiedina et al.
(residual prompt tuning), Li & Liang (prefix tuning) and Sun et al. (BBT,
CMA-ES), on the embedded SmolLM2-135M-Instruct:

- zero-shot: the template and label words alone (no prompt); the test set
  is the same for every seed, so it is scored once;
- in-context learning: `--icl-per-class` demonstrations per class drawn
  from the seed's training split, as a text prefix (no training);
- prompt tuning: 20 tokens initialized from the label words, AdamW at
  `--lr`, `--steps` steps of 8 examples, last iterate (no dev selection);
- residual: the same prompt and budget through Razdaibiedina et al.'s
  residual MLP (LayerNorm gain = the embedding std, the CLI's default);
- prefix tuning: `--prefix-length` key/value prefixes in every layer,
  initialized from the label words' own keys and values (Li & Liang's
  real-word initialization), AdamW at `--prefix-lr`, same steps and batch;
- CMA-ES (BBT): 20 tokens, d = 500 random subspace, popsize 20, the whole
  training split per candidate, `--cma-forward-calls` candidate scorings.
  To afford BBT-like budgets on a CPU, the prompt sits after the input
  (`placement="suffix"`), so `SharedInputEvaluator` computes the input's
  keys and values once per generation, and the backbone runs in bfloat16
  (experiments/results/benchmarks_after.md: 2.8x fewer seconds per call).

Each run is cached (experiments/runs/paper_runs/<run>.json, named by its
whole configuration, so the ablations share runs with this script) and
tuning runs checkpoint every step, so a rerun skips finished work and
resumes the rest. Writes results/paper_methods[_<task>].md and .png.

    python -m experiments.paper_methods [--task sst2] [--test-size 400] [--steps 40]
"""

import argparse
import os

import numpy as np

from experiments import common
from promptopt.evaluators.prefix_evaluator import PrefixEvaluator
from promptopt.evaluators.shared_input_evaluator import SharedInputEvaluator

EXPERIMENT = "paper_runs"
METHODS = ("zero-shot", "in-context", "prompt-tuning", "residual", "prefix-tuning", "cma-es")
TITLES = {
    "zero-shot": "zero-shot",
    "in-context": "in-context (k={k})",
    "prompt-tuning": "prompt tuning",
    "residual": "residual",
    "prefix-tuning": "prefix tuning",
    "cma-es": "CMA-ES (BBT)",
}


def zero_shot(task_name, test_size, run=True):
    def compute(run_dir):
        task, _, _, test = common.load_splits(task_name, common.SEEDS[0], test_size)
        model = common.make_model(task, prompt_length=0)
        return {"test_accuracy": common.accuracy(model, test), "tune_seconds": 0.0}

    return common.cached(EXPERIMENT, f"{task_name}-zeroshot-test{test_size}", compute if run else None)


def in_context(task_name, seed, test_size, per_class, run=True):
    def compute(run_dir):
        task, train, _, test = common.load_splits(task_name, seed, test_size)
        model = common.make_model(task, prompt_length=0, max_length=512)
        test.texts = common.in_context_texts(task, train, test.texts, per_class=per_class, seed=seed)
        return {"test_accuracy": common.accuracy(model, test), "tune_seconds": 0.0}

    k = per_class * len(common.get_fewshot_task(task_name).classes)
    return common.cached(EXPERIMENT, f"{task_name}-s{seed}-icl-k{k}-test{test_size}", compute if run else None)


def prompt_tuning_row(task, seed, test_size, prompt_length=20, init="labels", reparam="none",
                      lr=0.03, steps=40, logdir=None, run=True):
    """One cached prompt-tuning run; shared with the ablation scripts.

    With `run=False` a run that is not cached is not started (None).
    """
    name = (f"{task.name}-s{seed}-P{prompt_length}-{init}-{reparam}-lr{lr:g}-steps{steps}"
            f"-test{test_size}")

    def compute(run_dir):
        _, train, _, test = common.load_splits(task.name, seed, test_size)
        parameterization = common.residual_parameterization() if reparam == "residual" else None
        model = common.make_model(task, prompt_length, init=init, parameterization=parameterization)
        seconds, result = common.tune_prompt(
            model, train, run_dir, steps=steps, learning_rate=lr, seed=seed,
            logdir=None if logdir is None else os.path.join(logdir, name),
            hparams={"task": task.name, "seed": seed, "prompt_length": prompt_length,
                     "init": init, "reparam": reparam, "lr": lr, "steps": steps},
        )
        return {
            "test_accuracy": common.accuracy(model, test),
            "tune_seconds": round(seconds, 1),
            "final_train_loss": common.final_train_loss(result),
            "trained_parameters": int(sum(np.prod(w.shape) for w in model.trainable_weights)),
        }

    return common.cached(EXPERIMENT, name, compute if run else None)


def label_text(task):
    """The classes' first label words as one text (the real-word initialization)."""
    return "".join(task.label_words[name][0] for name in task.classes)


def prefix_tuning_row(task, seed, test_size, prefix_length=10, lr=0.005, steps=40, batch_size=8,
                      run=True):
    name = f"{task.name}-s{seed}-prefix{prefix_length}-labels-lr{lr:g}-steps{steps}-test{test_size}"

    def compute(run_dir):
        _, train, _, test = common.load_splits(task.name, seed, test_size)
        model = common.make_prefix_model(task, prefix_length, "text:" + label_text(task))
        x = model.encode_texts(train.texts)
        evaluator = PrefixEvaluator(model, x, train.labels, batch_size=batch_size, seed=seed)
        seconds, result = common.tune(evaluator, common.backprop_stage(lr, steps), run_dir, seed)
        return {
            "test_accuracy": common.accuracy(model, test),
            "tune_seconds": round(seconds, 1),
            "final_train_loss": common.final_train_loss(result),
            "trained_parameters": int(np.prod(model.prefix.raw.shape)),
        }

    return common.cached(EXPERIMENT, name, compute if run else None)


def cma_es_row(task, seed, test_size, forward_calls, init="labels", logdir=None, run=True):
    name = (f"{task.name}-s{seed}-P20-{init}-cmaes-suffix-bf16-calls{forward_calls}"
            f"-test{test_size}")

    def compute(run_dir):
        _, train, _, test = common.load_splits(task.name, seed, test_size)
        model = common.make_model(task, 20, init=init, placement="suffix", dtype="bfloat16")
        x = model.encode_texts(train.texts)
        # BBT scores every candidate on the whole training split.
        evaluator = SharedInputEvaluator(model, x, train.labels, batch_size=len(train), seed=seed)
        initial_loss = float(evaluator.evaluate(evaluator.initial_candidate()[None], 0).losses[0])
        seconds, result = common.tune(
            evaluator, common.cma_es_stage(model, forward_calls), run_dir, seed,
            logdir=None if logdir is None else os.path.join(logdir, name),
            hparams={"task": task.name, "seed": seed, "init": init, "optimizer": "cma-es",
                     "forward_calls": forward_calls},
        )
        return {
            "test_accuracy": common.accuracy(model, test),
            "tune_seconds": round(seconds, 1),
            "initial_train_loss": initial_loss,
            "final_train_loss": float(result.lowest_loss),  # the whole split: not noisy
            "trained_parameters": 500,  # the subspace dimension d that CMA-ES searches
        }

    return common.cached(EXPERIMENT, name, compute if run else None)


def results_name(task_name, steps=40):
    """results/<name>.md: one file per task (and per step budget other than 40)."""
    name = "paper_methods" if task_name == "sst2" else f"paper_methods_{task_name}"
    return name if steps == 40 else f"{name}_steps{steps}"


def command(args, methods):
    """The command that computes (or, from the cache, reports) the rows of `methods`."""
    text = (f"python -m experiments.paper_methods --task {args.task} --test-size {args.test_size} "
            f"--steps {args.steps} --icl-per-class {args.icl_per_class}")
    if "cma-es" in methods:
        text += f" --cma-forward-calls {args.cma_forward_calls}"
    if list(methods) != list(METHODS):
        text += " --methods " + " ".join(methods)
    return text


def report(args, task, test_count, rows):
    k = args.icl_per_class * len(task.classes)
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    subset = (f"a fixed random subset of {args.test_size} of the {test_count} test examples "
              "(the same subset for every seed and method)"
              if args.test_size and args.test_size < test_count else f"all {test_count} test examples")
    lines = [
        f"# {task.name} 16-shot, 5 seeds: methods of the papers on SmolLM2-135M-Instruct",
        "",
        f"Command: `{command(args, methods)}`",
        "",
        f"Test accuracy (%) on {subset}. Prompt tuning / residual: 20 tokens, label-word init, "
        f"AdamW lr {args.lr:g}, {args.steps} steps x 8 examples, last iterate. Prefix tuning: "
        f"{args.prefix_length} K/V prefixes per layer from the label words' activations, AdamW lr "
        f"{args.prefix_lr:g}, same steps. "
        + (f"CMA-ES (BBT): 20-token suffix prompt, label-word p0, d = 500, popsize 20, "
           f"{args.cma_forward_calls} forward calls of the whole training split, bfloat16 "
           "backbone, best-so-far candidate (its final train loss is on the whole training "
           "split; the others' is the mean of the last 4 mini-batches). "
           if "cma-es" in methods else "")
        + "Trained weights: prompt 11,520 (20 x 576), residual the same plus its MLP, prefix "
        f"{args.prefix_length * 30 * 2 * 3 * 64:,} (P x 30 layers x K,V x 3 heads x 64)"
        + ("; CMA-ES searches 500 dimensions" if "cma-es" in methods else "")
        + ". In-context: "
        f"{args.icl_per_class} demonstration(s) per class. Zero-shot uses no training data, so "
        "its number is the same for every seed (std 0 by construction). 2 CPU cores.",
        "",
        "| method | " + " | ".join(f"seed {s}" for s in common.SEEDS)
        + " | mean ± std | final train loss | tuning s / run |",
        "|---|" + "---|" * (len(common.SEEDS) + 3),
    ]
    for method in methods:
        by_seed = {r["seed"]: r for r in rows if r["method"] == method}
        cells = [f"{100 * by_seed[s]['test_accuracy']:.1f}" if s in by_seed else "-"
                 for s in common.SEEDS]
        values = [by_seed[s]["test_accuracy"] for s in common.SEEDS if s in by_seed]
        seconds = np.mean([r["tune_seconds"] for r in by_seed.values()])
        losses = [r["final_train_loss"] for r in by_seed.values() if "final_train_loss" in r]
        lines.append(
            f"| {TITLES[method].format(k=k)} | " + " | ".join(cells)
            + f" | {common.mean_std(values)}"
            + f" | {f'{np.mean(losses):.3f}' if losses else '-'} | {seconds:.0f} |"
        )
    common.write_markdown(results_name(task.name, args.steps) + ".md", lines)

    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(8, 4))
    for i, method in enumerate(methods):
        values = [100 * r["test_accuracy"] for r in rows if r["method"] == method]
        ax.bar(i, np.mean(values), yerr=np.std(values, ddof=1) if len(values) > 1 else 0,
               color="C%d" % i, alpha=0.6, capsize=4)
        ax.scatter([i] * len(values), values, color="k", s=12, zorder=3)
    ax.axhline(100 / len(task.classes), color="grey", lw=0.8, ls="--", label="chance")
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels([TITLES[m].format(k=k) for m in methods], rotation=15)
    ax.set_ylabel(f"{task.name} test accuracy (%)")
    ax.set_title(f"SmolLM2-135M, {task.name} 16-shot, 5 seeds (dots), mean ± std")
    ax.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(os.path.join(common.RESULTS, results_name(task.name, args.steps) + ".png"),
                dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sst2", choices=("sst2", "trec", "sst5"))
    parser.add_argument("--test-size", type=int, default=400, help="0 = the whole test split")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--prefix-length", type=int, default=10)
    parser.add_argument("--prefix-lr", type=float, default=0.005)
    parser.add_argument("--cma-forward-calls", type=int, default=1000)
    parser.add_argument("--icl-per-class", type=int, default=2)
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--logdir", help="TensorBoard logs of the tuning runs go here")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(common.SEEDS))
    args = parser.parse_args()
    task, _, _, test = common.load_splits(args.task, common.SEEDS[0], 0)
    rows = []

    def add(method, seed, row):
        rows.append({**row, "method": method, "seed": seed})
        report(args, task, len(test), rows)

    logdir = args.logdir
    runs = {
        "zero-shot": lambda seed, run: zero_shot(args.task, args.test_size, run),
        "in-context": lambda seed, run: in_context(
            args.task, seed, args.test_size, args.icl_per_class, run),
        "prompt-tuning": lambda seed, run: prompt_tuning_row(
            task, seed, args.test_size, lr=args.lr, steps=args.steps, logdir=logdir, run=run),
        "residual": lambda seed, run: prompt_tuning_row(
            task, seed, args.test_size, reparam="residual", lr=args.lr, steps=args.steps,
            logdir=logdir, run=run),
        "prefix-tuning": lambda seed, run: prefix_tuning_row(
            task, seed, args.test_size, args.prefix_length, args.prefix_lr, args.steps, run=run),
        "cma-es": lambda seed, run: cma_es_row(
            task, seed, args.test_size, args.cma_forward_calls, logdir=logdir, run=run),
    }
    # The report holds every finished run of this configuration, whichever
    # methods and seeds this invocation computes.
    for method in METHODS:
        for seed in common.SEEDS:
            row = runs[method](seed, False)
            if row is not None:
                rows.append({**row, "method": method, "seed": seed})
    # Method by method, so a stopped run leaves whole rows rather than whole seeds.
    for method in args.methods:
        for seed in args.seeds:
            if not any(r["method"] == method and r["seed"] == seed for r in rows):
                add(method, seed, runs[method](seed, True))
    if rows:
        report(args, task, len(test), rows)


if __name__ == "__main__":
    main()
