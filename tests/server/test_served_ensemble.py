"""A prompt ensemble served under one name: POST /v1/score with model=NAME."""

import json

import numpy as np
import pytest

from promptopt import PromptedModel
from promptopt import Verbalizer
from promptopt import VerbalizerClassification
from promptopt.hub import load_language_model
from promptopt.models.prompt_ensemble import PromptEnsemble
from promptopt.server import decode_array
from tests.server.server_process import CLASSES
from tests.server.server_process import LABEL_WORDS
from tests.server.server_process import LABELS
from tests.server.server_process import TEXTS
from tests.server.server_process import ServerProcess
from tests.server.server_process import save_tiny_preset
from tests.server.test_server_api import call


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    """The tiny GPT-2 preset and three prompts for its task (two of one length)."""
    folder = tmp_path_factory.mktemp("ensemble")
    preset = save_tiny_preset(folder / "tiny_gpt2")
    loaded = load_language_model(preset)
    task = VerbalizerClassification(Verbalizer(CLASSES, LABEL_WORDS, loaded.tokenizer))
    paths, models = [], []
    for index, length in enumerate((3, 3, 5)):
        model = PromptedModel(loaded.backbone, task, prompt_length=length,
                              prompt_initializer="random", seed=10 + index,
                              tokenizer=loaded.tokenizer, model_id=loaded.model_id)
        paths.append(model.save_prompt(folder / f"prompt{index}.npz"))
        models.append(model)
    config = folder / "serve.json"
    config.write_text(json.dumps({"ensembles": {"vote3": {"prompts": paths, "combine": "vote"}}}))
    return {"preset": preset, "paths": paths, "models": models, "config": str(config)}


@pytest.fixture(scope="module")
def server(served, tmp_path_factory):
    a, b, c = served["paths"]
    process = ServerProcess(
        served["preset"], log_file=tmp_path_factory.mktemp("log") / "requests.jsonl",
        extra=("--prompt", f"a={a}", "--prompt", f"b={b}", "--prompt", f"c={c}",
               "--ensemble", f"mean2={a},{b}", "--ensemble", f"mean3={a},{b},{c}",
               "--config", served["config"]),
    ).start()
    yield process
    process.stop()


def score(server, model, labels=True):
    body = {"inputs": TEXTS, "classes": CLASSES, "label_words": LABEL_WORDS, "model": model}
    if labels:
        body["labels"] = LABELS
    status, reply = call(server, "/v1/score", body, token=None)
    assert status == 200, reply
    return decode_array(reply["scores"]), reply


def probabilities(scores):
    exp = np.exp(scores - scores.max(axis=-1, keepdims=True))
    return exp / exp.sum(axis=-1, keepdims=True)


def test_models_list_the_ensembles_by_name(server):
    status, reply = call(server, "/v1/models", token=None)
    cards = {card["id"]: card for card in reply["data"]}
    assert status == 200
    assert [cards[n]["kind"] for n in ("a", "mean2", "mean3", "vote3")] == [
        "soft_prompt", "ensemble", "ensemble", "ensemble"]
    assert [cards[n]["ensemble_size"] for n in ("a", "mean2", "mean3")] == [None, 2, 3]
    assert cards["mean3"]["prompt_length"] == 5  # the longest member


def test_an_ensemble_scores_the_mean_of_its_members_class_probabilities(server, served):
    members = [score(server, name)[0] for name in ("a", "b", "c")]  # [B, C] each
    assert np.ptp(np.stack(members), axis=0).max() > 1e-3  # members that disagree
    for name, count in (("mean2", 2), ("mean3", 3)):  # one pass for 2; 3 of two lengths
        scores, reply = score(server, name)
        mean = np.mean([probabilities(m) for m in members[:count]], axis=0)
        np.testing.assert_allclose(np.exp(scores), mean, rtol=0, atol=1e-6)
        expected_loss = -np.mean(np.log(mean[np.arange(len(LABELS)), LABELS]))
        assert reply["model"] == name
        assert reply["loss"] == pytest.approx(expected_loss, abs=1e-5)
    # The same as the library's PromptEnsemble (one prompt length) on the same files.
    local = PromptEnsemble.from_files(served["models"][0], served["paths"][:2])
    np.testing.assert_allclose(np.exp(score(server, "mean2")[0]), local.probabilities(TEXTS),
                               rtol=0, atol=1e-5)


def test_a_vote_ensemble_scores_the_vote_shares(server):
    members = np.stack([probabilities(score(server, n)[0]) for n in ("a", "b", "c")])
    shares, _ = PromptEnsemble.combine_members(members, "vote")
    scores, _ = score(server, "vote3", labels=False)
    np.testing.assert_allclose(np.exp(scores), np.maximum(shares, 1e-30), rtol=1e-6, atol=0)


def test_a_served_prompt_by_name_scores_as_its_embeddings(server, served):
    from promptopt.server import encode_array

    by_name, _ = score(server, "c")
    body = {"inputs": TEXTS, "classes": CLASSES, "label_words": LABEL_WORDS, "labels": LABELS,
            "prompt_embeddings": encode_array(served["models"][2].soft_prompt.materialize())}
    status, reply = call(server, "/v1/score", body, token=None)
    np.testing.assert_array_equal(by_name, decode_array(reply["scores"]))


@pytest.mark.parametrize("path, body, status, message", [
    ("/v1/completions", {"model": "mean2", "prompt": "great fun. It was", "max_tokens": 2}, 422,
     "'mean2' is an ensemble of 2 prompts: it combines their class probabilities, so it "
     "classifies through POST /v1/score with model='mean2'"),
    ("/v1/score", {"model": "nope"}, 404, "The model 'nope' does not exist on this server"),
    ("/v1/score", {"model": "mean2", "prompt_text": "Review:"}, 422,
     "Give model ('mean2', a prompt the server serves) or prompt_embeddings / prompt_text, "
     "not both."),
])
def test_what_an_ensemble_cannot_do_is_refused_with_the_fix(server, path, body, status, message):
    if path == "/v1/score":
        body = {"inputs": TEXTS, "classes": CLASSES, "label_words": LABEL_WORDS, **body}
    got, reply = call(server, path, body, token=None)
    assert got == status
    text = reply.get("detail") if isinstance(reply.get("detail"), str) else reply["error"]["message"]
    assert message in text
