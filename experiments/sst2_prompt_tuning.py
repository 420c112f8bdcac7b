"""SST-2 16-shot (seed 42): zero-shot vs a tuned 20-token soft prompt.

Uses the embedded SmolLM2-135M-Instruct and the LM-BFF split in
../shared/data. Each configuration is one `promptopt tune` run; its
results.json is reused when present, so rerunning skips finished work and
an interrupted run resumes from its checkpoint.

    python experiments/sst2_prompt_tuning.py            # ~6 min per config on 2 CPU cores
    python experiments/sst2_prompt_tuning.py --configs default
"""

import argparse
import json
import os
import sys

from promptopt.cli import main as cli

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "runs", "sst2_prompt_tuning")
RESULTS = os.path.join(HERE, "results")

# name -> extra `promptopt tune` flags; all share P=20, batch 8, seed 42.
CONFIGS = {
    "zero-shot (no prompt)": ["--prompt-length", "0", "--epochs", "0"],
    "default": ["--init", "labels", "--backprop-optimizer", "adamw", "--lr", "0.03", "--epochs", "10"],
    "text_init_lr0.1": [
        "--init", "text:Classify the sentiment of this movie review",
        "--backprop-optimizer", "adamw", "--lr", "0.1", "--epochs", "10",
    ],
}


def run(name):
    out = os.path.join(RUNS, name.split(" ")[0])
    results_path = os.path.join(out, "results.json")
    if not os.path.exists(results_path):
        argv = [
            "tune", "--task", "sst2", "--fewshot-seed", "42", "--prompt-length", "20",
            "--batch-size", "8", "--output-dir", out, "--quiet", *CONFIGS[name],
        ]
        print("promptopt " + " ".join(argv), flush=True)
        code = cli.main(argv)
        if code:
            sys.exit(code)
    with open(results_path) as f:
        return json.load(f)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
    args = parser.parse_args()
    rows = [(name, run(name)) for name in args.configs]
    lines = [
        "# SST-2 16-shot, seed 42: soft prompt tuning on SmolLM2-135M-Instruct",
        "",
        "Command: `python experiments/sst2_prompt_tuning.py`",
        "",
        "| config | init | optimizer | lr | epochs (batch 8) | best epoch (dev) | test acc before tuning (initial prompt) | test acc after tuning | fit time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in rows:
        trained = r["prompt_length"] > 0 and r["epochs"] > 0
        setting = (
            [r["init"], r.get("backprop_optimizer", r["optimizer"]), r["lr"], r["epochs"],
             (r["best_epoch"] or 0) + 1]
            if trained else ["-"] * 5
        )
        cells = [name, *setting, f"{r['test_accuracy_before']:.4f}",
                 f"{r['test_accuracy_after']:.4f}" if trained else "-", r["fit_seconds"]]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines.append("")
    lines.append("Test set: the 872 SST-2 validation sentences; prompt length 20; "
                 "template '{sentence} It was'; label words ' terrible' / ' great'.")
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "sst2_prompt_tuning.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
