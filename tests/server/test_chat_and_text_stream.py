"""Chat templates (ChatML and plain text) and the text of streamed choices."""

import keras_hub

from promptopt.server.chat_template import ChatTemplate
from promptopt.server.text_stream import TextStream
from promptopt.server.text_stream import cut_at_stop
from promptopt.tasks.text_encoder import detokenize
from promptopt.tasks.text_encoder import tokenize_all
from tests.tiny_models import tiny_bpe_vocabulary
from tests.tiny_models import tiny_llama

MESSAGES = [("developer", "Be brief."), ("user", "Hi!"), ("assistant", "Hello."), ("user", "Bye")]


def _chatml_tokenizer():
    # SmolLM2-Instruct's layout: <|im_start|> and <|im_end|> are the start
    # and end tokens (ids 1 and 2).
    vocabulary, merges = tiny_bpe_vocabulary(("<pad>", "<|im_start|>", "<|im_end|>"))
    return keras_hub.models.Llama3Tokenizer(
        vocabulary=vocabulary, merges=merges, bos_token="<|im_start|>",
        eos_token="<|im_end|>", misc_special_tokens=set(),
    )


def test_chatml_renders_smollm2s_layout_with_special_ids():
    tokenizer = _chatml_tokenizer()
    template = ChatTemplate(tokenizer)
    ids = template.render(MESSAGES)
    assert template.name == "chatml" and template.stop_token_ids == (2,)
    assert detokenize(tokenizer, ids) == (
        "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi!<|im_end|>\n"
        "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n"
        "<|im_start|>assistant\n"
    )
    assert ids.count(1) == 5 and ids.count(2) == 4 and ids[-1] != 1


def test_plain_template_for_tokenizers_without_chatml_tokens():
    _, tokenizer = tiny_llama()
    template = ChatTemplate(tokenizer)
    assert template.name == "plain"
    assert template.stop_token_ids == (tokenizer.end_token_id,)
    assert template.stop_strings == ("\nuser:", "\nsystem:")
    assert template.render(MESSAGES[:2]) == tokenize_all(
        tokenizer, ["system: Be brief.\nuser: Hi!\nassistant:"]
    )[0]


def test_stream_deltas_concatenate_to_the_final_text_and_never_pass_a_stop():
    pieces = ["He", "llo", " wo", "r", "ld", "\n\nB", "ye"]
    stream = TextStream(lambda ids: "".join(pieces[i] for i in ids), ["\n\n", "orl"],
                        prefix="> ")
    deltas = [stream.update(list(range(n))) for n in range(len(pieces) + 1)]
    # A tail "o" or "or" waits (it could begin "orl"); "orl" then ends the text.
    assert deltas[:5] == ["> ", "He", "ll", "o w", ""]
    final = stream.finish(list(range(len(pieces))))
    assert "".join(deltas) + final == "> Hello w"
    assert stream.text(list(range(len(pieces)))) == ("> Hello w", True)


def test_stream_holds_back_a_split_character():
    stream = TextStream(lambda ids: "caf\ufffd" if ids == [0] else "café")
    assert stream.update([0]) == "caf"
    assert stream.update([0, 1]) == "é"
    assert stream.finish([0, 1]) == ""


def test_cut_at_stop_takes_the_earliest_stop():
    assert cut_at_stop("a, b. c", [".", ","]) == ("a", True)
    assert cut_at_stop("abc", ["x", ""]) == ("abc", False)
