"""promptopt: optimize the prompt of a frozen keras-hub language model.

Importing promptopt has no side effects: nothing is downloaded or written,
no global random state is touched, and Keras/TensorFlow load only when a
public name is first used.
"""

from promptopt.lazy_names import lazy_exports

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
__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
