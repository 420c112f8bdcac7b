"""promptopt and PEFT on the real embedded weights: a prompt moves both ways, same answers.

transformers loads the same GGUF as promptopt (SmolLM2-135M-Instruct Q4_1,
dequantized to float32 by both). Both models get the very same token ids
(promptopt's tokenizer; FIELD_NOTES: keras-hub's BPE and HF's differ on
runs of spaces), without a start token (promptopt adds none, and passing
input_ids to HF adds none either). PEFT puts the virtual tokens in front
of the input, promptopt's placement "prefix"; inputs are right-padded, so
in both the text takes positions P..P+T-1 and the answer is read at
P + len - 1 (at len - 1 of the text for a prefix). Compared there, on 200
SST-2 test sentences (64 for the prefix): the label words " terrible" and
" great" as each library scores them, their logit less the logsumexp of all
V logits at the answer (promptopt's classifier output; log_softmax of PEFT's logits), within
1e-3, and the class each model picks (all equal). promptopt's side is the
classifier that `predict`, `eval` and the server use, not a second model.

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

from promptopt import PromptedModel  # noqa: E402
from promptopt import Verbalizer  # noqa: E402
from promptopt import VerbalizerClassification  # noqa: E402
from promptopt.cli.main import main  # noqa: E402
from promptopt.data import load_fewshot_split  # noqa: E402
from promptopt.hub import load_language_model  # noqa: E402
from promptopt.hub.gguf_converter import find_smollm2_gguf  # noqa: E402
from promptopt.models.class_scoring import class_scores  # noqa: E402
from promptopt.models.class_scoring import length_batches  # noqa: E402
from promptopt.prefixes import PrefixModel  # noqa: E402

pytestmark = pytest.mark.slow

SENTENCES = 200
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
    return train, test.subset(SENTENCES, seed=0)  # the same 200 sentences every run


@pytest.fixture(scope="module")
def lm(smollm2_preset_dir):
    return load_language_model(str(smollm2_preset_dir))


@pytest.fixture(scope="module")
def hf_base():
    if os.environ.get("PYTEST_XDIST_WORKER"):
        # Under pytest -n 2 the other worker has the other core; torch's
        # own pool of one thread per core would only fight it.
        torch.set_num_threads(1)
    torch.manual_seed(0)
    gguf = find_smollm2_gguf()
    model = AutoModelForCausalLM.from_pretrained(
        os.path.dirname(gguf), gguf_file=os.path.basename(gguf), dtype=torch.float32)
    return model.eval()


def _task(lm):
    return VerbalizerClassification(Verbalizer(["0", "1"], LABEL_WORDS, lm.tokenizer))


def _word_ids(lm):
    return [w[0] for w in _task(lm).verbalizer.word_token_ids]


def _promptopt_answers(classifier, texts):
    """The classifier's own scores `[N, 2]` and classes `[N]`.

    A classifier's scores are the label words' log-probabilities at the
    answer: their logits less the logsumexp of all V logits there. They
    are what promptopt's `predict`, `eval` and `/v1/score` answer with.
    """
    scores = class_scores(classifier, texts)
    return scores, scores.argmax(-1)


def _peft_answers(peft_model, encoder, texts, word_ids, virtual_tokens):
    """PEFT's label-word log-probabilities `[N, 2]` at the answer, on promptopt's token ids.

    In the same `length_batches` as promptopt's side; padding changes no
    score at a real position in either library.
    """
    scores = np.zeros((len(texts), len(word_ids)), "float32")
    with torch.no_grad():
        for rows, x in length_batches(encoder.encode_texts(list(texts))):
            ids = torch.tensor(x["token_ids"], dtype=torch.long)
            mask = torch.tensor(x["padding_mask"], dtype=torch.long)
            logits = peft_model(input_ids=ids, attention_mask=mask).logits.float()
            answer = torch.tensor(virtual_tokens + x["padding_mask"].sum(axis=1) - 1)
            at_answer = logits[torch.arange(len(ids)), answer]  # [B, V]
            scores[rows] = torch.log_softmax(at_answer, dim=-1)[:, word_ids].numpy()
    return scores


def _compare(name, ours, classes, theirs):
    difference = float(np.abs(ours - theirs).max())
    agreement = float(np.mean(classes == theirs.argmax(-1)))
    # Printed for the record (pytest -s); the assertions are the contract.
    print(f"\n{name}: max |label-word log-probability difference| {difference:.2e} over "
          f"{len(ours)} sentences x 2 label words; class agreement {agreement:.1%}; "
          f"class 1 predicted for {classes.mean():.1%}")
    assert difference <= TOLERANCE
    np.testing.assert_array_equal(classes, theirs.argmax(-1))


def test_a_prompt_trained_in_promptopt_loads_in_peft_with_the_same_answers(
        lm, hf_base, data, tmp_path):
    train, test = data
    task = _task(lm)
    model = PromptedModel(lm.backbone, task, prompt_length=PROMPT_LENGTH,
                          prompt_initializer="labels", tokenizer=lm.tokenizer, model_id=lm.model_id)
    # Eagerly: for 4 steps, tracing and compiling the 135M model's training
    # step costs more than it saves (4 steps took 82 s eager, 139 s as a
    # graph and 183 s with XLA, Keras's default, side by side here).
    model.compile(run_eagerly=True)
    model.fit(model.encode_texts(train.texts), train.labels, batch_size=8, epochs=1, verbose=0)
    path = model.save_prompt(str(tmp_path / "prompt.npz"),
                             extra={"template": "{sentence} It was", "model_spec": "smollm2-135m"})
    assert main(["export", "--prompt", path, "--format", "peft",
                 "--output-dir", str(tmp_path / "peft")]) == 0

    peft_model = PeftModel.from_pretrained(hf_base, str(tmp_path / "peft")).eval()
    ours, classes = _promptopt_answers(model, test.texts)
    theirs = _peft_answers(peft_model, model, test.texts, _word_ids(lm), PROMPT_LENGTH)
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
    ours, classes = _promptopt_answers(model, test.texts)
    theirs = _peft_answers(peft_model, model, test.texts, word_ids, PROMPT_LENGTH)
    _compare("PEFT -> promptopt (prompt tuning)", ours, classes, theirs)


def test_a_prefix_from_promptopt_loads_in_peft_with_the_same_answers(lm, hf_base, data, tmp_path):
    _, test = data
    texts = test.texts[:64]  # the prefix's layout is the point here; 64 sentences
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
    ours, classes = _promptopt_answers(model, texts)
    theirs = _peft_answers(peft_model, model, texts, _word_ids(lm), 0)
    _compare("promptopt -> PEFT (prefix tuning)", ours, classes, theirs)
