"""`promptopt serve`: a frozen model behind an HTTP API."""

import os

TOKEN_ENV_VAR = "PROMPTOPT_SERVER_TOKEN"


def add_arguments(parser):
    parser.add_argument(
        "--model",
        default="smollm2-135m",
        help="smollm2-135m (embedded), a keras-hub preset name, or a preset folder",
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
                        help="rows merged across concurrent requests into one pass "
                        "(default 0: none; merging was slower on a CPU, see "
                        "experiments/results/api_load_test.md)")
    parser.add_argument("--max-prompt-length", type=int, default=128)
    parser.add_argument("--max-request-bytes", type=int, default=4 * 1024 * 1024)
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
    )


def run_serve(args):
    for name in ("max_batch_size", "max_prompt_length", "max_request_bytes"):
        if getattr(args, name) < 1:
            raise ValueError(f"--{name.replace('_', '-')} must be at least 1.")
    # Imported here: the web stack is needed only by this command.
    import uvicorn

    from promptopt.hub import load_language_model
    from promptopt.server.app import create_app
    from promptopt.server.scoring_engine import ScoringEngine

    config = server_config(args)
    loaded = load_language_model(args.model)
    engine = ScoringEngine(
        loaded.backbone, loaded.tokenizer, loaded.model_id, max_length=args.max_length
    )
    print(
        f"Serving {engine.model_id} (H={engine.hidden_dim}, embedding std "
        f"{engine.embedding_std:.4f}) on http://{args.host}:{args.port}; "
        f"auth {'on' if config.token else 'off'}; log {config.log_file or 'in memory'}",
        flush=True,
    )
    uvicorn.run(
        create_app(engine, config),
        host=args.host,
        port=args.port,
        log_level="warning" if args.quiet else "info",
        access_log=not args.quiet,
    )
