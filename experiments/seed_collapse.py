"""Why one seed of prompt tuning collapses: training curves, seed by seed.

`paper_methods` found prompt tuning at 72.2 ± 11.9 on SST-2, with seed 100
at 51.2% (one class for everything) after 40 AdamW steps at lr 0.03 from
the label words. This script reruns that recipe (or a variant given by the
flags) through the runner loop and records, every `--every` steps:

- the loss and accuracy on the whole training split (32 sentences), and
  the fraction of it predicted as class 1 (a collapse predicts one class);
- dev accuracy (32 sentences);
- how far the prompt has moved from its initialization, and its RMS,
  against the RMS of the embedding table (the scale of real tokens);
- the mini-batch loss of every step.

No test set is touched: the diagnosis is made on train and dev only.
Every run is cached in `experiments/runs/seed_collapse/<name>.json`.

    python -m experiments.seed_collapse --seeds 100 42
    python -m experiments.seed_collapse --seeds 100 --lr 0.01 --steps 80 --every 8
    python -m experiments.seed_collapse --report   # results/seed_collapse.md and .png
"""

import json
import os

import argparse

import numpy as np

from experiments import common
from promptopt.callbacks import RunnerCallback
from promptopt.evaluators.keras_evaluator import KerasEvaluator
from promptopt.runner.runner import PromptTuningRunner

EXPERIMENT = "seed_collapse"


class CurveRecorder(RunnerCallback):
    """Scores the current export on the whole train split and on dev every `every` steps."""

    def __init__(self, model, train, dev, initial, every):
        super().__init__()
        self.model, self.every, self.initial = model, every, initial
        self.train_x, self.train_y = model.encode_texts(train.texts), train.labels
        self.dev_x, self.dev_y = model.encode_texts(dev.texts), dev.labels
        self.embedding_rms = float(np.sqrt(np.mean(np.square(model.embedding_table()))))
        self.points, self.step_losses = [], []

    def _score(self, x, y, prompt):
        self.model.soft_prompt.assign(prompt)
        scores = np.asarray(self.model(x, training=False), "float64")  # [N, C] log-probs
        log_p = scores - np.logaddexp.reduce(scores, axis=-1, keepdims=True)
        predicted = scores.argmax(-1)
        return float(-log_p[np.arange(len(y)), y].mean()), predicted

    def record(self, step, prompt=None):
        if prompt is None:  # the runner's current export
            prompt = self.runner.current_optimizer.best(self.runner.current_state)
        prompt = np.asarray(prompt, "float32").reshape(self.initial.shape)
        train_loss, train_predicted = self._score(self.train_x, self.train_y, prompt)
        _, dev_predicted = self._score(self.dev_x, self.dev_y, prompt)
        self.points.append({
            "step": step,
            "train_loss": train_loss,
            "train_accuracy": float(np.mean(train_predicted == self.train_y)),
            "train_class1_rate": float(np.mean(train_predicted == 1)),
            "dev_accuracy": float(np.mean(dev_predicted == self.dev_y)),
            "moved_rms": float(np.sqrt(np.mean(np.square(prompt - self.initial)))),
            "prompt_rms": float(np.sqrt(np.mean(np.square(prompt)))),
        })

    def on_step_end(self, step, logs):
        self.step_losses.append(float(logs["loss"]))
        if (step + 1) % self.every == 0:
            self.record(step + 1)


def run(seed, lr, steps, every, init, batch_size):
    name = f"sst2-s{seed}-{init}-lr{lr:g}-steps{steps}-b{batch_size}"

    def compute(run_dir):
        task, train, dev, _ = common.load_splits("sst2", seed, 0)
        model = common.make_model(task, 20, init=init)
        evaluator = KerasEvaluator(model, model.encode_texts(train.texts), train.labels,
                                   batch_size=batch_size, seed=seed)
        initial = np.asarray(evaluator.initial_candidate(), "float32")
        recorder = CurveRecorder(model, train, dev, initial, every)
        recorder.record(0, initial)
        runner = PromptTuningRunner(evaluator, callbacks=[recorder])
        runner.run(initial, [common.backprop_stage(lr, steps)], seed=seed)
        return {"seed": seed, "lr": lr, "steps": steps, "init": init, "batch_size": batch_size,
                "embedding_rms": recorder.embedding_rms, "points": recorder.points,
                "step_losses": recorder.step_losses}

    return common.cached(EXPERIMENT, name, compute)


def report():
    """The table and curves of every cached run."""
    directory = os.path.join(common.HERE, "runs", EXPERIMENT)
    rows = []
    for name in sorted(os.listdir(directory)) if os.path.isdir(directory) else ():
        if name.endswith(".json"):
            with open(os.path.join(directory, name)) as f:
                rows.append(json.load(f))
    lines = [
        "# Why prompt tuning collapsed on seed 100: training curves (train and dev only)",
        "",
        "`python -m experiments.seed_collapse --report`; runs of `python -m "
        "experiments.seed_collapse --seeds S --lr LR --steps N --every E`. SST-2 16-shot, "
        "20-token prompt from the label words, AdamW (no weight decay), batch 8, last iterate "
        "scored every E steps on the whole training split (32) and on dev (32). Class-1 rate: "
        "the fraction of the training split predicted positive (0.5 is balanced; 0 or 1 is "
        "one class for everything). Moved: RMS of prompt - initial prompt, against the "
        "embedding table's RMS.",
        "",
    ]
    for row in rows:
        lines += [f"## seed {row['seed']}, lr {row['lr']:g}, {row['steps']} steps "
                  f"(embedding RMS {row['embedding_rms']:.3f})", "",
                  "| step | train loss | train acc | class-1 rate | dev acc | moved RMS |",
                  "|---|---|---|---|---|---|"]
        for p in row["points"]:
            lines.append(f"| {p['step']} | {p['train_loss']:.3f} | {p['train_accuracy']:.2f} | "
                         f"{p['train_class1_rate']:.2f} | {p['dev_accuracy']:.2f} | "
                         f"{p['moved_rms']:.3f} |")
        lines.append("")
    common.write_markdown("seed_collapse.md", lines)
    plt = common.pyplot()
    figure, axes = plt.subplots(1, 2, figsize=(10, 3.5))
    for row in rows:
        label = f"seed {row['seed']}, lr {row['lr']:g}"
        steps = [p["step"] for p in row["points"]]
        axes[0].plot(steps, [p["train_loss"] for p in row["points"]], marker="o", label=label)
        axes[1].plot(steps, [p["train_class1_rate"] for p in row["points"]], marker="o",
                     label=label)
    axes[0].set(xlabel="step", ylabel="loss on the whole training split", yscale="log")
    axes[1].set(xlabel="step", ylabel="training split predicted class 1", ylim=(-0.05, 1.05))
    axes[0].legend()
    figure.tight_layout()
    figure.savefig(os.path.join(common.RESULTS, "seed_collapse.png"), dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(common.SEEDS))
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--every", type=int, default=4)
    parser.add_argument("--init", default="labels")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--report", action="store_true", help="write the table and plot only")
    args = parser.parse_args()
    if args.report:
        report()
        return
    for seed in args.seeds:
        row = run(seed, args.lr, args.steps, args.every, args.init, args.batch_size)
        print(f"seed {seed}, lr {args.lr:g}: embedding RMS {row['embedding_rms']:.3f}")
        for p in row["points"]:
            print("  step {step:3d}  train loss {train_loss:.3f}  train acc {train_accuracy:.2f}"
                  "  class-1 rate {train_class1_rate:.2f}  dev acc {dev_accuracy:.2f}"
                  "  moved RMS {moved_rms:.3f}  prompt RMS {prompt_rms:.3f}".format(**p))


if __name__ == "__main__":
    main()
