"""SST-2 16-shot, seed 42, tuned through the HTTP API alone, next to a local run.

Three runs on the embedded SmolLM2-135M, each at a stated budget of forward
calls (one = one candidate scored on the 32 training examples):

- local CMA-ES: `KerasEvaluator` in this process (BBT: d=500, sigma 1);
- API CMA-ES: the same optimizer, seed and budget through `promptopt serve`
  with `HTTPEvaluator` (soft prompts as base64 float32). The server scores
  each request in a forward pass of its own with the same compiled code,
  so every loss must equal the local run's bit for bit; the script checks
  this and that the best prompts are identical;
- API discrete: `DiscretePromptSearch` (BDPL-style) over a fixed list of
  phrases, through the same server's text prompts (no embeddings sent).

Test accuracy (the first --test-examples of the 872 test examples) is computed locally for the local run and
through the API for the API runs. Each run's result is cached in
experiments/runs/sst2_via_api/<run>.json (runner checkpoints and API
journals beside it), so a rerun skips finished work and resumes the rest
without paying for an evaluation twice.

    python experiments/sst2_via_api.py [--forward-calls 40] [--test-examples 872]
"""

import argparse
import json
import os
import time

import numpy as np

from api_server_process import start_server
from promptopt.data import get_fewshot_task
from promptopt.data import load_fewshot_split
from promptopt.evaluators import HTTPEvaluator
from promptopt.evaluators import KerasEvaluator
from promptopt.hub import load_language_model
from promptopt.models import PromptedModel
from promptopt.optimizers import CMAESOptimizer
from promptopt.optimizers import DiscretePromptSearch
from promptopt.runner import Budget
from promptopt.runner import PromptTuningRunner
from promptopt.runner import Stage
from promptopt.tasks import Verbalizer
from promptopt.tasks import VerbalizerClassification

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "runs", "sst2_via_api")
SEED = 42
PROMPT_LENGTH = 20
# The discrete search space: generic task phrases (fixed before any run; not
# chosen on test data). A prompt is DISCRETE_LENGTH of them, in order.
PHRASES = [
    "Review: ", "Movie review: ", "Sentiment: ", "Opinion: ", "Critic says: ",
    "Classify the sentiment. ", "Is this review positive or negative? ",
    "The following is a movie review. ", "Rate the movie. ", "Verdict: ",
    "In short, ", "Honestly, ", "Overall, ", "Text: ", "Sentence: ",
    "Positive or negative? ", "Answer great or terrible. ", "A viewer wrote: ",
    "Film: ", "Feeling: ", "Summary: ", "Comment: ", "Audience reaction: ",
    "My take: ", "Critique: ", "Tone: ", "Emotion: ", "Judgement: ",
    "Evaluate: ", "Quote: ",
]
DISCRETE_LENGTH = 3


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--forward-calls", type=int, default=40)
    parser.add_argument("--popsize", type=int, default=20)
    parser.add_argument("--discrete-popsize", type=int, default=10)
    parser.add_argument("--test-examples", type=int, default=872,
                        help="score the first N test examples (all 872 by default)")
    args = parser.parse_args()
    os.makedirs(RUNS, exist_ok=True)
    task = get_fewshot_task("sst2")
    train = load_fewshot_split(task, SEED, "train")
    test = load_fewshot_split(task, SEED, "test")
    test = test.select(np.arange(min(args.test_examples, len(test))))
    classes = list(task.classes)
    label_words = {c: list(w) for c, w in task.label_words.items()}
    lm = load_language_model("smollm2-135m")
    verbalizer = Verbalizer(classes, label_words, lm.tokenizer)
    model = PromptedModel(
        lm.backbone, VerbalizerClassification(verbalizer), prompt_length=PROMPT_LENGTH,
        prompt_initializer="labels", tokenizer=lm.tokenizer, model_id=lm.model_id, seed=0,
    )
    local = KerasEvaluator(model, model.encode_texts(train.texts), train.labels, batch_size=32)
    initial_prompt = local.initial_candidate()
    embedding_std = float(np.std(model.embedding_table()))
    budget = Budget(forward_calls=args.forward_calls)

    def cma():
        return CMAESOptimizer(popsize=args.popsize, embedding_std=embedding_std)

    server = {}

    def api_url():
        if "url" not in server:
            started = time.time()
            server["process"], server["url"] = start_server(
                "smollm2-135m", os.path.join(RUNS, "server_log.jsonl"),
                os.path.join(RUNS, "server_output.txt"),
            )
            print(f"server up in {time.time() - started:.0f} s at {server['url']}", flush=True)
        return server["url"]

    def cached(name, compute):
        path = os.path.join(RUNS, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        row = compute()
        with open(path, "w") as f:
            json.dump(row, f, indent=2)
        print(row, flush=True)
        return row

    def run(evaluator, initial, optimizer, name):
        started = time.time()
        runner = PromptTuningRunner(evaluator, checkpoint_dir=os.path.join(RUNS, name))
        result = runner.run(initial, [Stage(optimizer, budget)], seed=SEED)
        return result, time.time() - started

    def local_run():
        result, seconds = run(local, initial_prompt, cma(), "local_cma_es")
        np.save(os.path.join(RUNS, "local_cma_es_best.npy"), result.best_prompt)
        local.assign(result.best_prompt)
        accuracy = float(np.mean(model.classify(test.texts, batch_size=32) == test.labels))
        return {"run": "local CMA-ES", "losses": [h["loss"] for h in result.history],
                "mean_losses": [h["mean_loss"] for h in result.history],
                "best_loss": result.lowest_loss, "test_accuracy": accuracy,
                "tune_seconds": round(seconds, 1), "api_calls": 0, "api_input_tokens": 0}

    def api_cma_run():
        evaluator = HTTPEvaluator(
            api_url(), train.texts, train.labels, classes, label_words, batch_size=32,
            concurrency=2, journal_path=os.path.join(RUNS, "api_cma_es_journal.jsonl"),
        )
        info = evaluator.info()
        assert info["embedding_std"] == embedding_std, (info["embedding_std"], embedding_std)
        result, seconds = run(evaluator, initial_prompt, cma(), "api_cma_es")
        np.save(os.path.join(RUNS, "api_cma_es_best.npy"), result.best_prompt)
        predictions = evaluator.predict(result.best_prompt, test.texts)
        return {"run": "API CMA-ES (soft prompt)",
                "losses": [h["loss"] for h in result.history],
                "mean_losses": [h["mean_loss"] for h in result.history],
                "best_loss": result.lowest_loss,
                "test_accuracy": float(np.mean(predictions == test.labels)),
                "tune_seconds": round(seconds, 1), "api_calls": evaluator.journal.paid_calls,
                "api_input_tokens": evaluator.journal.input_tokens}

    def api_discrete_run():
        evaluator = HTTPEvaluator(
            api_url(), train.texts, train.labels, classes, label_words, prompt="text",
            phrases=PHRASES, batch_size=32, concurrency=2,
            journal_path=os.path.join(RUNS, "api_discrete_journal.jsonl"),
        )
        optimizer = DiscretePromptSearch(num_choices=len(PHRASES), popsize=args.discrete_popsize)
        initial = np.arange(DISCRETE_LENGTH, dtype="float32")
        result, seconds = run(evaluator, initial, optimizer, "api_discrete")
        predictions = evaluator.predict(result.best_prompt, test.texts)
        return {"run": "API discrete (text prompt)",
                "losses": [h["loss"] for h in result.history],
                "best_loss": result.lowest_loss,
                "initial_prompt": evaluator.prompt_text(initial),
                "best_prompt": evaluator.prompt_text(result.best_prompt),
                "test_accuracy": float(np.mean(predictions == test.labels)),
                "tune_seconds": round(seconds, 1), "api_calls": evaluator.journal.paid_calls,
                "api_input_tokens": evaluator.journal.input_tokens}

    try:
        rows = [
            cached("local_cma_es", local_run),
            cached("api_cma_es", api_cma_run),
            cached("api_discrete", api_discrete_run),
        ]
    finally:
        if "process" in server:
            server["process"].terminate()
            server["process"].wait(timeout=30)
    local_row, api_row = rows[0], rows[1]
    same_losses = (local_row["losses"] == api_row["losses"]
                   and local_row["mean_losses"] == api_row["mean_losses"])
    same_prompt = bool(np.array_equal(np.load(os.path.join(RUNS, "local_cma_es_best.npy")),
                                      np.load(os.path.join(RUNS, "api_cma_es_best.npy"))))
    lines = [
        "# SST-2 16-shot (seed 42) through the HTTP API, next to a local run (SmolLM2-135M-Instruct)",
        "",
        f"Command: `python experiments/sst2_via_api.py --forward-calls {args.forward_calls} "
        f"--test-examples {len(test)}`",
        "",
        f"Budget: {args.forward_calls} forward calls (one = one candidate on the 32 training "
        f"examples) per run. CMA-ES: BBT subspace d=500, popsize {args.popsize}, sigma 1, "
        f"20-token prompt initialized from the label words, seed {SEED}. Discrete: "
        f"DiscretePromptSearch, popsize {args.discrete_popsize}, {DISCRETE_LENGTH} phrases "
        f"out of {len(PHRASES)}, seed {SEED}.",
        "",
        f"| run | best training loss | per-step best losses | test accuracy (first {len(test)}) | API calls paid | API tokens | tuning wall time (s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        losses = ", ".join(f"{x:.4f}" for x in r["losses"])
        lines.append(f"| {r['run']} | {r['best_loss']:.6f} | {losses} | {r['test_accuracy']:.4f} | "
                     f"{r['api_calls']} | {r['api_input_tokens']} | {r['tune_seconds']} |")
    lines += [
        "",
        f"API CMA-ES vs local: every step's best and mean loss identical (bit for bit): "
        f"**{same_losses}**; best prompts identical: **{same_prompt}**.",
        "",
        f"Discrete prompt: initial {rows[2]['initial_prompt']!r} -> best {rows[2]['best_prompt']!r}.",
        "2 CPU cores shared with other work; wall times are indicative only (a resumed run times only its resumed part).",
    ]
    with open(os.path.join(HERE, "results", "sst2_via_api.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
