"""`promptopt serve`: a frozen model and its tuned prompts behind an HTTP API."""

import json
import os

TOKEN_ENV_VAR = "PROMPTOPT_SERVER_TOKEN"
DEFAULT_MODEL = "smollm2-135m"


def add_arguments(parser):
    parser.add_argument(
        "--model",
        help=f"smollm2-135m (embedded), a keras-hub preset name, or a preset folder "
        f"(default: the config file's, else {DEFAULT_MODEL})",
    )
    parser.add_argument(
        "--prompt", action="append", default=[], metavar="NAME=PATH",
        help="serve a tuned prompt.npz or prefix.npz under NAME (repeatable); a "
        "request's model field picks it, and /v1/models lists it",
    )
    parser.add_argument(
        "--ensemble", action="append", default=[], metavar="NAME=PATH,PATH[,...]",
        help="serve N prompt.npz files of one task under NAME as one prompt ensemble "
        "(Lester et al. section 7; repeatable): POST /v1/score with model=NAME combines "
        "their class probabilities",
    )
    parser.add_argument(
        "--ensemble-rule", choices=("mean", "vote"), default="mean",
        help="how an --ensemble combines its members: mean class probability, or majority "
        "vote (default mean)",
    )
    parser.add_argument(
        "--config",
        help='JSON file, e.g. {"model": "smollm2-135m", "prompts": {"sst2": '
        '"runs/sst2/prompt.npz"}, "ensembles": {"sst2-ens": ["a/prompt.npz", '
        '"b/prompt.npz"]}}; relative paths are read from its folder, and '
        "--model, --prompt and --ensemble add to or override it",
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--token",
        help=f"require 'Authorization: Bearer <token>' (default: ${TOKEN_ENV_VAR}, "
        "else no auth)",
    )
    parser.add_argument("--log-file", help="JSON-lines log of computed requests (read back at start)")
    parser.add_argument("--max-length", type=int, default=128, help="max tokens per input")
    parser.add_argument("--max-batch-size", type=int, default=64, help="inputs per request")
    parser.add_argument("--max-batch-rows", type=int, default=0,
                        help="rows merged across concurrent /v1/score requests into one "
                        "pass (default 0: none; merging was slower on a CPU, see "
                        "experiments/results/api_load_test.md)")
    parser.add_argument("--max-generation-rows", type=int, default=16,
                        help="rows of concurrent generation requests, for any prompts, "
                        "merged into one batch (0: none; see "
                        "experiments/results/serve_load_test.md)")
    parser.add_argument("--max-new-tokens", type=int, default=256,
                        help="largest max_tokens of a generation request")
    parser.add_argument("--max-prompt-length", type=int, default=128)
    parser.add_argument("--max-request-bytes", type=int, default=16 * 1024 * 1024)
    parser.add_argument("--max-logprobs", type=int, default=20)
    parser.add_argument("--quiet", action="store_true", help="no access log")


def server_config(args):
    from promptopt.server.app import ServerConfig

    return ServerConfig(
        token=args.token or os.environ.get(TOKEN_ENV_VAR) or None,
        max_request_bytes=args.max_request_bytes,
        max_batch_size=args.max_batch_size,
        max_prompt_length=args.max_prompt_length,
        max_logprobs=args.max_logprobs,
        max_batch_rows=args.max_batch_rows,
        log_file=args.log_file,
        max_new_tokens=args.max_new_tokens,
        max_generation_rows=args.max_generation_rows,
    )


def read_serve_config(args):
    """The parsed `--config` file, checked (`{}` without one).

    Raises:
        ValueError: an unreadable config file, or one that is not an object
            of "model", "prompts" and "ensembles".
    """
    if args.config is None:
        return {}
    try:
        with open(args.config, encoding="utf-8") as f:
            config = json.load(f)
    except (OSError, json.JSONDecodeError) as error:
        raise ValueError(
            f"--config {args.config} is not a readable JSON file ({error})."
        ) from None
    problem = _config_problem(config)
    if problem:
        raise ValueError(
            f"--config {args.config} must be a JSON object with \"model\" and "
            f"\"prompts\" ({{name: path}}); {problem}."
        )
    return config


def served_names(args, config=None):
    """`(model spec, {name: path})` from `--config`, then `--model` and `--prompt`.

    `config`: the file as `read_serve_config` returned it (read here when None).

    Raises:
        ValueError: a bad config file (see `read_serve_config`), or a
            `--prompt` that is not NAME=PATH.
    """
    if config is None:
        config = read_serve_config(args)
    prompts = {}
    model = config.get("model")
    if args.config is not None:
        folder = os.path.dirname(os.path.abspath(args.config))
        for name, path in config.get("prompts", {}).items():
            prompts[name] = os.path.join(folder, os.path.expanduser(str(path)))
    for item in args.prompt:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise ValueError(
                f"--prompt {item!r} is not NAME=PATH; give e.g. --prompt sst2=runs/sst2/prompt.npz."
            )
        prompts[name] = path
    return args.model or model or DEFAULT_MODEL, prompts


def served_ensembles(args, config=None):
    """`{name: (paths, rule)}` from `--config`'s "ensembles", then `--ensemble`.

    A config entry is a list of paths, or `{"prompts": [...], "combine":
    "mean" | "vote"}`; flags take `--ensemble-rule`. `config` as in
    `served_names`.

    Raises:
        ValueError: an entry that is not NAME=PATH,PATH or a list of paths.
    """
    if config is None:
        config = read_serve_config(args)
    ensembles = {}
    if args.config is not None:
        folder = os.path.dirname(os.path.abspath(args.config))
        for name, entry in config.get("ensembles", {}).items():
            paths, rule = entry, "mean"
            if isinstance(entry, dict):
                paths, rule = entry.get("prompts"), entry.get("combine", "mean")
            if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
                raise ValueError(
                    f"--config {args.config}: ensemble '{name}' must be a list of prompt files "
                    'or {"prompts": [...], "combine": "mean"}, got ' + json.dumps(entry) + ".")
            ensembles[name] = ([os.path.join(folder, os.path.expanduser(p)) for p in paths], rule)
    for item in args.ensemble:
        name, sep, paths = item.partition("=")
        paths = [p for p in paths.split(",") if p]
        if not sep or not name or not paths:
            raise ValueError(
                f"--ensemble {item!r} is not NAME=PATH,PATH; give e.g. --ensemble "
                "sst2-ens=runs/a/prompt.npz,runs/b/prompt.npz.")
        ensembles[name] = (paths, args.ensemble_rule)
    return ensembles


def _config_problem(config):
    """What is wrong with a parsed `--config`, or None."""
    if not isinstance(config, dict):
        return f"it holds a JSON {type(config).__name__}"
    unknown = sorted(set(config) - {"model", "prompts", "ensembles"})
    if unknown:
        return f"it has unknown keys {unknown}"
    if not isinstance(config.get("prompts", {}), dict):
        return f"its prompts are a {type(config['prompts']).__name__}, not {{name: path}}"
    if not isinstance(config.get("ensembles", {}), dict):
        return f"its ensembles are a {type(config['ensembles']).__name__}, not {{name: [paths]}}"
    return None


def run_serve(args):
    for name in ("max_batch_size", "max_prompt_length", "max_request_bytes", "max_new_tokens"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1.")
    if args.max_generation_rows < 0:
        raise ValueError("--max-generation-rows must be 0 (no merging) or more.")
    served_config = read_serve_config(args)
    model_spec, prompt_paths = served_names(args, served_config)
    ensembles = served_ensembles(args, served_config)
    # Imported here: the web stack is needed only by this command.
    import uvicorn

    from promptopt.hub import load_language_model
    from promptopt.server.app import create_app
    from promptopt.server.prompt_registry import PromptRegistry
    from promptopt.server.scoring_engine import ScoringEngine

    config = server_config(args)
    loaded = load_language_model(model_spec)
    engine = ScoringEngine(
        loaded.backbone, loaded.tokenizer, loaded.model_id, max_length=args.max_length
    )
    prompts = PromptRegistry(engine.adapter, engine.model_id)
    for name, path in prompt_paths.items():
        served = prompts.load(name, path)
        print(f"Serving {served.kind} '{name}' (P={served.length}) from {path}", flush=True)
    for name, (paths, rule) in ensembles.items():
        served = prompts.load_ensemble(name, paths, rule)
        print(f"Serving ensemble '{name}' of {len(paths)} prompts ({rule} of their class "
              f"probabilities, through POST /v1/score) from {', '.join(paths)}", flush=True)
    print(
        f"Serving {engine.model_id} (H={engine.hidden_dim}, embedding std "
        f"{engine.embedding_std:.4f}) on http://{args.host}:{args.port}; "
        f"auth {'on' if config.token else 'off'}; log {config.log_file or 'in memory'}",
        flush=True,
    )
    uvicorn.run(
        create_app(engine, config, prompts),
        host=args.host,
        port=args.port,
        log_level="warning" if args.quiet else "info",
        access_log=not args.quiet,
    )
