"""Builds the frozen model a tuning method trains: soft prompt, prefix or text."""

import string

import numpy as np

from promptopt.adapters.llama import LlamaAdapter
from promptopt.models import PromptedModel
from promptopt.models.precision import cast_backbone
from promptopt.prefixes import PrefixModel
from promptopt.prompts import ResidualReparameterization
from promptopt.tasks import Verbalizer
from promptopt.tasks import VerbalizerClassification
from promptopt.tuning.config import PROMPT_KIND


def kind_of(method):
    """What `method` tunes: "prompt" (soft prompt), "prefix" or "text"."""
    return {"soft": "prompt", "prefix": "prefix", "text": "text"}[PROMPT_KIND[method].split()[0]]


def label_text(label_words, classes):
    """The classes' first label words as one text (a real-word init)."""
    return "".join(label_words[c][0] for c in classes)


def template_tail_length(template, tokenizer):
    """k: the tokens of `template` after its last field (at least 1).

    A deep suffix sits between the input and these tokens, so only they
    (the template's tail, " It was" in LM-BFF's SST-2 template) and the
    answer position read it; with no tail the answer position is the
    text's last token.
    """
    tail = ""
    for literal, field, _, _ in string.Formatter().parse(template):
        tail = literal if field is None else ""
    count = len(np.asarray(tokenizer(tail)).reshape(-1)) if tail else 0
    return max(1, count)


def default_placement(config, backbone):
    """Where a soft prompt or BBTv2's prefix goes when `--placement` is not given.

    The search methods' candidates are cheapest after the input, on a
    Llama-family backbone: BBT's suffix prompt shares the input's keys and
    values across the population (`SharedInputEvaluator`), and BBTv2's
    per-layer keys and values become a deep suffix, read only by the
    template's tail (`DeepSuffixEvaluator`), at 0.07 to 0.1 times the cost
    per call of the prefix in front (experiments/results/search_call_speed.md);
    on SST-2 it reached 72.4 +- 7.0% after 2,000 calls over 5 splits
    (experiments/results/derivative_free_budget.md), where BBTv2 in front
    would have cost 10 times the time. Everything else defaults to
    the input-first placement of Lester et al. and Li & Liang.
    """
    if config.placement is not None:
        return config.placement
    llama_family = isinstance(backbone, LlamaAdapter.backbone_classes)
    return "suffix" if config.method in ("bbt", "bbtv2") and llama_family else "prefix"


def build_model(config, loaded, data):
    """The model of `config.method` on `loaded` (a `LoadedModel`).

    Args:
        config: a resolved `TuneConfig` (placement resolved too).
        loaded: `LoadedModel`, the float32 backbone and tokenizer.
        data: `TaskData`.

    Returns:
        `PromptedModel` (soft prompt, or P = 0 for text prompts) or
        `PrefixModel`, on a `config.dtype` copy of the backbone.
    """
    backbone = loaded.backbone
    if config.dtype != "float32":
        backbone = cast_backbone(backbone, config.dtype)
    verbalizer = Verbalizer(data.classes, data.label_words, loaded.tokenizer,
                            single_token=config.single_token_labels)
    kind = kind_of(config.method)
    common = dict(tokenizer=loaded.tokenizer, model_id=loaded.model_id, seed=config.seed,
                  max_length=config.max_length)
    task = VerbalizerClassification(verbalizer, placement=config.placement)
    if kind == "prefix":
        # placement "suffix": a deep suffix, read by the template's tail only.
        init = config.init
        if init == "labels":
            init = "text:" + label_text(data.label_words, data.classes)
        return PrefixModel(backbone, task, prefix_length=config.prompt_length,
                           prefix_initializer=init,
                           suffix_tail_length=template_tail_length(data.template, loaded.tokenizer),
                           **common)
    if kind == "text":
        return PromptedModel(backbone, task, prompt_length=0, **common)
    parameterization = None
    if config.method == "residual":
        scale = config.residual_scale
        if scale == "embedding":
            table = np.asarray(loaded.backbone.token_embedding.embeddings.numpy(), "float32")
            scale = float(np.std(table))
        parameterization = ResidualReparameterization(
            bottleneck=config.residual_bottleneck, seed=config.seed, output_scale=scale,
            layer_norm=config.residual_layer_norm, dropout=config.residual_dropout)
    return PromptedModel(backbone, task, prompt_length=config.prompt_length,
                         prompt_initializer=config.init, parameterization=parameterization, **common)
