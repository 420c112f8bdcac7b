"""Tuning through the real server in a subprocess, HTTP alone; faults included."""

import json
import threading
import time

import numpy as np
import pytest

from promptopt.callbacks import TensorBoardLogger
from promptopt.evaluators import APIRequestError
from promptopt.evaluators import APIUnavailableError
from promptopt.evaluators import HTTPEvaluator
from promptopt.evaluators import KerasEvaluator
from promptopt.evaluators import OpenAICompletionsEvaluator
from promptopt.optimizers import CMAESOptimizer
from promptopt.optimizers import DiscretePromptSearch
from promptopt.runner import Budget
from promptopt.runner import PromptTuningRunner
from promptopt.runner import Stage
from tests.helpers.tensorboard_events import read_events
from tests.server.server_process import CLASSES
from tests.server.server_process import LABEL_WORDS
from tests.server.server_process import LABELS
from tests.server.server_process import PHRASES
from tests.server.server_process import TEXTS
from tests.server.server_process import ServerProcess
from tests.server.server_process import free_port
from tests.server.server_process import local_model
from tests.server.server_process import save_tiny_preset
from tests.server.slow_proxy import SlowProxy

POPSIZE = 4
STEPS = 5


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    return save_tiny_preset(tmp_path_factory.mktemp("preset") / "tiny_gpt2")


@pytest.fixture(scope="module")
def server(preset, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "requests.jsonl"
    process = ServerProcess(preset, log_file=log, extra=("--max-logprobs", "400")).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def local_reference(preset):
    """CMA-ES on the same model in this process: the run HTTP must equal."""
    model = local_model(preset)
    evaluator = KerasEvaluator(model, model.encode_texts(TEXTS), LABELS, batch_size=8)
    initial = evaluator.initial_candidate()
    std = float(np.std(model.embedding_table()))
    result = PromptTuningRunner(evaluator).run(initial, [Stage(cma(std), Budget(steps=STEPS))], seed=0)
    return initial, std, result


def cma(std):
    return CMAESOptimizer(subspace_dim=16, popsize=POPSIZE, embedding_std=std)


def http_evaluator(url, **kwargs):
    kwargs.setdefault("batch_size", 8)
    return HTTPEvaluator(url, TEXTS, LABELS, CLASSES, LABEL_WORDS, **kwargs)


def computed_log_entries(server):
    with open(server.log_file) as f:
        return [e for e in map(json.loads, f) if e["event"] == "computed"]


def assert_same_run(result, reference):
    assert [h["loss"] for h in result.history] == [h["loss"] for h in reference.history]
    assert [h["mean_loss"] for h in result.history] == [h["mean_loss"] for h in reference.history]
    np.testing.assert_array_equal(result.best_prompt, reference.best_prompt)


def test_cma_es_through_http_equals_the_local_run_and_counts_match_the_server_log(
    server, local_reference, tmp_path
):
    initial, std, reference = local_reference
    before = server.get("/stats")
    evaluator = http_evaluator(server.url, journal_path=tmp_path / "journal.jsonl")
    assert evaluator.info()["embedding_std"] == pytest.approx(std, rel=1e-6)
    result = PromptTuningRunner(evaluator).run(initial, [Stage(cma(std), Budget(steps=STEPS))], seed=0)
    # Bit-identical losses to the local run, step by step, and the loss improved.
    assert_same_run(result, reference)
    first_loss = evaluator.evaluate(initial[None], step=0).losses[0]
    assert result.lowest_loss < first_loss
    # The client's exact counts equal the server's own log.
    after = server.get("/stats")
    assert evaluator.journal.paid_calls == STEPS * POPSIZE
    assert after["computed_requests"] - before["computed_requests"] == STEPS * POPSIZE
    assert after["input_tokens"] - before["input_tokens"] == evaluator.journal.input_tokens
    assert {e["key"] for e in computed_log_entries(server)} >= set(
        json.loads(line)["key"] for line in open(tmp_path / "journal.jsonl")
    )


def test_discrete_search_through_text_prompts_improves_the_loss(server):
    before = server.get("/stats")
    evaluator = http_evaluator(server.url, prompt="text", phrases=PHRASES, batch_size=12)
    optimizer = DiscretePromptSearch(num_choices=len(PHRASES), popsize=6)
    initial = np.array([0, 1], "float32")
    result = PromptTuningRunner(evaluator).run(initial, [Stage(optimizer, Budget(steps=6))], seed=0)
    start = evaluator.evaluate(initial[None], step=0).losses[0]  # journaled: free
    assert result.lowest_loss < start
    # Distinct (step, candidate) pairs are paid once; the server agrees.
    after = server.get("/stats")
    assert 0 < evaluator.journal.paid_calls <= 6 * 6
    assert after["computed_requests"] - before["computed_requests"] == evaluator.journal.paid_calls
    assert evaluator.prompt_text(result.best_prompt) == "".join(
        PHRASES[int(i)] for i in result.best_prompt
    )


def test_openai_completions_client_tunes_against_the_servers_endpoint(server):
    evaluator = OpenAICompletionsEvaluator(
        server.url + "/v1", TEXTS, LABELS, CLASSES, LABEL_WORDS, phrases=PHRASES,
        top_logprobs=400, batch_size=12,
    )
    text_evaluator = http_evaluator(server.url, prompt="text", phrases=PHRASES, batch_size=12)
    candidates = np.array([[0, 1], [4, 5]], "float32")
    # With every token in the top-k, the completions path gives the score path's losses.
    np.testing.assert_allclose(
        evaluator.evaluate(candidates, 0).losses, text_evaluator.evaluate(candidates, 0).losses,
        rtol=1e-4,
    )
    optimizer = DiscretePromptSearch(num_choices=len(PHRASES), popsize=6)
    result = PromptTuningRunner(evaluator).run(candidates[0], [Stage(optimizer, Budget(steps=6))], seed=0)
    assert result.lowest_loss < evaluator.evaluate(candidates[:1], 0).losses[0]


def test_slow_server_times_out_retries_and_is_charged_once(server):
    before = server.get("/stats")
    with SlowProxy(server.url, delay=2.0, slow_requests=1) as proxy:
        evaluator = http_evaluator(proxy.url, timeout=0.5, max_retries=8, backoff_seconds=0.1)
        candidate = np.full((1, 3, 16), 0.25, "float32")
        evaluation = evaluator.evaluate(candidate, step=0)
        time.sleep(2.5)  # let the held-back first attempt reach the server too
    assert evaluator.journal.http_requests >= 2  # timed out, then retried
    assert evaluator.journal.paid_calls == 1
    after = server.get("/stats")
    # Both attempts reached the server; the Idempotency-Key made it compute once.
    assert after["computed_requests"] - before["computed_requests"] == 1
    assert after["replayed_requests"] - before["replayed_requests"] >= 1
    direct = http_evaluator(server.url).evaluate(candidate, step=0)
    assert evaluation.losses[0] == direct.losses[0]


def test_unreachable_server_raises_after_the_retries():
    evaluator = http_evaluator(f"http://127.0.0.1:{free_port()}", max_retries=2, backoff_seconds=0.01)
    with pytest.raises(APIUnavailableError, match=r"failed after 3 attempts .* Check that the server is up"):
        evaluator.evaluate(np.zeros((1, 3, 16), "float32"), step=0)
    assert evaluator.journal.paid_calls == 0


def test_a_4xx_is_raised_at_once_with_the_servers_message(server):
    evaluator = http_evaluator(server.url, max_retries=5, backoff_seconds=10)
    started = time.monotonic()
    with pytest.raises(APIRequestError, match=r"HTTP 422: prompt_embeddings must have shape \[P, 16\]"):
        evaluator.evaluate(np.zeros((1, 3, 5), "float32"), step=0)
    assert time.monotonic() - started < 5  # not retried


def test_gradients_are_refused_with_a_clear_message(server):
    with pytest.raises(ValueError, match="scores through an API and has no gradients"):
        http_evaluator(server.url).evaluate(np.zeros((1, 3, 16)), 0, compute_gradients=True)


class CrashingEvaluator(HTTPEvaluator):
    """Dies (like a killed client) before paying its `crash_at`-th call."""

    crash_at = None

    def _call(self, candidate, texts, labels, key):
        if self.journal.paid_calls == self.crash_at:
            raise KeyboardInterrupt("client killed")
        return super()._call(candidate, texts, labels, key)


def test_client_crash_midway_resumes_without_paying_twice(server, local_reference, tmp_path):
    initial, std, reference = local_reference
    journal, checkpoints = tmp_path / "journal.jsonl", tmp_path / "checkpoints"
    before = server.get("/stats")
    crashing = http_evaluator(server.url, journal_path=journal, concurrency=1)
    crashing.__class__ = CrashingEvaluator
    crashing.crash_at = 2 * POPSIZE + 2  # in the middle of step 2
    with pytest.raises(KeyboardInterrupt):
        PromptTuningRunner(crashing, checkpoint_dir=checkpoints).run(
            initial, [Stage(cma(std), Budget(steps=STEPS))], seed=0
        )
    resumed = http_evaluator(server.url, journal_path=journal)
    assert resumed.journal.paid_calls == 2 * POPSIZE + 2
    result = PromptTuningRunner(resumed, checkpoint_dir=checkpoints).run(
        initial, [Stage(cma(std), Budget(steps=STEPS))], seed=0
    )
    assert_same_run(result, reference)
    after = server.get("/stats")
    assert resumed.journal.paid_calls == STEPS * POPSIZE
    keys = [json.loads(line)["key"] for line in open(journal)]
    assert len(keys) == len(set(keys)) == STEPS * POPSIZE
    # Across the crash and the resume the client sent each paid request
    # exactly once. (This shared server already computed the first test's
    # identical run, so it answers these keys from its log: replayed.)
    sent = (after["computed_requests"] - before["computed_requests"]) + (
        after["replayed_requests"] - before["replayed_requests"]
    )
    assert sent == STEPS * POPSIZE


def test_server_killed_and_restarted_midway_the_run_continues_exactly(
    preset, local_reference, tmp_path
):
    initial, std, reference = local_reference
    log = tmp_path / "requests.jsonl"
    port = free_port()
    servers = [ServerProcess(preset, port=port, log_file=log).start()]

    class KillingEvaluator(HTTPEvaluator):
        def _call(self, candidate, texts, labels, key):
            if self.journal.paid_calls == POPSIZE + 1 and len(servers) == 1:
                servers[0].kill()  # SIGKILL, mid-step
                restart = ServerProcess(preset, port=port, log_file=log)
                servers.append(restart)
                threading.Thread(target=restart.start).start()
            return super()._call(candidate, texts, labels, key)

    evaluator = http_evaluator(servers[0].url, journal_path=tmp_path / "journal.jsonl",
                               concurrency=1, max_retries=200, backoff_seconds=0.25)
    evaluator.__class__ = KillingEvaluator
    evaluator.client.max_backoff_seconds = 1.0
    try:
        result = PromptTuningRunner(evaluator, checkpoint_dir=tmp_path / "run").run(
            initial, [Stage(cma(std), Budget(steps=STEPS))], seed=0
        )
        stats = servers[-1].get("/stats")
    finally:
        for process in servers:
            process.stop()
    assert len(servers) == 2
    assert_same_run(result, reference)
    # Nothing lost or counted twice: the server's log, over both of its
    # lives, holds each paid evaluation exactly once.
    with open(log) as f:
        entries = [json.loads(line) for line in f]
    keys = [e["key"] for e in entries if e["event"] == "computed"]
    assert len(keys) == len(set(keys)) == evaluator.journal.paid_calls == STEPS * POPSIZE
    assert stats["computed_requests"] == STEPS * POPSIZE


def test_tensorboard_records_a_run_tuned_only_through_http(server, local_reference, tmp_path):
    """The HTTP client's run is tracked like a local one: loss, sigma, API calls, prompt."""
    initial, std, _ = local_reference
    before = server.get("/stats")
    evaluator = http_evaluator(server.url)
    logdir = tmp_path / "tb"
    logger = TensorBoardLogger(logdir, hparams={"optimizer": "cma-es", "transport": "http"},
                               histogram_every=1)
    result = PromptTuningRunner(evaluator, callbacks=[logger]).run(
        initial, [Stage(cma(std), Budget(steps=STEPS))], seed=7)
    events = read_events(logdir / "train")
    api_calls = [float(value) for _, _, value in events["api_calls"]]
    # Every request the server answered appears in the log, none twice (the
    # server answers a request it has seen before from its log: "replayed").
    after = server.get("/stats")
    answered = sum(after[k] - before[k] for k in ("computed_requests", "replayed_requests"))
    assert sum(api_calls) == answered == STEPS * POPSIZE
    assert [float(v) for _, _, v in events["loss"]] == pytest.approx(
        [h["loss"] for h in result.history])
    assert len(events["sigma"]) == STEPS
    # Every step's prompt histogram, and the final prompt once more at the end.
    assert [s for s, _, _ in events["prompt/values"]] == list(range(STEPS)) + [STEPS - 1]
    [(_, plugin, _)] = events["_hparams_/session_start_info"]
    assert plugin == "hparams"
