"""Load test: N concurrent clients against `promptopt serve` with the embedded model.

Each client thread sends `/v1/score` requests back to back for a bounded
time: 4 SST-2 training sentences under a 20-vector soft prompt (base64
float32), with labels, so each reply holds class scores and a loss. A
warm-up phase (not counted) lets the server compile its functions first.
Reported: requests per second, p50 and p99 latency, errors (must be 0),
and the server's forward passes (fewer passes than requests = server-side
batching). Run once with batching (`--max-batch-rows 32`) and once without
(`0`), to show where batching pays.

    python experiments/api_load_test.py [--clients 8] [--seconds 60]
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
from promptopt.server import encode_array

HERE = os.path.dirname(os.path.abspath(__file__))
RUNS = os.path.join(HERE, "runs", "api_load_test")


def load(url, bodies, clients, seconds, warmup):
    latencies, errors, lock = [], [], threading.Lock()
    start = time.monotonic()
    stop_at = start + warmup + seconds

    def client(index):
        http = JSONHTTPClient(url, timeout=120, max_retries=0)
        i = index
        while time.monotonic() < stop_at:
            sent = time.monotonic()
            try:
                http.post("/v1/score", bodies[i % len(bodies)])
                ok = True
            except Exception as error:  # noqa: BLE001 - counted and reported
                ok = False
                with lock:
                    errors.append(repr(error))
            done = time.monotonic()
            if ok and sent >= start + warmup and done <= stop_at:
                with lock:
                    latencies.append(done - sent)
            i += clients

    threads = [threading.Thread(target=client, args=(i,)) for i in range(clients)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return np.array(latencies), errors


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--warmup", type=float, default=20)
    parser.add_argument("--rows", type=int, default=4, help="sentences per request")
    parser.add_argument("--configs", nargs="*", default=["32", "0"], help="--max-batch-rows values")
    args = parser.parse_args()
    os.makedirs(RUNS, exist_ok=True)
    task = get_fewshot_task("sst2")
    train = load_fewshot_split(task, 42, "train")
    rng = np.random.default_rng(0)
    label_words = {c: list(w) for c, w in task.label_words.items()}
    bodies = []
    for start in range(0, len(train.texts), args.rows):
        bodies.append({
            "inputs": list(train.texts[start : start + args.rows]),
            "classes": list(task.classes),
            "label_words": label_words,
            "labels": [int(y) for y in train.labels[start : start + args.rows]],
            "prompt_embeddings": encode_array(rng.normal(0, 0.06, (20, 576))),
        })
    rows = []
    for rows_limit in args.configs:
        path = os.path.join(RUNS, f"max_batch_rows_{rows_limit}.json")
        if os.path.exists(path):
            with open(path) as f:
                rows.append(json.load(f))
            continue
        process, url = start_server(
            "smollm2-135m", os.path.join(RUNS, f"server_log_{rows_limit}.jsonl"),
            os.path.join(RUNS, f"server_output_{rows_limit}.txt"),
            extra=("--max-batch-rows", rows_limit),
        )
        try:
            before = JSONHTTPClient(url).get("/stats")[0]
            latencies, errors = load(url, bodies, args.clients, args.seconds, args.warmup)
            after = JSONHTTPClient(url).get("/stats")[0]
        finally:
            process.terminate()
            process.wait(timeout=30)
        row = {
            "max_batch_rows": int(rows_limit),
            "clients": args.clients,
            "seconds": args.seconds,
            "requests": int(len(latencies)),
            "requests_per_second": len(latencies) / args.seconds,
            "p50_seconds": float(np.percentile(latencies, 50)) if len(latencies) else None,
            "p99_seconds": float(np.percentile(latencies, 99)) if len(latencies) else None,
            "errors": len(errors),
            "error_examples": errors[:3],
            "server_requests_incl_warmup": after["computed_requests"] - before["computed_requests"],
            "server_forward_passes_incl_warmup": after["forward_passes"] - before["forward_passes"],
        }
        with open(path, "w") as f:
            json.dump(row, f, indent=2)
        print(row, flush=True)
        rows.append(row)
    lines = [
        "# Load test: `promptopt serve` with the embedded SmolLM2-135M (CPU, 2 cores shared)",
        "",
        f"Command: `python experiments/api_load_test.py --clients {args.clients} "
        f"--seconds {args.seconds:g}`",
        "",
        f"{args.clients} client threads send `/v1/score` back to back for {args.seconds:g} s "
        f"(after {args.warmup:g} s of uncounted warm-up): {args.rows} SST-2 sentences per request "
        "under a 20-vector soft prompt, with labels.",
        "",
        "| server batching (max rows merged) | requests | req/s | p50 latency (s) | p99 latency (s) | errors | server requests / forward passes (incl. warm-up) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['max_batch_rows'] or 'off'} | {r['requests']} | {r['requests_per_second']:.2f} | "
            f"{r['p50_seconds']:.2f} | {r['p99_seconds']:.2f} | {r['errors']} | "
            f"{r['server_requests_incl_warmup']} / {r['server_forward_passes_incl_warmup']} |"
        )
    with open(os.path.join(HERE, "results", "api_load_test.md"), "w") as f:
        f.write("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
