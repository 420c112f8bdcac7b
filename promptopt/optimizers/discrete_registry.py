"""Discrete-prompt optimizers by name, kept apart from the continuous ones.

A discrete optimizer searches a vector `[P]` of integer choices (indices
into a list of tokens or phrases), not a real-valued prompt `[*S]`. The
continuous registry's shared tests (`available_optimizers()`) minimize a
quadratic over a real `[4, 8]` prompt, which a search over integer indices
cannot even represent; so discrete optimizers register here, and their own
shared tests run over `available_discrete_optimizers()`.
"""

from promptopt.optimizers.base import PromptOptimizer

_DISCRETE_REGISTRY = {}


def register_discrete_optimizer(name):
    """Class decorator: makes a discrete optimizer available as `name`.

    Args:
        name: str, e.g. `"discrete_search"`.

    Example:

    ```python
    @register_discrete_optimizer("my_search")
    class MySearch(PromptOptimizer):
        ...
    ```
    """
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"register_discrete_optimizer() needs a non-empty string name, got {name!r}."
        )

    def decorator(cls):
        if not (isinstance(cls, type) and issubclass(cls, PromptOptimizer)):
            raise TypeError(
                f"@register_discrete_optimizer({name!r}) decorates {cls!r}, "
                "which is not a PromptOptimizer subclass."
            )
        existing = _DISCRETE_REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"A discrete optimizer named {name!r} is already registered. "
                "Choose another name."
            )
        _DISCRETE_REGISTRY[name] = cls
        cls.registered_name = name
        return cls

    return decorator


def available_discrete_optimizers():
    """Returns the sorted names of registered discrete optimizers."""
    return sorted(_DISCRETE_REGISTRY)


def get_discrete_optimizer(name, **kwargs):
    """Returns a new discrete optimizer, e.g. `get_discrete_optimizer(
    "discrete_search", num_choices=50)`."""
    if name not in _DISCRETE_REGISTRY:
        raise ValueError(
            f"Unknown discrete optimizer {name!r}. Available: "
            f"{', '.join(available_discrete_optimizers())}."
        )
    return _DISCRETE_REGISTRY[name](**kwargs)
