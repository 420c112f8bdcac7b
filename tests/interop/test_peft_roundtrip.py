"""promptopt and PEFT on the real embedded weights: a prompt moves both ways, same answers.

transformers loads the same GGUF as promptopt (SmolLM2-135M-Instruct Q4_1,
dequantized to float32 by both). Both models get the very same token ids
(promptopt's tokenizer; FIELD_NOTES: keras-hub's BPE and HF's differ on
runs of spaces), without a start token (promptopt adds none, and passing
input_ids to HF adds none either). PEFT puts the virtual tokens in front
of the input, promptopt's placement "prefix"; inputs are right-padded, so
in both the text takes positions P..P+T-1 and the answer is read at
P + len - 1 (at len - 1 of the text for a prefix). Compared there: the raw
logits of the label words " terrible" and " great" (within 1e-3) and the
class each model picks (all equal), on 200 SST-2 test sentences.

Needs the `compare` extra (pip install .[compare]: torch, transformers,
peft) and the LM-BFF data in ../shared/data; it skips, saying which is
missing, without them.
"""

import os

import numpy as np
import pytest

for _name in ("torch", "transformers", "peft"):
    pytest.importorskip(
        _name, reason=f"{_name} cannot be imported: install the compare extra "
        "(pip install .[compare]) to compare with PEFT")

import torch  # noqa: E402
from peft import PeftModel  # noqa: E402
from peft import PromptTuningConfig  # noqa: E402
from peft import get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM  # noqa: E402

from promptopt import LanguageModeling  # noqa: E402
from promptopt import PromptedModel  # noqa: E402
from promptopt import Verbalizer  # noqa: E402
from promptopt import VerbalizerClassification  # noqa: E402
from promptopt.cli.main import main  # noqa: E402
from promptopt.data import load_fewshot_split  # noqa: E402
from promptopt.hub import load_language_model  # noqa: E402
from promptopt.hub.gguf_converter import find_smollm2_gguf  # noqa: E402
from promptopt.models.class_scoring import class_probabilities  # noqa: E402
from promptopt.prefixes import PrefixModel  # noqa: E402

pytestmark = pytest.mark.slow

SENTENCES = 48
PROMPT_LENGTH = 20
TOLERANCE = 1e-3
LABEL_WORDS = {"0": [" terrible"], "1": [" great"]}


@pytest.fixture(scope="module")
def data():
    try:
        train = load_fewshot_split("sst2", 42, "train")
        test = load_fewshot_split("sst2", 42, "test")
    except FileNotFoundError as error:
        pytest.skip(f"the SST-2 16-shot data is absent ({error})")
    return train, test.subset(SENTENCES, seed=0)  # the same 48 sentences every run


@pytest.fixture(scope="module")
def lm(smollm2_preset_dir):
    return load_language_model(str(smollm2_preset_dir))


@pytest.fixture(scope="module")
def hf_base():
    torch.manual_seed(0)
    gguf = find_smollm2_gguf()
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(gguf), gguf_file=os.path.basename(gguf), dtype=torch.float32)
    return model.eval()


def _task(lm):
    return VerbalizerClassification(Verbalizer(["0", "1"], LABEL_WORDS, lm.tokenizer))


def _word_ids(lm):
    return [w[0] for w in _task(lm).verbalizer.word_token_ids]


def _promptopt_answers(classifier, language_model, texts, word_ids, batch_size=8):
    """Label-word logits `[N, 2]` at the answer, and the classifier's classes `[N]`."""
    encoded = classifier.encode_texts(texts)
    lengths = encoded["padding_mask"].sum(axis=1)
    logits = []
    for start in range(0, len(texts), batch_size):
        x = {k: v[start:start + batch_size] for k, v in encoded.items()}
        out = np.asarray(language_model(x))  # [B, T, V], text positions only
        rows = np.arange(len(out))
        logits.append(out[rows, lengths[start:start + batch_size] - 1][:, word_ids])
    classes = class_probabilities(classifier, texts).argmax(-1)
    return np.concatenate(logits), classes


def _peft_answers(peft_model, encoded, word_ids, virtual_tokens, batch_size=8):
    """Label-word logits `[N, 2]` of PEFT at the answer, on promptopt's token ids."""
    lengths = encoded["padding_mask"].sum(axis=1)
    logits = []
    with torch.no_grad():
        for start in range(0, len(lengths), batch_size):
            ids = torch.tensor(encoded["token_ids"][start:start + batch_size], dtype=torch.long)
            mask = torch.tensor(encoded["padding_mask"][start:start + batch_size], dtype=torch.long)
            out = peft_model(input_ids=ids, attention_mask=mask).logits.float().numpy()
            answer = virtual_tokens + lengths[start:start + batch_size] - 1
            logits.append(out[np.arange(len(out)), answer][:, word_ids])
    return np.concatenate(logits)


def _compare(name, ours, classes, theirs):
    difference = float(np.abs(ours - theirs).max())
    agreement = float(np.mean(classes == theirs.argmax(-1)))
    # Printed for the record (pytest -s); the assertions are the contract.
    print(f"\n{name}: max |logit difference| {difference:.2e} over {len(ours)} sentences x 2 "
          f"label words; class agreement {agreement:.1%}; class 1 predicted for "
          f"{classes.mean():.1%}")
    assert difference <= TOLERANCE
    np.testing.assert_array_equal(classes, theirs.argmax(-1))


def test_a_prompt_trained_in_promptopt_loads_in_peft_with_the_same_answers(
        lm, hf_base, data, tmp_path):
    train, test = data
    task = _task(lm)
    model = PromptedModel(lm.backbone, task, prompt_length=PROMPT_LENGTH,
                          prompt_initializer="labels", tokenizer=lm.tokenizer, model_id=lm.model_id)
    model.compile()
    model.fit(model.encode_texts(train.texts), train.labels, batch_size=8, epochs=1, verbose=0)
    path = model.save_prompt(str(tmp_path / "prompt.npz"),
                             extra={"template": "{sentence} It was", "model_spec": "smollm2-135m"})
    assert main(["export", "--prompt", path, "--format", "peft",
                 "--output-dir", str(tmp_path / "peft")]) == 0

    peft_model = PeftModel.from_pretrained(hf_base, str(tmp_path / "peft")).eval()
    prompt = model.soft_prompt.materialize()
    language_model = PromptedModel(lm.backbone, LanguageModeling(), prompt_length=PROMPT_LENGTH,
                                   prompt_initializer=prompt, tokenizer=lm.tokenizer)
    ours, classes = _promptopt_answers(model, language_model, test.texts, _word_ids(lm))
    theirs = _peft_answers(peft_model, model.encode_texts(test.texts), _word_ids(lm),
                           PROMPT_LENGTH)
    _compare("promptopt -> PEFT (prompt tuning)", ours, classes, theirs)


def test_a_prompt_trained_in_peft_imports_with_the_same_answers(lm, hf_base, data, tmp_path):
    train, test = data
    word_ids = _word_ids(lm)
    torch.manual_seed(0)
    # PEFT as its users run it: random init, AdamW, cross-entropy over the label words.
    peft_model = get_peft_model(hf_base, PromptTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=PROMPT_LENGTH))
    optimizer = torch.optim.AdamW(
        [p for p in peft_model.parameters() if p.requires_grad], lr=0.03, weight_decay=0.0)
    encoder = PromptedModel(lm.backbone, _task(lm), prompt_length=0, tokenizer=lm.tokenizer)
    encoded = encoder.encode_texts(train.texts)
    lengths = encoded["padding_mask"].sum(axis=1)
    for start in range(0, 32, 8):
        ids = torch.tensor(encoded["token_ids"][start:start + 8], dtype=torch.long)
        mask = torch.tensor(encoded["padding_mask"][start:start + 8], dtype=torch.long)
        logits = peft_model(input_ids=ids, attention_mask=mask).logits
        answer = torch.tensor(PROMPT_LENGTH + lengths[start:start + 8] - 1)
        scores = logits[torch.arange(len(ids)), answer][:, word_ids]
        loss = torch.nn.functional.cross_entropy(scores, torch.tensor(train.labels[start:start + 8]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    peft_model.save_pretrained(str(tmp_path / "peft"))
    peft_model.eval()

    path = str(tmp_path / "prompt.npz")
    assert main(["import", "--peft", str(tmp_path / "peft"), "--output", path,
                 "--model", "smollm2-135m", "--task", "sst2"]) == 0
    model = PromptedModel(lm.backbone, _task(lm), prompt_length=PROMPT_LENGTH,
                          prompt_initializer="random", tokenizer=lm.tokenizer, model_id=lm.model_id)
    model.load_prompt(path)  # refuses a file stamped for another model
    language_model = PromptedModel(lm.backbone, LanguageModeling(), prompt_length=PROMPT_LENGTH,
                                   prompt_initializer=model.soft_prompt.materialize(),
                                   tokenizer=lm.tokenizer)
    ours, classes = _promptopt_answers(model, language_model, test.texts, word_ids)
    theirs = _peft_answers(peft_model, model.encode_texts(test.texts), word_ids, PROMPT_LENGTH)
    _compare("PEFT -> promptopt (prompt tuning)", ours, classes, theirs)


def test_a_prefix_from_promptopt_loads_in_peft_with_the_same_answers(lm, hf_base, data, tmp_path):
    _, test = data
    texts = test.texts[:24]  # prefixes cost a pass per layer's cache; fewer sentences
    # A prefix from real tokens' keys and values, then moved off them so it is no token's.
    model = PrefixModel(lm.backbone, _task(lm), prefix_length=10, prefix_initializer="vocab",
                        tokenizer=lm.tokenizer, model_id=lm.model_id, seed=3)
    prefix = model.prefix.materialize()
    noise = np.random.default_rng(0).normal(size=prefix.shape).astype("float32")
    model.prefix.assign(prefix + 0.1 * noise * prefix.std())
    path = model.save_prefix(str(tmp_path / "prefix.npz"), extra={"model_spec": "smollm2-135m"})
    assert main(["export", "--prompt", path, "--format", "peft",
                 "--output-dir", str(tmp_path / "peft")]) == 0

    peft_model = PeftModel.from_pretrained(hf_base, str(tmp_path / "peft")).eval()
    language_model = PrefixModel(lm.backbone, LanguageModeling(), prefix_length=10,
                                 prefix_initializer=model.prefix.materialize(),
                                 tokenizer=lm.tokenizer)
    ours, classes = _promptopt_answers(model, language_model, texts, _word_ids(lm))
    theirs = _peft_answers(peft_model, model.encode_texts(texts), _word_ids(lm), 0)
    _compare("promptopt -> PEFT (prefix tuning)", ours, classes, theirs)
