"""promptopt: optimize the prompt of a frozen keras-hub language model.

Importing promptopt has no side effects: nothing is downloaded or written,
and no global random state is touched.
"""

from promptopt.models import PromptedModel
from promptopt.prompts import PromptFile
from promptopt.prompts import PromptMismatchError
from promptopt.prompts import SoftPrompt
from promptopt.tasks import LanguageModeling
from promptopt.tasks import Verbalizer
from promptopt.tasks import VerbalizerClassification

__version__ = "0.1.0"

__all__ = [
    "LanguageModeling",
    "PromptFile",
    "PromptMismatchError",
    "PromptedModel",
    "SoftPrompt",
    "Verbalizer",
    "VerbalizerClassification",
]
