"""Seconds per forward call of the search methods, side by side in one process.

One forward call is one candidate scored on all 32 SST-2 training sentences
(seed 42), BBT's budget unit. Each row is the evaluator `promptopt tune`
builds for it (`build_model` and `StageFactory`, the CLI's own wiring, the
CLI's dtype for this machine):

- `bbt suffix`: BBT's 20-vector prompt after the input; the input's keys and
  values are computed once and shared by every candidate
  (`SharedInputEvaluator`), each candidate runs `B * (P + k)` rows;
- `bbtv2 prefix`: BBTv2's 5 positions in each of the 30 layers in front of
  the input, which every position reads: a full pass of `B * T` rows per
  candidate (`PrefixEvaluator`);
- `bbtv2 suffix`: the same per-layer keys and values after the input's head,
  read only by the template's tail (a deep suffix): the heads' caches are
  shared and each candidate runs `B * k` rows (`DeepSuffixEvaluator`).

After two warm-up calls per row (compilation, the shared caches), the rows
take turns: each round times `--popsize` candidates of every row, so load
from other jobs falls on all rows alike. The table gives the median over
rounds of seconds per call, its ratio to `bbtv2 prefix`, and the load
average.

    python -m experiments.bench.search_call_speed
"""

import argparse
import platform
import time

import numpy as np

from experiments import common
from experiments.bench.measure import load_average
from promptopt.backends.native_bfloat16 import has_native_bfloat16
from promptopt.hub import load_language_model
from promptopt.tuning.config import TuneConfig
from promptopt.tuning.model_factory import build_model
from promptopt.tuning.stage_factory import StageFactory
from promptopt.tuning.task_data import TaskData

ROWS = (("bbt", "suffix"), ("bbtv2", "prefix"), ("bbtv2", "suffix"))
REFERENCE = ("bbtv2", "prefix")


def evaluator_and_start(method, placement, loaded):
    """The CLI's evaluator for `method` at `placement`, and its initial candidate."""
    config = TuneConfig(task="sst2", fewshot_seed=42, method=method, placement=placement,
                        seed=42).resolved()
    data = TaskData.from_config(config)
    factory = StageFactory(config, build_model(config, loaded, data), data)
    evaluator = factory.evaluator_for(method)
    return evaluator, np.asarray(factory.initial_candidate(), "float32"), config.dtype


def cpu_name():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--popsize", type=int, default=4)
    args = parser.parse_args()
    loaded = load_language_model("smollm2-135m")
    rng = np.random.default_rng(0)
    rows = {}
    for method, placement in ROWS:
        evaluator, start, dtype = evaluator_and_start(method, placement, loaded)
        for _ in range(2):
            evaluator.evaluate(start[None], step=0)
        rows[(method, placement)] = {"evaluator": evaluator, "start": start, "dtype": dtype,
                                     "seconds": []}
    for _ in range(args.rounds):
        for row in rows.values():
            scale = 0.01 * float(np.std(row["start"]) or 1.0)
            population = row["start"] + scale * rng.standard_normal(
                (args.popsize,) + row["start"].shape).astype("float32")
            began = time.perf_counter()
            row["evaluator"].evaluate(population, step=0)
            row["seconds"].append((time.perf_counter() - began) / args.popsize)
    load = load_average()
    reference = float(np.median(rows[REFERENCE]["seconds"]))
    lines = ["# Seconds per forward call of BBT and BBTv2 (one candidate, 32 sentences)", "",
             "`python -m experiments.bench.search_call_speed`. Embedded SmolLM2-135M, SST-2 "
             "16-shot seed 42, all 32 training sentences per call, the evaluator and dtype "
             f"`promptopt tune` picks on this machine ({cpu_name()}; bfloat16 "
             f"{'native' if has_native_bfloat16() else 'emulated, so float32'}). "
             f"{args.rounds} rounds of {args.popsize} candidates per row, the rows "
             "taking turns in one process; median over rounds. Load average (1, 5, 15 min) "
             f"at the end: {', '.join(map(str, load))}.", "",
             "| method | placement | evaluator | dtype | s / call (median) | min | max | "
             "vs bbtv2 prefix |", "|---|---|---|---|---|---|---|---|"]
    for (method, placement), row in rows.items():
        seconds = row["seconds"]
        median = float(np.median(seconds))
        lines.append(f"| {method} | {placement} | {type(row['evaluator']).__name__} | "
                     f"{row['dtype']} | {median:.3f} | {min(seconds):.3f} | {max(seconds):.3f} | "
                     f"{median / reference:.3f} |")
    common.write_markdown("search_call_speed.md", lines)


if __name__ == "__main__":
    main()
