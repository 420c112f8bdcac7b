"""Load frozen language models: keras-hub presets and the embedded SmolLM2."""

from promptopt.hub.errors import GGUFConversionError
from promptopt.hub.errors import MissingModelPackageError
from promptopt.hub.errors import ModelLoadError
from promptopt.hub.gguf_converter import GGUFLlamaConverter
from promptopt.hub.model_loader import LoadedModel
from promptopt.hub.model_loader import load_language_model
from promptopt.hub.model_loader import smollm2_preset_dir

__all__ = [
    "GGUFConversionError",
    "GGUFLlamaConverter",
    "LoadedModel",
    "MissingModelPackageError",
    "ModelLoadError",
    "load_language_model",
    "smollm2_preset_dir",
]
