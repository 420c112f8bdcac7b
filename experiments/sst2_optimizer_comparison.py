"""SST-2 16-shot, seed 42: zero-shot vs backprop vs residual vs CMA-ES (BBT).

All methods tune the same 20-token prompt of the embedded SmolLM2-135M
through the one runner loop (promptopt.runner) and the local KerasEvaluator.
Budgets are stated in the units the papers use: examples seen for the
gradient methods, forward calls (one = one candidate on the 32 training
examples) for CMA-ES. Each method's result is cached in
experiments/runs/sst2_optimizer_comparison/<method>.json and its run
checkpoints there, so a rerun skips finished work and resumes the rest.

    python experiments/sst2_optimizer_comparison.py [--cma-forward-calls 300]
"""

import argparse
import json
import os
import time

import numpy as np

from promptopt.data import get_fewshot_task
from promptopt.data import load_fewshot_split
from promptopt.evaluators.keras_evaluator import KerasEvaluator
from promptopt.hub import load_language_model
from promptopt.models import PromptedModel
from promptopt.optimizers import BackpropOptimizer
from promptopt.optimizers import CMAESOptimizer
from promptopt.prompts import ResidualReparameterization
from promptopt.runner.budget import Budget
from promptopt.runner.runner import PromptTuningRunner
from promptopt.runner.runner import Stage
from promptopt.tasks import Verbalizer
from promptopt.tasks import VerbalizerClassification

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "runs", "sst2_optimizer_comparison")
PROMPT_LENGTH = 20
SEED = 42


def make_model(lm, task, parameterization=None, prompt_length=PROMPT_LENGTH):
    verbalizer = Verbalizer(task.classes, dict(task.label_words), lm.tokenizer)
    return PromptedModel(
        lm.backbone,
        VerbalizerClassification(verbalizer),
        prompt_length=prompt_length,
        prompt_initializer="labels",
        parameterization=parameterization,
        tokenizer=lm.tokenizer,
        model_id=lm.model_id,
        seed=0,
    )


def test_accuracy(model, test):
    return float(np.mean(model.classify(test.texts, batch_size=32) == test.labels))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backprop-steps", type=int, default=48)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--lr", type=float, default=0.03)
    parser.add_argument("--cma-forward-calls", type=int, default=300)
    parser.add_argument("--methods", nargs="*", default=["zero-shot", "backprop", "residual", "residual-token-scale", "cma-es"])
    args = parser.parse_args()
    os.makedirs(RUNS, exist_ok=True)
    task = get_fewshot_task("sst2")
    train = load_fewshot_split(task, SEED, "train")
    test = load_fewshot_split(task, SEED, "test")
    lm = load_language_model("smollm2-135m")

    def run_method(name):
        path = os.path.join(RUNS, f"{name}.json")
        if os.path.exists(path):
            with open(path) as f:
                return json.load(f)
        started = time.time()
        if name == "zero-shot":
            model = make_model(lm, task, prompt_length=0)
            budget = "-"
        else:
            parameterization = None
            if name == "residual":  # the paper's LayerNorm gain of 1
                parameterization = ResidualReparameterization()
            elif name == "residual-token-scale":  # gain = embedding std
                std = float(np.std(lm.backbone.token_embedding.embeddings.numpy()))
                parameterization = ResidualReparameterization(output_scale=std)
            model = make_model(lm, task, parameterization)
            x = model.encode_texts(train.texts)
            if name == "cma-es":
                evaluator = KerasEvaluator(model, x, train.labels, batch_size=32, parameters="prompt")
                optimizer = CMAESOptimizer(embedding_std=float(np.std(model.embedding_table())))
                budget_obj = Budget(forward_calls=args.cma_forward_calls)
                budget = f"{args.cma_forward_calls} forward calls x 32 examples"
            else:
                evaluator = KerasEvaluator(
                    model, x, train.labels, batch_size=args.batch_size, parameters="all"
                )
                optimizer = BackpropOptimizer("adamw", args.lr)
                budget_obj = Budget(steps=args.backprop_steps)
                budget = (f"{args.backprop_steps * args.batch_size} examples seen "
                          f"({args.backprop_steps} steps x {args.batch_size})")
            runner = PromptTuningRunner(evaluator, checkpoint_dir=os.path.join(RUNS, name))
            result = runner.run(evaluator.initial_candidate(), [Stage(optimizer, budget_obj)], seed=SEED)
            evaluator.assign(result.best_prompt)
        tune_seconds = time.time() - started
        accuracy = test_accuracy(model, test)
        row = {
            "method": name,
            "budget": budget,
            "test_accuracy": accuracy,
            "tune_seconds": round(tune_seconds, 1),
            "total_seconds": round(time.time() - started, 1),
        }
        with open(path, "w") as f:
            json.dump(row, f, indent=2)
        print(row, flush=True)
        return row

    rows = [run_method(m) for m in args.methods]
    lines = [
        "# SST-2 16-shot (seed 42): optimizers on one 20-token prompt, SmolLM2-135M-Instruct",
        "",
        "Command: `python experiments/sst2_optimizer_comparison.py`",
        "",
        "| method | budget | test accuracy (872) | tuning wall time (s) | total incl. test eval (s) |",
        "|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(f"| {r['method']} | {r['budget']} | {r['test_accuracy']:.4f} | "
                     f"{r['tune_seconds']} | {r['total_seconds']} |")
    lines += ["", "Prompt initialized from the class label words (then sampled vocabulary); "
              "backprop and residual use AdamW (lr %.3g); CMA-ES is BBT's subspace search "
              "(d=500, popsize 20, sigma 1, cross-entropy loss). 2 CPU cores." % args.lr]
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    with open(os.path.join(HERE, "results", "sst2_optimizer_comparison.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
