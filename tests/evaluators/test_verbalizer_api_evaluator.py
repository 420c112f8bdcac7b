"""The shared set-up of the API evaluators keeps their journals readable."""

import numpy as np
import pytest

from promptopt.evaluators import HTTPEvaluator
from promptopt.evaluators import OpenAICompletionsEvaluator

TEXTS = [f"text {i}" for i in range(10)]
LABELS = [i % 2 for i in range(10)]


def _http(**kwargs):
    return HTTPEvaluator("http://127.0.0.1:1", TEXTS, LABELS, ["0", "1"],
                         {"0": " bad", "1": [" good", " great"]}, **kwargs)


def _completions(**kwargs):
    return OpenAICompletionsEvaluator("http://127.0.0.1:1/v1", TEXTS, LABELS, ["0", "1"],
                                      {"0": " bad", "1": [" good"]}, ["x", "y"], **kwargs)


def test_journal_keys_are_those_of_journals_already_written():
    # Pinned: a journal written before must still answer a resumed run.
    candidate = np.arange(8, dtype="float32").reshape(2, 4)
    assert _http().candidate_key(candidate, 3) == (
        "405662cb152ee14231da6fea3631347c684e1b30321a9d91d159d922ec2666db"
    )
    assert _completions().candidate_key(np.array([1.0, 0.0]), 3) == (
        "c8bf479131a31215e060d16501290b15643327119c28d19a8b8b9377a15f1763"
    )


def test_identity_holds_the_verbalizer_endpoint_and_own_fields():
    http = _http(prompt="text", phrases=["a", "b"], separator=" ")
    assert http._identity()["endpoint"] == "/v1/score"
    assert http._identity()["label_words"] == {"0": [" bad"], "1": [" good", " great"]}
    assert (http._identity()["phrases"], http._identity()["prompt"]) == (["a", "b"], "text")
    assert http.prompt_text(np.array([1, 0])) == "b a"
    completions = _completions(model="m")
    assert completions._identity()["endpoint"] == "/completions"
    assert completions._identity()["model"] == "m"


def test_each_client_gets_its_own_credentials_and_limits():
    http = _http(token="t1", timeout=3.0, max_retries=2)
    assert (http.client.token, http.client.timeout, http.client.max_retries) == ("t1", 3.0, 2)
    completions = _completions(api_key="k1", backoff_seconds=0.25)
    assert (completions.client.token, completions.client.backoff_seconds) == ("k1", 0.25)


@pytest.mark.parametrize("change", [{"separator": "|"}, {"seed": 1}, {"exact": False}])
def test_any_change_of_configuration_changes_the_keys(change):
    candidate = np.zeros((2, 4), "float32")
    assert _http(**change).candidate_key(candidate, 0) != _http().candidate_key(candidate, 0)


def test_completions_refuses_a_class_without_label_words():
    with pytest.raises(ValueError) as error:
        OpenAICompletionsEvaluator("http://h/v1", TEXTS, LABELS, ["0", "1"], {"0": "a"}, ["x"])
    assert str(error.value) == "No label words for class(es) ['1']."
