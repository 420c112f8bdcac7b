"""Population requests from `HTTPEvaluator` through the real server: the same
runs as locally, one request per generation, exactly once per candidate.

Every comparison with the local run is bit for bit: each candidate of a
population runs the solo pass of a single `allow_batching=False` request
(prefix) or `SharedInputEvaluator`'s shared-input pass (suffix, Llama), and
every batch here is the whole training set, as BBT scores it. (With
mini-batches of changing width the compiled functions' trace history also
enters the float32 rounding: a server restarted mid-run traces its first
width with static shapes where an uninterrupted process reuses the
shape-relaxed trace, ~5e-7 apart; that is not what these tests are about.)
"""

import json
import threading
import urllib.request

import numpy as np
import pytest

from promptopt.evaluators import HTTPEvaluator
from promptopt.evaluators import KerasEvaluator
from promptopt.evaluators import SharedInputEvaluator
from promptopt.runner import Budget
from promptopt.runner import PromptTuningRunner
from promptopt.runner import Stage
from tests.evaluators.test_http_evaluator import POPSIZE
from tests.evaluators.test_http_evaluator import assert_same_run
from tests.evaluators.test_http_evaluator import cma
from tests.server.server_process import CLASSES
from tests.server.server_process import LABEL_WORDS
from tests.server.server_process import LABELS
from tests.server.server_process import TEXTS
from tests.server.server_process import ServerProcess
from tests.server.server_process import free_port
from tests.server.server_process import local_model
from tests.server.server_process import save_tiny_preset
from tests.server.test_population_score import llama_preset  # noqa: F401 (fixture)
from tests.server.test_population_score import local_suffix_model
from tests.server.test_population_score import server  # noqa: F401 (fixture: tiny Llama)

STEPS = 4
WHOLE_SET = len(TEXTS)


def run(evaluator, initial, std, seed=0):
    return PromptTuningRunner(evaluator).run(
        initial, [Stage(cma(std), Budget(steps=STEPS))], seed=seed
    )


def population_evaluator(url, **kwargs):
    return HTTPEvaluator(url, TEXTS, LABELS, CLASSES, LABEL_WORDS, batch_size=WHOLE_SET,
                         population_requests=True, **kwargs)


def log_entries(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


# --- BBT (suffix prompt, Llama) through `promptopt serve` --------------------


def reference_run(model, evaluator_class):
    """`(initial prompt, embedding std, RunResult, initial loss)` of a local run."""
    evaluator = evaluator_class(model, model.encode_texts(TEXTS), LABELS, batch_size=WHOLE_SET)
    initial = evaluator.initial_candidate()
    std = float(np.std(model.embedding_table()))
    initial_loss = evaluator.evaluate(initial[None], step=0).losses[0]
    return initial, std, run(evaluator, initial, std), initial_loss


@pytest.fixture(scope="module")
def bbt_reference(llama_preset):
    """BBT on the same model and data in this process, with SharedInputEvaluator."""
    return reference_run(local_suffix_model(llama_preset), SharedInputEvaluator)


def test_bbt_through_the_api_gives_the_local_prompt_in_one_request_per_generation(
    server, bbt_reference, tmp_path
):
    initial, std, reference, initial_loss = bbt_reference
    before = server.get("/stats")
    evaluator = population_evaluator(
        server.url, placement="suffix", journal_path=tmp_path / "journal.jsonl"
    )
    assert evaluator.info()["embedding_std"] == pytest.approx(std, rel=1e-6)
    result = run(evaluator, initial, std)
    # The same prompt as the local run, bit for bit, and the loss improved.
    assert_same_run(result, reference)
    assert result.lowest_loss < initial_loss
    # BBT's budget counts K forward calls per generation, sent as one request.
    assert [h["forward_calls"] for h in result.history] == [
        POPSIZE * (step + 1) for step in range(STEPS)
    ]
    assert [h["api_calls"] for h in result.history] == [POPSIZE] * STEPS
    assert [h["api_requests"] for h in result.history] == [1] * STEPS
    assert evaluator.journal.paid_calls == STEPS * POPSIZE
    assert evaluator.journal.requests == evaluator.journal.http_requests == STEPS
    # The server computed each candidate once, in one pass per generation.
    after = server.get("/stats")
    assert after["computed_requests"] - before["computed_requests"] == STEPS * POPSIZE
    assert after["forward_passes"] - before["forward_passes"] == STEPS
    assert after["input_tokens"] - before["input_tokens"] == evaluator.journal.input_tokens


def test_a_resumed_client_resends_only_the_candidates_its_journal_lost(
    server, bbt_reference, tmp_path
):
    initial, std, _, _ = bbt_reference
    journal = tmp_path / "journal.jsonl"
    first = population_evaluator(server.url, placement="suffix", journal_path=journal)
    run(first, initial, std, seed=1)
    # A crash while writing the last generation's entries: two of its four
    # lines never reached the disk (the server logged all four).
    lines = journal.read_text().splitlines(keepends=True)
    journal.write_text("".join(lines[:-2]))
    before = server.get("/stats")
    resumed = population_evaluator(server.url, placement="suffix", journal_path=journal)
    assert resumed.journal.paid_calls == STEPS * POPSIZE - 2
    result = run(resumed, initial, std, seed=1)
    after = server.get("/stats")
    # One request with just the two lost candidates, answered from the log.
    assert [h["api_calls"] for h in result.history] == [0] * (STEPS - 1) + [2]
    assert after["computed_requests"] == before["computed_requests"]
    assert after["replayed_requests"] - before["replayed_requests"] == 2
    assert resumed.journal.paid_calls == STEPS * POPSIZE
    keys = [json.loads(line)["key"] for line in open(journal)]
    assert len(keys) == len(set(keys)) == STEPS * POPSIZE


# --- the server killed mid-population (prefix prompt, GPT-2) -----------------


def fault_at_post(monkeypatch, fault_at, when, fault):
    """Runs `fault()` at the `fault_at`-th POST any client in this process sends.

    `when="before"`: before the request is sent (the server dies before it
    sees the population). `when="after"`: after the server replied, and the
    reply is lost (the server computed and logged the population, then died
    before the client heard back); the client sees a reset connection and
    retries.
    """
    real_urlopen = urllib.request.urlopen
    posts = [0]

    def urlopen(request, *args, **kwargs):
        if isinstance(request, urllib.request.Request) and request.get_method() == "POST":
            posts[0] += 1
            if posts[0] == fault_at and when == "before":
                fault()
            elif posts[0] == fault_at:
                with real_urlopen(request, *args, **kwargs) as response:
                    response.read()
                fault()
                raise ConnectionResetError("the reply was lost")
        return real_urlopen(request, *args, **kwargs)

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)


@pytest.fixture(scope="module")
def gpt2_preset(tmp_path_factory):
    return save_tiny_preset(tmp_path_factory.mktemp("preset") / "tiny_gpt2")


@pytest.fixture(scope="module")
def prefix_reference(gpt2_preset):
    """CMA-ES with a prefix prompt in this process (KerasEvaluator)."""
    return reference_run(local_model(gpt2_preset), KerasEvaluator)


@pytest.mark.parametrize("when, replayed", [("before", 0), ("after", POPSIZE)])
def test_server_killed_mid_population_loses_no_candidate_and_counts_none_twice(
    gpt2_preset, prefix_reference, tmp_path, monkeypatch, when, replayed
):
    initial, std, reference, _ = prefix_reference
    log, port = tmp_path / "requests.jsonl", free_port()
    servers = [ServerProcess(gpt2_preset, port=port, log_file=log).start()]

    def kill_and_restart():
        servers[0].kill()  # SIGKILL
        servers.append(ServerProcess(gpt2_preset, port=port, log_file=log))
        threading.Thread(target=servers[-1].start).start()

    fault_at_post(monkeypatch, fault_at=2, when=when, fault=kill_and_restart)  # generation 1
    try:
        evaluator = population_evaluator(
            servers[0].url, journal_path=tmp_path / "journal.jsonl", max_retries=200,
            backoff_seconds=0.25,
        )
        evaluator.client.max_backoff_seconds = 1.0
        result = run(evaluator, initial, std)
        stats = servers[-1].get("/stats")
    finally:
        for process in servers:
            process.stop()
    assert len(servers) == 2
    assert_same_run(result, reference)
    # Over both of the server's lives its log holds each candidate computed
    # once: those of the generation it was killed in were either never
    # received (recomputed by the new process) or logged before it died
    # (answered from the log).
    entries = log_entries(log)
    computed = [e["key"] for e in entries if e["event"] == "computed"]
    journal_keys = [e["key"] for e in log_entries(tmp_path / "journal.jsonl")]
    assert len(computed) == len(set(computed)) == STEPS * POPSIZE
    assert sorted(computed) == sorted(journal_keys)
    assert stats["computed_requests"] == STEPS * POPSIZE
    assert stats["replayed_requests"] == replayed
    assert evaluator.journal.paid_calls == STEPS * POPSIZE
    assert evaluator.journal.requests == STEPS
    assert evaluator.journal.http_requests > STEPS  # the lost one was retried
