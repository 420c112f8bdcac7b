"""PromptedModel, the base it shares with PrefixModel, and the generator."""

from promptopt.models.cached_generator import CachedGenerator
from promptopt.models.frozen_backbone_model import FrozenBackboneModel
from promptopt.models.prompted_model import PromptedModel

__all__ = ["CachedGenerator", "FrozenBackboneModel", "PromptedModel"]
