"""`compile_function` and `make_value_and_grad`, for the gradient evaluators.

They live in `promptopt.backends.value_and_grad`, which the server shares
with the evaluators; this module keeps the evaluators' existing imports
working.
"""

from promptopt.backends.value_and_grad import compile_function
from promptopt.backends.value_and_grad import make_value_and_grad

__all__ = ["compile_function", "make_value_and_grad"]
