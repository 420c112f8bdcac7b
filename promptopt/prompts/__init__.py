"""Prompt layers, their initializers, and the prompt file."""

from promptopt.prompts.initializers import FromArray
from promptopt.prompts.initializers import FromClassLabels
from promptopt.prompts.initializers import FromText
from promptopt.prompts.initializers import PromptInitializer
from promptopt.prompts.initializers import RandomUniform
from promptopt.prompts.initializers import SampledVocabulary
from promptopt.prompts.initializers import get_initializer
from promptopt.prompts.prompt_file import PromptFile
from promptopt.prompts.prompt_file import PromptMismatchError
from promptopt.prompts.prompt_file import embedding_fingerprint
from promptopt.prompts.residual_reparameterization import ResidualReparameterization
from promptopt.prompts.soft_prompt import SoftPrompt

__all__ = [
    "FromArray",
    "FromClassLabels",
    "FromText",
    "PromptFile",
    "PromptInitializer",
    "PromptMismatchError",
    "RandomUniform",
    "ResidualReparameterization",
    "SampledVocabulary",
    "SoftPrompt",
    "embedding_fingerprint",
    "get_initializer",
]
