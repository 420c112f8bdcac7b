"""PromptEnsemble: one batched pass equals N separate passes; votes; refusals."""

import numpy as np
import pytest

from promptopt import PromptedModel
from promptopt import PromptMismatchError
from promptopt import Verbalizer
from promptopt import VerbalizerClassification
from promptopt.models.class_scoring import class_probabilities
from promptopt.models.prompt_ensemble import PromptEnsemble
from tests.model_factories import toy_batch
from tests.tiny_models import tiny_gpt2
from tests.tiny_models import tiny_llama

TEXTS = ["a great film. It was", "so", "truly terrible acting. It was", "great fun",
         "a film that", "terrible", "it was great and it was terrible"]
HIDDEN = 16


def _backbone(family, seed=0):
    return tiny_gpt2(seed=seed) if family == "gpt2" else tiny_llama(seed=seed)


def _task(tokenizer, label_words=None, placement="prefix"):
    # " fine" is several tokens here (no merge), so the multi-token label-word path runs.
    label_words = label_words or {"0": [" terrible"], "1": [" great", " fine"]}
    return VerbalizerClassification(Verbalizer(["0", "1"], label_words, tokenizer),
                                    placement=placement)


def _prompts(n=3, length=4, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.normal(size=(length, HIDDEN)).astype("float32") for _ in range(n)]


def _model(backbone, tokenizer, prompt, task=None, model_id="tiny", **kwargs):
    return PromptedModel(backbone, task or _task(tokenizer), prompt_length=len(prompt),
                         prompt_initializer=prompt, tokenizer=tokenizer, model_id=model_id,
                         **kwargs)


@pytest.mark.parametrize("family, placement", [("gpt2", "prefix"), ("llama", "prefix"),
                                               ("llama", "suffix")])
@pytest.mark.parametrize("strategy", ["batched", "loop"])
def test_the_ensemble_equals_averaging_separate_passes(family, placement, strategy):
    backbone, tokenizer = _backbone(family)
    words = {"0": [" terrible"], "1": [" great"]} if placement == "suffix" else None
    task = _task(tokenizer, words, placement)
    prompts = _prompts()
    separate = np.stack([
        class_probabilities(_model(backbone, tokenizer, p, task), TEXTS, batch_size=3)
        for p in prompts])  # [N, T, C], one pass per prompt
    ensemble = PromptEnsemble(_model(backbone, tokenizer, prompts[0], task), prompts,
                              strategy=strategy)

    members = ensemble.member_probabilities(TEXTS, batch_size=3)
    np.testing.assert_allclose(members, separate, atol=1e-6)
    np.testing.assert_allclose(ensemble.probabilities(TEXTS, batch_size=3), separate.mean(0),
                               atol=1e-6)
    np.testing.assert_array_equal(ensemble.classify(TEXTS), separate.mean(0).argmax(-1))
    # The members really differ, so the comparison above is not of N copies.
    assert np.abs(separate[0] - separate[1]).max() > 1e-3


def test_one_encoded_batch_gives_combined_probabilities_and_classes():
    backbone, tokenizer = _backbone("llama")
    prompts = _prompts(n=2)
    model = _model(backbone, tokenizer, prompts[0])
    x, _ = toy_batch(n=5, length=6)
    probabilities, classes = PromptEnsemble(model, prompts)(x)
    alone = [np.asarray(model(x, prompt=p)) for p in prompts]
    soft = [np.exp(a - a.max(-1, keepdims=True)) for a in alone]
    expected = np.mean([s / s.sum(-1, keepdims=True) for s in soft], axis=0)
    np.testing.assert_allclose(probabilities, expected, atol=1e-6)
    np.testing.assert_array_equal(classes, expected.argmax(-1))


def test_majority_vote_counts_each_members_class():
    members = np.array([[[0.9, 0.1], [0.4, 0.6]],
                        [[0.6, 0.4], [0.45, 0.55]],
                        [[0.2, 0.8], [0.9, 0.1]]])  # [N=3, B=2, C=2]
    shares, classes = PromptEnsemble.combine_members(members, "vote")
    np.testing.assert_allclose(shares, [[2 / 3, 1 / 3], [1 / 3, 2 / 3]])
    # Row 1: the mean probability says class 0 (0.583), the vote class 1.
    np.testing.assert_array_equal(classes, [0, 1])
    np.testing.assert_array_equal(PromptEnsemble.combine_members(members, "mean")[1], [0, 0])


def test_vote_ties_go_to_the_higher_mean_probability_then_the_lower_class():
    members = np.array([[[0.4, 0.6, 0.0], [0.3, 0.7, 0.0], [0.1, 0.1, 0.8]],
                        [[0.9, 0.1, 0.0], [0.7, 0.3, 0.0], [0.1, 0.8, 0.1]]])  # [N=2, B=3, C=3]
    shares, classes = PromptEnsemble.combine_members(members, "vote")
    # Row 0: one vote each for classes 1 and 0; mean 0.65 for class 0 wins.
    # Row 1: one vote each, equal means (0.5, 0.5): the lower class, 0.
    # Row 2: classes 2 and 1 tie, means 0.45 each: the lower class, 1.
    np.testing.assert_array_equal(classes, [0, 0, 1])
    np.testing.assert_allclose(shares[0], [0.5, 0.5, 0.0])
    # Deterministic in the members' order too.
    np.testing.assert_array_equal(PromptEnsemble.combine_members(members[::-1], "vote")[1], [0, 0, 1])


def test_vote_through_the_model_is_the_majority_of_separate_predictions():
    backbone, tokenizer = _backbone("gpt2")
    prompts = _prompts(n=3, seed=5)
    predictions = np.stack([_model(backbone, tokenizer, p).classify(TEXTS) for p in prompts])
    ensemble = PromptEnsemble(_model(backbone, tokenizer, prompts[0]), prompts, combine="vote")
    np.testing.assert_array_equal(ensemble.classify(TEXTS), (predictions.sum(0) >= 2).astype(int))


# --- prompt files ----------------------------------------------------------------

@pytest.fixture(scope="module")
def llama():
    return _backbone("llama")


def _save(tmp_path, name, backbone, tokenizer, prompt, task=None, model_id="tiny", template="{x}"):
    model = _model(backbone, tokenizer, prompt, task, model_id=model_id)
    return model.save_prompt(str(tmp_path / f"{name}.npz"), extra={"template": template})


def test_from_files_loads_and_names_the_members(tmp_path, llama):
    backbone, tokenizer = llama
    prompts = _prompts(n=2)
    paths = [_save(tmp_path, f"p{n}", backbone, tokenizer, p) for n, p in enumerate(prompts)]
    ensemble = PromptEnsemble.from_files(_model(backbone, tokenizer, prompts[0]), paths)
    assert ensemble.names == paths and ensemble.template == "{x}" and len(ensemble) == 2
    np.testing.assert_array_equal(ensemble.prompts, np.stack(prompts))


def test_a_prompt_of_another_task_is_refused(tmp_path, llama):
    backbone, tokenizer = llama
    prompts = _prompts(n=2)
    good = _save(tmp_path, "good", backbone, tokenizer, prompts[0])
    other = _save(tmp_path, "other", backbone, tokenizer, prompts[1],
                  task=_task(tokenizer, {"0": [" bad"], "1": [" good"]}))
    with pytest.raises(ValueError) as error:
        PromptEnsemble.from_files(_model(backbone, tokenizer, prompts[0]), [good, other])
    assert str(error.value) == (
        f"Prompt {other} was tuned for another task than the ensemble's: label words "
        "{'0': [' bad'], '1': [' good']} instead of {'0': [' terrible'], '1': [' great', ' fine']}. "
        "An ensemble combines prompts of one task: give prompt files tuned with the same --task "
        "(or label words) and --placement.")


def test_a_prompt_of_another_placement_is_refused(tmp_path, llama):
    backbone, tokenizer = llama
    prompts = _prompts(n=2)
    words = {"0": [" terrible"], "1": [" great"]}
    good = _save(tmp_path, "good", backbone, tokenizer, prompts[0], task=_task(tokenizer, words))
    other = _save(tmp_path, "suffix", backbone, tokenizer, prompts[1],
                  task=_task(tokenizer, words, "suffix"))
    model = _model(backbone, tokenizer, prompts[0], task=_task(tokenizer, words))
    with pytest.raises(ValueError, match=r"tuned for another task than the ensemble's: placement "
                                         r"'suffix' instead of 'prefix'\. "):
        PromptEnsemble.from_files(model, [good, other])


def test_a_prompt_of_another_model_is_refused(tmp_path, llama):
    backbone, tokenizer = llama
    other_backbone, _ = _backbone("llama", seed=1)
    prompts = _prompts(n=2)
    good = _save(tmp_path, "good", backbone, tokenizer, prompts[0])
    renamed = _save(tmp_path, "renamed", other_backbone, tokenizer, prompts[1], model_id="tiny-2")
    model = _model(backbone, tokenizer, prompts[0])
    with pytest.raises(PromptMismatchError) as error:
        PromptEnsemble.from_files(model, [good, renamed])
    assert str(error.value) == (
        f"Prompt {renamed} was tuned for model 'tiny-2', but the ensemble runs on 'tiny'. An "
        "ensemble combines prompts of one model: give prompt files tuned on the same --model.")
    # The same name on other weights is caught by the embedding fingerprint.
    same_name = _save(tmp_path, "same_name", other_backbone, tokenizer, prompts[1])
    with pytest.raises(PromptMismatchError,
                       match=rf"Prompt file {same_name} was tuned for model 'tiny' with embedding "
                             r"hash [0-9a-f]{16}, but this model \('tiny'\) has embedding hash "):
        PromptEnsemble.from_files(model, [good, same_name])


def test_another_template_or_prompt_length_is_refused(tmp_path, llama):
    backbone, tokenizer = llama
    prompts = _prompts(n=2)
    model = _model(backbone, tokenizer, prompts[0])
    good = _save(tmp_path, "good", backbone, tokenizer, prompts[0])
    template = _save(tmp_path, "template", backbone, tokenizer, prompts[1], template="{x} It was")
    with pytest.raises(ValueError) as error:
        PromptEnsemble.from_files(model, [good, template])
    assert str(error.value) == (
        f"Prompt {template} was tuned with the template '{{x}} It was', the ensemble's is "
        "'{x}'. Its members must read the same texts: give prompt files tuned with one --template.")
    short = _save(tmp_path, "short", backbone, tokenizer, prompts[1][:2])
    with pytest.raises(ValueError) as error:
        PromptEnsemble.from_files(model, [good, short])
    assert str(error.value) == (
        f"Prompt {short} has P=2 vectors, {good} has P=4. The members of an ensemble share one "
        "pass, so they need one prompt length: give prompt files tuned with the same "
        "--prompt-length.")


def test_bad_arguments_are_clear_errors(llama):
    backbone, tokenizer = llama
    prompts = _prompts(n=2)
    model = _model(backbone, tokenizer, prompts[0])
    with pytest.raises(ValueError, match="combine must be one of mean, vote, got 'median'"):
        PromptEnsemble(model, prompts, combine="median")
    with pytest.raises(ValueError, match=r"shapes \[\[2, 16\], \[4, 16\]\]"):
        PromptEnsemble(model, [prompts[0], prompts[1][:2]])
    with pytest.raises(ValueError, match="The prompts have H=8, but this model has H=16"):
        PromptEnsemble(model, [np.zeros((4, 8), "float32")])
