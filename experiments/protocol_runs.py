"""Results under one protocol: `promptopt tune` itself, dev-selected, full test sets, 5 seeds.

Every run is a `TuningJob` (exactly what `promptopt tune` runs) on a
built-in 16-shot task: the training split (16 per class), the dev split
(16 per class) for selection, and the whole test set (SST-2: all 872
sentences). The prompt kept is the one best on dev (scored once per epoch
for the gradient methods, every generation for the search methods); the
test set is scored once, after tuning. The training seed is the split's
seed. Hyperparameters come from the library's defaults unless a variant
sets them (`--set key=value`, any `TuneConfig` key), and variants are
compared on dev, never on test.

Each run's output directory (checkpoint, prompt, results.json) lives in
`experiments/runs/protocol/<variant>/<task>-s<seed>/`, so an interrupted
run resumes from its checkpoint. A finished run's summary is also kept in
the committed ledger (`experiments/results/ledger/protocol.json`, key
`<variant>/<task>-s<seed>`), so it is reported, and not run again, on a
checkout without its directory.

    python -m experiments.protocol_runs --variant prompt --method prompt
    python -m experiments.protocol_runs --variant prompt-lr0.3 --method prompt --set learning_rate=0.3 --seeds 13 21 42
    python -m experiments.protocol_runs --report sst2   # tables and box plots of every finished variant
"""

import argparse
import json
import os

import numpy as np

from experiments import common
from experiments.ledger import RunLedger
from promptopt.tuning.config import TuneConfig
from promptopt.tuning.job import TuningJob

ROOT = os.path.join(common.HERE, "runs", "protocol")
LEDGER = RunLedger("protocol")


def run_dir(variant, task, seed):
    return os.path.join(ROOT, variant, f"{task}-s{seed}")


def ledger_key(variant, task, seed):
    return f"{variant}/{task}-s{seed}"


def _summary(variant, settings, task, seed, results):
    """The ledger's row of one run: what the reports read from results.json."""
    return {"variant": variant, "settings": settings, "task": task, "seed": seed,
            **{key: results.get(key) for key in (
                "test_accuracy_after", "train_loss_after", "dev_selection", "counters",
                "seconds")}}


def _read_results(variant, task, seed):
    """results.json of a run in this checkout (recorded in the ledger), or None."""
    path = os.path.join(run_dir(variant, task, seed), "results.json")
    if not os.path.exists(path):
        return None
    with open(path) as f:
        results = json.load(f)
    key = ledger_key(variant, task, seed)
    if LEDGER.get(key) is None:  # a run made before the ledger existed
        with open(os.path.join(ROOT, variant, "variant.json")) as f:
            settings = json.load(f)
        LEDGER.record(key, _summary(variant, settings, task, seed, results))
    return results


def run(variant, task, seed, method, overrides, callbacks=()):
    """One dev-selected run; its results.json, or its ledger row (cached).

    `callbacks`: more `RunnerCallback`s for `TuningJob` (e.g. a recorder of
    per-step diagnostics); they run only when the run is not cached.
    """
    out = run_dir(variant, task, seed)
    results = _read_results(variant, task, seed)
    if results is None:
        results = LEDGER.get(ledger_key(variant, task, seed))
    if results is not None:
        return results
    values = {"task": task, "fewshot_seed": seed, "seed": seed, "method": method,
              "output_dir": out, "test_before": False, **overrides}
    variant_path = os.path.join(ROOT, variant, "variant.json")
    os.makedirs(os.path.dirname(variant_path), exist_ok=True)
    recorded = {"method": method, **overrides}
    if os.path.exists(variant_path):
        with open(variant_path) as f:
            if json.load(f) != recorded:
                raise SystemExit(f"Variant {variant!r} was run with other settings "
                                 f"({variant_path}); give this one another --variant name.")
    else:
        with open(variant_path, "w") as f:
            json.dump(recorded, f, indent=2)
    results = TuningJob(TuneConfig.from_dict(values), log=lambda line: print(line, flush=True),
                        progress=False, callbacks=callbacks).run()
    LEDGER.record(ledger_key(variant, task, seed),
                  _summary(variant, recorded, task, seed, results))
    print(json.dumps({"variant": variant, "task": task, "seed": seed,
                      "test_accuracy": results["test_accuracy_after"],
                      "dev_selection": results["dev_selection"]}), flush=True)
    return results


def _parse_overrides(pairs):
    overrides = {}
    for pair in pairs or ():
        key, _, text = pair.partition("=")
        try:
            overrides[key] = json.loads(text)
        except json.JSONDecodeError:
            overrides[key] = text
    return overrides


def finished(task):
    """`{variant: {seed: results or ledger row}}` for every finished run of `task`."""
    table = {}
    for row in LEDGER.rows().values():
        if row["task"] == task:
            table.setdefault(row["variant"], {})[row["seed"]] = row
    for variant in sorted(os.listdir(ROOT)) if os.path.isdir(ROOT) else ():
        for seed in common.SEEDS:
            results = _read_results(variant, task, seed)
            if results is not None:
                table.setdefault(variant, {})[seed] = results
    return table


def settings_of(variant, runs):
    """The settings `variant` was run with (the ledger's, or variant.json here)."""
    for row in runs.values():
        if "settings" in row:
            return row["settings"]
    with open(os.path.join(ROOT, variant, "variant.json")) as f:
        return json.load(f)


def report(task):
    table = finished(task)
    lines = [
        f"# {task}: dev-selected runs of `promptopt tune`, full test set",
        "",
        f"`python -m experiments.protocol_runs --report {task}`; the protocol is in "
        "experiments/README.md. Test accuracy (%) of the prompt best on the 32 dev examples; "
        "in parentheses, that dev accuracy and the step it was chosen at. Variants list the "
        "settings that differ from the library's defaults.",
        "",
        "| variant | settings | " + " | ".join(f"seed {s}" for s in common.SEEDS)
        + " | mean ± std | dev mean |",
        "|---|---|" + "---|" * len(common.SEEDS) + "---|---|",
    ]
    for variant, runs in table.items():
        settings = settings_of(variant, runs)
        cells, tests, devs = [], [], []
        for seed in common.SEEDS:
            results = runs.get(seed)
            if results is None:
                cells.append("-")
                continue
            test = results["test_accuracy_after"]
            selection = results["dev_selection"] or {}
            tests.append(test)
            if selection:
                devs.append(selection["accuracy"])
                cells.append(f"{100 * test:.1f} ({100 * selection['accuracy']:.0f}, "
                             f"step {selection['step']})")
            else:
                cells.append(f"{100 * test:.1f}")
        shown = ", ".join(f"{k}={v}" for k, v in settings.items())
        lines.append(f"| {variant} | {shown} | " + " | ".join(cells) + f" | "
                     f"{common.mean_std(tests)} | {common.mean_std(devs)} |")
    common.write_markdown(f"protocol_{task}.md", lines)
    _box_plot(task, table)


def _box_plot(task, table):
    plt = common.pyplot()
    if not table:
        return
    names = list(table)
    values = [[100 * r["test_accuracy_after"] for r in table[n].values()] for n in names]
    figure, axis = plt.subplots(figsize=(max(5, 1.3 * len(names)), 3.5))
    axis.boxplot(values, showmeans=True)
    for i, points in enumerate(values, start=1):
        axis.scatter(np.full(len(points), i), points, s=12, color="black", zorder=3)
    axis.set_xticks(range(1, len(names) + 1), names, rotation=30, ha="right")
    axis.set_ylabel("test accuracy (%)")
    axis.set_title(f"{task}: dev-selected, full test, a point per seed", fontsize=9)
    figure.tight_layout()
    figure.savefig(os.path.join(common.RESULTS, f"protocol_{task}.png"), dpi=120)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", help="a name for this configuration")
    parser.add_argument("--task", default="sst2", choices=("sst2", "sst5", "trec"))
    parser.add_argument("--method", default="prompt")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(common.SEEDS))
    parser.add_argument("--set", nargs="*", metavar="KEY=VALUE",
                        help="TuneConfig keys that differ from the defaults (values as JSON)")
    parser.add_argument("--report", metavar="TASK", help="write the table and plot of TASK only")
    args = parser.parse_args()
    if args.report:
        report(args.report)
        return
    if not args.variant:
        parser.error("--variant NAME is needed to run (it names the runs' directory)")
    overrides = _parse_overrides(args.set)
    for seed in args.seeds:
        run(args.variant, args.task, seed, args.method, overrides)
    report(args.task)


if __name__ == "__main__":
    main()
