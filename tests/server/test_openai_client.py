"""The official `openai` client drives `promptopt serve` with tuned prompts."""

import concurrent.futures
import json
import urllib.request

import numpy as np
import openai
import pytest

from promptopt import LanguageModeling
from promptopt import PromptedModel
from promptopt.cli.main import main
from promptopt.hub import load_language_model
from promptopt.prefixes import PrefixModel
from promptopt.prompts.prompt_file import PromptFile
from tests.cli.cli_fixtures import save_tiny_preset
from tests.server.server_process import ServerProcess

TOKEN = "s3cret-token"
TEXT = "great fun. It was"


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The tiny Llama preset, a soft prompt and a prefix tuned "for" it."""
    folder = tmp_path_factory.mktemp("served")
    preset = save_tiny_preset(folder / "tiny_llama")
    loaded = load_language_model(preset)
    common = dict(tokenizer=loaded.tokenizer, model_id=loaded.model_id)
    soft = PromptedModel(loaded.backbone, LanguageModeling(), prompt_length=3,
                         prompt_initializer="vocab", seed=4, **common)
    prefix = PrefixModel(loaded.backbone, LanguageModeling(), prefix_length=2,
                         prefix_initializer="random", seed=5, **common)
    paths = {"soft": soft.save_prompt(folder / "prompt.npz"),
             "prefix": prefix.save_prefix(folder / "prefix.npz")}
    return {"preset": preset, "model_id": loaded.model_id, "paths": paths,
            "local": {"soft": soft, "prefix": prefix}}


@pytest.fixture(scope="module")
def server(served, tmp_path_factory):
    log = tmp_path_factory.mktemp("log") / "requests.jsonl"
    process = ServerProcess(
        served["preset"], log_file=log, token=TOKEN,
        extra=("--prompt", f"soft={served['paths']['soft']}",
               "--prompt", f"prefix={served['paths']['prefix']}",
               "--max-request-bytes", "20000", "--max-logprobs", "5"),
    ).start()
    yield process
    process.stop()


@pytest.fixture(scope="module")
def client(server):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=TOKEN, max_retries=0)


def _complete(client, model, **kwargs):
    kwargs = {"prompt": TEXT, "max_tokens": 8, "temperature": 0, **kwargs}
    return client.completions.create(model=model, **kwargs)


def _streamed_text(client, model, **kwargs):
    chunks = list(_complete(client, model, stream=True, **kwargs))
    assert chunks[-1].choices[0].finish_reason in ("stop", "length")
    return "".join(chunk.choices[0].text for chunk in chunks if chunk.choices)


def test_models_list_names_the_base_model_and_every_loaded_prompt(client, served):
    listed = {m.id: m for m in client.models.list()}
    assert list(listed) == [served["model_id"], "soft", "prefix"]
    assert [listed[n].kind for n in listed] == ["base", "soft_prompt", "prefix"]
    assert [listed[n].prompt_length for n in listed] == [0, 3, 2]
    assert client.models.retrieve("soft").id == "soft"


def test_greedy_completions_equal_local_generation_and_their_stream(client, served):
    outputs = {}
    for model in (served["model_id"], "soft", "prefix"):
        reply = _complete(client, model)
        [choice] = reply.choices
        assert reply.model == model and choice.finish_reason in ("stop", "length")
        assert _streamed_text(client, model) == choice.text
        outputs[model] = choice.text
        expected_prompt = len(served["local"]["soft"].text_encoder().ids([TEXT])[0])
        expected_prompt += {"soft": 3, "prefix": 2}.get(model, 0)
        assert reply.usage.prompt_tokens == expected_prompt
        assert 0 < reply.usage.completion_tokens <= 8
    for name, model in served["local"].items():
        assert model.generate([TEXT], max_new_tokens=8) == [outputs[name]]
    # Choosing a prompt by name changes what the model writes.
    assert len(set(outputs.values())) == 3


def test_chat_completions_use_the_template_and_stream_the_same_text(client, served):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": TEXT}]
    replies = {}
    for model in (served["model_id"], "soft"):
        reply = client.chat.completions.create(
            model=model, messages=messages, max_tokens=6, temperature=0
        )
        [choice] = reply.choices
        assert choice.message.role == "assistant"
        stream = client.chat.completions.create(
            model=model, messages=messages, max_tokens=6, temperature=0, stream=True
        )
        chunks = list(stream)
        assert chunks[0].choices[0].delta.role == "assistant"
        assert "".join(c.choices[0].delta.content or "" for c in chunks) == choice.message.content
        replies[model] = choice.message.content
    assert replies[served["model_id"]] != replies["soft"]
    # The plain-text template of a tokenizer without ChatML tokens.
    local = served["local"]["soft"]
    chat_text = f"system: Be brief.\nuser: {TEXT}\nassistant:"
    [expected] = local.generate([chat_text], max_new_tokens=6)
    assert replies["soft"] == expected.split("\nuser:")[0].split("\nsystem:")[0]


def test_prompt_lists_with_echo_n_and_logprobs(client, served):
    prompts = [TEXT, "so"]
    reply = _complete(client, "soft", prompt=prompts, n=2, echo=True, logprobs=2, max_tokens=4)
    assert [c.index for c in reply.choices] == [0, 1, 2, 3]
    for choice in reply.choices:
        prompt = prompts[choice.index // 2]
        assert choice.text.startswith(prompt)
        logprobs = choice.logprobs
        assert "".join(logprobs.tokens) == choice.text
        assert logprobs.text_offset[0] == 0 and len(logprobs.top_logprobs[1]) <= 2
        # Greedy: each new token is its position's most likely one.
        new = len(served["local"]["soft"].text_encoder().ids([prompt])[0])
        for logprob, top in zip(logprobs.token_logprobs[new:], logprobs.top_logprobs[new:]):
            assert logprob == pytest.approx(max(top.values()), abs=1e-6)
    assert reply.choices[0].text == reply.choices[1].text  # n greedy draws agree
    assert reply.usage.prompt_tokens == sum(
        len(served["local"]["soft"].text_encoder().ids([p])[0]) + 3 for p in prompts
    )


def test_stop_strings_end_the_choice_and_seeds_repeat_sampling(client, served):
    base = served["model_id"]
    full = _complete(client, base, max_tokens=8).choices[0].text
    assert full == " was was was was was wasOO"  # the tiny model's greedy text
    cut = _complete(client, base, max_tokens=8, stop=["s w", "xyz"]).choices[0]
    assert cut.text == " wa" and cut.finish_reason == "stop"
    assert _streamed_text(client, base, max_tokens=8, stop=["s w", "xyz"]) == cut.text
    sampled = [
        _complete(client, "soft", temperature=1.0, top_p=0.9, seed=7, max_tokens=8).choices[0].text
        for _ in range(2)
    ]
    assert sampled[0] == sampled[1]


def test_unknown_model_is_404_in_openai_format(client, served):
    with pytest.raises(openai.NotFoundError) as caught:
        _complete(client, "no-such-prompt")
    message = caught.value.body["message"]
    assert message == (
        f"The model 'no-such-prompt' does not exist on this server. Served models: "
        f"{served['model_id']}, soft, prefix (see GET /v1/models)."
    )
    assert caught.value.body["code"] == "model_not_found"
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="nope", messages=[{"role": "user", "content": "hi"}])


def test_401_413_and_422_behave_as_before(server, client):
    wrong = openai.OpenAI(base_url=server.url + "/v1", api_key="wrong", max_retries=0)
    with pytest.raises(openai.AuthenticationError) as caught:
        _complete(wrong, "soft")
    assert caught.value.body == {
        "detail": "Wrong bearer token. Send the token the server was started with."
    }
    with pytest.raises(openai.APIStatusError) as caught:
        _complete(client, "soft", prompt="x" * 30000)
    assert caught.value.status_code == 413
    assert "exceeds the limit of 20000 bytes" in caught.value.body["detail"]
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        _complete(client, "soft", temperature=5)
    assert caught.value.body["detail"] == "body.temperature: Input should be less than or equal to 2"
    with pytest.raises(openai.UnprocessableEntityError) as caught:
        _complete(client, "soft", logprobs=6)
    assert caught.value.body["detail"] == "logprobs must be in [0, 5], got 6."


def test_concurrent_requests_for_different_prompts_share_passes(server, client, served):
    names = [served["model_id"], "soft"] * 3
    # Short texts: base and soft rows (3 prompt vectors more) end close
    # enough to share a batch (GenerationJob.length_bucket).
    prompts = [f"so {i}" for i in range(len(names))]
    alone = [_complete(client, n, prompt=p, logprobs=1) for n, p in zip(names, prompts)]
    before = server.get("/stats")["forward_passes"]
    with concurrent.futures.ThreadPoolExecutor(len(names) + 1) as pool:
        # A long request keeps the model busy while the others queue up.
        busy = pool.submit(_complete, client, "soft", max_tokens=100)
        mixed = list(pool.map(lambda a: _complete(client, a[0], prompt=a[1], logprobs=1),
                              zip(names, prompts)))
        busy.result()
    passes = server.get("/stats")["forward_passes"] - before
    assert passes < len(names) + 1  # some requests shared a pass
    for solo, merged in zip(alone, mixed):
        assert merged.choices[0].text == solo.choices[0].text
        np.testing.assert_allclose(
            merged.choices[0].logprobs.token_logprobs, solo.choices[0].logprobs.token_logprobs,
            atol=1e-5,
        )


def test_serve_refuses_a_prompt_tuned_for_another_model(served, tmp_path, capsys):
    other = PromptFile(np.zeros((2, 16), "float32"), "other-model", "0123456789abcdef")
    path = other.save(tmp_path / "other.npz")
    assert main(["serve", "--model", served["preset"], "--prompt", f"x={path}"]) == 2
    error = capsys.readouterr().err
    assert f"Prompt file {path} (for 'x') was tuned for model 'other-model'" in error
    config = tmp_path / "serve.json"
    config.write_text(json.dumps({"model": served["preset"], "prompts": {"x": "other.npz"}}))
    assert main(["serve", "--config", str(config)]) == 2
    assert "tuned for model 'other-model'" in capsys.readouterr().err


def test_sse_stream_ends_with_done(server):
    body = json.dumps({"model": "soft", "prompt": TEXT, "max_tokens": 3, "stream": True,
                       "stream_options": {"include_usage": True}}).encode()
    request = urllib.request.Request(server.url + "/v1/completions", data=body, method="POST")
    request.add_header("Content-Type", "application/json")
    request.add_header("Authorization", f"Bearer {TOKEN}")
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.headers["Content-Type"].startswith("text/event-stream")
        events = response.read().decode().split("\n\n")
    assert events[-2:] == ["data: [DONE]", ""]
    usage = json.loads(events[-3][len("data: "):])
    assert usage["choices"] == [] and usage["usage"]["completion_tokens"] <= 3
