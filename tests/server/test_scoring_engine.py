import numpy as np
import pytest

from promptopt.server.scoring_engine import ScoreJob
from promptopt.server.scoring_engine import ScoringEngine
from tests.server.server_process import CLASSES
from tests.server.server_process import LABEL_WORDS
from tests.server.server_process import LABELS
from tests.server.server_process import TEXTS
from tests.tiny_models import tiny_llama


@pytest.fixture(scope="module")
def engine():
    backbone, tokenizer = tiny_llama()
    return ScoringEngine(backbone, tokenizer, "tiny-llama")


def jobs(engine, prompts, batchable=True):
    key = engine.task_key(CLASSES, LABEL_WORDS)
    labels = np.asarray(LABELS, "int32")
    return [
        ScoreJob(key, TEXTS[i::3], labels[i::3], prompt, "", "cross_entropy", batchable)
        for i, prompt in enumerate(prompts)
    ]


def test_merged_jobs_agree_with_solo_jobs(engine):
    prompts = np.random.default_rng(0).normal(size=(3, 2, 16)).astype("float32")
    group = jobs(engine, prompts)
    merged = engine.run(group)
    solo = [engine.run([job])[0] for job in group]
    for m, s in zip(merged, solo):
        np.testing.assert_allclose(m["scores"], s["scores"], rtol=1e-5, atol=1e-5)
        assert m["loss"] == pytest.approx(s["loss"], rel=1e-5)
        assert m["input_tokens"] == s["input_tokens"]


def test_embedding_std_is_the_std_of_the_whole_table(engine):
    table = np.asarray(engine.adapter.embedding_matrix)
    assert engine.embedding_std == pytest.approx(float(np.std(table)))


def test_unknown_class_in_label_words_is_a_clear_error(engine):
    with pytest.raises(ValueError, match=r"label_words has class\(es\) \['2'\] that are not in classes"):
        engine.task_key(CLASSES, {**LABEL_WORDS, "2": [" good"]})
