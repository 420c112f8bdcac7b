"""Timing, memory and FLOP-count helpers shared by the benchmark scripts.

Every measurement records `os.getloadavg()` next to it: the development
machine is shared, so a slow figure under load is not a slow program.
"""

import os
import platform
import threading
import time

import numpy as np


def load_average():
    """The 1, 5 and 15 minute load averages, rounded."""
    return [round(x, 2) for x in os.getloadavg()]


def current_rss_bytes():
    """Resident set size of this process now (Linux /proc)."""
    with open("/proc/self/statm") as f:
        pages = int(f.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE")


class PeakRSS:
    """Samples this process's RSS every `interval` s inside a `with` block.

    `ru_maxrss` only ever grows over a whole process; sampling gives the
    peak of one measurement after earlier ones have freed their memory.

    Example:
    ```python
    with PeakRSS() as peak:
        step()
    print(peak.bytes)
    ```
    """

    def __init__(self, interval=0.02):
        self.interval = interval
        self.bytes = 0
        self._stop = threading.Event()

    def _sample(self):
        while not self._stop.is_set():
            self.bytes = max(self.bytes, current_rss_bytes())
            self._stop.wait(self.interval)

    def __enter__(self):
        self.bytes = current_rss_bytes()
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.bytes = max(self.bytes, current_rss_bytes())


def time_repeats(fn, repeats, warmup=1, max_seconds=None):
    """Runs `fn` `warmup` times, then up to `repeats` timed times.

    Stops repeating once `max_seconds` of timed work is spent (at least one
    timed run). Returns a dict with the median and every time, the load
    average before each timed run, and the peak RSS over the timed runs.
    """
    for _ in range(warmup):
        fn()
    times, loads = [], []
    with PeakRSS() as peak:
        for _ in range(repeats):
            loads.append(load_average()[0])
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
            if max_seconds is not None and sum(times) > max_seconds:
                break
    return {
        "seconds_median": float(np.median(times)),
        "seconds_all": [round(t, 4) for t in times],
        "load_1min": loads,
        "peak_rss_mb": round(peak.bytes / 2**20, 1),
    }


def cpu_description():
    name = platform.processor() or "unknown"
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    name = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return {"cpu": name, "cores": os.cpu_count(), "machine": platform.machine()}


def llama_forward_flops(config, batch, query_length, key_length=None, head_positions=1, vocabulary=None):
    """Multiply-add FLOPs (2 per MAC) of a Llama forward pass.

    Counts what a dense implementation executes: every layer's projections
    and MLP on `batch * query_length` rows, attention scores and the
    weighted sum over `key_length` keys for every query (keras-hub computes
    the full masked matrix), and the LM head on `head_positions` rows per
    example (promptopt reads only the answer position).

    Args:
        config: dict with hidden_dim, intermediate_dim, num_layers,
            num_query_heads, num_key_value_heads, vocabulary_size.
        batch: B. query_length: rows computed per example.
        key_length: keys attended per query (default `query_length`).
        head_positions: LM-head rows per example.
        vocabulary: LM-head width (default the vocabulary size).
    """
    h = config["hidden_dim"]
    f = config["intermediate_dim"]
    kv = h // config["num_query_heads"] * config["num_key_value_heads"]
    key_length = query_length if key_length is None else key_length
    vocabulary = config["vocabulary_size"] if vocabulary is None else vocabulary
    tokens = batch * query_length
    per_token = 2 * (h * h * 2 + h * kv * 2 + 3 * h * f)  # q, o; k, v; gate, up, down
    attention = 2 * 2 * batch * query_length * key_length * h  # QK^T and AV
    layers = config["num_layers"] * (tokens * per_token + attention)
    return layers + 2 * batch * head_positions * h * vocabulary
