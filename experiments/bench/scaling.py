"""Data-parallel and population-parallel scoring over 1, 2, ... devices.

For each device count N, a fresh process with N devices (on a CPU,
`XLA_FLAGS=--xla_force_host_platform_device_count=N` virtual devices: they
share the same cores, so this measures the overhead of splitting more than
any speed-up) builds a random Llama-family model under
`DistributionSetup(N)` and times, after a warm-up (compilation) call:
  (a) one data-parallel prompt-tuning step: loss and gradient of one
      candidate on a mini-batch of B examples split over the N devices;
  (b) one population scoring: K candidates, forward only, K / N per
      device, each on the whole mini-batch (CMA-ES / BBT);
and, with N = 1 only, (c) the same two with no distribution at all (what
promptopt runs by default: JAX op by op, not compiled as one program).
Every figure is the median of the repeats with the 1-minute load average
before each (the machine is shared). JAX backend only.

    python experiments/bench/scaling.py --devices 1 2 \
        --out experiments/results/scaling_cpu.md
    python experiments/bench/scaling.py --devices 1 8 --device-type gpu --dtype bfloat16 \
        --out experiments/results/scaling_gpu.md
"""

import argparse
import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))

from measure import cpu_description  # noqa: E402
from measure import load_average  # noqa: E402
from measure import time_repeats  # noqa: E402


def build(args):
    """A random Llama backbone in a `PromptedModel`, and its evaluator data."""
    import keras
    import keras_hub
    import numpy as np

    from promptopt import PromptedModel
    from promptopt import Verbalizer
    from promptopt import VerbalizerClassification

    keras.utils.set_random_seed(0)
    backbone = keras_hub.models.Llama3Backbone(
        vocabulary_size=args.vocabulary, num_layers=args.layers, num_query_heads=4,
        num_key_value_heads=2, hidden_dim=args.hidden, intermediate_dim=args.hidden * 3,
        dtype=args.dtype)
    verbalizer = Verbalizer(["0", "1"], {"0": " no", "1": " yes"}, token_ids=[[11], [12]])
    model = PromptedModel(backbone, VerbalizerClassification(verbalizer),
                          prompt_length=args.prompt_length, prompt_initializer="random")
    rng = np.random.default_rng(0)
    x = {"token_ids": rng.integers(20, args.vocabulary, (args.batch, args.length)).astype("int32"),
         "padding_mask": np.ones((args.batch, args.length), "int32")}
    return model, x, (np.arange(args.batch) % 2).astype("int32")


def measure(args, devices):
    """The worker: times (a), (b) and, on one device, (c)."""
    import numpy as np

    from promptopt.distribution import DistributionSetup
    from promptopt.evaluators import KerasEvaluator

    def timings(evaluator):
        rng = np.random.default_rng(1)
        start = evaluator.initial_candidate()
        population = start[None] + 0.1 * rng.standard_normal(
            (args.popsize,) + start.shape).astype("float32")
        # Step 0 every time: one mini-batch shape, compiled once.
        step = time_repeats(lambda: evaluator.evaluate(population[:1], 0, True), args.repeats)
        scored = time_repeats(lambda: evaluator.evaluate(population, 0), args.repeats)
        return {"gradient_step": step, "population": scored}

    result = {"devices": devices}
    if devices == 1:
        model, x, y = build(args)
        result["no_distribution"] = timings(KerasEvaluator(model, x, y, batch_size=args.batch))
    with DistributionSetup(devices, device_type=args.device_type).scope():
        model, x, y = build(args)
        result["mesh"] = timings(KerasEvaluator(model, x, y, batch_size=args.batch))
    return result


def row(name, devices, timing, args, unit):
    work = args.batch if unit == "examples" else args.popsize * args.batch
    median = timing["seconds_median"]
    loads = timing["load_1min"]
    return (f"| {name} | {devices} | {median * 1000:.1f} | {work / median:.0f} | "
            f"{min(loads):.1f}-{max(loads):.1f} |")


def markdown(args, results):
    machine = cpu_description()
    lines = [
        f"# Scaling on {args.device_type or 'the default'} devices",
        "",
        f"Command: `python experiments/bench/scaling.py {' '.join(sys.argv[1:])}`",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores; JAX backend, {args.dtype}. "
        f"Model: random Llama3, {args.layers} layers, hidden {args.hidden}, vocabulary "
        f"{args.vocabulary}; prompt {args.prompt_length}; mini-batch {args.batch} x "
        f"{args.length} tokens; population {args.popsize}. Medians of {args.repeats} repeats "
        "after a compiling warm-up; load = the 1-minute load average before each repeat.",
        "",
        "| what | devices | median ms | rows/s | load |",
        "| --- | --- | --- | --- | --- |",
    ]
    for result in results:
        n = result["devices"]
        if "no_distribution" in result:
            base = result["no_distribution"]
            lines.append(row("gradient step, no distribution (op by op)", 1, base["gradient_step"],
                             args, "examples"))
            lines.append(row("population, no distribution (op by op)", 1, base["population"],
                             args, "rows"))
        lines.append(row("data-parallel gradient step", n, result["mesh"]["gradient_step"], args,
                         "examples"))
        lines.append(row("population, candidates split", n, result["mesh"]["population"], args,
                         "rows"))
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--devices", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device-type", default=None, help="cpu, gpu or tpu (default: JAX's)")
    parser.add_argument("--dtype", default="float32", help="float32, bfloat16 or mixed_bfloat16")
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--vocabulary", type=int, default=2048)
    parser.add_argument("--prompt-length", type=int, default=20)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--length", type=int, default=64)
    parser.add_argument("--popsize", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", default=None, help="markdown table to write")
    parser.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker is not None:
        print(json.dumps(measure(args, args.worker)))
        return
    results = []
    for devices in args.devices:
        env = dict(os.environ, KERAS_BACKEND="jax")
        if args.device_type in (None, "cpu"):
            env["XLA_FLAGS"] = (env.get("XLA_FLAGS", "") +
                                f" --xla_force_host_platform_device_count={devices}").strip()
        command = [sys.executable, __file__, "--worker", str(devices)] + _forwarded(sys.argv[1:])
        print(f"{devices} device(s), load {load_average()}", file=sys.stderr)
        output = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        if output.returncode:
            raise SystemExit(f"worker with {devices} devices failed:\n{output.stderr[-3000:]}")
        results.append(json.loads(output.stdout.strip().splitlines()[-1]))
    table = markdown(args, results)
    print(table)
    if args.out:
        with open(args.out, "w") as f:
            f.write(table)


def _forwarded(argv):
    """The command line less --devices and --out, for a worker."""
    out, skip = [], False
    for arg in argv:
        if arg in ("--devices", "--out"):
            skip = True
            continue
        if skip and not arg.startswith("--"):
            continue
        skip = False
        out.append(arg)
    return out


if __name__ == "__main__":
    main()
