"""SST-2 16-shot, all 5 seeds: zero-shot, in-context learning, prompt tuning, residual.

The methods compared in Lester et al. (prompt tuning), Razdaibiedina et al.
(residual prompt tuning) and Sun et al. (BBT, CMA-ES), on the embedded
SmolLM2-135M-Instruct with the LM-BFF splits:

- zero-shot: the template and label words alone (no prompt); the test set
  is the same for every seed, so it is scored once;
- in-context learning: 2 demonstrations per class (k = 4) drawn from the
  seed's training split, as a text prefix (no training);
- prompt tuning: 20 tokens initialized from the label words, AdamW at
  0.03, `--steps` steps of 8 examples, last iterate (no dev selection);
- residual: the same prompt and budget through Razdaibiedina et al.'s
  residual MLP (LayerNorm gain = the embedding std, the CLI's default);
- CMA-ES (BBT): only with `--cma-forward-calls N` (seed 42 only; about 2 s
  per call on this CPU).

Each run is cached (experiments/runs/paper_runs/<run>.json) and tuning runs
checkpoint every step, so a rerun skips finished work and resumes the rest.
Writes results/paper_methods.md and results/paper_methods.png.

    python -m experiments.paper_methods [--test-size 400] [--steps 40]
"""

import argparse
import os

import numpy as np

from experiments import common

EXPERIMENT = "paper_runs"


def zero_shot(args, task):
    def compute(run_dir):
        _, _, _, test = common.load_splits("sst2", 42, args.test_size)
        model = common.make_model(task, prompt_length=0)
        return {"test_accuracy": common.accuracy(model, test), "tune_seconds": 0.0}

    return common.cached(EXPERIMENT, f"sst2-zeroshot-test{args.test_size}", compute)


def in_context(args, task, seed):
    def compute(run_dir):
        _, train, _, test = common.load_splits("sst2", seed, args.test_size)
        model = common.make_model(task, prompt_length=0, max_length=512)
        test.texts = common.in_context_texts(task, train, test.texts, per_class=2, seed=seed)
        return {"test_accuracy": common.accuracy(model, test), "tune_seconds": 0.0}

    return common.cached(EXPERIMENT, f"sst2-s{seed}-icl-k4-test{args.test_size}", compute)


def prompt_tuning_row(task, seed, test_size, prompt_length=20, init="labels", reparam="none",
                      lr=0.03, steps=40, logdir=None):
    """One cached prompt-tuning run; shared with the ablation scripts."""
    name = (f"sst2-s{seed}-P{prompt_length}-{init}-{reparam}-lr{lr:g}-steps{steps}"
            f"-test{test_size}")

    def compute(run_dir):
        _, train, _, test = common.load_splits("sst2", seed, test_size)
        parameterization = common.residual_parameterization() if reparam == "residual" else None
        model = common.make_model(task, prompt_length, init=init, parameterization=parameterization)
        seconds, result = common.tune_with_runner(
            model, train, run_dir, steps=steps, learning_rate=lr, seed=seed,
            logdir=None if logdir is None else os.path.join(logdir, name),
            hparams={"seed": seed, "prompt_length": prompt_length, "init": init,
                     "reparam": reparam, "lr": lr, "steps": steps},
        )
        return {
            "test_accuracy": common.accuracy(model, test),
            "tune_seconds": round(seconds, 1),
            "final_train_loss": float(np.mean([h["loss"] for h in result.history[-4:]])),
        }

    return common.cached(EXPERIMENT, name, compute)


def cma_es(args, task, seed):
    name = f"sst2-s{seed}-P20-labels-cmaes-calls{args.cma_forward_calls}-test{args.test_size}"

    def compute(run_dir):
        _, train, _, test = common.load_splits("sst2", seed, args.test_size)
        model = common.make_model(task, 20)
        seconds, _ = common.tune_with_runner(
            model, train, run_dir, steps=None, learning_rate=None, seed=seed,
            optimizer="cma-es", forward_calls=args.cma_forward_calls,
        )
        return {"test_accuracy": common.accuracy(model, test), "tune_seconds": round(seconds, 1)}

    return common.cached(EXPERIMENT, name, compute)


def report(args, rows):
    methods = [m for m in ("zero-shot", "in-context (k=4)", "prompt tuning", "residual", "CMA-ES (BBT)")
               if any(r["method"] == m for r in rows)]
    lines = [
        "# SST-2 16-shot, 5 seeds: methods of the three papers on SmolLM2-135M-Instruct",
        "",
        f"Command: `python -m experiments.paper_methods --test-size {args.test_size} --steps {args.steps}"
        + (f" --cma-forward-calls {args.cma_forward_calls}" if args.cma_forward_calls else "") + "`",
        "",
        f"Test accuracy (%) on a fixed random subset of {args.test_size} of the 872 SST-2 "
        "validation sentences (the same subset for every seed and method). "
        "Prompt tuning / residual: 20 tokens, label-word init, AdamW lr 0.03, "
        f"{args.steps} steps x 8 examples, last iterate. 2 shared CPU cores. Zero-shot "
        "uses no training data, so its number is the same for every seed (std 0 by construction).",
        "",
        "| method | " + " | ".join(f"seed {s}" for s in common.SEEDS) + " | mean ± std | tuning s / run |",
        "|---|" + "---|" * (len(common.SEEDS) + 2),
    ]
    for method in methods:
        by_seed = {r["seed"]: r for r in rows if r["method"] == method}
        cells = [f"{100 * by_seed[s]['test_accuracy']:.1f}" if s in by_seed else "-" for s in common.SEEDS]
        values = [by_seed[s]["test_accuracy"] for s in common.SEEDS if s in by_seed]
        seconds = np.mean([r["tune_seconds"] for r in by_seed.values()])
        lines.append(f"| {method} | " + " | ".join(cells) + f" | {common.mean_std(values)} | {seconds:.0f} |")
    common.write_markdown("paper_methods.md", lines)

    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, method in enumerate(methods):
        values = [100 * r["test_accuracy"] for r in rows if r["method"] == method]
        ax.bar(i, np.mean(values), yerr=np.std(values, ddof=1) if len(values) > 1 else 0,
               color="C%d" % i, alpha=0.6, capsize=4)
        ax.scatter([i] * len(values), values, color="k", s=12, zorder=3)
    ax.axhline(50, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(methods)))
    ax.set_xticklabels(methods, rotation=15)
    ax.set_ylabel("SST-2 test accuracy (%)")
    ax.set_title("SmolLM2-135M, SST-2 16-shot, 5 seeds (dots) mean ± std")
    fig.tight_layout()
    fig.savefig(os.path.join(common.RESULTS, "paper_methods.png"), dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-size", type=int, default=400, help="0 = all 872")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--cma-forward-calls", type=int, default=0, help="0 = skip CMA-ES")
    parser.add_argument("--logdir", help="TensorBoard logs of the tuning runs go here")
    parser.add_argument("--seeds", type=int, nargs="*", default=[42, 13, 21, 87, 100])
    args = parser.parse_args()
    task, _, _, _ = common.load_splits("sst2", 42, args.test_size)
    rows = []

    def add(method, seed, row):
        rows.append({**row, "method": method, "seed": seed})
        report(args, rows)

    zero = zero_shot(args, task)
    for seed in args.seeds:
        add("zero-shot", seed, zero)
        add("in-context (k=4)", seed, in_context(args, task, seed))
        add("prompt tuning", seed, prompt_tuning_row(
            task, seed, args.test_size, steps=args.steps, logdir=args.logdir))
        add("residual", seed, prompt_tuning_row(
            task, seed, args.test_size, reparam="residual", steps=args.steps, logdir=args.logdir))
    if args.cma_forward_calls:
        add("CMA-ES (BBT)", 42, cma_es(args, task, 42))


if __name__ == "__main__":
    main()
