import json

import numpy as np
import pytest
from keras import ops

from promptopt import LanguageModeling
from promptopt import PromptedModel
from promptopt import Verbalizer
from promptopt import VerbalizerClassification
from promptopt.tasks import deserialize_task
from promptopt.tasks import serialize_task
from promptopt.tasks.text_encoder import tokenize_all
from tests.tiny_models import tiny_gpt2
from tests.tiny_models import tiny_llama
from tests.tiny_models import tiny_t5

PROMPT_LENGTH = 3
# Words of 1, 6, 1 and 4 tokens in the tiny byte-level vocabulary: " awful"
# is spelled byte by byte, " so good" is " ", "s", "o" then the merged " good".
LABEL_WORDS = {"0": [" terrible", " awful"], "1": [" great", " so good"]}
TEXTS = ["It was", "The plot drags. It was", "Fun! It was"]
# T5 has no tokenizer in these tests: words are given as token ids.
T5_WORD_IDS = [[11, 12, 13], [14], [15, 16]]
T5_LABEL_WORDS = {"0": ["w0", "w1"], "1": "w2"}


def _decoder_only(family, label_words=LABEL_WORDS):
    backbone, tokenizer = tiny_gpt2() if family == "gpt2" else tiny_llama()
    verbalizer = Verbalizer(["0", "1"], label_words, tokenizer)
    classifier = PromptedModel(
        backbone,
        VerbalizerClassification(verbalizer),
        prompt_length=PROMPT_LENGTH,
        prompt_initializer="random",
        tokenizer=tokenizer,
    )
    lm = PromptedModel(
        backbone, LanguageModeling(), prompt_length=PROMPT_LENGTH
    )
    return classifier, lm, tokenizer


def _log_softmax(logits):
    logits = np.asarray(logits, dtype="float64")
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _logsumexp(values):
    values = np.asarray(values, dtype="float64")
    top = values.max()
    return top + np.log(np.exp(values - top).sum())


def _manual_decoder_only_scores(lm, verbalizer, text_ids, prompt):
    """Class scores from full LM forward passes on `text + word`, per row."""
    scores = np.zeros((len(text_ids), verbalizer.num_classes))
    for b, ids in enumerate(text_ids):
        row_prompt = prompt if prompt.ndim == 2 else prompt[b]
        word_scores = []
        for word in verbalizer.word_token_ids:
            sequence = np.array([ids + word], "int32")
            logits = lm(
                {"token_ids": sequence, "padding_mask": np.ones_like(sequence)},
                prompt=row_prompt,
            )  # [1, T + M, V]
            logp = _log_softmax(ops.convert_to_numpy(logits)[0])
            # The output at position t predicts token t + 1.
            word_scores.append(
                sum(logp[len(ids) - 1 + j, w] for j, w in enumerate(word))
            )
        for c in range(verbalizer.num_classes):
            scores[b, c] = _logsumexp(
                [s for s, k in zip(word_scores, verbalizer.word_classes) if k == c]
            )
    return scores


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_multi_token_words_score_as_summed_log_probabilities(family):
    classifier, lm, tokenizer = _decoder_only(family)
    verbalizer = classifier.task.verbalizer
    assert [len(w) for w in verbalizer.word_token_ids] == [1, 6, 1, 4]
    batch = classifier.encode_texts(TEXTS)  # rows of different lengths
    prompt = classifier.soft_prompt.materialize()
    scores = ops.convert_to_numpy(classifier(batch))
    expected = _manual_decoder_only_scores(
        lm, verbalizer, tokenize_all(tokenizer, TEXTS), prompt
    )
    assert scores.shape == (len(TEXTS), 2)
    np.testing.assert_allclose(scores, expected, atol=1e-4)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
def test_single_token_words_read_the_answer_position(family):
    label_words = {"0": " terrible", "1": [" great", " good"]}
    classifier, lm, tokenizer = _decoder_only(family, label_words)
    assert classifier.task.max_word_length == 1
    batch = classifier.encode_texts(TEXTS)
    scores = ops.convert_to_numpy(classifier(batch))
    expected = _manual_decoder_only_scores(
        lm,
        classifier.task.verbalizer,
        tokenize_all(tokenizer, TEXTS),
        classifier.soft_prompt.materialize(),
    )
    np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_a_class_with_one_word_scores_that_word():
    classifier, lm, tokenizer = _decoder_only("gpt2", {"0": " bad", "1": " good"})
    batch = classifier.encode_texts(TEXTS[:1])
    scores = ops.convert_to_numpy(classifier(batch))[0]
    logits = ops.convert_to_numpy(lm(batch, prompt=classifier.soft_prompt()))
    logp = _log_softmax(logits[0, batch["padding_mask"][0].sum() - 1])
    ids = classifier.task.verbalizer.word_token_ids
    np.testing.assert_allclose(scores, [logp[ids[0][0]], logp[ids[1][0]]], atol=1e-5)


@pytest.mark.parametrize("family", ["gpt2", "llama"])
@pytest.mark.parametrize("multi_token", [False, True])
def test_batched_prompts_score_each_row_with_its_own_prompt(family, multi_token):
    label_words = LABEL_WORDS if multi_token else {"0": " bad", "1": " good"}
    classifier, _, _ = _decoder_only(family, label_words)
    batch = classifier.encode_texts(TEXTS)
    rng = np.random.default_rng(0)
    prompts = rng.normal(size=(len(TEXTS), PROMPT_LENGTH, 16)).astype("float32")
    batched = ops.convert_to_numpy(classifier(batch, prompt=prompts))
    for b in range(len(TEXTS)):
        row = {k: v[b : b + 1] for k, v in batch.items()}
        single = ops.convert_to_numpy(classifier(row, prompt=prompts[b]))
        np.testing.assert_allclose(batched[b], single[0], atol=1e-5)
    # Different prompts really give different scores.
    shared = ops.convert_to_numpy(classifier(batch, prompt=prompts[0]))
    assert not np.allclose(shared[1:], batched[1:], atol=1e-3)


def test_multi_token_scores_do_not_depend_on_the_padding_side():
    classifier, _, _ = _decoder_only("llama")
    right = classifier.encode_texts(TEXTS)
    ids, mask = right["token_ids"], right["padding_mask"]
    left_ids, left_mask = np.zeros_like(ids), np.zeros_like(mask)
    for i, n in enumerate(mask.sum(axis=1)):
        left_ids[i, -n:], left_mask[i, -n:] = ids[i, :n], 1
    left = {"token_ids": left_ids, "padding_mask": left_mask}
    np.testing.assert_allclose(classifier(left), classifier(right), atol=1e-5)


def _t5_models():
    backbone = tiny_t5()
    verbalizer = Verbalizer(["0", "1"], T5_LABEL_WORDS, token_ids=T5_WORD_IDS)
    classifier = PromptedModel(
        backbone,
        VerbalizerClassification(verbalizer),
        prompt_length=PROMPT_LENGTH,
        prompt_initializer="random",
    )
    lm = PromptedModel(backbone, LanguageModeling(), prompt_length=PROMPT_LENGTH)
    return classifier, lm


def _t5_batch():
    token_ids = np.array([[40, 41, 42, 0], [50, 51, 52, 53], [60, 0, 0, 0]], "int32")
    return {"token_ids": token_ids, "padding_mask": (token_ids > 0).astype("int32")}


def _manual_t5_scores(lm, batch, prompt):
    scores = []
    for b in range(len(batch["token_ids"])):
        row = {k: v[b : b + 1] for k, v in batch.items()}
        row_prompt = prompt if prompt.ndim == 2 else prompt[b]
        word_scores = []
        for word in T5_WORD_IDS:
            # Teacher forcing: the decoder reads [start, w_0 .. w_{m-2}].
            decoder_ids = np.array([[0] + word[:-1]], "int32")
            logits = lm(
                {
                    **row,
                    "decoder_token_ids": decoder_ids,
                    "decoder_padding_mask": np.ones_like(decoder_ids),
                },
                prompt=row_prompt,
            )
            logp = _log_softmax(ops.convert_to_numpy(logits)[0])
            word_scores.append(sum(logp[j, w] for j, w in enumerate(word)))
        scores.append([_logsumexp(word_scores[:2]), word_scores[2]])
    return np.array(scores)


def test_t5_multi_token_words_score_by_teacher_forced_decoding():
    classifier, lm = _t5_models()
    batch = _t5_batch()
    scores = ops.convert_to_numpy(classifier(batch))
    expected = _manual_t5_scores(lm, batch, classifier.soft_prompt.materialize())
    np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_t5_batched_prompts_score_each_row_with_its_own_prompt():
    classifier, lm = _t5_models()
    batch = _t5_batch()
    prompts = (
        np.random.default_rng(1).normal(size=(3, PROMPT_LENGTH, 16)).astype("float32")
    )
    scores = ops.convert_to_numpy(classifier(batch, prompt=prompts))
    np.testing.assert_allclose(
        scores, _manual_t5_scores(lm, batch, prompts), atol=1e-4
    )


def test_t5_single_token_words():
    backbone = tiny_t5()
    verbalizer = Verbalizer(["0", "1"], {"0": "a", "1": "b"}, token_ids=[[7], [9]])
    classifier = PromptedModel(
        backbone, VerbalizerClassification(verbalizer), prompt_length=2
    )
    lm = PromptedModel(backbone, LanguageModeling(), prompt_length=2)
    batch = _t5_batch()
    decoder = np.zeros((3, 1), "int32")
    logits = lm(
        {**batch, "decoder_token_ids": decoder, "decoder_padding_mask": decoder + 1},
        prompt=classifier.soft_prompt(),
    )
    logp = _log_softmax(ops.convert_to_numpy(logits)[:, 0])
    np.testing.assert_allclose(classifier(batch), logp[:, [7, 9]], atol=1e-5)


def test_scores_are_log_probabilities_of_disjoint_events():
    # With every vocabulary token as a one-token word of one class, the
    # class scores are the log of probabilities that sum to 1.
    backbone, tokenizer = tiny_gpt2()
    vocabulary_size = backbone.vocabulary_size
    ids = [[i] for i in range(vocabulary_size)]
    words = [f"w{i}" for i in range(vocabulary_size)]
    verbalizer = Verbalizer(
        ["a", "b"],
        {"a": words[:100], "b": words[100:]},
        token_ids=ids,
    )
    model = PromptedModel(backbone, VerbalizerClassification(verbalizer), 2)
    scores = ops.convert_to_numpy(model(model_batch(tokenizer)))
    np.testing.assert_allclose(np.exp(scores).sum(axis=1), 1.0, atol=1e-5)


def model_batch(tokenizer):
    from promptopt.tasks.text_encoder import TextEncoder

    return TextEncoder(tokenizer).encode(TEXTS)


def test_task_config_round_trips_through_json():
    _, tokenizer = tiny_gpt2()
    task = VerbalizerClassification(Verbalizer(["0", "1"], LABEL_WORDS, tokenizer))
    config = json.loads(json.dumps(serialize_task(task)))
    clone = deserialize_task(config)
    assert isinstance(clone, VerbalizerClassification)
    assert serialize_task(clone) == serialize_task(task)
    assert clone.num_classes == 2
    assert clone.max_word_length == 6
