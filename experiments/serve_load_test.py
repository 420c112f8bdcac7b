"""Load test: N clients over M tuned prompts, mixed-prompt batching against one at a time.

`promptopt serve` runs the model with M soft prompts loaded (`--prompt
NAME=PATH`). Each of N client threads sends `/v1/completions` back to back
for a bounded time, greedy, `max_tokens` new tokens, under its own prompt
(client i uses prompt i mod M), so concurrent requests name different
prompts. A warm-up phase (not counted) comes first. The server runs twice:
with mixed-prompt batching (`--max-generation-rows R`: queued requests for
any prompts share one batch, each row gathering its own prompt) and with
none (`--max-generation-rows 0`: one request, hence one prompt, per pass).
Reported per run: completed requests, requests/s, new tokens/s, p50 and p99
latency, errors (must be 0), and the server's requests and forward passes
(fewer passes than requests = requests shared a batch).

The prompts are P vectors initialized from vocabulary embeddings with M
seeds (`PromptedModel(prompt_initializer="vocab")`); for throughput it
does not matter whether they were tuned.

    python experiments/serve_load_test.py [--model smollm2-135m] [--clients 8]
        [--prompts 4] [--seconds 60] [--max-tokens 16]
"""

import argparse
import json
import os
import threading
import time

import numpy as np

from api_server_process import start_server
from promptopt.data import get_fewshot_task
from promptopt.data import load_fewshot_split
from promptopt.evaluators import JSONHTTPClient

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "runs", "serve_load_test")


def save_prompts(model_spec, count, length, folder, tag):
    """Writes `count` prompt files `[length, H]`; returns `({name: path}, tokenizer)`."""
    from promptopt import LanguageModeling
    from promptopt import PromptedModel
    from promptopt.hub import load_language_model

    loaded = load_language_model(model_spec)
    paths = {}
    for seed in range(count):
        path = os.path.join(folder, f"{tag}_prompt_P{length}_{seed}.npz")
        if not os.path.exists(path):
            model = PromptedModel(
                loaded.backbone, LanguageModeling(), prompt_length=length,
                prompt_initializer="vocab", seed=seed, tokenizer=loaded.tokenizer,
                model_id=loaded.model_id,
            )
            model.save_prompt(path)
        paths[f"prompt-{seed}"] = path
    return paths, loaded.tokenizer


def sentences(tokenizer, low, high):
    """SST-2 training sentences + " It was" of `low` to `high` tokens.

    Rows whose ends fall in one window of positions share a batch
    (`GenerationJob.length_bucket`); a narrow band of lengths lets the
    comparison show the batching itself rather than how lengths spread.
    """
    from promptopt.tasks.text_encoder import tokenize_all

    train = load_fewshot_split(get_fewshot_task("sst2"), 42, "train")
    texts = [f"{t} It was" for t in train.texts]
    lengths = [len(ids) for ids in tokenize_all(tokenizer, texts)]
    kept = [t for t, n in zip(texts, lengths) if low <= n <= high]
    if not kept:
        raise ValueError(f"No SST-2 training sentence has {low} to {high} tokens.")
    return kept


def load(url, names, texts, clients, seconds, warmup, max_tokens):
    """Runs the clients; returns `(latencies [s], new tokens, errors)` of the counted phase."""
    latencies, tokens, errors, lock = [], [], [], threading.Lock()
    start = time.monotonic()
    stop_at = start + warmup + seconds

    def client(index):
        http = JSONHTTPClient(url, timeout=300, max_retries=0)
        i = index
        while time.monotonic() < stop_at:
            body = {"model": names[index % len(names)], "prompt": texts[i % len(texts)],
                    "max_tokens": max_tokens, "temperature": 0}
            sent = time.monotonic()
            try:
                reply, _ = http.post("/v1/completions", body)
            except Exception as error:  # noqa: BLE001 - counted and reported
                with lock:
                    errors.append(repr(error))
                continue
            done = time.monotonic()
            if sent >= start + warmup and done <= stop_at:
                with lock:
                    latencies.append(done - sent)
                    tokens.append(reply["usage"]["completion_tokens"])
            i += clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return np.array(latencies), int(np.sum(tokens)), errors


def run_config(args, rows_limit, prompt_paths, texts):
    path = os.path.join(RUNS, f"{args.tag}_rows_{rows_limit}.json")
    if os.path.exists(path):
        with open(path) as f:
            return json.load(f)
    extra = ["--max-generation-rows", str(rows_limit), "--max-length", "128"]
    for name, prompt_path in prompt_paths.items():
        extra += ["--prompt", f"{name}={prompt_path}"]
    process, url = start_server(
        args.model, os.path.join(RUNS, f"{args.tag}_log_{rows_limit}.jsonl"),
        os.path.join(RUNS, f"{args.tag}_output_{rows_limit}.txt"), extra=extra,
    )
    try:
        before = JSONHTTPClient(url).get("/stats")[0]
        latencies, tokens, errors = load(
            url, list(prompt_paths), texts, args.clients, args.seconds, args.warmup,
            args.max_tokens,
        )
        after = JSONHTTPClient(url).get("/stats")[0]
    finally:
        process.terminate()
        process.wait(timeout=60)
    row = {
        "max_generation_rows": rows_limit,
        "requests": int(len(latencies)),
        "requests_per_second": len(latencies) / args.seconds,
        "tokens_per_second": tokens / args.seconds,
        "p50_seconds": float(np.percentile(latencies, 50)) if len(latencies) else None,
        "p99_seconds": float(np.percentile(latencies, 99)) if len(latencies) else None,
        "errors": len(errors),
        "error_examples": errors[:3],
        "server_requests_incl_warmup": after["computed_requests"] - before["computed_requests"],
        "server_passes_incl_warmup": after["forward_passes"] - before["forward_passes"],
    }
    with open(path, "w") as f:
        json.dump(row, f, indent=2)
    print(row, flush=True)
    return row


def write_table(args, rows):
    lines = [
        f"# Load test: `promptopt serve` generating under {args.prompts} prompts "
        f"({args.model}, CPU, 2 cores shared)",
        "",
        f"Command: `python experiments/serve_load_test.py --model {args.model} --clients "
        f"{args.clients} --prompts {args.prompts} --seconds {args.seconds:g} --warmup "
        f"{args.warmup:g} --max-tokens {args.max_tokens} --batch-rows {args.batch_rows} "
        f"--text-tokens {args.text_tokens[0]} {args.text_tokens[1]}`",
        "",
        f"{args.clients} client threads send `/v1/completions` back to back for "
        f"{args.seconds:g} s (after {args.warmup:g} s of uncounted warm-up, which "
        f"includes compiling): one SST-2 training sentence of {args.text_tokens[0]} to "
        f"{args.text_tokens[1]} tokens (+ \" It was\") per request, greedy, "
        f"max_tokens={args.max_tokens}, client i under prompt i mod {args.prompts} (soft "
        f"prompts of P={args.prompt_length}). The same server runs with mixed-prompt "
        "batching and with none. Requests still in flight when the time is up are not "
        "counted.",
        "",
        "| batching | requests | req/s | new tokens/s | p50 latency (s) | p99 latency (s) "
        "| errors | server requests / batches (incl. warm-up) |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        label = (f"mixed prompts, up to {r['max_generation_rows']} rows"
                 if r["max_generation_rows"] else "one request (one prompt) at a time")
        p50 = "-" if r["p50_seconds"] is None else f"{r['p50_seconds']:.2f}"
        p99 = "-" if r["p99_seconds"] is None else f"{r['p99_seconds']:.2f}"
        lines.append(
            f"| {label} | {r['requests']} | {r['requests_per_second']:.2f} | "
            f"{r['tokens_per_second']:.1f} | {p50} | {p99} | {r['errors']} | "
            f"{r['server_requests_incl_warmup']} / {r['server_passes_incl_warmup']} |"
        )
    mixed, alone = rows
    if alone["requests_per_second"] and mixed["server_passes_incl_warmup"]:
        lines += [
            "",
            f"Mixed-prompt batching served {mixed['requests_per_second'] / alone['requests_per_second']:.1f}x "
            f"the requests per second of one request at a time, with "
            f"{mixed['server_requests_incl_warmup'] / mixed['server_passes_incl_warmup']:.1f} "
            "requests (of different prompts) per batch on average. Each row of a batch "
            "gathers its own prompt (`PromptTable`), and merged rows equal a pass per "
            "prompt to 1e-5 (tests/models/test_prompt_table.py, "
            "tests/server/test_generation_engine.py). On this CPU a decoding step of 8 "
            "rows costs about twice one of 1 row, and a batch decodes from its shortest "
            "row's end to its longest's, so the gain is well below the batch size; the "
            "figures also depend on the load from other work on the shared 2-core machine.",
        ]
    return lines


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--prompts", type=int, default=4, help="M prompts served")
    parser.add_argument("--prompt-length", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=30)
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--batch-rows", type=int, default=16,
                        help="--max-generation-rows of the mixed-batching run")
    parser.add_argument("--text-tokens", type=int, nargs=2, default=[8, 20],
                        metavar=("LOW", "HIGH"), help="sentence lengths kept, in tokens")
    parser.add_argument("--tag", default="smollm2", help="names the cached run files")
    args = parser.parse_args()
    os.makedirs(RUNS, exist_ok=True)
    prompt_paths, tokenizer = save_prompts(
        args.model, args.prompts, args.prompt_length, RUNS, args.tag
    )
    texts = sentences(tokenizer, *args.text_tokens)
    rows = [run_config(args, limit, prompt_paths, texts) for limit in (args.batch_rows, 0)]
    lines = write_table(args, rows)
    with open(os.path.join(HERE, "results", "serve_load_test.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
