"""promptopt: optimize the prompt of a frozen keras-hub language model.

Importing promptopt has no side effects: nothing is downloaded or written,
no global random state is touched, and Keras/TensorFlow load only when a
public name is first used.
"""

import importlib

__version__ = "0.1.0"

_EXPORTS = {
    "LanguageModeling": "promptopt.tasks",
    "PromptFile": "promptopt.prompts",
    "PromptMismatchError": "promptopt.prompts",
    "PromptedModel": "promptopt.models",
    "SoftPrompt": "promptopt.prompts",
    "Verbalizer": "promptopt.tasks",
    "VerbalizerClassification": "promptopt.tasks",
    "load_language_model": "promptopt.hub",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name):
    if name not in _EXPORTS:
        raise AttributeError(f"module 'promptopt' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(__all__))
