"""The prompted model and its generator."""

from promptopt.models.cached_generator import CachedGenerator
from promptopt.models.prompted_model import PromptedModel

__all__ = ["CachedGenerator", "PromptedModel"]
