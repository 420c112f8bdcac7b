"""Prompt optimizers: one ask/tell protocol for gradient and search methods."""

from promptopt.optimizers.adafactor import ConstantStepAdafactor
from promptopt.optimizers.backprop import BackpropOptimizer
from promptopt.optimizers.backprop import BackpropState
from promptopt.optimizers.bbtv2 import BBTv2Optimizer
from promptopt.optimizers.base import PROMPT_DTYPE
from promptopt.optimizers.base import PromptOptimizer
from promptopt.optimizers.cma_es import CMAESOptimizer
from promptopt.optimizers.cma_es import CMAESState
from promptopt.optimizers.discrete_registry import available_discrete_optimizers
from promptopt.optimizers.discrete_registry import get_discrete_optimizer
from promptopt.optimizers.discrete_registry import register_discrete_optimizer
from promptopt.optimizers.discrete_search import DiscretePromptSearch
from promptopt.optimizers.discrete_search import DiscreteSearchState
from promptopt.optimizers.registry import available_optimizers
from promptopt.optimizers.registry import deserialize_optimizer
from promptopt.optimizers.registry import get_optimizer
from promptopt.optimizers.registry import register_optimizer
from promptopt.optimizers.registry import serialize_optimizer
from promptopt.optimizers.serialization import StateFormatError
