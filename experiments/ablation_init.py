"""Initialization ablation on SST-2 16-shot, 5 seeds: random, sampled vocabulary, class labels.

Lester et al. (2021, Sec. 3.2 and Fig. 3b) compare three ways to start a
soft prompt: random uniform, embeddings of sampled vocabulary tokens, and
embeddings of the class labels (the remaining tokens from sampled
vocabulary). Prompt tuning as in paper_methods.py (20 tokens, AdamW 0.03,
`--steps` steps of 8, last iterate); "random" is uniform with the spread of
the embedding table (`RandomUniform(limit="embedding")`), "vocab" samples
the first 5,000 ids. Runs are cached in experiments/runs/paper_runs/ (the
label-initialized runs are those of paper_methods.py) and checkpoint every
step. Writes results/ablation_init.md and .png.

    python -m experiments.ablation_init [--test-size 400] [--steps 40]
"""

import argparse
import os

import numpy as np

from experiments import common
from experiments.paper_methods import prompt_tuning_row

INITS = ("random", "vocab", "labels")


def report(args, rows):
    lines = [
        "# Initialization ablation: SST-2 16-shot, 5 seeds, SmolLM2-135M-Instruct",
        "",
        f"Command: `python -m experiments.ablation_init --test-size {args.test_size} "
        f"--steps {args.steps}`",
        "",
        f"Test accuracy (%) on a fixed subset of {args.test_size} SST-2 validation sentences; "
        f"20 tokens, AdamW lr 0.03, {args.steps} steps x 8, last iterate. random: uniform with the "
        "embedding table's spread; vocab: embeddings of tokens sampled from the first 5,000 ids; "
        "labels: ' terrible', ' great', then sampled vocabulary. Final training loss (mean of the "
        "last 4 mini-batches) in parentheses.",
        "",
        "| init | " + " | ".join(f"seed {s}" for s in common.SEEDS) + " | mean ± std |",
        "|---|" + "---|" * (len(common.SEEDS) + 1),
    ]
    for init in INITS:
        cells, values = [], []
        for seed in common.SEEDS:
            row = rows.get((init, seed))
            if row is None:
                cells.append("-")
                continue
            values.append(row["test_accuracy"])
            cells.append(f"{100 * row['test_accuracy']:.1f} ({row['final_train_loss']:.2f})")
        lines.append(f"| {init} | " + " | ".join(cells) + f" | {common.mean_std(values)} |")
    common.write_markdown("ablation_init.md", lines)

    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for i, init in enumerate(INITS):
        values = [100 * rows[(init, s)]["test_accuracy"] for s in common.SEEDS if (init, s) in rows]
        if not values:
            continue
        ax.bar(i, np.mean(values), yerr=np.std(values, ddof=1) if len(values) > 1 else 0,
               color="C%d" % i, alpha=0.6, capsize=4)
        ax.scatter([i] * len(values), values, color="k", s=12, zorder=3)
    ax.axhline(50, color="grey", lw=0.8, ls="--")
    ax.set_xticks(range(len(INITS)))
    ax.set_xticklabels(INITS)
    ax.set_ylabel("SST-2 test accuracy (%)")
    ax.set_title("Prompt initialization, 5 seeds (dots), mean ± std")
    fig.tight_layout()
    fig.savefig(os.path.join(common.RESULTS, "ablation_init.png"), dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-size", type=int, default=400, help="0 = all 872")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seeds", type=int, nargs="+", default=list(common.SEEDS))
    parser.add_argument("--logdir", help="TensorBoard logs of the runs go here")
    args = parser.parse_args()
    task, _, _, _ = common.load_splits("sst2", common.SEEDS[0], args.test_size)
    rows = {}
    for init in INITS:
        for seed in common.SEEDS:
            row = prompt_tuning_row(task, seed, args.test_size, init=init, steps=args.steps,
                                    run=seed in args.seeds, logdir=args.logdir)
            if row is not None:
                rows[(init, seed)] = row
                report(args, rows)


if __name__ == "__main__":
    main()
