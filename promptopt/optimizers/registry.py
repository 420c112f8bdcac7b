"""Optimizers by name, so configs, checkpoints and the CLI can refer to them."""

from promptopt.optimizers.base import PromptOptimizer

_REGISTRY = {}


def register_optimizer(name):
    """Class decorator that makes an optimizer available as `name`.

    Args:
        name: str, the name for `get_optimizer(name)`, e.g. `"cma_es"`.

    Example:

    ```python
    @register_optimizer("random_search")
    class RandomSearch(PromptOptimizer):
        ...
    ```
    """
    if not isinstance(name, str) or not name:
        raise ValueError(
            f"register_optimizer() needs a non-empty string name, got "
            f"{name!r}. Use e.g. @register_optimizer('my_optimizer')."
        )

    def decorator(cls):
        if not (isinstance(cls, type) and issubclass(cls, PromptOptimizer)):
            raise TypeError(
                f"@register_optimizer({name!r}) decorates {cls!r}, which is "
                "not a PromptOptimizer subclass. Subclass "
                "promptopt.optimizers.PromptOptimizer."
            )
        existing = _REGISTRY.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"An optimizer named {name!r} is already registered "
                f"({existing.__module__}.{existing.__qualname__}). Choose "
                "another name."
            )
        _REGISTRY[name] = cls
        cls.registered_name = name
        return cls

    return decorator


def available_optimizers():
    """Returns the sorted list of registered optimizer names."""
    return sorted(_REGISTRY)


def get_optimizer(name, **kwargs):
    """Returns a new optimizer: `get_optimizer("cma_es", popsize=10)`."""
    if name not in _REGISTRY:
        raise ValueError(
            f"Unknown optimizer {name!r}. Available optimizers: "
            f"{', '.join(available_optimizers())}. Pass one of these names, "
            "or register yours with @register_optimizer."
        )
    return _REGISTRY[name](**kwargs)


def serialize_optimizer(optimizer):
    """Returns `{"name": ..., "config": ...}` for a registered optimizer."""
    name = getattr(type(optimizer), "registered_name", None)
    if _REGISTRY.get(name) is not type(optimizer):
        raise ValueError(
            f"{type(optimizer).__name__} is not registered, so it cannot be "
            "serialized by name. Decorate its class with "
            "@register_optimizer('some_name')."
        )
    return {"name": name, "config": optimizer.get_config()}


def deserialize_optimizer(spec):
    """Inverse of `serialize_optimizer`."""
    if not isinstance(spec, dict) or set(spec) != {"name", "config"}:
        raise ValueError(
            f"An optimizer spec must be a dict with keys 'name' and 'config', "
            f"got {spec!r}. Use serialize_optimizer(optimizer) to make one."
        )
    if spec["name"] not in _REGISTRY:
        get_optimizer(spec["name"])  # raises the unknown-name error
    return _REGISTRY[spec["name"]].from_config(spec["config"])
