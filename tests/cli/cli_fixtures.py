"""Tiny saved presets and data files for the CLI tests (nothing downloaded)."""

import json

from tests.tiny_models import tiny_gpt2
from tests.tiny_models import tiny_llama

POSITIVE = ["a great film", "great fun", "truly great", "great acting", "so great", "great story"]
NEGATIVE = ["a terrible film", "terrible fun", "truly terrible", "terrible acting", "so terrible",
            "terrible story"]


def save_tiny_preset(directory, family="llama", seed=0):
    """Saves a tiny random backbone and tokenizer as a keras-hub preset."""
    backbone, tokenizer = (tiny_llama if family == "llama" else tiny_gpt2)(seed=seed)
    backbone.save_to_preset(str(directory))
    tokenizer.save_to_preset(str(directory))
    if family == "llama":
        # keras-hub 0.32 does not save the Llama 3 tokenizer's special tokens;
        # promptopt's loader reads them from this record.
        (directory / "promptopt_source.json").write_text(json.dumps({
            "model_id": directory.name,
            "backbone_kwargs": {"tie_word_embeddings": True},
            "tokenizer_kwargs": {"bos_token": "<s>", "eos_token": "</s>",
                                 "misc_special_tokens": []},
        }))
    return str(directory)


def write_data(path, labelled=True):
    rows = [(t, 1) for t in POSITIVE] + [(t, 0) for t in NEGATIVE]
    with open(path, "w") as f:
        f.write("review,label\n" if labelled else "review\n")
        for text, label in rows:
            f.write(f"{text},{label}\n" if labelled else f"{text}\n")
    return str(path)
