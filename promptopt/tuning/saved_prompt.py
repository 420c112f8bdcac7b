"""A tuned prompt, prefix or text prompt, loaded with its frozen model."""

import json

import numpy as np

from promptopt.hub import load_language_model
from promptopt.models import PromptedModel
from promptopt.models.class_scoring import class_probabilities
from promptopt.models.precision import cast_backbone
from promptopt.prefixes import PrefixFile
from promptopt.prefixes import PrefixModel
from promptopt.prompts import PromptFile
from promptopt.tasks import VerbalizerClassification
from promptopt.tasks import deserialize_task

TEXT_PROMPT_FORMAT = "promptopt-text-prompt"


class SavedPrompt:
    """What `promptopt eval` and `predict` score with: a file and its model.

    Reads what `promptopt tune` writes: `prompt.npz` (a soft prompt
    `[P, H]`), `prefix.npz` (per-layer prefixes `[L, 2, P, N, D]`) or
    `prompt.json` (a text prompt). The file names its task (classes, label
    words, placement) and template; the model is the one it was tuned on
    (`model_spec`, overridable), and a file made for another model is
    refused (`PromptMismatchError`), whatever precision either was in.
    Scoring runs in the precision the prompt was tuned in unless `dtype` is
    given, so `eval` reproduces the accuracy `tune` reported.

    Args:
        model: the `PromptedModel` or `PrefixModel`, prompt loaded.
        template: str, the template inputs are rendered with.
        text: str, the text prompt put before every input ("" for
            soft prompts and prefixes).
        path: str, the file.

    Example:
    ```python
    saved = SavedPrompt.load("runs/sst2/prompt.npz")
    saved.probabilities(["A fine film. It was"])  # [1, C]
    ```
    """

    def __init__(self, model, template, text="", path=None):
        self.model = model
        self.template = template
        self.text = text
        self.path = path

    @property
    def classes(self):
        return self.model.task.verbalizer.classes

    @classmethod
    def load(cls, path, model_spec=None, dtype=None, max_length=128):
        path = str(path)
        if path.endswith(".json"):
            return cls._load_text(path, model_spec, dtype, max_length)
        kind = _npz_kind(path)
        file = (PrefixFile if kind == "prefix" else PromptFile).load(path)
        extra = file.extra
        loaded = load_language_model(model_spec or extra.get("model_spec") or file.model_id)
        backbone = _in_precision(loaded.backbone, dtype or extra.get("dtype", "float32"))
        task = deserialize_task(extra["task"])
        common = dict(tokenizer=loaded.tokenizer, model_id=loaded.model_id, max_length=max_length)
        if kind == "prefix":
            model = PrefixModel(backbone, task, prefix_length=file.prefix.shape[2],
                                prefix_initializer=None, sites=tuple(file.sites),
                                suffix_tail_length=extra.get("suffix_tail_length", 1), **common)
            model.load_prefix(path)
        else:
            model = PromptedModel(backbone, task, prompt_length=file.prompt.shape[0],
                                  prompt_initializer="random", **common)
            model.load_prompt(path)
        return cls(model, extra.get("template"), path=path)

    @classmethod
    def _load_text(cls, path, model_spec, dtype, max_length):
        try:
            with open(path) as f:
                record = json.load(f)
        except (OSError, json.JSONDecodeError) as error:
            raise ValueError(f"{path} is not a promptopt text prompt ({error}).") from None
        if not isinstance(record, dict) or record.get("format") != TEXT_PROMPT_FORMAT:
            raise ValueError(
                f"{path} is not a promptopt text prompt (no format tag {TEXT_PROMPT_FORMAT!r}). "
                "Give the prompt.json that `promptopt tune --method discrete` wrote.")
        from promptopt.tasks import Verbalizer

        loaded = load_language_model(model_spec or record["model_spec"])
        backbone = _in_precision(loaded.backbone, dtype or record.get("dtype", "float32"))
        verbalizer = Verbalizer(list(record["label_words"]), record["label_words"], loaded.tokenizer)
        model = PromptedModel(backbone, VerbalizerClassification(verbalizer), prompt_length=0,
                              tokenizer=loaded.tokenizer, model_id=loaded.model_id,
                              max_length=max_length)
        return cls(model, record["template"], text=record["text"], path=path)

    def probabilities(self, texts, batch_size=32):
        """Class probabilities `[N, C]` of templated `texts`."""
        return class_probabilities(self.model, [self.text + t for t in texts], batch_size)


def load_ensemble(paths, model_spec=None, dtype="float32", max_length=128, combine="mean",
                  strategy="batched"):
    """A `PromptEnsemble` of prompt files from `promptopt tune`, on their model.

    The model, task and template are the first file's (as `SavedPrompt`
    reads them); every other file is checked against them.
    """
    from promptopt.models.prompt_ensemble import PromptEnsemble

    paths = [str(p) for p in paths]
    for path in paths:
        if path.endswith(".json") or _npz_kind(path) != "prompt":
            raise ValueError(
                f"{path} is not a soft prompt: an ensemble combines prompt.npz files "
                "(`promptopt tune --method prompt`, residual or bbt). Score a prefix or a text "
                "prompt on its own, with one --prompt.")
    first = SavedPrompt.load(paths[0], model_spec=model_spec, dtype=dtype, max_length=max_length)
    return PromptEnsemble.from_files(first.model, paths, combine=combine, strategy=strategy,
                                     template=first.template)


def _in_precision(backbone, dtype):
    return backbone if dtype == "float32" else cast_backbone(backbone, dtype)


def _npz_kind(path):
    try:
        with np.load(path, allow_pickle=False) as data:
            names = set(data.files)
    except (OSError, ValueError) as error:
        raise ValueError(
            f"{path} is not a promptopt prompt or prefix file ({error}). Give the prompt.npz or "
            "prefix.npz that `promptopt tune` wrote.") from None
    if "prefix" in names:
        return "prefix"
    return "prompt"
