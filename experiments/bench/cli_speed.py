"""Is `promptopt tune` as fast as the experiments' scripts? Every method.

For every method, dtype and placement, the same short run is timed twice,
side by side in one process on the embedded SmolLM2-135M (SST-2 16-shot,
seed 42, the 32 training sentences):

- **CLI**: `TuningJob(TuneConfig(...))`, exactly what `promptopt tune` runs;
- **experiments**: the pieces `experiments/paper_methods.py` wires by hand
  (`common.make_model`, `KerasEvaluator` / `SharedInputEvaluator` /
  `PrefixEvaluator`, `common.tune`), where such a script exists.

Times come from the runner's per-step `wall_time`; the first two steps
(compilation) are dropped and the median of the rest is reported, per
training step (gradient methods: batch 8) and per forward call (search
methods: one candidate scored on all 32 sentences). Dev scoring is turned
off (`eval_every` larger than the run) so that only the training loop is
timed. Each row is cached in `experiments/runs/cli_speed/`, so an
interrupted run resumes.

    python -m experiments.bench.cli_speed          # all rows
    python -m experiments.bench.cli_speed --only bbt
    python -m experiments.bench.cli_speed --report  # the table of the finished rows
"""

import argparse
import json
import os
import tempfile

import numpy as np

from experiments import common
from experiments.bench.measure import load_average
from promptopt.data import load_fewshot_split
from promptopt.evaluators.keras_evaluator import KerasEvaluator
from promptopt.evaluators.prefix_evaluator import PrefixEvaluator
from promptopt.evaluators.shared_input_evaluator import SharedInputEvaluator
from promptopt.runner.checkpoint import load_checkpoint
from promptopt.tuning.config import TuneConfig
from promptopt.tuning.job import TuningJob

# (method, dtype, placement): every combination the CLI accepts, less the
# search methods' bfloat16 forward pass over the whole input (BBT with the
# prompt in front, BBTv2, the discrete search). On this CPU (AMD EPYC, no
# AVX-512, so bfloat16 is emulated) one such candidate took 75 s (the
# first 20-candidate generation of `bbt bfloat16 prefix`, 1,508 s with
# compilation), which puts a row at hours; `promptopt tune` now defaults to
# float32 there (promptopt.backends.native_bfloat16).
UNMEASURED = {("bbt", "bfloat16", "prefix"), ("bbtv2", "bfloat16", "prefix"),
              ("discrete", "bfloat16", "prefix")}
ROWS = [
    (m, d, p) for m in ("prompt", "bbt") for d in ("float32", "bfloat16") for p in ("prefix", "suffix")
] + [(m, d, "prefix") for m in ("residual", "prefix", "bbtv2", "discrete")
     for d in ("float32", "bfloat16")]
ROWS = [row for row in ROWS if row not in UNMEASURED]
GRADIENT = ("prompt", "residual", "prefix")
STEPS, GENERATIONS = 6, 3
# Candidates per generation: BBT's 20, or 4 where bfloat16 is emulated
# (per call is per generation / popsize either way).
POPSIZES = {"float32": 20, "bfloat16": 4}


def _files(directory):
    """SST-2 seed 42 as files: the 32 training sentences, 32 test ones."""
    train = load_fewshot_split("sst2", 42, "train", template="{sentence}")
    test = load_fewshot_split("sst2", 42, "test", template="{sentence}").subset(32, seed=0)
    paths = {}
    for name, split in (("train", train), ("test", test)):
        paths[name] = os.path.join(directory, f"{name}.tsv")
        with open(paths[name], "w") as f:
            f.write("sentence\tlabel\n")
            for text, label in zip(split.texts, split.labels):
                f.write(f"{text}\t{label}\n")
    return paths


def _config(method, dtype, placement, files, output_dir):
    popsize = POPSIZES[dtype]
    budget = ({"steps": STEPS} if method in GRADIENT
              else {"forward_calls": GENERATIONS * popsize, "popsize": popsize})
    return TuneConfig(train=files["train"], test=files["test"], template="{sentence} It was",
                      label_words="0=terrible,1=great", method=method, dtype=dtype,
                      placement=None if method in ("prefix", "bbtv2", "discrete") else placement,
                      eval_every=10**6, seed=42, output_dir=output_dir, **budget)


def _step_seconds(history):
    times = np.array([h["wall_time"] for h in history])
    return float(np.median(np.diff(times)[1:]))


def _cli(method, dtype, placement, files, work):
    out = os.path.join(work, f"cli-{method}-{dtype}-{placement}")
    TuningJob(_config(method, dtype, placement, files, out), log=lambda line: None,
              progress=False).run()
    history = load_checkpoint(os.path.join(out, "checkpoint")).history
    return _step_seconds(history), load_checkpoint(os.path.join(out, "checkpoint")).stage_steps


def _experiments(method, dtype, placement, work):
    """The experiments' own wiring, or None where no script runs this."""
    task = common.get_fewshot_task("sst2")
    train = load_fewshot_split(task, 42, "train")
    run_dir = os.path.join(work, f"exp-{method}-{dtype}-{placement}")
    if method in ("prompt", "residual", "bbt"):
        parameterization = common.residual_parameterization() if method == "residual" else None
        model = common.make_model(task, 20, parameterization=parameterization,
                                  placement=placement, dtype=dtype)
        x = model.encode_texts(train.texts)
        if method == "bbt":
            cls = SharedInputEvaluator if placement == "suffix" else KerasEvaluator
            evaluator = cls(model, x, train.labels, batch_size=len(train), seed=42)
            stage = common.cma_es_stage(model, GENERATIONS * POPSIZES[dtype], POPSIZES[dtype])
        else:
            evaluator = KerasEvaluator(model, x, train.labels, batch_size=8,
                                       parameters="all" if method == "residual" else "prompt",
                                       seed=42)
            stage = common.backprop_stage(0.03, STEPS)
    elif method == "prefix" and dtype == "float32":
        model = common.make_prefix_model(task, 10, "text:" + " terrible great")
        x = model.encode_texts(train.texts)
        evaluator = PrefixEvaluator(model, x, train.labels, batch_size=8, seed=42)
        stage = common.backprop_stage(0.005, STEPS)
    else:
        return None
    _, result = common.tune(evaluator, stage, run_dir, seed=42)
    return _step_seconds(result.history)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run only rows of this method")
    parser.add_argument("--report", action="store_true",
                        help="write the table from the finished rows only; compute nothing")
    args = parser.parse_args()
    files = _files(tempfile.mkdtemp(prefix="cli_speed_data_"))
    work = tempfile.mkdtemp(prefix="cli_speed_runs_")
    rows = []
    for method, dtype, placement in ROWS:
        if args.only and method != args.only:
            continue
        name = f"{method}-{dtype}-{placement}"

        def compute(run_dir, method=method, dtype=dtype, placement=placement):
            cli, _ = _cli(method, dtype, placement, files, work)
            experiments = _experiments(method, dtype, placement, work)
            return {"method": method, "dtype": dtype, "placement": placement,
                    "popsize": None if method in GRADIENT else POPSIZES[dtype],
                    "cli_seconds": cli, "experiments_seconds": experiments,
                    "load_average": load_average()}

        row = common.cached("cli_speed", name, None if args.report else compute)
        if row is not None:
            rows.append(row)
    lines = [
        "# `promptopt tune` against the experiments' scripts: seconds per step",
        "",
        "`python -m experiments.bench.cli_speed`. Embedded SmolLM2-135M, SST-2 16-shot seed 42, "
        "2 CPU cores. Median over the steps after the first two; each row's two runs were timed "
        "one after the other in one process. Gradient methods: one training step of 8 sentences "
        f"({STEPS} steps). Search methods: one forward call = one candidate scored on all 32 "
        f"training sentences ({GENERATIONS} generations of the popsize shown), so per call = "
        "per generation / popsize. Load average (1 min) at the end of each row. Rows not "
        f"listed have not been run yet ({len(rows)} of {len(ROWS)} here).",
        "",
        "Not measured: the search methods' bfloat16 forward pass over the whole input (BBT "
        "with the prompt in front, BBTv2, the discrete search). This CPU (AMD EPYC, no "
        "AVX-512) emulates bfloat16: one BBT candidate with the prompt in front took 75 s "
        "(1,508 s for the first 20-candidate generation, compilation included), against 5.3 s in float32. "
        "`promptopt tune` therefore picks float32 for the search methods on a machine "
        "without native bfloat16 (`promptopt.backends.native_bfloat16`); `--dtype bfloat16` "
        "still forces it.",
        "",
        "| method | dtype | placement | unit | popsize | CLI (s) | experiments (s) | CLI / experiments | load |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        per = 1 if row["method"] in GRADIENT else row.get("popsize") or 20
        unit = "training step" if per == 1 else "forward call"
        cli = row["cli_seconds"] / per
        exp = None if row["experiments_seconds"] is None else row["experiments_seconds"] / per
        ratio = "–" if exp is None else f"{cli / exp:.2f}"
        lines.append(
            f"| {row['method']} | {row['dtype']} | {row['placement']} | {unit} | "
            f"{'–' if per == 1 else per} | {cli:.3f} | "
            f"{'no script' if exp is None else f'{exp:.3f}'} | {ratio} | {row['load_average'][0]} |")
    ratios = [row["cli_seconds"] / row["experiments_seconds"] for row in rows
              if row["experiments_seconds"] is not None]
    if ratios:
        lines += ["", f"CLI / experiments over the {len(ratios)} rows with both: median "
                  f"{np.median(ratios):.2f}, geometric mean {np.exp(np.mean(np.log(ratios))):.2f}, "
                  f"range {min(ratios):.2f} to {max(ratios):.2f}. Each row's two runs are "
                  "minutes apart, so a change of load between them moves its ratio; the search "
                  "rows in bfloat16 and every gradient row rest on few measured steps."]
    common.write_markdown("cli_speed.md", lines)


if __name__ == "__main__":
    main()
