"""Does a bfloat16 backbone keep accuracy? A tuned prompt scored both ways.

Loads the 20-token SST-2 prompt that experiments/sst2_prompt_tuning.py
trained (80.7% test accuracy in float32) and scores the first N SST-2 test
examples with the float32 backbone and with its bfloat16 copy
(`promptopt.models.precision.cast_backbone`): accuracy of each, how often
their predictions agree, and the largest class-score difference.

    nice -n 10 python experiments/bench/bf16_accuracy.py [--examples 300]
"""

import argparse
import json
import os
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
EXPERIMENTS = os.path.dirname(HERE)
PROMPT = os.path.join(EXPERIMENTS, "runs", "sst2_prompt_tuning", "default", "prompt.npz")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=300)
    args = parser.parse_args()
    if not os.path.exists(PROMPT):
        raise SystemExit(f"{PROMPT} is missing; run experiments/sst2_prompt_tuning.py first.")
    from promptopt import PromptedModel
    from promptopt import Verbalizer
    from promptopt import VerbalizerClassification
    from promptopt.data import get_fewshot_task
    from promptopt.data import load_fewshot_split
    from promptopt.hub import load_language_model
    from promptopt.models.precision import cast_backbone
    from promptopt.prompts import PromptFile

    task = get_fewshot_task("sst2")
    test = load_fewshot_split(task, 42, "test")
    texts, labels = list(test.texts[: args.examples]), np.asarray(test.labels[: args.examples])
    lm = load_language_model("smollm2-135m")
    verbalizer = Verbalizer(task.classes, dict(task.label_words), lm.tokenizer)
    rows = {}
    for precision in ("float32", "bfloat16"):
        backbone = lm.backbone if precision == "float32" else cast_backbone(lm.backbone, precision)
        # The float32 model checks the file against its embeddings; the
        # bfloat16 copy's rounded table has another hash, so it takes the
        # same array directly.
        prompt = PromptFile.load(PROMPT).prompt
        model = PromptedModel(backbone, VerbalizerClassification(verbalizer), prompt_length=20,
                              prompt_initializer=prompt, tokenizer=lm.tokenizer, model_id=lm.model_id)
        if precision == "float32":
            model.load_prompt(PROMPT)
        started = time.time()
        scores = model.predict(model.encode_texts(texts), batch_size=32, verbose=0)
        rows[precision] = {"scores": scores, "seconds": time.time() - started}
    a, b = rows["float32"]["scores"], rows["bfloat16"]["scores"]
    result = {
        "examples": len(texts),
        "accuracy_float32": float(np.mean(a.argmax(-1) == labels)),
        "accuracy_bfloat16": float(np.mean(b.argmax(-1) == labels)),
        "prediction_agreement": float(np.mean(a.argmax(-1) == b.argmax(-1))),
        "max_abs_score_difference": float(np.abs(a - b).max()),
        "seconds_float32": round(rows["float32"]["seconds"], 1),
        "seconds_bfloat16": round(rows["bfloat16"]["seconds"], 1),
        "load_1min": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))
    lines = [
        "# bfloat16 backbone vs float32: the tuned SST-2 prompt scored both ways",
        "",
        f"Command: `python experiments/bench/bf16_accuracy.py --examples {args.examples}`",
        "",
        "| examples | accuracy fp32 | accuracy bf16 | prediction agreement | max abs score diff | "
        "scoring s fp32 | scoring s bf16 | load (1 min) |",
        "|---|---|---|---|---|---|---|---|",
        f"| {result['examples']} | {result['accuracy_float32']:.4f} | {result['accuracy_bfloat16']:.4f} | "
        f"{result['prediction_agreement']:.4f} | {result['max_abs_score_difference']:.3f} | "
        f"{result['seconds_float32']} | {result['seconds_bfloat16']} | {result['load_1min']} |",
    ]
    with open(os.path.join(EXPERIMENTS, "results", "bf16_accuracy.md"), "w") as f:
        f.write("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
