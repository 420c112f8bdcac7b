"""Time per candidate over HTTP: K single requests against one population request.

`promptopt serve` runs the embedded SmolLM2-135M (or `--model`); the client
is `HTTPEvaluator`, as a BBT run uses it: one `evaluate` call scores a
CMA-ES generation of K soft prompts `[K, P, H]` on the same B SST-2
training sentences (seed 42, 16-shot). Three ways to send it:

- **single, 1 at a time**: K requests `[P, H]`, one after another
  (`population_requests=False, concurrency=1`);
- **single, 4 in flight**: the same K requests, 4 at a time (the default
  concurrency; the server's one model thread still runs them one by one);
- **population**: one request `[K, P, H]` (`population_requests=True`).

Both placements are timed: "prefix" (each candidate still runs its full
`B * (P + T)` pass; a population saves the round trips and the repeated
tokenization) and "suffix" (on this Llama-family model a population also
computes the inputs' keys and values once, and each candidate runs only
its `B * P` prompt rows). Every timed call sends fresh candidates (new
keys, so nothing is answered from the server's log); one untimed call per
row compiles the server's functions first. Reported: the median over
`--repeats` calls of wall time / K, and the load average around each row
(the machine is shared).

    python -m experiments.bench.population_requests [--k 8] [--prompt-length 10]
        [--batch 4] [--repeats 3] [--model smollm2-135m] [--placements prefix suffix]
"""

import argparse
import json
import os
import statistics
import tempfile
import time

import numpy as np

from experiments.api_server_process import start_server
from experiments.bench.measure import load_average
from promptopt.data import get_fewshot_task
from promptopt.data import load_fewshot_split
from promptopt.evaluators import HTTPEvaluator

HERE = os.path.dirname(os.path.abspath(__file__))
RESULTS = os.path.join(os.path.dirname(HERE), "results")
RUNS = os.path.join(os.path.dirname(HERE), "runs", "population_requests")
MODES = {
    "single, 1 at a time": {"population_requests": False, "concurrency": 1},
    "single, 4 in flight": {"population_requests": False, "concurrency": 4},
    "population": {"population_requests": True, "concurrency": 1},
}


def time_row(url, train, args, placement, mode, hidden_dim, std, seed):
    """Median seconds per candidate of `args.repeats` generations, plus counters."""
    task = get_fewshot_task("sst2")
    evaluator = HTTPEvaluator(
        url, train.texts[: args.batch], train.labels[: args.batch], task.classes,
        {c: list(w) for c, w in task.label_words.items()}, batch_size=args.batch,
        placement=placement, timeout=600, **MODES[mode],
    )
    rng = np.random.default_rng(seed)
    per_candidate = []
    load_before = load_average()
    for repeat in range(args.repeats + 1):  # the first compiles: not timed
        population = (std * rng.normal(size=(args.k, args.prompt_length, hidden_dim))).astype("float32")
        started = time.perf_counter()
        evaluation = evaluator.evaluate(population, step=0)
        seconds = time.perf_counter() - started
        if repeat:
            per_candidate.append(seconds / args.k)
    return {
        "placement": placement,
        "mode": mode,
        "seconds_per_candidate": statistics.median(per_candidate),
        "all_seconds_per_candidate": per_candidate,
        "requests_per_generation": evaluation.metrics["api_requests"],
        "forward_calls_per_generation": evaluation.forward_calls,
        "load_average_before": load_before,
        "load_average_after": load_average(),
    }


def write_table(rows, args, info):
    lines = [
        "# Population requests: time per candidate over HTTP",
        "",
        "Command: `python -m experiments.bench.population_requests "
        f"--k {args.k} --prompt-length {args.prompt_length} --batch {args.batch} "
        f"--repeats {args.repeats} --model {args.model}`",
        "",
        f"`promptopt serve` with {info['model']} (H={info['hidden_dim']}) on this machine's CPU "
        f"({os.cpu_count()} cores, shared with other work); client `HTTPEvaluator` in another "
        f"process on the same machine. One CMA-ES generation: K={args.k} soft prompts of "
        f"P={args.prompt_length} vectors on the same B={args.batch} SST-2 training sentences; "
        f"median of {args.repeats} generations after one untimed warm-up.",
        "",
        "| placement | how the K candidates are sent | requests | forward calls | "
        "s per candidate (median) | vs single, 1 at a time | load average before -> after |",
        "|---|---|---|---|---|---|---|",
    ]
    baseline = {r["placement"]: r["seconds_per_candidate"] for r in rows
                if r["mode"] == "single, 1 at a time"}
    for r in rows:
        speedup = baseline[r["placement"]] / r["seconds_per_candidate"]
        lines.append(
            f"| {r['placement']} | {r['mode']} | {int(r['requests_per_generation'])} | "
            f"{r['forward_calls_per_generation']} | {r['seconds_per_candidate']:.4f} | "
            f"{speedup:.2f}x | {r['load_average_before'][0]} -> {r['load_average_after'][0]} |"
        )
    lines += [
        "",
        "Every row counts K forward calls per generation (BBT's budget unit); only the "
        "number of requests differs. Losses are the same in every row (a population "
        "request equals its K single requests bit for bit: "
        "tests/server/test_population_score.py).",
        "",
    ]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # Small by default: on the shared 2-core CPU one SmolLM2 pass over 16
    # sentences took ~11 s under load, so K=20 x B=16 did not fit.
    parser.add_argument("--k", type=int, default=8, help="candidates per generation")
    parser.add_argument("--prompt-length", type=int, default=10)
    parser.add_argument("--batch", type=int, default=4, help="sentences per generation")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--placements", nargs="+", default=["prefix", "suffix"],
                        choices=["prefix", "suffix"])
    parser.add_argument("--out", default=os.path.join(RESULTS, "population_requests.md"))
    args = parser.parse_args()
    train = load_fewshot_split(get_fewshot_task("sst2"), 42, "train")
    scratch = tempfile.mkdtemp(prefix="population_requests_")  # server log and output
    process, url = start_server(
        args.model, os.path.join(scratch, "requests.jsonl"), os.path.join(scratch, "server.out")
    )
    try:
        probe = HTTPEvaluator(url, ["x"], [0], ["0"], {"0": [" x"]})
        info = probe.info()
        rows = []
        for placement in args.placements:
            for seed, mode in enumerate(MODES):
                row = time_row(url, train, args, placement, mode, info["hidden_dim"],
                               info["embedding_std"], seed)
                print(json.dumps(row), flush=True)
                rows.append(row)
    finally:
        process.terminate()
        process.wait(timeout=30)
    table = write_table(rows, args, info)
    with open(args.out, "w") as f:
        f.write(table)
    os.makedirs(RUNS, exist_ok=True)
    with open(os.path.join(RUNS, "rows.json"), "w") as f:  # every timing, not only medians
        json.dump({"args": vars(args), "info": info, "rows": rows}, f, indent=1)
    print(table)


if __name__ == "__main__":
    main()
