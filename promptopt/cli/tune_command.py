"""`promptopt tune`: every method, one loop, from flags or a config file."""

import argparse
import dataclasses

from promptopt.tuning.config import METHOD_DESCRIPTIONS
from promptopt.tuning.config import TuneConfig
from promptopt.tuning.config import config_fields

_GROUPS = {
    "data": "data (none given: a built-in demo sentiment task)",
    "model": "model and prompt",
    "method": "method and budget",
    "gradient": "gradient methods (prompt, residual, prefix)",
    "search": "search methods (bbt, bbtv2, discrete)",
    "selection": "dev selection and seeds",
    "output": "outputs",
}


def method_help():
    return "methods:\n" + "\n".join(
        f"  {name:<9} {text}" for name, text in METHOD_DESCRIPTIONS.items())


def add_arguments(parser):
    """Adds one flag per `TuneConfig` field (defaults are the config's)."""
    parser.add_argument(
        "--config", help="JSON config file (or a run's results.json); flags override it")
    groups = {name: parser.add_argument_group(title) for name, title in _GROUPS.items()}
    for field, flag in config_fields():
        group = groups[field.metadata["group"]]
        default = field.default
        shown = f" (default {default})" if default is not None and default is not False else ""
        kwargs = {"dest": field.name, "help": field.metadata["help"] + shown,
                  "default": argparse.SUPPRESS}
        if field.type is bool:
            # A switch that is on by default also gets its --no- form.
            action = argparse.BooleanOptionalAction if default else "store_true"
            group.add_argument(flag, action=action, **kwargs)
            continue
        if field.metadata["choices"]:
            kwargs["choices"] = field.metadata["choices"]
        kwargs["type"] = _parser_for(field)
        group.add_argument(flag, **kwargs)
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument("--verbose", action="store_true",
                        help="show TensorFlow's start-up logging")


def _parser_for(field):
    name = field.name
    if name in ("learning_rate", "sigma", "alpha", "weight_decay", "residual_lr",
                "residual_weight_decay", "residual_dropout"):
        return float
    if name == "residual_scale":
        return _residual_scale
    default = field.default
    if isinstance(default, int) and not isinstance(default, bool) or name in (
            "prompt_length", "steps", "then_budget", "eval_every"):
        return int
    return str


def _residual_scale(text):
    if text == "embedding":
        return text
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"takes 'embedding' or a number such as 1.0, not {text!r}"
        ) from None


def config_from_args(args):
    """Defaults <- the config file <- the flags given on the command line."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(TuneConfig)
             if hasattr(args, f.name)}
    base = TuneConfig.load(args.config).to_dict() if getattr(args, "config", None) else {}
    return TuneConfig.from_dict({**base, **given})


def run_tune(args, log=print):
    config = config_from_args(args)
    config.validate()
    from promptopt.cli.quiet_startup import import_quietly

    import_quietly(verbose=args.verbose)
    from promptopt.tuning.job import TuningJob

    return TuningJob(config, log=log, progress=not args.quiet).run()
