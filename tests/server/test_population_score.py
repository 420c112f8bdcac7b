"""Population requests: K candidates `[K, P, H]` in one `/v1/score` request.

Equality with single requests is checked bit for bit (`assert_array_equal`,
`==` on losses): a population runs each candidate as the solo pass a
single request with `allow_batching=False` runs (prefix placement), or as
the shared-input pass a single suffix request on a Llama model also takes.
Only the comparison with the full `[x; prompt]` forward pass, a different
computation, uses a tolerance.
"""

import json
import pathlib
import urllib.error
import urllib.request

import numpy as np
import pytest

from promptopt import PromptedModel
from promptopt import Verbalizer
from promptopt import VerbalizerClassification
from promptopt.evaluators import KerasEvaluator
from promptopt.evaluators import SharedInputEvaluator
from promptopt.hub import load_language_model
from promptopt.server.scoring_engine import PopulationScoreJob
from promptopt.server.scoring_engine import ScoreJob
from promptopt.server.scoring_engine import ScoringEngine
from promptopt.wire.array_codec import decode_array
from promptopt.wire.array_codec import encode_array
from tests.server.server_process import CLASSES
from tests.server.server_process import LABEL_WORDS
from tests.server.server_process import LABELS
from tests.server.server_process import TEXTS
from tests.server.server_process import ServerProcess
from tests.tiny_models import tiny_gpt2
from tests.tiny_models import tiny_llama

K, P, H = 4, 3, 16


def save_tiny_llama_preset(directory):
    """Saves the tiny Llama backbone and tokenizer as a keras-hub preset.

    With the `promptopt_source.json` record that tells the loader the
    tokenizer's special tokens (keras-hub alone assumes Llama 3's) and the
    tied embeddings (which keras-hub's saved config drops).
    """
    backbone, tokenizer = tiny_llama()
    directory = pathlib.Path(directory)
    backbone.save_to_preset(str(directory))
    tokenizer.save_to_preset(str(directory))
    record = {
        "model_id": "tiny-llama",
        "backbone_kwargs": {"tie_word_embeddings": True},
        "tokenizer_kwargs": {"bos_token": "<s>", "eos_token": "</s>", "misc_special_tokens": []},
    }
    (directory / "promptopt_source.json").write_text(json.dumps(record))
    return str(directory)


def local_suffix_model(preset, prompt_length=P):
    """The served tiny Llama, in this process, with the prompt after the input."""
    loaded = load_language_model(preset)
    task = VerbalizerClassification(
        Verbalizer(CLASSES, LABEL_WORDS, loaded.tokenizer), placement="suffix"
    )
    return PromptedModel(
        loaded.backbone, task, prompt_length=prompt_length, tokenizer=loaded.tokenizer
    )


def population(k=K, seed=0):
    return np.random.default_rng(seed).normal(size=(k, P, H)).astype("float32")


@pytest.fixture(scope="module")
def llama_engine():
    return ScoringEngine(*tiny_llama(), "tiny-llama")


@pytest.fixture(scope="module")
def gpt2_engine():
    return ScoringEngine(*tiny_gpt2(), "tiny-gpt2")


@pytest.fixture(params=["llama", "gpt2"])
def engine(request):
    return request.getfixturevalue(f"{request.param}_engine")


def assert_population_matches_singles(result, singles, with_labels):
    """A population's results equal its K candidates' solo results, bit for bit."""
    assert len(result["candidates"]) == len(singles)
    for got, expected in zip(result["candidates"], singles):
        np.testing.assert_array_equal(got["scores"], expected["scores"])
        assert got["loss"] == expected["loss"]
    assert (singles[0]["loss"] is None) == (not with_labels)
    # The candidates differ, so equal results are not equal by construction.
    assert len({float(r["scores"].sum()) for r in singles}) == len(singles)


def solo(engine, key, prompt, labels):
    [result] = engine.run([ScoreJob(key, TEXTS, labels, prompt, "", "hinge", False)])
    return result


@pytest.mark.parametrize("placement", ["prefix", "suffix"])
@pytest.mark.parametrize("with_labels", [True, False])
def test_a_population_equals_its_candidates_scored_one_by_one_bit_for_bit(
    engine, placement, with_labels
):
    key = engine.task_key(CLASSES, LABEL_WORDS, placement)
    labels = np.asarray(LABELS, "int32") if with_labels else None
    prompts = population()
    [result] = engine.run([PopulationScoreJob(key, TEXTS, labels, prompts, "hinge")])
    singles = [solo(engine, key, prompt, labels) for prompt in prompts]
    assert_population_matches_singles(result, singles, with_labels)


def test_suffix_candidates_share_one_pass_over_the_inputs_on_llama(engine):
    key = engine.task_key(CLASSES, LABEL_WORDS, "suffix")
    [result] = engine.run(
        [PopulationScoreJob(key, TEXTS, np.asarray(LABELS, "int32"), population(), "hinge")]
    )
    real_tokens = int(engine.encoder.encode(TEXTS)["padding_mask"].sum())
    tokens = [c["input_tokens"] for c in result["candidates"]]
    if engine.model_id == "tiny-llama":
        # The inputs ran once, charged to the first candidate; each
        # candidate ran its B * P prompt rows.
        assert tokens == [real_tokens + len(TEXTS) * P] + [len(TEXTS) * P] * (K - 1)
    else:  # GPT-2 (absolute positions): each candidate runs the full pass
        assert tokens == [real_tokens + len(TEXTS) * P] * K


def test_shared_input_scores_match_the_full_forward_pass(llama_engine):
    # A different computation (cached keys/values, left-padded rows), so
    # float32 rounding differs: agreement to 1e-5, as SharedInputEvaluator's.
    engine = llama_engine
    key = engine.task_key(CLASSES, LABEL_WORDS, "suffix")
    prompts = population()
    [result] = engine.run([PopulationScoreJob(key, TEXTS, None, prompts, "hinge")])
    task = engine._tasks[key]
    x = engine.encoder.encode(TEXTS)
    for prompt, got in zip(prompts, result["candidates"]):
        full = np.asarray(task(engine.adapter, prompt, x))
        np.testing.assert_allclose(got["scores"], full, rtol=1e-5, atol=1e-5)


def test_server_population_losses_equal_shared_input_evaluator_bit_for_bit(tmp_path):
    preset = save_tiny_llama_preset(tmp_path / "tiny_llama")
    loaded = load_language_model(preset)
    engine = ScoringEngine(loaded.backbone, loaded.tokenizer, "tiny-llama")
    model = local_suffix_model(preset)
    local = SharedInputEvaluator(model, model.encode_texts(TEXTS), LABELS, batch_size=len(TEXTS))
    prompts = population()
    key = engine.task_key(CLASSES, LABEL_WORDS, "suffix")
    [result] = engine.run(
        [PopulationScoreJob(key, TEXTS, np.asarray(LABELS, "int32"), prompts, "cross_entropy")]
    )
    expected = local.evaluate(prompts, step=0).losses
    assert [c["loss"] for c in result["candidates"]] == expected.tolist()


# --- over HTTP -------------------------------------------------------------


@pytest.fixture(scope="module")
def llama_preset(tmp_path_factory):
    return save_tiny_llama_preset(tmp_path_factory.mktemp("preset") / "tiny_llama")


@pytest.fixture(scope="module")
def server(llama_preset, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "requests.jsonl"
    process = ServerProcess(llama_preset, log_file=log).start()
    yield process
    process.stop()


def post(server, body, headers=None):
    """Returns `(status, reply dict)` without raising on 4xx."""
    request = urllib.request.Request(
        server.url + "/v1/score", data=json.dumps(body).encode(), method="POST",
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def body_of(prompts, placement="prefix", keys=None, **extra):
    body = {
        "inputs": TEXTS, "classes": CLASSES, "label_words": LABEL_WORDS, "labels": LABELS,
        "prompt_embeddings": encode_array(prompts), "placement": placement,
        "allow_batching": False, **extra,
    }
    if keys is not None:
        body["candidate_keys"] = list(keys)
    return body


@pytest.mark.parametrize("placement", ["prefix", "suffix"])
def test_over_http_a_population_reply_equals_k_single_replies_bit_for_bit(server, placement):
    prompts = population(seed=1)
    status, reply = post(server, body_of(prompts, placement))
    assert status == 200
    assert set(reply) == {"model", "candidates"}
    for prompt, candidate in zip(prompts, reply["candidates"]):
        status, single = post(server, body_of(prompt, placement))
        assert status == 200
        assert set(single) == {"model", "scores", "loss", "input_tokens"}  # unchanged form
        assert candidate["loss"] == single["loss"]
        np.testing.assert_array_equal(
            decode_array(candidate["scores"]), decode_array(single["scores"])
        )
        assert candidate["replayed"] is False


def test_a_retried_population_computes_only_the_candidates_not_logged(server):
    prompts = population(seed=2)
    keys = [f"retry-{k}" for k in range(K)]
    before = server.get("/stats")
    _, first = post(server, body_of(prompts[:2], keys=keys[:2]))
    middle = server.get("/stats")
    _, second = post(server, body_of(prompts, keys=keys))
    after = server.get("/stats")
    # The first two were answered from the log, only the last two computed.
    assert middle["computed_requests"] - before["computed_requests"] == 2
    assert after["computed_requests"] - middle["computed_requests"] == 2
    assert after["replayed_requests"] - middle["replayed_requests"] == 2
    assert [c["replayed"] for c in second["candidates"]] == [True, True, False, False]
    for logged, again in zip(first["candidates"], second["candidates"]):
        assert {**logged, "replayed": True} == again
    with open(server.log_file) as f:
        computed = [e["key"] for e in map(json.loads, f) if e["event"] == "computed"]
    assert sorted(k for k in computed if str(k).startswith("retry-")) == keys  # once each


def test_a_candidate_key_names_one_candidate_on_one_batch(server):
    prompts = population(seed=3)
    post(server, body_of(prompts[:1], keys=["once"]))
    status, reply = post(server, body_of(prompts[1:2], keys=["once"]))
    assert status == 409
    assert reply["detail"] == (
        "Candidate key 'once' was already used for a different candidate or "
        "different inputs. Use a new key for a new candidate."
    )
    status, reply = post(server, body_of(prompts[:1], keys=["once"], labels=LABELS[::-1]))
    assert status == 409  # same candidate, other labels
    status, reply = post(server, body_of(prompts[0]), headers={"Idempotency-Key": "once"})
    assert status == 409
    assert "names a candidate of a population request" in reply["detail"]


@pytest.mark.parametrize(
    "body, headers, message",
    [
        (body_of(population(), keys=["a", "b"]), None,
         "Got 2 candidate_keys for 4 candidates; send one key per candidate"),
        (body_of(population(), keys=["a", "b", "a", "c"]), None,
         "candidate_keys must be distinct; ['a'] appear more than once."),
        (body_of(population()), {"Idempotency-Key": "k"},
         "idempotent per candidate: send one key per candidate in candidate_keys"),
        (body_of(population()[0], keys=["a"]), None,
         "candidate_keys name the K candidates of a population"),
        (body_of(np.zeros((2, 3, 5), "float32")), None,
         "prompt_embeddings must have shape [P, 16] (P prompt vectors of the "
         "model's hidden size) or [K, P, 16] (K candidates), got [2, 3, 5]."),
        (body_of(np.zeros((0, 3, 16), "float32")), None, "holds no candidates (K=0)"),
        ({**body_of(population()), "prompt_embeddings": None, "prompt_text": "so",
          "placement": "suffix"}, None,
         "placement='suffix' puts a soft prompt after each input"),
        (body_of(population(), "suffix", label_words={"0": [" terrible"], "1": [" great fun"]}),
         None, "placement='suffix' needs single-token label words"),
    ],
)
def test_bad_population_requests_get_a_422_with_the_fix(server, body, headers, message):
    status, reply = post(server, body, headers)
    assert status == 422
    assert message in reply["detail"]
