"""Prompt-tuning training step: promptopt (Keras) vs PEFT (PyTorch), same CPU.

Both load the same weights (the embedded SmolLM2-135M-Instruct GGUF:
promptopt through its converted keras-hub preset, transformers with
`gguf_file=`), train a 20-token prompt with AdamW (lr 0.03) on the same
random token batches, and score the two label words " terrible"/" great" at
the last position with cross-entropy. Each framework runs in its own
subprocess so that its peak RSS is its own. Every step time is the median
of repeats after one warm-up step, with the 1-minute load average.

PEFT runs as its users run it (`model(input_ids, attention_mask)`: logits
over the whole vocabulary at every position) and as its fastest variant
(`logits_to_keep=1`: the LM head at the last position only, what promptopt
does); ratios are taken against the faster of the two.

Needs the optional extra `pip install .[compare]` (torch==2.13.0 CPU,
transformers, peft).

    nice -n 10 python experiments/bench/peft_comparison.py [--shapes 8x64 32x64 8x256]
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

from measure import PeakRSS  # noqa: E402
from measure import cpu_description  # noqa: E402
from measure import load_average  # noqa: E402
from measure import time_repeats  # noqa: E402

EXPERIMENTS = os.path.dirname(HERE)
PROMPT_LENGTH = 20
LEARNING_RATE = 0.03


def batch(batch_size, length):
    rng = np.random.default_rng(batch_size * 1000 + length)
    ids = rng.integers(100, 40000, size=(batch_size, length)).astype("int64")
    return ids, (np.arange(batch_size) % 2).astype("int64")


def ours(variant, shapes, repeats):
    import keras

    from promptopt import PromptedModel
    from promptopt import Verbalizer
    from promptopt import VerbalizerClassification
    from promptopt.hub import load_language_model

    with PeakRSS() as load_peak:
        lm = load_language_model("smollm2-135m")
        tokenizer, model_id, backbone = lm.tokenizer, lm.model_id, lm.backbone
        del lm
        if variant == "bfloat16":
            from promptopt.models.precision import cast_backbone

            backbone = cast_backbone(backbone, "bfloat16")  # the float32 copy is dropped
    verbalizer = Verbalizer(["0", "1"], {"0": " terrible", "1": " great"}, tokenizer)
    model = PromptedModel(
        backbone, VerbalizerClassification(verbalizer), prompt_length=PROMPT_LENGTH,
        prompt_initializer="vocab", tokenizer=tokenizer, model_id=model_id,
    )
    model.compile(optimizer=keras.optimizers.AdamW(LEARNING_RATE, weight_decay=0.0))
    results = {}
    for b, t in shapes:
        ids, y = batch(b, t)
        x = {"token_ids": ids.astype("int32"), "padding_mask": np.ones((b, t), "int32")}
        results[f"{b}x{t}"] = time_repeats(lambda: model.train_on_batch(x, y), repeats, max_seconds=120)
    return {"load_peak_rss_mb": round(load_peak.bytes / 2**20, 1), "shapes": results}


def peft(variant, shapes, repeats):
    import torch
    from peft import PromptTuningConfig
    from peft import TaskType
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM
    from transformers import AutoTokenizer

    from promptopt.hub.gguf_converter import find_smollm2_gguf

    gguf = find_smollm2_gguf()
    folder, name = os.path.dirname(gguf), os.path.basename(gguf)
    with PeakRSS() as load_peak:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        base = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    model = get_peft_model(base, PromptTuningConfig(
        task_type=TaskType.CAUSAL_LM, num_virtual_tokens=PROMPT_LENGTH))
    words = [tokenizer(w, add_special_tokens=False).input_ids for w in (" terrible", " great")]
    word_ids = torch.tensor([w[0] for w in words])
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=LEARNING_RATE, weight_decay=0.0)
    kwargs = {"logits_to_keep": 1} if variant == "last-logits" else {}
    autocast = variant == "bfloat16-autocast"
    results = {}
    for b, t in shapes:
        ids, y = batch(b, t)
        ids, y = torch.tensor(ids), torch.tensor(y)
        mask = torch.ones_like(ids)

        def step():
            optimizer.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
                logits = model(input_ids=ids, attention_mask=mask, **kwargs).logits
            scores = logits[:, -1, :].float()[:, word_ids]
            loss = torch.nn.functional.cross_entropy(scores, y)
            loss.backward()
            optimizer.step()

        results[f"{b}x{t}"] = time_repeats(step, repeats, max_seconds=120)
    return {"load_peak_rss_mb": round(load_peak.bytes / 2**20, 1), "shapes": results,
            "torch_threads": torch.get_num_threads()}


def worker(args):
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes]
    fn = ours if args.worker == "ours" else peft
    result = fn(args.variant, shapes, args.repeats)
    import resource

    result["process_max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)


RUNS = [("promptopt", "ours", "float32"), ("promptopt", "ours", "bfloat16"),
        ("peft", "peft", "full-logits"), ("peft", "peft", "last-logits"),
        ("peft", "peft", "bfloat16-autocast")]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shapes", nargs="*", default=["8x64", "32x64", "8x256"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--runs", nargs="*", default=[f"{w}:{v}" for _, w, v in RUNS])
    parser.add_argument("--worker", choices=["ours", "peft"])
    parser.add_argument("--variant")
    parser.add_argument("--output")
    args = parser.parse_args()
    if args.worker:
        return worker(args)
    directory = os.path.join(EXPERIMENTS, "runs", "bench", "peft_comparison")
    os.makedirs(directory, exist_ok=True)
    measured = {}
    for run in args.runs:
        who, variant = run.split(":")
        path = os.path.join(directory, f"{who}-{variant}-{'-'.join(args.shapes)}.json")
        if not os.path.exists(path):
            print(f"[{time.strftime('%H:%M:%S')}] {who} {variant} (load {load_average()})", flush=True)
            subprocess.run([sys.executable, os.path.abspath(__file__), "--worker", who,
                            "--variant", variant, "--output", path, "--repeats", str(args.repeats),
                            "--shapes", *args.shapes], check=True)
        with open(path) as f:
            measured[(who, variant)] = json.load(f)
    lines = [
        "# Prompt-tuning training step: promptopt vs PEFT (same CPU, weights, shapes)",
        "",
        "Command: `python experiments/bench/peft_comparison.py " + " ".join(
            a for a in sys.argv[1:]) + "`",
        "",
        f"{cpu_description()['cpu']}, {cpu_description()['cores']} cores, shared with other "
        "engineers' jobs: medians of repeats after a warm-up step; load = 1-minute load average "
        f"before each repeat. Prompt {PROMPT_LENGTH}, AdamW, two label words at the last position.",
        "",
        "| framework | variant | batch x seq | step (s) | all steps (s) | peak RSS (MB) | load (1 min) |",
        "|---|---|---|---|---|---|---|",
    ]
    for (who, variant), result in measured.items():
        for shape, r in result["shapes"].items():
            lines.append(f"| {who} | {variant} | {shape} | {r['seconds_median']:.2f} | "
                         f"{r['seconds_all']} | {r['peak_rss_mb']:.0f} | {r['load_1min']} |")
    peft_runs = {v: r for (w, v), r in measured.items() if w == "peft" and v != "bfloat16-autocast"}
    if peft_runs:
        lines += ["", "Ratios against PEFT's faster fp32 variant per shape (>1: promptopt is faster / "
                  "smaller); peak RSS is the whole process (model + step).", "",
                  "| promptopt variant | batch x seq | PEFT step (s) | step-time ratio | peak-RSS ratio |",
                  "|---|---|---|---|---|"]
        for (who, variant), result in measured.items():
            if who != "ours":
                continue
            for shape, r in result["shapes"].items():
                best = min((p["shapes"][shape] for p in peft_runs.values() if shape in p["shapes"]),
                           key=lambda p: p["seconds_median"])
                peft_rss = min(p["process_max_rss_mb"] for p in peft_runs.values())
                lines.append(f"| {variant} | {shape} | {best['seconds_median']:.2f} | "
                             f"{best['seconds_median'] / r['seconds_median']:.2f}x | "
                             f"{peft_rss / result['process_max_rss_mb']:.2f}x |")
        lines += ["", "Whole-process max RSS (MB): " + ", ".join(
            f"{w} {v} {r['process_max_rss_mb']:.0f}" for (w, v), r in measured.items())]
    table = "\n".join(lines) + "\n"
    os.makedirs(os.path.join(EXPERIMENTS, "results"), exist_ok=True)
    with open(os.path.join(EXPERIMENTS, "results", "peft_comparison.md"), "w") as f:
        f.write(table)
    print(table)


if __name__ == "__main__":
    main()
