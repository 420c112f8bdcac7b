import io
import json

import keras_hub
import pytest

from promptopt.tasks import LabelWordError
from promptopt.tasks import Verbalizer
from promptopt.tasks.text_encoder import tokenize_all
from tests.tiny_models import _gpt2_byte_encoder
from tests.tiny_models import tiny_bpe_vocabulary
from tests.tiny_models import tiny_gpt2
from tests.tiny_models import tiny_llama


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    return tiny_gpt2()[1]


def _ids(tokenizer, text):
    return tokenize_all(tokenizer, [text])[0]


def test_words_resolve_to_their_token_ids(gpt2_tokenizer):
    v = Verbalizer(
        ["neg", "pos"],
        {"neg": " terrible", "pos": [" great", " good movie"]},
        gpt2_tokenizer,
    )
    assert v.classes == ("neg", "pos")
    assert v.num_classes == 2
    assert v.words == [(0, " terrible"), (1, " great"), (1, " good movie")]
    assert v.word_classes == [0, 1, 1]
    assert v.word_token_ids == [
        _ids(gpt2_tokenizer, " terrible"),
        _ids(gpt2_tokenizer, " great"),
        _ids(gpt2_tokenizer, " good movie"),
    ]
    assert len(v.word_token_ids[1]) == 1
    assert len(v.word_token_ids[2]) == 7  # " good" + the bytes of " movie"
    assert v.max_word_length == 7


def test_class_names_are_strings_in_the_given_order(gpt2_tokenizer):
    v = Verbalizer([1, 0], {0: " bad", 1: " good"}, gpt2_tokenizer)
    assert v.classes == ("1", "0")
    assert v.word_token_ids == [
        _ids(gpt2_tokenizer, " good"),
        _ids(gpt2_tokenizer, " bad"),
    ]


def test_llama_tokenizer_words(gpt2_tokenizer):
    _, tokenizer = tiny_llama()
    v = Verbalizer(["0", "1"], {"0": " terrible", "1": " great"}, tokenizer)
    assert [len(ids) for ids in v.word_token_ids] == [1, 1]
    # Same merges, but three special tokens come first in this vocabulary.
    assert v.word_token_ids[1][0] == _ids(gpt2_tokenizer, " great")[0] + 2


def test_single_token_refuses_a_word_that_splits(gpt2_tokenizer):
    with pytest.raises(
        LabelWordError,
        match=r"Label word 'great' is not in the vocabulary as a single token: "
        r"it splits into 5 tokens \['g', 'r', 'e', 'a', 't'\]\. Pick a word "
        r"that is one token \(a leading space often helps\), or allow "
        r"multi-token words with single_token=False; they are scored by "
        r"summed log-probability\.",
    ):
        Verbalizer(
            ["0", "1"],
            {"0": " terrible", "1": "great"},
            gpt2_tokenizer,
            single_token=True,
        )


def test_single_token_accepts_single_token_words(gpt2_tokenizer):
    v = Verbalizer(
        ["0", "1"],
        {"0": " terrible", "1": " great"},
        gpt2_tokenizer,
        single_token=True,
    )
    assert v.max_word_length == 1


def test_a_word_with_bytes_missing_from_a_bpe_vocabulary_is_refused():
    # keras-hub's byte-level BPE silently drops bytes it has no token for
    # (" zebra" -> " ebra"); the verbalizer must notice, not score " ebra".
    vocabulary, merges = tiny_bpe_vocabulary()
    del vocabulary[_gpt2_byte_encoder()[ord("z")]]
    vocabulary = {token: i for i, token in enumerate(vocabulary)}
    tokenizer = keras_hub.models.GPT2Tokenizer(
        vocabulary=vocabulary, merges=merges
    )
    assert _ids(tokenizer, " zebra") == _ids(tokenizer, " ebra")  # the trap
    with pytest.raises(
        LabelWordError,
        match=r"Label word ' zebra' is not in the vocabulary: the tokenizer "
        r"maps it to \[\d+(, \d+){4}\], which reads back as ' ebra' "
        r"\(characters missing from the vocabulary are dropped\)\. Choose a "
        r"word the tokenizer knows \(check with tokenizer\.id_to_token\)\.",
    ):
        Verbalizer(["0", "1"], {"0": " zebra", "1": " great"}, tokenizer)
    with pytest.raises(
        LabelWordError,
        match=r"Label word 'z' is not in the vocabulary: the tokenizer maps "
        r"it to \[\], which includes the unknown token\.",
    ):
        Verbalizer(["0", "1"], {"0": "z", "1": " great"}, tokenizer)


@pytest.fixture(scope="module")
def t5_tokenizer():
    sentencepiece = pytest.importorskip("sentencepiece")
    proto = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(
            ["the movie was great", "a terrible quick brown fox it was"]
        ),
        model_writer=proto,
        vocab_size=13,
        model_type="WORD",
        bos_id=-1,
        pad_id=0,
        eos_id=1,
        unk_id=2,
        pad_piece="<pad>",
        eos_piece="</s>",
        unk_piece="<unk>",
        minloglevel=2,
    )
    return keras_hub.models.T5Tokenizer(proto=proto.getvalue())


def test_sentencepiece_unknown_word_is_refused(t5_tokenizer):
    assert _ids(t5_tokenizer, "zebra") == [t5_tokenizer.token_to_id("<unk>")]
    with pytest.raises(
        LabelWordError,
        match=r"Label word 'zebra' is not in the vocabulary: the tokenizer "
        r"maps it to \[2\], which includes the unknown token\. Choose a word "
        r"the tokenizer knows \(check with tokenizer\.id_to_token\)\.",
    ):
        Verbalizer(["0", "1"], {"0": "zebra", "1": "great"}, t5_tokenizer)


def test_sentencepiece_known_words(t5_tokenizer):
    v = Verbalizer(
        ["0", "1"], {"0": "terrible", "1": "great movie"}, t5_tokenizer
    )
    assert v.word_token_ids == [
        [t5_tokenizer.token_to_id("▁terrible")],
        [t5_tokenizer.token_to_id("▁great"), t5_tokenizer.token_to_id("▁movie")],
    ]


def test_missing_class_is_refused(gpt2_tokenizer):
    with pytest.raises(
        LabelWordError,
        match=r"No label word for class\(es\) \['2'\]\. Give one or more words "
        r"for every class in \['0', '1', '2'\]\.",
    ):
        Verbalizer(["0", "1", "2"], {"0": " bad", "1": " good"}, gpt2_tokenizer)


def test_unknown_class_is_refused(gpt2_tokenizer):
    with pytest.raises(
        LabelWordError,
        match=r"Label words given for unknown class\(es\) \['neutral'\]; the "
        r"classes are \['0', '1'\]\.",
    ):
        Verbalizer(
            ["0", "1"],
            {"0": " bad", "1": " good", "neutral": " okay"},
            gpt2_tokenizer,
        )


def test_no_classes_is_refused(gpt2_tokenizer):
    with pytest.raises(
        LabelWordError, match=r"A verbalizer needs at least one class"
    ):
        Verbalizer([], {}, gpt2_tokenizer)


@pytest.mark.parametrize("word", ["", "   "])
def test_empty_word_is_refused(gpt2_tokenizer, word):
    with pytest.raises(
        LabelWordError,
        match=rf"Label word '{word}' is empty; give a real word such as "
        r"' great'\.",
    ):
        Verbalizer(["0", "1"], {"0": [" bad", word], "1": " good"}, gpt2_tokenizer)


def test_tokenizer_or_token_ids_is_required():
    with pytest.raises(
        ValueError, match=r"Verbalizer needs a tokenizer or token_ids\."
    ):
        Verbalizer(["0"], {"0": " good"})


def test_config_round_trips_through_json_without_a_tokenizer(gpt2_tokenizer):
    v = Verbalizer(
        ["0", "1"],
        {"0": [" terrible", " bad"], "1": " great"},
        gpt2_tokenizer,
        single_token=True,
    )
    config = json.loads(json.dumps(v.get_config()))
    clone = Verbalizer.from_config(config)
    assert clone.get_config() == v.get_config()
    assert clone.words == v.words
    assert clone.word_token_ids == v.word_token_ids
    assert clone.single_token
    assert config["label_words"] == {"0": [" terrible", " bad"], "1": [" great"]}
