"""The real server in a subprocess: routes, auth, limits, idempotency."""

import json
import urllib.error
import urllib.request

import numpy as np
import pytest

from promptopt.evaluators import KerasEvaluator
from promptopt.server import decode_array
from promptopt.server import encode_array
from tests.server.server_process import CLASSES
from tests.server.server_process import LABEL_WORDS
from tests.server.server_process import LABELS
from tests.server.server_process import TEXTS
from tests.server.server_process import ServerProcess
from tests.server.server_process import local_model
from tests.server.server_process import save_tiny_preset

TOKEN = "s3cret-token"


@pytest.fixture(scope="module")
def preset(tmp_path_factory):
    return save_tiny_preset(tmp_path_factory.mktemp("preset") / "tiny_gpt2")


@pytest.fixture(scope="module")
def server(preset, tmp_path_factory):
    log = tmp_path_factory.mktemp("server") / "requests.jsonl"
    process = ServerProcess(
        preset, log_file=log, token=TOKEN,
        extra=("--max-batch-size", "16", "--max-request-bytes", "20000", "--max-logprobs", "400"),
    ).start()
    yield process
    process.stop()


def call(server, path, body=None, token=TOKEN, headers=None, raw=None):
    """Returns `(status, reply dict)` without raising on 4xx."""
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    request = urllib.request.Request(server.url + path, data=data, method="POST" if data is not None else "GET")
    request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


def score_body(prompt=None, **extra):
    body = {"inputs": TEXTS, "classes": CLASSES, "label_words": LABEL_WORDS, "labels": LABELS}
    if prompt is not None:
        body["prompt_embeddings"] = encode_array(prompt)
    body.update(extra)
    return body


def test_openapi_schema_documents_the_routes_and_the_embedding_std(server):
    status, schema = call(server, "/openapi.json", token=None)
    assert status == 200
    assert {"/info", "/stats", "/v1/score", "/v1/completions"} <= set(schema["paths"])
    info_doc = schema["components"]["schemas"]["InfoResponse"]["description"]
    assert "standard deviation of all `V * H` entries" in info_doc


def test_info_exposes_one_scalar_of_the_weights(server, preset):
    status, info = call(server, "/info")
    assert status == 200
    assert set(info) == {
        "model", "hidden_dim", "embedding_std", "max_batch_size", "max_prompt_length",
        "max_request_bytes", "max_logprobs", "auth_required",
    }
    table = local_model(preset).embedding_table()
    assert info["hidden_dim"] == table.shape[1]
    assert info["embedding_std"] == pytest.approx(float(np.std(table)), rel=1e-6)


@pytest.mark.parametrize(
    "token, message",
    [
        (None, "Missing bearer token. Send the header 'Authorization: Bearer <token>'."),
        ("wrong", "Wrong bearer token. Send the token the server was started with."),
    ],
)
def test_missing_or_wrong_token_is_401(server, token, message):
    for path, body in (("/info", None), ("/v1/score", score_body())):
        status, reply = call(server, path, body, token=token)
        assert status == 401
        assert reply["detail"] == message


def test_loss_equals_the_local_evaluator_bit_for_bit(server, preset):
    model = local_model(preset)
    prompt = model.soft_prompt.materialize()
    status, reply = call(server, "/v1/score", score_body(prompt, allow_batching=False))
    assert status == 200
    assert set(reply) == {"model", "scores", "loss", "input_tokens"}  # nothing else
    local = KerasEvaluator(model, model.encode_texts(TEXTS), LABELS, batch_size=len(TEXTS))
    assert reply["loss"] == local.evaluate(prompt[None], step=0).losses[0]
    # Eager Keras rounds differently from the compiled function (~1e-7).
    expected = np.asarray(model(model.encode_texts(TEXTS), prompt=prompt))
    np.testing.assert_allclose(decode_array(reply["scores"]), expected, rtol=1e-6)
    real_tokens = int(model.encode_texts(TEXTS)["padding_mask"].sum())
    assert reply["input_tokens"] == real_tokens + len(TEXTS) * prompt.shape[0]


def test_text_prompt_is_prepended_to_every_input(server, preset):
    model = local_model(preset, prompt_length=0)
    _, reply = call(server, "/v1/score", score_body(prompt_text="so", allow_batching=False))
    x = model.encode_texts(["so" + t for t in TEXTS])
    expected = np.asarray(model(x, prompt=np.zeros((0, 16), "float32")))
    np.testing.assert_allclose(decode_array(reply["scores"]), expected, atol=1e-5)


@pytest.mark.parametrize(
    "body, status, message",
    [
        ({"inputs": TEXTS}, 422, "body.classes: Field required; body.label_words: Field required"),
        (score_body(np.zeros((3, 7), "float32")), 422,
         "prompt_embeddings must have shape [P, 16] (P prompt vectors of the model's hidden size), got [3, 7]."),
        (score_body(prompt_embeddings={"dtype": "float32", "shape": [1, 16], "data": "!!"}), 422,
         "Array data is not valid base64."),
        (score_body(labels=[0, 1]), 422, "Got 2 labels for 12 inputs; send one label per input, or none."),
        (score_body(labels=[5] * 12), 422, "labels must be class indices in [0, 1]."),
        (score_body(inputs=["x"] * 17, labels=None), 413,
         "17 inputs exceed the limit of 16 per request. Split them into several requests."),
        (score_body(prompt_text="a", prompt_embeddings=encode_array(np.zeros((1, 16))),), 422,
         "Give prompt_embeddings or prompt_text, not both."),
        (score_body(label_words={"0": [" terrible"]}), 422, "No label word for class(es) ['1']."),
    ],
)
def test_bad_requests_get_a_4xx_with_a_message_and_the_server_stays_up(server, body, status, message):
    got_status, reply = call(server, "/v1/score", body)
    assert got_status == status
    assert message in reply["detail"]
    assert call(server, "/info")[0] == 200


def test_malformed_json_and_oversized_bodies_are_4xx(server):
    status, reply = call(server, "/v1/score", raw=b"{not json")
    assert status == 422 and "JSON decode error" in str(reply["detail"])
    status, reply = call(server, "/v1/score", raw=b" " * 30000)
    assert status == 413
    assert reply["detail"] == (
        "Request body of 30000 bytes exceeds the limit of 20000 bytes. "
        "Send fewer inputs per request."
    )
    assert call(server, "/info")[0] == 200


def test_idempotency_key_is_computed_once_and_replayed(server):
    before = call(server, "/stats")[1]
    body = score_body(np.ones((2, 16), "float32"))
    first = call(server, "/v1/score", body, headers={"Idempotency-Key": "k-once"})
    second = call(server, "/v1/score", body, headers={"Idempotency-Key": "k-once"})
    assert first == second and first[0] == 200
    after = call(server, "/stats")[1]
    assert after["computed_requests"] == before["computed_requests"] + 1
    assert after["replayed_requests"] == before["replayed_requests"] + 1
    status, reply = call(server, "/v1/score", score_body(), headers={"Idempotency-Key": "k-once"})
    assert status == 409
    assert reply["detail"] == (
        "Idempotency-Key 'k-once' was already used for a different request "
        "body. Use a new key for a new request."
    )


def test_completions_endpoint_is_openai_shaped(server, preset):
    # `model` names what is served: the preset folder's name (else 404).
    body = {"model": "tiny_gpt2", "prompt": TEXTS[:2], "max_tokens": 1, "logprobs": 5, "temperature": 0}
    status, reply = call(server, "/v1/completions", body)
    assert status == 200
    assert reply["object"] == "text_completion" and len(reply["choices"]) == 2
    choice = reply["choices"][0]
    top = choice["logprobs"]["top_logprobs"][0]
    assert 1 <= len(top) <= 5
    assert choice["text"] == choice["logprobs"]["tokens"][0]
    assert choice["logprobs"]["token_logprobs"][0] == max(top.values())
    usage = reply["usage"]
    assert usage["total_tokens"] == usage["prompt_tokens"] + usage["completion_tokens"]
    # The label words' log-probabilities agree with /v1/score's class scores.
    _, full = call(server, "/v1/completions", {**body, "prompt": TEXTS[:1], "logprobs": 400})
    _, scored = call(server, "/v1/score", score_body(inputs=TEXTS[:1], labels=None))
    alternatives = full["choices"][0]["logprobs"]["top_logprobs"][0]
    np.testing.assert_allclose(
        [alternatives[" terrible"], alternatives[" great"]],
        decode_array(scored["scores"])[0], atol=1e-5,
    )


def test_completions_generate_more_than_the_next_token(server):
    # Once refused with 422 (the endpoint scored the next token only).
    status, reply = call(server, "/v1/completions", {"prompt": "hi", "max_tokens": 5})
    assert status == 200
    [choice] = reply["choices"]
    assert 1 <= reply["usage"]["completion_tokens"] <= 5
    assert choice["finish_reason"] == ("length" if reply["usage"]["completion_tokens"] == 5 else "stop")
    status, reply = call(server, "/v1/completions", {"prompt": "hi", "max_tokens": 500})
    assert status == 422
    assert reply["detail"] == (
        "max_tokens=500 exceeds this server's limit of 256 new tokens. Ask for fewer."
    )
