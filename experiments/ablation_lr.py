"""Learning-rate robustness on SST-2 16-shot, seed 42: residual vs plain prompt tuning.

Razdaibiedina et al. (2023) report that residual reparameterization makes
prompt tuning robust to the learning rate. Both methods use the setup of
paper_methods.py (20 tokens, label-word init, AdamW, `--steps` steps of 8,
last iterate) at each learning rate in `--lrs`. Runs are cached in
experiments/runs/paper_runs/ (lr 0.03 is shared with paper_methods.py).
Writes results/ablation_lr.md and .png.

    python -m experiments.ablation_lr [--lrs 0.03 0.3 3] [--test-size 400] [--steps 40]
"""

import argparse
import os

from experiments import common
from experiments.paper_methods import prompt_tuning_row


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--lrs", type=float, nargs="*", default=[0.03, 0.3, 3.0])
    parser.add_argument("--test-size", type=int, default=400, help="0 = all 872")
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--logdir", help="TensorBoard logs of the runs go here")
    args = parser.parse_args()
    task, _, _, _ = common.load_splits("sst2", args.seed, args.test_size)
    results = {}
    for lr in args.lrs:
        for reparam in ("none", "residual"):
            results[(reparam, lr)] = prompt_tuning_row(
                task, args.seed, args.test_size, reparam=reparam, lr=lr, steps=args.steps,
                logdir=args.logdir)
            lines = [
                f"# Learning-rate robustness: SST-2 16-shot, seed {args.seed}, SmolLM2-135M-Instruct",
                "",
                f"Command: `python -m experiments.ablation_lr --lrs {' '.join(f'{x:g}' for x in args.lrs)} "
                f"--test-size {args.test_size} --steps {args.steps}`",
                "",
                f"Test accuracy (%) on a fixed subset of {args.test_size} SST-2 validation sentences "
                f"(final train loss in parentheses); 20 tokens, label-word init, AdamW, {args.steps} "
                "steps x 8, last iterate.",
                "",
                "| learning rate | prompt tuning | residual prompt tuning |",
                "|---|---|---|",
            ]
            for x in args.lrs:
                cells = []
                for name in ("none", "residual"):
                    r = results.get((name, x))
                    cells.append("-" if r is None else
                                 f"{100 * r['test_accuracy']:.1f} ({r['final_train_loss']:.3f})")
                lines.append(f"| {x:g} | " + " | ".join(cells) + " |")
            common.write_markdown("ablation_lr.md", lines)
    plt = common.pyplot()
    fig, ax = plt.subplots(figsize=(5, 3.5))
    for name, label in (("none", "prompt tuning"), ("residual", "residual")):
        lrs = [x for x in args.lrs if (name, x) in results]
        ax.plot(lrs, [100 * results[(name, x)]["test_accuracy"] for x in lrs], "o-", label=label)
    ax.set_xscale("log")
    ax.set_xlabel("learning rate (AdamW)")
    ax.set_ylabel("SST-2 test accuracy (%)")
    ax.legend()
    ax.set_title(f"Learning-rate robustness, SST-2 seed {args.seed}")
    fig.tight_layout()
    fig.savefig(os.path.join(common.RESULTS, "ablation_lr.png"), dpi=110)


if __name__ == "__main__":
    main()
