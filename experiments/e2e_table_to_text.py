"""E2E table-to-text on SmolLM2-135M-Instruct: zero-shot vs prompt vs prefix tuning.

The E2E dev set (../shared/data/e2e/devset.csv; the test set is not
provided) is split by meaning representation (`load_e2e`, 10% of MRs held
out, seed 0). Each tuned method trains with `fit()` on the same few hundred
(MR, reference) pairs for a fixed number of AdamW steps, then generates
greedily for held-out MRs; BLEU (sacrebleu) is computed against all the
references of each MR. Each method's results are cached as JSON under
experiments/runs/e2e_table_to_text/, so a rerun skips finished work.

    nice -n 10 python experiments/e2e_table_to_text.py

Budget per tuned method: 240 training pairs, 60 AdamW steps of batch 8,
then 50 held-out MRs x at most 40 greedy tokens (zero-shot: the evaluation
only). A quick check of the pipeline:

    python experiments/e2e_table_to_text.py --methods zero-shot --eval-mrs 10
"""

import argparse
import json
import os
import time

import keras
import numpy as np
import sacrebleu

from promptopt.data import load_e2e
from promptopt.hub import load_language_model
from promptopt.models import PromptedModel
from promptopt.prefixes import PrefixModel
from promptopt.tasks import LanguageModeling

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "runs", "e2e_table_to_text")
RESULTS = os.path.join(HERE, "results")
DATA = os.path.join(HERE, "..", "..", "shared", "data", "e2e", "devset.csv")
INIT_TEXT = "Write one sentence describing the restaurant from the table."
METHODS = ("zero-shot", "prompt-tuning", "prefix-tuning")


def source_text(linearized_mr):
    # The same plain template for every method; the instruct model is not
    # given its chat template, so zero-shot is a lower bound.
    return f"Table: {linearized_mr}\nSentence:"


def build(method, lm, length):
    task = LanguageModeling()
    common = dict(tokenizer=lm.tokenizer, model_id=lm.model_id, max_length=128)
    if method == "prefix-tuning":
        return PrefixModel(
            lm.backbone, task, prefix_length=length,
            prefix_initializer="text:" + INIT_TEXT, **common,
        )
    return PromptedModel(
        lm.backbone, task, prompt_length=0 if method == "zero-shot" else length,
        prompt_initializer="text:" + INIT_TEXT, **common,
    )


def learning_rate(method, args):
    return args.prefix_lr if method == "prefix-tuning" else args.prompt_lr


def train(model, method, train_data, args):
    rng = np.random.default_rng(args.seed)
    index = rng.permutation(len(train_data))[: args.train_pairs]
    sources = [source_text(train_data.sources[i]) for i in index]
    targets = [" " + train_data.targets[i] for i in index]
    x, y, w = model.task.encode(
        model.tokenizer, sources, targets, is_encoder_decoder=False,
        max_length=args.max_length,
    )
    model.compile(optimizer=keras.optimizers.AdamW(learning_rate(method, args), weight_decay=0.0))
    start = time.time()
    steps_per_epoch = int(np.ceil(len(sources) / args.batch_size))
    epochs = int(np.ceil(args.steps / steps_per_epoch))
    history = model.fit(
        x, y, sample_weight=w, batch_size=args.batch_size, epochs=epochs,
        steps_per_epoch=None, shuffle=True, verbose=2,
    )
    losses = [float(v) for v in history.history["loss"]]
    return losses, time.time() - start, epochs * steps_per_epoch


def evaluate(model, valid, args):
    sources = [source_text(s) for s in valid.sources[: args.eval_mrs]]
    references = valid.references[: args.eval_mrs]
    hypotheses = []
    start = time.time()
    for i in range(0, len(sources), args.eval_batch):
        outputs = model.generate(sources[i : i + args.eval_batch], max_new_tokens=args.new_tokens)
        # One sentence per MR: cut at the first line break.
        hypotheses += [o.strip().split("\n")[0].strip() for o in outputs]
    width = max(len(r) for r in references)
    streams = [[r[k] if k < len(r) else None for r in references] for k in range(width)]
    bleu = sacrebleu.corpus_bleu(hypotheses, streams)
    return bleu.score, hypotheses, time.time() - start


def run(method, lm, train_data, valid, args):
    os.makedirs(RUNS, exist_ok=True)
    path = os.path.join(RUNS, f"{method}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    keras.utils.set_random_seed(args.seed)
    model = build(method, lm, args.length)
    result = {"method": method, "length": 0 if method == "zero-shot" else args.length}
    if method != "zero-shot":
        losses, seconds, steps = train(model, method, train_data, args)
        result.update(train_losses=losses, fit_seconds=round(seconds), steps=steps,
                      lr=learning_rate(method, args), train_pairs=args.train_pairs)
        if method == "prefix-tuning":
            model.save_prefix(os.path.join(RUNS, "prefix.npz"))
        else:
            model.save_prompt(os.path.join(RUNS, "prompt.npz"))
    bleu, hypotheses, seconds = evaluate(model, valid, args)
    result.update(bleu=bleu, eval_seconds=round(seconds), eval_mrs=len(hypotheses),
                  examples=hypotheses[:3], trainable=int(sum(np.prod(v.shape) for v in model.trainable_weights)))
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
    print(json.dumps({k: v for k, v in result.items() if k != "train_losses"}), flush=True)
    return result


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="*", default=list(METHODS))
    parser.add_argument("--length", type=int, default=10, help="prompt/prefix length P")
    parser.add_argument("--train-pairs", type=int, default=240)
    parser.add_argument("--steps", type=int, default=60, help="AdamW steps (rounded up to epochs)")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--prompt-lr", type=float, default=0.03)
    parser.add_argument("--prefix-lr", type=float, default=5e-3)
    parser.add_argument("--max-length", type=int, default=96)
    parser.add_argument("--eval-mrs", type=int, default=50)
    parser.add_argument("--eval-batch", type=int, default=25)
    parser.add_argument("--new-tokens", type=int, default=40)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    train_data, valid = load_e2e(DATA, valid_fraction=0.1, seed=0)
    print(f"E2E dev: {len(train_data)} train pairs, {len(valid)} held-out MRs", flush=True)
    lm = load_language_model("smollm2-135m")
    rows = [run(m, lm, train_data, valid, args) for m in args.methods]
    lines = [
        "# E2E table-to-text (dev set split by MR): SmolLM2-135M-Instruct",
        "",
        "Command: `nice -n 10 python experiments/e2e_table_to_text.py`",
        "",
        "| method | P | trainable params | lr | AdamW steps (batch 8) | train pairs | first / last epoch loss | fit time (s) | BLEU (held-out MRs, all refs) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        trained = "steps" in r
        loss = f"{r['train_losses'][0]:.3f} / {r['train_losses'][-1]:.3f}" if trained else "-"
        cells = [r["method"], r["length"], r["trainable"], r.get("lr", "-"), r.get("steps", "-"),
                 r.get("train_pairs", "-"), loss, r.get("fit_seconds", "-"), f"{r['bleu']:.2f}"]
        lines.append("| " + " | ".join(str(c) for c in cells) + " |")
    lines += [
        "",
        f"BLEU: sacrebleu {sacrebleu.__version__} corpus BLEU of greedy outputs (at most "
        f"{args.new_tokens} new tokens, cut at the first line break) for the first "
        f"{rows[0]['eval_mrs']} held-out MRs, against every reference of each MR. Template "
        "`Table: <name : X | food : Y | ...>\\nSentence:`; prompt and prefix initialized "
        f"from the text \"{INIT_TEXT}\".",
        "",
        "First outputs:",
        "",
    ]
    for r in rows:
        lines.append(f"- {r['method']}: " + " / ".join(repr(e) for e in r["examples"][:2]))
    os.makedirs(RESULTS, exist_ok=True)
    with open(os.path.join(RESULTS, "e2e_table_to_text.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
