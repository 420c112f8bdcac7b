"""BBT against BBTv2 on the embedded model: accuracy against forward calls.

Each run is the CLI's own configuration (`TuneConfig(method="bbt" or
"bbtv2")`, assembled from the same `build_model` and `StageFactory` that
`promptopt tune` uses), on an LM-BFF 16-shot split: every candidate scored
on the whole training set; after every generation the best-so-far prompt is
scored on the 32 dev examples and the best on dev is kept (ties: fewer
calls). Every `--eval-every` forward calls the dev-selected prompt is also
scored on the FULL test set (SST-2: 872 sentences), which gives the budget
curve; the test scores are never used for any choice.

Runs are cached and resumable: the runner checkpoints into
`experiments/runs/derivative_free/<run>/`, the curve points into
`<run>/curve.json`, the finished row into `<run>.json`.

    python -m experiments.derivative_free_budget --task sst2 --seeds 42 --calls 2000
    python -m experiments.derivative_free_budget --task sst2 --seeds 13 21 42 87 100 --calls 2000
    python -m experiments.derivative_free_budget --report   # tables and PNG of what finished
"""

import argparse
import glob
import json
import os
import time

import numpy as np

from experiments import common
from promptopt.callbacks.base import RunnerCallback
from promptopt.hub import load_language_model
from promptopt.models.class_scoring import accuracy
from promptopt.runner.checkpoint import load_checkpoint
from promptopt.runner.dev_selection import DevSelection
from promptopt.runner.runner import PromptTuningRunner
from promptopt.tuning.config import TuneConfig
from promptopt.tuning.job import save_tuned_prompt
from promptopt.tuning.model_factory import build_model
from promptopt.tuning.model_factory import default_placement
from promptopt.tuning.stage_factory import StageFactory
from promptopt.tuning.task_data import TaskData

EXPERIMENT = "derivative_free"
METHODS = ("bbt", "bbtv2")


class TestCurve(RunnerCallback):
    """Every `every` forward calls: dev and test accuracy of the dev choice."""

    def __init__(self, path, every, score_test):
        self.path, self.every, self.score_test = path, every, score_test
        self.points = []
        if os.path.exists(path):
            with open(path) as f:
                self.points = json.load(f)

    def on_step_end(self, step, logs):
        calls = logs["forward_calls"]
        mark = calls // self.every * self.every
        done = {p["forward_calls"] for p in self.points}
        if mark == 0 or mark in done:
            return
        selection = self.runner.selection
        if selection.prompt is None:
            return
        self.points.append({"forward_calls": mark, "dev_accuracy": selection.accuracy,
                            "test_accuracy": self.score_test(selection.prompt),
                            "selected_at_calls": selection.forward_calls})
        with open(self.path + ".tmp", "w") as f:
            json.dump(self.points, f)
        os.replace(self.path + ".tmp", self.path)


def run(task, seed, method, calls, eval_every, placement=None):
    """One cached run; `placement` None is the CLI's default for `method`."""
    name = f"{task}-s{seed}-{method}-calls{calls}"
    if placement is not None:
        name += f"-{placement}"

    def compute(run_dir):
        config = TuneConfig(task=task, fewshot_seed=seed, method=method, forward_calls=calls,
                            seed=seed, output_dir=run_dir).resolved()
        data = TaskData.from_config(config)
        loaded = load_language_model("smollm2-135m")
        config = TuneConfig(**{**config.to_dict(),
                               "placement": placement or default_placement(config, loaded.backbone)})
        model = build_model(config, loaded, data)
        factory = StageFactory(config, model, data)
        os.makedirs(run_dir, exist_ok=True)

        def score_test(candidate):
            factory.assign(candidate)
            return accuracy(model, data.test, 32)

        curve = TestCurve(os.path.join(run_dir, "curve.json"), eval_every, score_test)
        selection = DevSelection(factory.dev_scorer(), every=1)
        runner = PromptTuningRunner(factory.evaluator_for(method), callbacks=[curve],
                                    checkpoint_dir=run_dir,
                                    checkpoint_every=factory.checkpoint_every(),
                                    selection=selection)
        started = time.time()
        result = runner.run(factory.initial_candidate(), factory.stages(), seed=seed)
        seconds = time.time() - started
        test = score_test(result.selected_prompt)  # also leaves it in the model
        prompt_file = save_tuned_prompt(model, factory, result.selected_prompt, data, config)
        steps = [h["wall_time"] for h in result.history]
        per_generation = float(np.median(np.diff(steps)[1:])) if len(steps) > 2 else None
        return {"task": task, "seed": seed, "method": method, "forward_calls": calls,
                "test_accuracy": test, "dev_accuracy": result.selection["accuracy"],
                "selected_at_calls": result.selection["forward_calls"],
                "seconds": seconds, "test_size": len(data.test),
                "seconds_per_call": None if per_generation is None
                else per_generation / config.popsize,
                "curve": curve.points, "dtype": config.dtype, "placement": config.placement,
                "prompt_file": prompt_file}

    return common.cached(EXPERIMENT, name, compute)


def export_prompts():
    """Writes `prefix.npz`/`prompt.npz` for finished runs that predate saving it.

    The prompt is the dev selection stored in the run's final checkpoint;
    its test accuracy is scored again and must equal the run's row.
    """
    loaded = None
    for path in sorted(glob.glob(os.path.join(common.HERE, "runs", EXPERIMENT, "*.json"))):
        with open(path) as f:
            row = json.load(f)
        if row.get("prompt_file") and os.path.exists(row["prompt_file"]):
            continue
        run_dir = path[: -len(".json")]
        checkpoint = load_checkpoint(run_dir)
        config = TuneConfig(task=row["task"], fewshot_seed=row["seed"], method=row["method"],
                            forward_calls=row["forward_calls"], seed=row["seed"],
                            output_dir=run_dir, placement=row["placement"],
                            dtype=row["dtype"]).resolved()
        data = TaskData.from_config(config)
        loaded = loaded or load_language_model("smollm2-135m")
        model = build_model(config, loaded, data)
        factory = StageFactory(config, model, data)
        factory.assign(checkpoint.selected_prompt)
        test = accuracy(model, data.test, 32)
        if abs(test - row["test_accuracy"]) > 1e-9:
            raise SystemExit(f"{row['name']}: the checkpoint's selected prompt scores {test} on "
                             f"test, the run reported {row['test_accuracy']}; not exported.")
        row["prompt_file"] = save_tuned_prompt(model, factory, checkpoint.selected_prompt, data,
                                               config)
        with open(path + ".tmp", "w") as f:
            json.dump(row, f, indent=2)
        os.replace(path + ".tmp", path)
        print(f"{row['name']}: exported {row['prompt_file']} (test {100 * test:.1f})", flush=True)


def label(row):
    return (f"{row['method']} {row['placement']} {row['task']} s{row['seed']}"
            f" ({row['forward_calls']} calls)")


def _plot(curves):
    """Three panels: SST-2 split 42 (dev and test), SST-2 over splits, TREC and SST-5."""
    plt = common.pyplot()
    figure, axes = plt.subplots(1, 3, figsize=(15, 4.5))
    split42 = [r for r in curves if r["task"] == "sst2" and r["seed"] == 42]
    for r in split42:
        xs = [p["forward_calls"] for p in r["curve"]]
        line, = axes[0].plot(xs, [100 * p["test_accuracy"] for p in r["curve"]], marker="o",
                             markersize=3, label=f"{label(r)} test")
        axes[0].plot(xs, [100 * p["dev_accuracy"] for p in r["curve"]], linestyle="--",
                     color=line.get_color(), label=f"{label(r)} dev")
    axes[0].set_title("SST-2, split 42: dev-selected prompt", fontsize=9)
    groups = {}
    for r in curves:
        if r["task"] == "sst2" and r["forward_calls"] == 2000:
            groups.setdefault((r["method"], r["placement"]), []).append(r)
    for (method, placement), group in sorted(groups.items()):
        xs = [p["forward_calls"] for p in group[0]["curve"]]
        tests = np.array([[100 * p["test_accuracy"] for p in r["curve"]] for r in group
                          if len(r["curve"]) == len(xs)])
        mean, std = tests.mean(axis=0), tests.std(axis=0)
        line, = axes[1].plot(xs, mean, marker="o", markersize=3,
                             label=f"{method} {placement} (n={len(tests)})")
        axes[1].fill_between(xs, mean - std, mean + std, color=line.get_color(), alpha=0.2)
    axes[1].set_title("SST-2, 2,000 calls: test, mean ± std over splits", fontsize=9)
    for r in curves:
        if r["task"] != "sst2":
            xs = [p["forward_calls"] for p in r["curve"]]
            line, = axes[2].plot(xs, [100 * p["test_accuracy"] for p in r["curve"]],
                                 marker="o", markersize=3, label=f"{label(r)} test")
            axes[2].plot(xs, [100 * p["dev_accuracy"] for p in r["curve"]], linestyle="--",
                         color=line.get_color(), label=f"{label(r)} dev")
    axes[2].set_title("TREC and SST-5 (chance: TREC 16.7, SST-5 20)", fontsize=9)
    for axis in axes:
        axis.set_xlabel("forward calls")
        axis.set_ylabel("accuracy (%)")
        axis.legend(fontsize=6)
    figure.tight_layout()
    figure.savefig(os.path.join(common.RESULTS, "derivative_free_budget.png"), dpi=120)


def report():
    rows = common.finished_rows(EXPERIMENT)
    lines = ["# BBT and BBTv2 on SmolLM2-135M: test accuracy (full test sets)", "",
             "`python -m experiments.derivative_free_budget --task T --seeds ... --calls N`. "
             "CLI defaults: BBT d=500, popsize 20, sigma 1, 20-vector suffix prompt, "
             "shared-input scorer; BBTv2 d=500, popsize 20, sigma 0.2, alpha 0.2, 5 positions "
             "in each of 30 layers, one generation per layer, in front of the input (prefix) or "
             "after it, read only by the template's tail (suffix: a deep suffix, the heads' "
             "keys and values shared by the population). The dtype is the CLI's choice for the "
             "machine: bfloat16 where it is native (this machine's CPU has AVX-512 BF16), "
             "float32 elsewhere. Every candidate "
             "scored on the whole training set; the final prompt is the best on dev among each "
             "generation's best. Test sets are full (SST-2 872, TREC 500, SST-5 2,210). "
             "s / call: median seconds per generation over popsize.", "",
             "| task | method | placement | dtype | forward calls | seeds | test accuracy "
             "(mean ± std) | per seed | s / call |",
             "|---|---|---|---|---|---|---|---|---|"]
    groups = {}
    for row in rows:
        key = (row["task"], row["method"], row["placement"], row["dtype"], row["forward_calls"])
        groups.setdefault(key, []).append(row)
    for (task, method, placement, dtype, calls), group in sorted(groups.items()):
        accs = [r["test_accuracy"] for r in sorted(group, key=lambda r: r["seed"])]
        per_call = np.median([r["seconds_per_call"] for r in group if r["seconds_per_call"]])
        lines.append(f"| {task} | {method} | {placement} | {dtype} | {calls} | {len(group)} | "
                     f"{common.mean_std(accs)} | "
                     + ", ".join(f"{100 * a:.1f}" for a in accs) + f" | {per_call:.2f} |")
    curves = [r for r in rows if r["curve"]]
    if curves:
        lines += ["", "## Budget curves (dev-selected prompt; dev and full-test accuracy)", "",
                  "| task | seed | method | placement | run's budget | forward calls | dev "
                  "| test |",
                  "|---|---|---|---|---|---|---|---|"]
        for r in curves:
            for p in r["curve"]:
                lines.append(f"| {r['task']} | {r['seed']} | {r['method']} | {r['placement']} "
                             f"| {r['forward_calls']} | {p['forward_calls']} "
                             f"| {100 * p['dev_accuracy']:.1f} | {100 * p['test_accuracy']:.1f} |")
        _plot(curves)
    common.write_markdown("derivative_free_budget.md", lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", default="sst2")
    parser.add_argument("--seeds", type=int, nargs="+", default=[42])
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--eval-every", type=int, default=500)
    parser.add_argument("--placement", choices=("prefix", "suffix"), default=None,
                        help="where the prompt goes (default: the CLI's default per method)")
    parser.add_argument("--report", action="store_true")
    parser.add_argument("--export-prompts", action="store_true",
                        help="write the prompt file of finished runs that lack one, then report")
    args = parser.parse_args()
    if args.export_prompts:
        export_prompts()
    elif not args.report:
        for seed in args.seeds:
            for method in args.methods:
                run(args.task, seed, method, args.calls, args.eval_every, args.placement)
    report()


if __name__ == "__main__":
    main()
