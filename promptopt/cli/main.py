"""The `promptopt` command line.

Building the parser imports nothing heavy: each command loads Keras and
TensorFlow only when it runs, so `promptopt --help` answers at once.
"""

import argparse
import sys

from promptopt.cli import eval_command
from promptopt.cli import export_command
from promptopt.cli import import_command
from promptopt.cli import predict_command
from promptopt.cli import serve_command
from promptopt.cli import tune_command


def build_parser():
    parser = argparse.ArgumentParser(
        prog="promptopt",
        description="Optimize the prompt of a frozen keras-hub language model.",
    )
    commands = parser.add_subparsers(dest="command", required=True)
    tune = commands.add_parser(
        "tune",
        help="tune a prompt or prefix with any method and report test accuracy",
        description="Tune a soft prompt, per-layer prefixes or a text prompt on a "
        "classification task, with gradients or derivative-free search, through one "
        "training loop (checkpointed every step; rerun to resume). With no data "
        "arguments it runs a small built-in demo task.",
        epilog=tune_command.method_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tune_command.add_arguments(tune)
    tune.set_defaults(handler=tune_command.run_tune)
    evaluate = commands.add_parser(
        "eval",
        help="accuracy of a saved prompt or prefix on a labelled file",
        description="Score a prompt.npz, prefix.npz or prompt.json from promptopt tune on "
        "labelled examples. A prompt made for another model is refused.",
    )
    eval_command.add_arguments(evaluate)
    evaluate.set_defaults(handler=eval_command.run_eval)
    predict = commands.add_parser(
        "predict",
        help="classes and class probabilities of unlabelled texts, as CSV or JSONL",
        description="Classify the rows of a file with a saved prompt or prefix; writes the "
        "class and the probability of every class per row.",
    )
    predict_command.add_arguments(predict)
    predict.set_defaults(handler=predict_command.run_predict)
    serve = commands.add_parser(
        "serve",
        help="serve a frozen model over HTTP (scores, OpenAI-style completions)",
        description="Run a frozen model behind an HTTP API: /v1/score (soft or "
        "text prompts -> class scores and loss), /v1/completions (OpenAI-"
        "compatible logprobs), /info, /stats; OpenAPI at /openapi.json.",
    )
    serve_command.add_arguments(serve)
    serve.set_defaults(handler=serve_command.run_serve)
    export = commands.add_parser(
        "export",
        help="write a tuned prompt or prefix in PEFT's format",
        description="Write a prompt.npz or prefix.npz from promptopt tune as a PEFT "
        "prompt-tuning or prefix-tuning adapter (adapter_config.json and "
        "adapter_model.safetensors), which peft.PeftModel.from_pretrained loads onto the "
        "transformers model of the same weights.",
    )
    export_command.add_arguments(export)
    export.set_defaults(handler=export_command.run_export)
    import_ = commands.add_parser(
        "import",
        help="read a PEFT prompt-tuning or prefix-tuning adapter into a promptopt file",
        description="Read a PEFT adapter folder (adapter_config.json and "
        "adapter_model.safetensors, prompt or prefix tuning of a decoder-only model) into a "
        "promptopt prompt.npz or prefix.npz stamped for --model, which eval and predict "
        "take. A prompt tuned for another hidden size is refused.",
    )
    import_command.add_arguments(import_)
    import_.set_defaults(handler=import_command.run_import)
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    try:
        args.handler(args)
    except (ValueError, FileNotFoundError) as e:
        # Bad input: one clear line, not a traceback.
        print(f"promptopt {args.command}: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
