"""Prompt optimizers: one ask/tell protocol for gradient and search methods."""

from promptopt.optimizers.adafactor import ConstantStepAdafactor
from promptopt.optimizers.backprop import BackpropOptimizer
from promptopt.optimizers.backprop import BackpropState
from promptopt.optimizers.base import PROMPT_DTYPE
from promptopt.optimizers.base import PromptOptimizer
from promptopt.optimizers.cma_es import CMAESOptimizer
from promptopt.optimizers.cma_es import CMAESState
from promptopt.optimizers.registry import available_optimizers
from promptopt.optimizers.registry import deserialize_optimizer
from promptopt.optimizers.registry import get_optimizer
from promptopt.optimizers.registry import register_optimizer
from promptopt.optimizers.registry import serialize_optimizer
from promptopt.optimizers.serialization import StateFormatError
