"""The `promptopt` command line."""

import argparse
import sys

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
        help="train a soft prompt and report test accuracy before and after",
        description="Train a soft prompt on a classification task. With no "
        "data arguments it runs a small built-in demo task.",
    )
    tune_command.add_arguments(tune)
    tune.set_defaults(handler=tune_command.run_tune)
    serve = commands.add_parser(
        "serve",
        help="serve a frozen model over HTTP (scores, OpenAI-style completions)",
        description="Run a frozen model behind an HTTP API: /v1/score (soft or "
        "text prompts -> class scores and loss), /v1/completions (OpenAI-"
        "compatible logprobs), /info, /stats; OpenAPI at /openapi.json.",
    )
    serve_command.add_arguments(serve)
    serve.set_defaults(handler=serve_command.run_serve)
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
