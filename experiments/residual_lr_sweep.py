"""Learning-rate sweep of plain and residual prompt tuning, with the residual term's norm.

Razdaibiedina et al. (2023) report that the residual reparameterization
makes prompt tuning robust to the learning rate. This sweeps the learning
rate over 0.03, 0.3 and 3 for both methods (`promptopt tune --method prompt`
and `--method residual`, every other setting the library's default) on the
16-shot SST-2 splits of seeds 13, 21 and 42, under the protocol of
`experiments/protocol_runs.py` (dev-selected, full 872-sentence test set):
each run is the variant `<method>-lr<lr>` there, so its table row also
appears in `protocol_sst2.md`.

While each run trains, a callback records at every step, from the current
export `P_t` (and for residual the MLP's output `P'_t = P_t + R(P_t)`):

- `prompt_rms`: the RMS of the trained vectors `P_t`;
- `shift_rms`: the RMS of `P_t - P_0`, how far training moved them;
- `term_rms` (residual only): the RMS of the residual term `R(P_t)`;
- `loss`: the step's training loss.

Records go to `norms.jsonl` in the run's directory; a resumed run appends
the steps it redoes, and the last record of a step wins.

    python -m experiments.residual_lr_sweep              # runs what is missing, then reports
    python -m experiments.residual_lr_sweep --methods residual   # one process per method
    python -m experiments.residual_lr_sweep --report     # table and plots from finished runs
"""

import argparse
import json
import os

import numpy as np

from experiments import common
from experiments import protocol_runs
from promptopt.callbacks import RunnerCallback

METHODS = ("prompt", "residual")
LEARNING_RATES = (0.03, 0.3, 3.0)
SEEDS = (13, 21, 42)
TASK = "sst2"
# The reference code's own settings (arazd/ResidualPrompts, train.py's
# defaults): lr 0.3 for the prompt and the MLP, weight decay 1e-5 for both,
# bottleneck 800, LayerNorm on with PyTorch's initial gain of 1, no dropout.
REFERENCE = ("residual-reference", "residual",
             {"learning_rate": 0.3, "weight_decay": 1e-5, "residual_bottleneck": 800,
              "residual_scale": 1.0})
COMMAND = "python -m experiments.residual_lr_sweep"


def variant_name(method, learning_rate):
    return f"{method}-lr{learning_rate:g}"


class PromptNorms(RunnerCallback):
    """Appends the norms of the current export to `path`, one JSON line per step."""

    def __init__(self, path):
        self.path = path
        self.initial = None

    def on_run_begin(self, logs):
        # Before the first step the model still holds P_0, the label-word
        # initialization (the evaluator scores candidates statelessly). A
        # resumed run keeps the P_0 its first process stored.
        initial_path = self.path + ".initial.npy"
        if not os.path.exists(initial_path):
            np.save(initial_path, np.asarray(self.runner.evaluator.model.soft_prompt.prompt))
        self.initial = np.load(initial_path).astype("float64")

    def on_step_end(self, step, logs):
        runner = self.runner
        evaluator = runner.evaluator
        evaluator.assign(runner.current_optimizer.best(runner.current_state))
        soft_prompt = evaluator.model.soft_prompt
        trained = np.asarray(soft_prompt.prompt, dtype="float64")
        record = {"step": step, "loss": logs["loss"], "prompt_rms": _rms(trained),
                  "shift_rms": _rms(trained - self.initial)}
        if soft_prompt.parameterization is not None:
            record["term_rms"] = _rms(np.asarray(soft_prompt.materialize(), "float64") - trained)
        with open(self.path, "a") as f:
            f.write(json.dumps(record) + "\n")


def _rms(values):
    return float(np.sqrt(np.mean(np.square(values))))


def read_norms(path):
    """`{step: record}` of a run's norms.jsonl (the last record of each step)."""
    records = {}
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                record = json.loads(line)
                records[record["step"]] = record
    return dict(sorted(records.items()))


def variants():
    """`[(variant, method, overrides)]`: the learning-rate grid, then the reference."""
    grid = [(variant_name(method, lr), method, {"learning_rate": lr})
            for method in METHODS for lr in LEARNING_RATES]
    return grid + [REFERENCE]


def run_all(seeds, methods=METHODS):
    # Seed by seed, so an interrupted sweep has every cell of its first seeds.
    # `methods` lets two processes share the sweep without running a cell twice.
    for seed in seeds:
        for variant, method, overrides in variants():
            if method not in methods:
                continue
            out = protocol_runs.run_dir(variant, TASK, seed)
            os.makedirs(out, exist_ok=True)
            protocol_runs.run(variant, TASK, seed, method, overrides,
                              callbacks=[PromptNorms(os.path.join(out, "norms.jsonl"))])


def report(seeds):
    finished = protocol_runs.finished(TASK)
    # {variant: [test accuracy of each finished seed]} and {(variant, seed): norms}
    tests = {variant: [finished[variant][s]["test_accuracy_after"] for s in seeds
                       if s in finished.get(variant, {})] for variant, _, _ in variants()}
    norms = {(variant, seed): read_norms(os.path.join(
        protocol_runs.run_dir(variant, TASK, seed), "norms.jsonl"))
        for variant, _, _ in variants() for seed in seeds}
    lines = [
        "# Plain and residual prompt tuning across learning rates (SST-2)",
        "",
        f"Command: `{COMMAND}`. SmolLM2-135M-Instruct (embedded, float32), SST-2 16-shot, "
        f"splits {', '.join(map(str, seeds))}; `promptopt tune --method prompt|residual --lr X`, "
        "every other setting the library's default (20 tokens, label-word init, AdamW, 8 "
        "epochs of batch 8 = 32 steps; residual: shared MLP with bottleneck 400, LayerNorm, "
        "gain at the embeddings' scale, the same learning rate for the MLP). Dev-selected "
        "(the prompt best on the 32 dev examples, scored every epoch), test accuracy (%) on "
        "all 872 test sentences; mean ± std over the seeds that finished (n).",
        "",
        "| method | " + " | ".join(f"lr {lr:g}" for lr in LEARNING_RATES)
        + " | mean over lrs | spread (max - min) |",
        "|---|" + "---|" * len(LEARNING_RATES) + "---|---|",
    ]
    for method in METHODS:
        cells = [tests[variant_name(method, lr)] for lr in LEARNING_RATES]
        row = [f"{common.mean_std(cell)} (n={len(cell)})" if cell else "-" for cell in cells]
        means = [100 * float(np.mean(cell)) for cell in cells if cell]
        lines.append(f"| {method} | " + " | ".join(row) + " | "
                     + (f"{np.mean(means):.1f} | {max(means) - min(means):.1f} |"
                        if len(means) == len(LEARNING_RATES) else "- | - |"))
    variant, _, overrides = REFERENCE
    lines += ["", f"The reference code's settings ({', '.join(f'{k}={v}' for k, v in overrides.items())}"
              f"): {common.mean_std(tests[variant])} (n={len(tests[variant])})."]
    lines += ["", "## The residual term during training", "",
              "Median over the seeds of each run's RMS at its last step (`norms.jsonl`): the "
              "trained vectors P, how far training moved them (P_t - P_0), and the residual "
              "MLP's term R(P). For scale: SmolLM2's embedding table has an RMS of 0.136 "
              "(median row norm 3.15 over H = 576).", "",
              "| method | lr | steps | final loss | RMS of P | RMS of P_t - P_0 | RMS of R(P) |",
              "|---|---|---|---|---|---|---|"]
    for method in METHODS:
        for learning_rate in LEARNING_RATES:
            variant = variant_name(method, learning_rate)
            finals = [list(norms[variant, seed].values())[-1] for seed in seeds
                      if norms[variant, seed]]
            if not finals:
                continue
            median = lambda key: (f"{np.median([r[key] for r in finals]):.3g}"  # noqa: E731
                                  if key in finals[0] else "-")
            lines.append(f"| {method} | {learning_rate:g} | {finals[0]['step'] + 1} | "
                         f"{median('loss')} | {median('prompt_rms')} | {median('shift_rms')} | "
                         f"{median('term_rms')} |")
    common.write_markdown("residual_lr_sweep.md", lines)
    _plots(tests, norms, seeds)


def _plots(tests, norms, seeds):
    plt = common.pyplot()
    figure, (curve, growth) = plt.subplots(1, 2, figsize=(10, 3.8))
    for method, color in zip(METHODS, ("tab:blue", "tab:orange")):
        xs, ys, errors = [], [], []
        for learning_rate in LEARNING_RATES:
            points = [100 * t for t in tests[variant_name(method, learning_rate)]]
            if points:
                xs.append(learning_rate)
                ys.append(np.mean(points))
                errors.append(np.std(points, ddof=1) if len(points) > 1 else 0.0)
                curve.scatter([learning_rate] * len(points), points, s=10, color=color, alpha=0.5)
        if xs:
            curve.errorbar(xs, ys, yerr=errors, marker="o", capsize=3, color=color, label=method)
        for learning_rate, style in zip(LEARNING_RATES, ("-", "--", ":")):
            for index, seed in enumerate(seeds):
                records = norms[variant_name(method, learning_rate), seed]
                if not records:
                    continue
                key = "term_rms" if method == "residual" else "shift_rms"
                growth.plot(list(records), [r[key] for r in records.values()], style, color=color,
                           label=(f"{method} lr {learning_rate:g}: "
                                  f"{'RMS of R(P)' if method == 'residual' else 'RMS of P_t - P_0'}")
                           if index == 0 else None)
    curve.set_xscale("log")
    curve.set_xlabel("learning rate")
    curve.set_ylabel("test accuracy (%)")
    curve.set_title("SST-2, dev-selected, full test (mean ± std, points = seeds)", fontsize=9)
    curve.legend(fontsize=8)
    growth.set_yscale("log")
    growth.set_xlabel("step")
    growth.set_ylabel("RMS")
    growth.set_title("what training adds to the prompt", fontsize=9)
    growth.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(os.path.join(common.RESULTS, "residual_lr_sweep.png"), dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS),
                        help="run only these methods' cells (the report covers all)")
    parser.add_argument("--report", action="store_true", help="only the table and plots")
    args = parser.parse_args()
    if not args.report:
        run_all(args.seeds, args.methods)
    report(args.seeds)


if __name__ == "__main__":
    main()
