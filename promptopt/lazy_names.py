"""Package `__getattr__` that imports a public name on first use.

Importing a submodule runs its package's `__init__` first, so a package
that imported every public name eagerly would load Keras and TensorFlow for
`import promptopt.evaluators.http_evaluator` too. Packages list their names
instead and load each from its module when it is first asked for.
"""

import importlib
import sys


def lazy_exports(package, exports):
    """Returns `(__getattr__, __dir__)` for the package named `package`.

    Args:
        package: str, the package's `__name__`.
        exports: dict, public name -> the module that defines it.

    Example:

    ```python
    _EXPORTS = {"KerasEvaluator": "promptopt.evaluators.keras_evaluator"}
    __all__ = sorted(_EXPORTS)
    __getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
    ```
    """

    def __getattr__(name):
        if name not in exports:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        value = getattr(importlib.import_module(exports[name]), name)
        # Cached in the package, so later look-ups skip this function.
        setattr(sys.modules[package], name, value)
        return value

    def __dir__():
        return sorted(set(vars(sys.modules[package])) | set(exports))

    return __getattr__, __dir__
