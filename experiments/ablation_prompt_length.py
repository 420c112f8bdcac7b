"""Prompt-length ablation on SST-2 16-shot, seed 42: P = 1, 5, 20, 100 (Lester et al., Fig. 3a).

Prompt tuning as in paper_methods.py (label-word init, then sampled
vocabulary for P > C; AdamW 0.03; `--steps` steps of 8; last iterate). Runs
are cached in experiments/runs/paper_runs/ (the P = 20 run is shared with
paper_methods.py) and checkpoint every step. Writes
results/ablation_prompt_length.md and .png. With `--logdir`, each run's
TensorBoard logs (loss, prompt norms, nearest tokens, hparams) go there.

    python -m experiments.ablation_prompt_length [--test-size 400] [--steps 40] [--logdir DIR]
"""

import argparse
import os

from experiments import common
from experiments.paper_methods import prompt_tuning_row

LENGTHS = (1, 5, 20, 100)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--test-size", type=int, default=400, help="0 = all 872")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--logdir", help="TensorBoard logs of the runs go here")
    args = parser.parse_args()
    task, _, _, _ = common.load_splits("sst2", args.seed, args.test_size)
    rows = []
    for length in LENGTHS:
        row = prompt_tuning_row(task, args.seed, args.test_size, prompt_length=length,
                                steps=args.steps, logdir=args.logdir)
        rows.append({**row, "prompt_length": length})
        lines = [
            f"# Prompt length ablation: SST-2 16-shot, seed {args.seed}, SmolLM2-135M-Instruct",
            "",
            f"Command: `python -m experiments.ablation_prompt_length --test-size {args.test_size} "
            f"--steps {args.steps}`",
            "",
            f"Test accuracy on a fixed subset of {args.test_size} SST-2 validation sentences; "
            f"label-word init, AdamW lr 0.03, {args.steps} steps x 8, last iterate. "
            "Zero-shot (no prompt) on the same subset: see paper_methods.md.",
            "",
            "| prompt length P | test accuracy (%) | final train loss (mean of last 4 steps) | tuning s |",
            "|---|---|---|---|",
        ]
        for r in rows:
            lines.append(f"| {r['prompt_length']} | {100 * r['test_accuracy']:.1f} | "
                         f"{r['final_train_loss']:.3f} | {r['tune_seconds']:.0f} |")
        common.write_markdown("ablation_prompt_length.md", lines)
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    ax.plot([r["prompt_length"] for r in rows], [100 * r["test_accuracy"] for r in rows], "o-")
    ax.set_xscale("log")
    ax.set_xticks(list(LENGTHS))
    ax.set_xticklabels([str(n) for n in LENGTHS])
    ax.set_xlabel("prompt length P (tokens)")
    ax.set_ylabel("SST-2 test accuracy (%)")
    ax.set_title(f"Prompt length, SST-2 seed {args.seed}")
    fig.tight_layout()
    fig.savefig(os.path.join(common.RESULTS, "ablation_prompt_length.png"), dpi=110)


if __name__ == "__main__":
    main()
