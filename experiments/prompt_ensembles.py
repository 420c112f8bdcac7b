"""Prompt ensembles (Lester et al. 2021, section 7) on SST-2, 5 seeds x 5 prompts.

For each 16-shot split (seeds 13, 21, 42, 87, 100) five soft prompts are
tuned with `promptopt tune`'s defaults (`TuningJob`; 20 tokens, label-word
init, AdamW lr 0.03, 8 epochs of the 32 training examples in batches of 8,
that is 32 steps, the prompt best on dev kept), training seeds 0 to 4.
Each is cached in `experiments/runs/prompt_ensembles/` (a rerun skips a
finished run and resumes an interrupted one from its checkpoint). The five
are then scored together by one `PromptEnsemble` pass over the full 872
test sentences; the table compares the mean and the best single prompt with
the ensemble by mean probability and by majority vote. The table is
rewritten after every split, so it always holds what has finished.

`TuningJob` scores its test set after tuning (`test_before=False` skips
the score before); every prompt is scored on the full test set here anyway,
in the ensemble's one batched pass. The runs therefore read the real 16-shot train and
dev files from a copy of the split folder whose test.tsv holds only its
first 8 sentences (`tuning_data_dir`), so each run's own results.json
reports test accuracy on those 8 only; the table's figures all come from
the full 872-sentence test set.

    nohup .venv/bin/python experiments/prompt_ensembles.py > experiments/runs/prompt_ensembles.log 2>&1 &
    .venv/bin/python experiments/prompt_ensembles.py --phase train   # tuning only
    .venv/bin/python experiments/prompt_ensembles.py --phase strategies  # batched vs loop timing

`--phase strategies` times `PromptEnsemble`'s two strategies on the first
split whose 5 prompts are tuned: one pass over the batch tiled 5 times
(`batched`, 5 x 32 rows a pass) against 5 passes of 32 rows (`loop`), on the
same 96 test sentences, alternating, median of 3, and checks that both give
the same probabilities.
"""

import argparse
import json
import os
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "runs", "prompt_ensembles")
RESULTS = os.path.join(HERE, "results", "prompt_ensembles.md")
FEWSHOT_SEEDS = (13, 21, 42, 87, 100)
TRAINING_SEEDS = (0, 1, 2, 3, 4)
COMMAND = "nohup .venv/bin/python experiments/prompt_ensembles.py > experiments/runs/prompt_ensembles.log 2>&1 &"


SHARED_DATA = os.path.join(os.path.dirname(os.path.dirname(HERE)), "shared", "data")
TUNING_TEST_SENTENCES = 8


def tuning_data_dir(fewshot_seed):
    """A data folder with the split's train/dev files and an 8-sentence test.tsv."""
    root = os.path.join(RUNS, "data")
    folder = os.path.join(root, "lmbff_16shot", "SST-2", f"16-{fewshot_seed}")
    source = os.path.join(SHARED_DATA, "lmbff_16shot", "SST-2", f"16-{fewshot_seed}")
    os.makedirs(folder, exist_ok=True)
    for name in ("train.tsv", "dev.tsv", "test.tsv"):
        with open(os.path.join(source, name)) as f:
            lines = f.readlines()
        if name == "test.tsv":
            lines = lines[:1 + TUNING_TEST_SENTENCES]  # the header, then 8 sentences
        with open(os.path.join(folder, name), "w") as f:
            f.writelines(lines)
    return root


def run_dir(fewshot_seed, seed):
    return os.path.join(RUNS, f"sst2_fewshot{fewshot_seed}_seed{seed}")


def tune(fewshot_seed, seed):
    """The results of one tuning run, tuned now unless cached."""
    out = run_dir(fewshot_seed, seed)
    results_path = os.path.join(out, "results.json")
    if not os.path.exists(results_path):
        from promptopt.tuning.config import TuneConfig
        from promptopt.tuning.job import TuningJob

        print(f"tuning sst2 fewshot seed {fewshot_seed}, training seed {seed}", flush=True)
        config = TuneConfig(task="sst2", fewshot_seed=fewshot_seed, method="prompt", seed=seed,
                            test_before=False, output_dir=out,
                            data_dir=tuning_data_dir(fewshot_seed))
        TuningJob(config, log=lambda line: print("  " + line, flush=True), progress=False).run()
    with open(results_path) as f:
        return json.load(f)


def score(fewshot_seed, runs):
    """Member probabilities `[5, 872, 2]` of one split's prompts, cached."""
    cache = os.path.join(RUNS, f"sst2_fewshot{fewshot_seed}_members.npz")
    if os.path.exists(cache):
        with np.load(cache) as data:
            return data["probabilities"], data["labels"], float(data["seconds"])
    from promptopt.data import load_fewshot_split
    from promptopt.tuning.saved_prompt import load_ensemble

    started = time.time()
    ensemble = load_ensemble([r["prompt_file"] for r in runs])
    test = load_fewshot_split("sst2", fewshot_seed, "test", template=ensemble.template,
                              data_dir=SHARED_DATA)
    probabilities = ensemble.member_probabilities(test.texts)
    seconds = time.time() - started
    np.savez(cache, probabilities=probabilities, labels=test.labels, seconds=seconds)
    return probabilities, test.labels, seconds


def summarize(fewshot_seed, runs, probabilities, labels):
    """One row of the table: single prompts, their mean and best, both ensembles."""
    from promptopt.models.prompt_ensemble import PromptEnsemble

    singles = [float(np.mean(p.argmax(-1) == labels)) for p in probabilities]
    mean_probability = PromptEnsemble.combine_members(probabilities, "mean")[1]
    vote = PromptEnsemble.combine_members(probabilities, "vote")[1]
    return {
        "fewshot_seed": fewshot_seed,
        "singles": singles,
        "mean_single": float(np.mean(singles)),
        "best_single": float(np.max(singles)),
        "best_on_dev": singles[int(np.argmax([r["dev_selection"]["accuracy"] for r in runs]))],
        "ensemble_mean": float(np.mean(mean_probability == labels)),
        "ensemble_vote": float(np.mean(vote == labels)),
    }


def compare_strategies(fewshot_seed, runs, sentences=96, repeats=3):
    """Seconds per strategy (median of `repeats`), cached in runs/strategy_timing.json."""
    from promptopt.data import load_fewshot_split
    from promptopt.tuning.saved_prompt import load_ensemble

    ensemble = load_ensemble([r["prompt_file"] for r in runs])
    texts = load_fewshot_split("sst2", fewshot_seed, "test", template=ensemble.template,
                               data_dir=SHARED_DATA).texts[:sentences]
    ensemble.member_probabilities(texts[:8])  # compile both graphs before timing
    ensemble.strategy = "loop"
    ensemble.member_probabilities(texts[:8])
    times, outputs = {"batched": [], "loop": []}, {}
    for _ in range(repeats):
        for strategy in ("batched", "loop"):
            ensemble.strategy = strategy
            started = time.time()
            outputs[strategy] = ensemble.member_probabilities(texts)
            times[strategy].append(time.time() - started)
    record = {"fewshot_seed": fewshot_seed, "sentences": len(texts), "members": len(ensemble),
              "batch_size": 32, "seconds": {k: float(np.median(v)) for k, v in times.items()},
              "all_seconds": times, "load_average": os.getloadavg()[0],
              "max_difference": float(np.abs(outputs["batched"] - outputs["loop"]).max())}
    with open(os.path.join(RUNS, "strategy_timing.json"), "w") as f:
        json.dump(record, f, indent=1)
    print(json.dumps(record), flush=True)
    return record


def _finished_runs(fewshot_seed):
    return sum(os.path.exists(os.path.join(run_dir(fewshot_seed, k), "results.json"))
               for k in TRAINING_SEEDS)


def _strategy_lines():
    path = os.path.join(RUNS, "strategy_timing.json")
    if not os.path.exists(path):
        return []
    with open(path) as f:
        r = json.load(f)
    s = r["seconds"]
    faster = "batched" if s["batched"] <= s["loop"] else "loop"
    return [
        "",
        "## Batched pass or a loop (CPU)",
        "",
        f"`--phase strategies`: the {r['members']} prompts of split {r['fewshot_seed']} on "
        f"{r['sentences']} test sentences, batch {r['batch_size']} texts, median of "
        f"{len(r['all_seconds']['batched'])} alternating repeats (1-minute load average "
        f"{r['load_average']:.1f} on 2 shared cores, so only the ratio means much).",
        "",
        "| strategy | rows per pass | s |",
        "|---|---|---|",
        f"| batched (the batch tiled {r['members']} times, one pass) | "
        f"{r['members'] * r['batch_size']} | {s['batched']:.1f} |",
        f"| loop (a pass per prompt) | {r['batch_size']} | {s['loop']:.1f} |",
        "",
        f"{faster} was faster ({max(s.values()) / min(s.values()):.2f}x); the two agree to "
        f"{r['max_difference']:.1e} in probability. The table above used `batched`, the default.",
    ]


def write_table(rows, seconds):
    lines = [
        "# Prompt ensembles on SST-2 (Lester et al. 2021, section 7)",
        "",
        f"Command: `{COMMAND}`",
        "",
        "SmolLM2-135M-Instruct (embedded), SST-2 16-shot; per split, 5 soft prompts from "
        f"`promptopt tune` (`TuneConfig(task='sst2', fewshot_seed=s, method='prompt', seed=k, "
        "test_before=False)`, k = 0..4, the library's defaults: 20 tokens, label-word init, "
        "AdamW lr 0.03, 8 epochs of batch 8 (32 steps), dev scored every epoch and the prompt "
        "best on the 32 dev examples kept). Test accuracy (%) on the full 872-sentence "
        "test set (the tuning runs themselves scored only 8 test sentences; see the script's "
        "docstring). Ensembles score all 5 prompts in one batched pass (`PromptEnsemble`): mean "
        "= argmax of the mean class probability; vote = majority of the 5 predictions (ties "
        "cannot occur with 5 voters and 2 classes). 2 CPU cores, shared.",
        "",
        "| split seed | single prompts (k = 0..4) | mean single | best single | best on dev "
        "| ensemble (mean prob.) | ensemble (vote) |",
        "|---|---|---|---|---|---|---|",
    ]
    pct = lambda v: f"{100 * v:.1f}"  # noqa: E731
    for r in rows:
        lines.append(
            f"| {r['fewshot_seed']} | {' / '.join(pct(s) for s in r['singles'])} | "
            f"{pct(r['mean_single'])} | {pct(r['best_single'])} | {pct(r['best_on_dev'])} | "
            f"**{pct(r['ensemble_mean'])}** | {pct(r['ensemble_vote'])} |")
    if rows:
        def mean_std(key):
            values = 100 * np.array([r[key] for r in rows])
            return f"{values.mean():.1f} ± {values.std(ddof=1):.1f}"  # sample std, as in every table

        lines.append(
            f"| mean ± std over {len(rows)} split(s) | | {mean_std('mean_single')} | "
            f"{mean_std('best_single')} | {mean_std('best_on_dev')} | "
            f"**{mean_std('ensemble_mean')}** | {mean_std('ensemble_vote')} |")
    lines.append("")
    lines.append("'best single' is chosen on the test set itself (an upper bound no user can "
                 "pick); 'best on dev' is the prompt with the best dev accuracy, which a user "
                 "can pick.")
    if seconds:
        lines.append(f"Scoring the 5 prompts on the 872 test sentences in one batched pass took "
                     f"{np.mean(seconds):.0f} s per split on average.")
    done = {r["fewshot_seed"] for r in rows}
    pending = [f"split seed {s} ({_finished_runs(s)} of {len(TRAINING_SEEDS)} prompts tuned)"
               for s in FEWSHOT_SEEDS if s not in done]
    if pending:
        lines.append("")
        lines.append("**Not finished yet:** " + "; ".join(pending) + ".")
    lines.extend(_strategy_lines())
    os.makedirs(os.path.dirname(RESULTS), exist_ok=True)
    with open(RESULTS, "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines), flush=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--phase", choices=("all", "train", "score", "strategies"), default="all",
                        help="train: tune only; score: table from finished runs only; all: both; "
                        "strategies: time batched against loop on the first finished split")
    parser.add_argument("--fewshot-seeds", type=int, nargs="*", default=list(FEWSHOT_SEEDS))
    parser.add_argument("--training-seeds", type=int, nargs="*", default=list(TRAINING_SEEDS),
                        help="with --phase train: tune only these (e.g. to split a split's five "
                        "runs over two processes)")
    args = parser.parse_args()
    os.makedirs(RUNS, exist_ok=True)
    rows, seconds = [], []
    for fewshot_seed in args.fewshot_seeds:
        runs = []
        for seed in TRAINING_SEEDS:
            if args.phase == "train" and seed not in args.training_seeds:
                continue
            finished = os.path.exists(os.path.join(run_dir(fewshot_seed, seed), "results.json"))
            if args.phase in ("score", "strategies") and not finished:
                break
            runs.append(tune(fewshot_seed, seed))
        if args.phase == "train":
            continue
        if args.phase == "strategies":
            if len(runs) == len(TRAINING_SEEDS):
                compare_strategies(fewshot_seed, runs)
                return
            continue
        if len(runs) < len(TRAINING_SEEDS):
            continue
        probabilities, labels, took = score(fewshot_seed, runs)
        rows.append(summarize(fewshot_seed, runs, probabilities, labels))
        seconds.append(took)
        write_table(rows, seconds)
    if args.phase != "train":
        write_table(rows, seconds)


if __name__ == "__main__":
    main()
