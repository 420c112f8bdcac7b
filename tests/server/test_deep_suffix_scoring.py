"""Deep suffixes `[K, L, 2, P, N, D]` scored through `/v1/score`.

A population and its candidates sent one by one run the same compiled
functions (`DeepSuffixFunctions`), so they are compared bit for bit. The
comparison with `DeepSuffixEvaluator` (the same computation in another
process path: its own compiled functions and encoding width) uses 1e-5.
The server runs in this process (uvicorn on a thread, `create_app`), so
the local evaluator reads the very weights the server scores with.
"""

import json
import threading
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import uvicorn

from promptopt import Verbalizer
from promptopt import VerbalizerClassification
from promptopt.evaluators import HTTPEvaluator
from promptopt.evaluators.deep_suffix_evaluator import DeepSuffixEvaluator
from promptopt.optimizers.bbtv2 import BBTv2Optimizer
from promptopt.prefixes import PrefixModel
from promptopt.runner import Budget
from promptopt.runner import PromptTuningRunner
from promptopt.runner import Stage
from promptopt.server import ServerConfig
from promptopt.server import create_app
from promptopt.server.deep_suffix_scoring import DeepSuffixScoreJob
from promptopt.server.scoring_engine import ScoringEngine
from promptopt.wire.array_codec import decode_array
from promptopt.wire.array_codec import encode_array
from tests.server.server_process import CLASSES
from tests.server.server_process import LABEL_WORDS
from tests.server.server_process import LABELS
from tests.server.server_process import TEXTS
from tests.server.server_process import free_port
from tests.server.test_population_score import assert_population_matches_singles
from tests.tiny_models import tiny_gpt2
from tests.tiny_models import tiny_llama

K, P, TAIL = 4, 3, 2
SHAPE = (2, 2, P, 2, 4)  # the tiny Llama's (L, 2, P, N, D): 2 layers, 2 KV heads of 4


class InProcessServer:
    """`create_app(engine)` served by uvicorn on a thread of this process."""

    def __init__(self, engine, log_file):
        self.port = free_port()
        self.log_file = str(log_file)
        app = create_app(engine, ServerConfig(log_file=self.log_file))
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.thread.start()
        deadline = time.monotonic() + 60
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("The in-process server did not start.")
            time.sleep(0.05)
        return self

    def stop(self):
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def get(self, path):
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return json.loads(response.read())

    def post(self, body, headers=None):
        """`(status, reply dict)` of a `/v1/score` request, without raising on 4xx."""
        request = urllib.request.Request(
            self.url + "/v1/score", data=json.dumps(body).encode(), method="POST",
            headers={"Content-Type": "application/json", **(headers or {})})
        try:
            with urllib.request.urlopen(request, timeout=60) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read())


@pytest.fixture(scope="module")
def engine():
    return ScoringEngine(*tiny_llama(), "tiny-llama")


@pytest.fixture(scope="module")
def server(engine, tmp_path_factory):
    process = InProcessServer(engine, tmp_path_factory.mktemp("log") / "requests.jsonl").start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def local(engine):
    """`DeepSuffixEvaluator` on the served weights, the same texts and labels."""
    task = VerbalizerClassification(
        Verbalizer(CLASSES, LABEL_WORDS, engine.tokenizer), placement="suffix")
    model = PrefixModel(engine.backbone, task, prefix_length=P, tokenizer=engine.tokenizer,
                        suffix_tail_length=TAIL, prefix_initializer="random")
    return DeepSuffixEvaluator(model, model.encode_texts(TEXTS), LABELS, batch_size=len(TEXTS))


def population(k=K, seed=0):
    return np.random.default_rng(seed).normal(size=(k,) + SHAPE).astype("float32")


def body_of(prefixes, keys=None, **extra):
    body = {"inputs": TEXTS, "classes": CLASSES, "label_words": LABEL_WORDS,
            "labels": LABELS, "prefix_embeddings": encode_array(prefixes),
            "suffix_tail_length": TAIL, "placement": "suffix", **extra}
    if keys is not None:
        body["candidate_keys"] = list(keys)
    return body


def test_the_served_prefix_shape_is_the_local_models(engine, local):
    assert engine.prefix_shape(P) == SHAPE == tuple(local.initial_candidate().shape)


@pytest.mark.parametrize("with_labels", [True, False])
def test_an_engine_population_equals_its_candidates_one_by_one_bit_for_bit(engine, with_labels):
    key = engine.task_key(CLASSES, LABEL_WORDS, "suffix")
    labels = np.asarray(LABELS, "int32") if with_labels else None
    prefixes = population()
    [result] = engine.run([DeepSuffixScoreJob(key, TEXTS, labels, prefixes, TAIL, "hinge")])
    singles = [engine.run([DeepSuffixScoreJob(key, TEXTS, labels, p[None], TAIL, "hinge")])[0]
               ["candidates"][0] for p in prefixes]
    assert len(singles) == K
    assert_population_matches_singles(result, singles, with_labels)


def test_input_tokens_charge_the_heads_once_and_each_candidate_its_tails(engine):
    key = engine.task_key(CLASSES, LABEL_WORDS, "suffix")
    [result] = engine.run([DeepSuffixScoreJob(key, TEXTS, None, population(), TAIL, "hinge")])
    real = int(engine.encoder.encode(TEXTS)["padding_mask"].sum())
    rows = len(TEXTS)
    heads = real - rows * TAIL  # every tail is TAIL real tokens
    assert [c["input_tokens"] for c in result["candidates"]] == (
        [heads + rows * (TAIL + P)] + [rows * (TAIL + P)] * (K - 1))


def test_over_http_a_population_equals_k_single_requests_and_the_local_evaluator(
    server, local
):
    prefixes = population(seed=1)
    status, reply = server.post(body_of(prefixes))
    assert status == 200
    assert set(reply) == {"model", "candidates"}
    for prefix, candidate in zip(prefixes, reply["candidates"]):
        status, single = server.post(body_of(prefix))
        assert status == 200
        assert set(single) == {"model", "scores", "loss", "input_tokens"}
        assert candidate["loss"] == single["loss"]
        np.testing.assert_array_equal(decode_array(candidate["scores"]),
                                      decode_array(single["scores"]))
        assert candidate["replayed"] is False
    losses = [c["loss"] for c in reply["candidates"]]
    expected = local.evaluate(prefixes, step=0).losses
    np.testing.assert_allclose(losses, expected, rtol=1e-5, atol=1e-5)
    assert np.ptp(expected) > 1e-3  # the candidates' losses differ: the check can fail


def test_http_evaluator_sends_a_generation_in_one_request_with_the_local_losses(
    server, local, tmp_path
):
    prefixes = population(seed=2)
    before = server.get("/stats")
    evaluator = HTTPEvaluator(
        server.url, TEXTS, LABELS, CLASSES, LABEL_WORDS, prompt="deep_suffix",
        prefix_shape=SHAPE, suffix_tail_length=TAIL, placement="suffix",
        population_requests=True, batch_size=len(TEXTS), journal_path=tmp_path / "j.jsonl")
    evaluation = evaluator.evaluate(prefixes, step=0)
    after = server.get("/stats")
    assert evaluation.forward_calls == K
    assert evaluation.metrics["api_calls"] == K
    assert evaluation.metrics["api_requests"] == 1
    assert evaluator.journal.paid_calls == K and evaluator.journal.requests == 1
    assert after["computed_requests"] - before["computed_requests"] == K
    assert after["forward_passes"] - before["forward_passes"] == 1
    expected = local.evaluate(prefixes, step=0).losses
    np.testing.assert_allclose(evaluation.losses, expected, rtol=1e-5, atol=1e-5)
    # One request per candidate, flat candidates: the same losses, bit for bit.
    single = HTTPEvaluator(
        server.url, TEXTS, LABELS, CLASSES, LABEL_WORDS, prompt="deep_suffix",
        prefix_shape=SHAPE, suffix_tail_length=TAIL, placement="suffix",
        batch_size=len(TEXTS))
    flat = single.evaluate(prefixes.reshape(K, -1), step=0)
    assert flat.metrics["api_requests"] == K
    assert flat.losses.tolist() == evaluation.losses.tolist()


def test_the_deep_suffix_settings_enter_the_journal_identity_only_when_used():
    common = ("http://127.0.0.1:1", TEXTS, LABELS, CLASSES, LABEL_WORDS)
    plain = HTTPEvaluator(*common)._identity()
    deep = HTTPEvaluator(*common, prompt="deep_suffix", prefix_shape=SHAPE,
                         suffix_tail_length=TAIL, placement="suffix")._identity()
    assert "prefix_shape" not in plain and "suffix_tail_length" not in plain
    assert (deep["prefix_shape"], deep["suffix_tail_length"]) == (list(SHAPE), TAIL)
    with pytest.raises(ValueError, match="needs prefix_shape=.*placement='suffix'"):
        HTTPEvaluator(*common, prompt="deep_suffix", prefix_shape=SHAPE, suffix_tail_length=TAIL)


def test_a_retried_population_computes_only_the_candidates_not_logged(server):
    prefixes = population(seed=3)
    keys = [f"deep-retry-{k}" for k in range(K)]
    before = server.get("/stats")
    _, first = server.post(body_of(prefixes[:2], keys=keys[:2]))
    middle = server.get("/stats")
    _, second = server.post(body_of(prefixes, keys=keys))
    after = server.get("/stats")
    assert middle["computed_requests"] - before["computed_requests"] == 2
    assert after["computed_requests"] - middle["computed_requests"] == 2
    assert after["replayed_requests"] - middle["replayed_requests"] == 2
    assert [c["replayed"] for c in second["candidates"]] == [True, True, False, False]
    for logged, again in zip(first["candidates"], second["candidates"]):
        assert {**logged, "replayed": True} == again
    _, third = server.post(body_of(prefixes, keys=keys))  # a plain retry of all four
    assert all(c["replayed"] for c in third["candidates"])
    assert server.get("/stats")["computed_requests"] == after["computed_requests"]
    with open(server.log_file) as f:
        computed = [e["key"] for e in map(json.loads, f) if e["event"] == "computed"]
    assert sorted(k for k in computed if str(k).startswith("deep-retry-")) == keys  # once each
    # A candidate key names one candidate with one tail length.
    status, reply = server.post(body_of(prefixes[:1], keys=keys[:1], suffix_tail_length=1))
    assert status == 409


EXPECTED = "2, 2, P, 2, 4"


@pytest.mark.parametrize(
    "change, message",
    [
        ({"prompt_embeddings": encode_array(np.zeros((P, 16), "float32"))},
         "Give prefix_embeddings (a deep suffix) or prompt_embeddings / prompt_text, not both."),
        ({"prompt_text": "so"},
         "Give prefix_embeddings (a deep suffix) or prompt_embeddings / prompt_text, not both."),
        ({"placement": "prefix"},
         "prefix_embeddings is a deep suffix, read by each input's last "
         "suffix_tail_length tokens: send placement='suffix'."),
        ({"suffix_tail_length": 0},
         "suffix_tail_length must be an int >= 1 (how many of each input's last tokens "
         "read the deep suffix, ending at the answer position), got 0."),
        ({"suffix_tail_length": None},
         "suffix_tail_length must be an int >= 1 (how many of each input's last tokens "
         "read the deep suffix, ending at the answer position), got None."),
        ({"prefix_embeddings": encode_array(np.zeros((3, 2, P, 2, 4), "float32"))},
         f"prefix_embeddings must have shape [{EXPECTED}] (this model's L, 2, P, N, D) "
         f"or [K, {EXPECTED}] (K candidates), got [3, 2, 3, 2, 4]."),
        ({"prefix_embeddings": encode_array(np.zeros((K, 2, 2, P, 2, 5), "float32"))},
         f"prefix_embeddings must have shape [{EXPECTED}] (this model's L, 2, P, N, D) "
         f"or [K, {EXPECTED}] (K candidates), got [4, 2, 2, 3, 2, 5]."),
        ({"prefix_embeddings": encode_array(np.zeros((2, 2, P, 1, 4), "float32"))},
         f"prefix_embeddings must have shape [{EXPECTED}] (this model's L, 2, P, N, D) "
         f"or [K, {EXPECTED}] (K candidates), got [2, 2, 3, 1, 4]."),
        ({"prefix_embeddings": encode_array(np.zeros((0,) + SHAPE, "float32"))},
         "prefix_embeddings [K, L, 2, P, N, D] holds no candidates (K=0); send at least one."),
        ({"prefix_embeddings": None},
         "suffix_tail_length goes with prefix_embeddings (a deep suffix [L, 2, P, N, D]); "
         "send both, or neither."),
        ({"candidate_keys": ["a"], "prefix_embeddings": encode_array(population()[0])},
         "candidate_keys name the K candidates of a population (prefix_embeddings "
         "[K, L, 2, P, N, D]). With one deep suffix [L, 2, P, N, D], send its key as the "
         "Idempotency-Key header."),
        ({"suffix_tail_length": 60},
         "fewer tokens than suffix_tail_length=60; every input needs at least k tokens"),
    ],
)
def test_bad_deep_suffix_requests_get_a_422_that_names_the_fix(server, change, message):
    status, reply = server.post({**body_of(population()), **change})
    assert status == 422
    assert message in reply["detail"]


def test_a_deep_suffix_on_a_non_llama_model_gets_a_422(tmp_path):
    process = InProcessServer(ScoringEngine(*tiny_gpt2(), "tiny-gpt2"),
                              tmp_path / "log.jsonl").start()
    try:
        status, reply = process.post(body_of(population()))
    finally:
        process.stop()
    assert status == 422
    assert reply["detail"] == (
        "prefix_embeddings (a deep suffix) needs a Llama-family model (rotary "
        "positions); this server runs GPT2Backbone. Send prompt_embeddings instead.")


def test_bbtv2_through_the_api_gives_the_local_runs_prompt(server, local, tmp_path):
    """The same BBTv2 run, locally and through `/v1/score`, one request a generation.

    CMA-ES uses only the ranks of the losses, and the server's losses equal
    the local ones to float rounding, so both runs sample the same
    candidates and end with the same prompt, bit for bit.
    """
    initial = local.initial_candidate()
    initial_loss = local.evaluate(initial[None], step=0).losses[0]

    def bbtv2_run(evaluator):
        optimizer = BBTv2Optimizer(subspace_dim=8, popsize=K, layer_stds=[0.5] * SHAPE[0])
        return PromptTuningRunner(evaluator).run(
            initial, [Stage(optimizer, Budget(steps=6))], seed=3)

    reference = bbtv2_run(local)
    remote = HTTPEvaluator(
        server.url, TEXTS, LABELS, CLASSES, LABEL_WORDS, prompt="deep_suffix",
        prefix_shape=SHAPE, suffix_tail_length=TAIL, placement="suffix",
        population_requests=True, batch_size=len(TEXTS), journal_path=tmp_path / "j.jsonl")
    result = bbtv2_run(remote)
    np.testing.assert_array_equal(result.best_prompt, reference.best_prompt)
    np.testing.assert_allclose([h["loss"] for h in result.history],
                               [h["loss"] for h in reference.history], rtol=1e-5, atol=1e-6)
    assert reference.lowest_loss < initial_loss
    assert [h["api_requests"] for h in result.history] == [1] * 6
    assert remote.journal.paid_calls == 6 * K
