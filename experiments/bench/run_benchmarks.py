"""Speed and memory of the embedded SmolLM2-135M against the hardware limit.

One command measures, on the active Keras backend:
  (a) training: step time, examples/s and tokens/s of backprop prompt tuning
      (`PromptedModel.train_on_batch`), plain and with the residual MLP, at
      batch 8 and 32 x sequence 64 and 256, prompt 20;
  (b) forward-only scoring, what CMA-ES pays per generation: 20 candidates
      x the 32 SST-2 16-shot training examples (`KerasEvaluator.evaluate`);
  (c) peak RSS during each measurement;
  (d) the machine's measured matmul peak (a large matmul in the same
      backend) and each case's achieved FLOP/s as a fraction of it;
  (e) the CPU.
Every timing is the median of repeats after a warm-up call (a training case
stops repeating after 60 s of timed work), with the 1-minute load average
before each repeat (the machine is shared). Each case runs in its own
subprocess, so its peak RSS is its own. Results go to
experiments/runs/bench/<label>/<case>.json (a rerun skips finished cases)
and to experiments/results/benchmarks_<label>.{json,md}.

    nice -n 10 python experiments/bench/run_benchmarks.py --label before
    nice -n 10 python experiments/bench/run_benchmarks.py --label after \
        --precisions float32 bfloat16 --scorers evaluator bucketed shared-input-suffix
"""

import argparse
import json
import os
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from measure import cpu_description  # noqa: E402
from measure import llama_forward_flops  # noqa: E402
from measure import load_average  # noqa: E402
from measure import time_repeats  # noqa: E402

EXPERIMENTS = os.path.dirname(HERE)
PROMPT_LENGTH = 20
POPULATION = 20
SCORING_EXAMPLES = 32


def matmul_peak(dtype, size=4096, repeats=5):
    """FLOP/s of a `size`^3 matmul in the active backend (median of repeats)."""
    import keras
    from keras import ops

    x = ops.cast(keras.random.normal((size, size), seed=0), dtype)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        matmul = tf.function(lambda a: tf.matmul(a, a))
    else:
        matmul = lambda a: ops.matmul(a, a)
    run = lambda: ops.convert_to_numpy(ops.cast(matmul(x)[0, 0], "float32"))
    result = time_repeats(run, repeats, warmup=2)
    result["flops_per_second"] = 2 * size**3 / result["seconds_median"]
    return result


def backbone_config(backbone):
    names = ("hidden_dim", "intermediate_dim", "num_layers", "num_query_heads",
             "num_key_value_heads", "vocabulary_size")
    return {n: int(getattr(backbone, n)) for n in names}


def make_backbone(lm, precision):
    if precision == "float32":
        return lm.backbone
    from promptopt.models.precision import cast_backbone

    return cast_backbone(lm.backbone, precision)


def make_model(lm, backbone, reparam, placement="prefix"):
    from promptopt import PromptedModel
    from promptopt import Verbalizer
    from promptopt import VerbalizerClassification
    from promptopt.prompts import ResidualReparameterization

    verbalizer = Verbalizer(["0", "1"], {"0": " terrible", "1": " great"}, lm.tokenizer)
    task_kwargs = {} if placement == "prefix" else {"placement": placement}
    return PromptedModel(
        backbone,
        VerbalizerClassification(verbalizer, **task_kwargs),
        prompt_length=PROMPT_LENGTH,
        prompt_initializer="vocab",
        parameterization=ResidualReparameterization() if reparam == "residual" else None,
        tokenizer=lm.tokenizer,
        model_id=lm.model_id,
    )


def bench_training(lm, precision, reparam, batch, length, repeats):
    import keras

    model = make_model(lm, make_backbone(lm, precision), reparam)
    model.compile(optimizer=keras.optimizers.AdamW(0.03, weight_decay=0.0))
    rng = np.random.default_rng(0)
    x = {
        "token_ids": rng.integers(100, 40000, size=(batch, length)).astype("int32"),
        "padding_mask": np.ones((batch, length), "int32"),
    }
    y = (np.arange(batch) % 2).astype("int32")
    result = time_repeats(lambda: model.train_on_batch(x, y), repeats, max_seconds=60)
    seconds = result["seconds_median"]
    # The backbone is frozen: the backward pass needs activation gradients
    # only (no weight gradients), about one more forward's worth of matmuls.
    forward = llama_forward_flops(backbone_config(lm.backbone), batch, PROMPT_LENGTH + length)
    result.update(
        examples_per_second=batch / seconds,
        tokens_per_second=batch * (PROMPT_LENGTH + length) / seconds,
        model_flops=2 * forward,
        flops_per_second=2 * forward / seconds,
    )
    return result


def scoring_data(lm):
    from promptopt.data import get_fewshot_task
    from promptopt.data import load_fewshot_split

    train = load_fewshot_split(get_fewshot_task("sst2"), 42, "train")
    return list(train.texts[:SCORING_EXAMPLES]), np.asarray(train.labels[:SCORING_EXAMPLES])


def make_evaluator(scorer, model, x, y):
    from promptopt.evaluators import KerasEvaluator

    if scorer == "evaluator":
        return KerasEvaluator(model, x, y, batch_size=SCORING_EXAMPLES)
    if scorer == "bucketed":
        return KerasEvaluator(model, x, y, batch_size=SCORING_EXAMPLES, length_buckets=2)
    if scorer == "shared-input-suffix":
        from promptopt.evaluators import SharedInputEvaluator

        return SharedInputEvaluator(model, x, y, batch_size=SCORING_EXAMPLES)
    raise ValueError(f"Unknown scorer {scorer!r}.")


def bench_scoring(lm, precision, scorer, repeats):
    texts, labels = scoring_data(lm)
    placement = "suffix" if scorer == "shared-input-suffix" else "prefix"
    model = make_model(lm, make_backbone(lm, precision), "none", placement)
    x = model.encode_texts(texts)
    evaluator = make_evaluator(scorer, model, x, labels)
    prompt = evaluator.initial_candidate()
    noise = np.random.default_rng(0).normal(size=(POPULATION,) + prompt.shape)
    candidates = (prompt + 0.01 * noise).astype("float32")
    holder = {}

    def generation():
        holder["evaluation"] = evaluator.evaluate(candidates, step=0)

    result = time_repeats(generation, repeats, max_seconds=90)
    seconds = result["seconds_median"]
    if scorer != "evaluator":
        # The faster scorer must give the losses of the plain full forward
        # pass on the same model (checked on 2 candidates, outside timing).
        from promptopt.evaluators import KerasEvaluator

        reference = KerasEvaluator(model, x, labels, batch_size=SCORING_EXAMPLES)
        result["max_loss_difference_vs_full_forward"] = float(np.max(np.abs(
            reference.evaluate(candidates[:2], step=0).losses
            - holder["evaluation"].losses[:2])))
    config = backbone_config(lm.backbone)
    lengths = x["padding_mask"].sum(axis=1)
    width = int(lengths.max())
    if scorer == "shared-input-suffix":
        # Executed: the shared input once, then per candidate P queries
        # against width + P keys.
        executed = llama_forward_flops(config, SCORING_EXAMPLES, width) - 2 * SCORING_EXAMPLES * config["hidden_dim"] * config["vocabulary_size"]
        executed += POPULATION * llama_forward_flops(config, SCORING_EXAMPLES, PROMPT_LENGTH, width + PROMPT_LENGTH)
    elif scorer == "bucketed":
        executed = POPULATION * sum(
            llama_forward_flops(config, len(rows), PROMPT_LENGTH + int(lengths[rows].max()))
            for rows in np.array_split(np.argsort(lengths), 2)
        )
    else:
        executed = POPULATION * llama_forward_flops(config, SCORING_EXAMPLES, PROMPT_LENGTH + width)
    # What a prefix-prompt forward pass without padding would need.
    useful = POPULATION * sum(llama_forward_flops(config, 1, PROMPT_LENGTH + int(n)) for n in lengths)
    result.update(
        examples_per_second=POPULATION * SCORING_EXAMPLES / seconds,
        candidates_per_second=POPULATION / seconds,
        executed_flops=executed,
        flops_per_second=executed / seconds,
        useful_flops_per_second=useful / seconds,
        mean_loss=float(np.mean(holder["evaluation"].losses)),
        text_lengths={"mean": float(lengths.mean()), "max": width},
    )
    return result


def case_path(label, name):
    directory = os.path.join(EXPERIMENTS, "runs", "bench", label)
    os.makedirs(directory, exist_ok=True)
    return os.path.join(directory, name.replace("/", "__") + ".json")


def run_case(label, name, repeats):
    """Measures one case in a fresh subprocess (its own peak RSS; memory
    returned to the machine afterwards), unless it is already cached."""
    path = case_path(label, name)
    if not os.path.exists(path):
        print(f"[{time.strftime('%H:%M:%S')}] {name} (load {load_average()})", flush=True)
        done = subprocess.run([sys.executable, os.path.abspath(__file__), "--label", label,
                               "--case", name, "--repeats", str(repeats)])
        if done.returncode != 0:
            # -9: the kernel's OOM killer (the machine has ~23 GB, shared).
            failure = {"case": name, "failed": f"exit {done.returncode}"
                       + (" (SIGKILL: out of memory)" if done.returncode == -9 else ""),
                       "load_1min": load_average()[:1], "seconds_median": float("nan")}
            with open(path, "w") as f:
                json.dump(failure, f, indent=2)
    with open(path) as f:
        result = json.load(f)
    if "failed" in result:
        print(f"    {name}: {result['failed']}", flush=True)
        return result
    print(f"    {name}: {result['seconds_median']:.3f} s  load {result['load_1min']}", flush=True)
    return result


def measure_case(label, name, repeats):
    """The worker side of `run_case`: `name` is kind/precision/..."""
    parts = name.split("/")
    if parts[0] == "matmul":
        result = matmul_peak(parts[1])
    else:
        from promptopt.hub import load_language_model

        lm = load_language_model("smollm2-135m")
        if parts[0] == "train":
            _, precision, reparam, batch, length = parts
            result = bench_training(lm, precision, reparam, int(batch[1:]), int(length[1:]), repeats)
        else:
            _, precision, scorer = parts
            result = bench_scoring(lm, precision, scorer, repeats)
    with open(case_path(label, name), "w") as f:
        json.dump({"case": name, **result}, f, indent=2)


def best_peak(dtype, peaks):
    """The highest matmul peak measured in any benchmark run on this machine:
    under load a run's own peak understates the hardware."""
    best = peaks[dtype]["flops_per_second"]
    directory = os.path.join(EXPERIMENTS, "runs", "bench")
    for label in os.listdir(directory):
        path = os.path.join(directory, label, f"matmul__{dtype}.json")
        if os.path.exists(path):
            with open(path) as f:
                best = max(best, json.load(f).get("flops_per_second", 0))
    return best


def markdown(label, command, hardware, peaks, rows):
    fp32 = best_peak("float32", peaks)
    lines = [
        f"# Benchmarks ({label}): SmolLM2-135M-Instruct, prompt {PROMPT_LENGTH}",
        "",
        f"Command: `{command}`",
        "",
        f"Hardware: {hardware['cpu']}, {hardware['cores']} cores; backend "
        f"{hardware['backend']} {hardware['backend_version']}, keras {hardware['keras']}. "
        "The machine is shared with other engineers' jobs: every figure is the median of "
        "repeats after a warm-up, with the 1-minute load average before each repeat "
        "(2 cores: a load above ~1 means contention).",
        "",
        "| matmul peak (4096^3) | GFLOP/s | load |",
        "|---|---|---|",
    ]
    for dtype, peak in peaks.items():
        lines.append(f"| {dtype} | {peak['flops_per_second'] / 1e9:.0f} | {peak['load_1min']} |")
    lines += ["", f"Percentages below are of the highest float32 peak measured on this machine "
              f"in any benchmark run, {fp32 / 1e9:.0f} GFLOP/s; bfloat16 rows can exceed 100% "
              "(the bfloat16 peak is about twice the float32 one)."]
    lines += [
        "",
        "## Training step (backprop, `train_on_batch`, AdamW)",
        "",
        "FLOP/s counts the forward pass plus the activation-gradient backward pass "
        "(2x forward; the frozen backbone needs no weight gradients).",
        "",
        "| precision | prompt | batch | seq | step (s) | examples/s | tokens/s | GFLOP/s | % fp32 peak | peak RSS (MB) | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["kind"] != "train":
            continue
        if "failed" in r:
            lines.append(f"| {r['precision']} | {r['reparam']} | {r['batch']} | {r['length']} | "
                         f"{r['failed']} | | | | | | {r['load_1min']} |")
            continue
        lines.append(
            f"| {r['precision']} | {r['reparam']} | {r['batch']} | {r['length']} | "
            f"{r['seconds_median']:.2f} | {r['examples_per_second']:.1f} | "
            f"{r['tokens_per_second']:.0f} | {r['flops_per_second'] / 1e9:.0f} | "
            f"{100 * r['flops_per_second'] / fp32:.0f}% | {r['peak_rss_mb']:.0f} | {r['load_1min']} |"
        )
    lines += [
        "",
        f"## Scoring a population ({POPULATION} candidates x {SCORING_EXAMPLES} SST-2 examples, forward only)",
        "",
        "Executed FLOP/s counts what runs (padding included); useful FLOP/s what an "
        "unpadded prefix-prompt pass needs, so scorers that skip work can exceed the peak. "
        "`evaluator`: `KerasEvaluator`, one padded forward pass per candidate; `bucketed`: "
        "`KerasEvaluator(length_buckets=2)`; `shared-input-suffix`: `SharedInputEvaluator` "
        "(prompt after the input, the input's K/V computed once per generation). Loss "
        "differences compare each scorer with the plain full forward pass of the same model.",
        "",
        "| precision | scorer | generation (s) | examples/s | executed GFLOP/s | % fp32 peak | useful GFLOP/s | mean loss | max abs loss diff vs full forward | peak RSS (MB) | load (1 min) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["kind"] != "score":
            continue
        if "failed" in r:
            lines.append(f"| {r['precision']} | {r['scorer']} | {r['failed']} | | | | | | | | {r['load_1min']} |")
            continue
        lines.append(
            f"| {r['precision']} | {r['scorer']} | {r['seconds_median']:.2f} | "
            f"{r['examples_per_second']:.0f} | {r['flops_per_second'] / 1e9:.0f} | "
            f"{100 * r['flops_per_second'] / fp32:.0f}% | {r['useful_flops_per_second'] / 1e9:.0f} | "
            f"{r['mean_loss']:.4f} | {r.get('max_loss_difference_vs_full_forward', '-')} | "
            f"{r['peak_rss_mb']:.0f} | {r['load_1min']} |"
        )
    return "\n".join(lines) + "\n"


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--label", default="latest", help="names the output files")
    parser.add_argument("--precisions", nargs="*", default=["float32"],
                        help="precisions of the training cases")
    parser.add_argument("--score-precisions", nargs="*", default=None,
                        help="precisions of the scoring cases (default: --precisions)")
    parser.add_argument("--reparams", nargs="*", default=["none", "residual"])
    parser.add_argument("--batches", nargs="*", type=int, default=[8, 32])
    parser.add_argument("--lengths", nargs="*", type=int, default=[64, 256])
    parser.add_argument("--scorers", nargs="*", default=["evaluator"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--case", help=argparse.SUPPRESS)  # worker mode
    args = parser.parse_args()
    if args.case:
        return measure_case(args.label, args.case, args.repeats)
    import keras

    backend = keras.backend.backend()
    backend_module = __import__({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[backend])
    hardware = {**cpu_description(), "backend": backend,
                "backend_version": backend_module.__version__, "keras": keras.__version__}
    peaks = {d: run_case(args.label, f"matmul/{d}", args.repeats) for d in ("float32", "bfloat16")}
    rows = []
    for precision in args.precisions:
        for reparam in args.reparams:
            for batch in args.batches:
                for length in args.lengths:
                    name = f"train/{precision}/{reparam}/b{batch}/t{length}"
                    rows.append({**run_case(args.label, name, args.repeats), "kind": "train",
                                 "precision": precision, "reparam": reparam, "batch": batch,
                                 "length": length})
    for precision in args.score_precisions or args.precisions:
        for scorer in args.scorers:
            name = f"score/{precision}/{scorer}"
            rows.append({**run_case(args.label, name, args.repeats), "kind": "score",
                         "precision": precision, "scorer": scorer})
    command = "python experiments/bench/run_benchmarks.py " + " ".join(sys.argv[1:])
    results = os.path.join(EXPERIMENTS, "results")
    os.makedirs(results, exist_ok=True)
    with open(os.path.join(results, f"benchmarks_{args.label}.json"), "w") as f:
        json.dump({"command": command, "hardware": hardware, "matmul_peak": peaks,
                   "cases": rows}, f, indent=2)
    table = markdown(args.label, command, hardware, peaks, rows)
    with open(os.path.join(results, f"benchmarks_{args.label}.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
