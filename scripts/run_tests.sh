#!/usr/bin/env bash
# The test command of the README and of CI (.ci/run).
#
# 1. The whole suite on the default backend (TensorFlow), slow tests on the
#    embedded model included, on every core (pytest-xdist). Most tests here
#    keep one core busy (tiny models: Python, tracing and small kernels), so
#    two workers on 2 cores take about half the wall time. `--dist loadscope`
#    keeps each module on one worker, so a module's fixtures (a converted
#    preset, a loaded SmolLM2, a tuned prompt) are built once.
# 2. JAX, in .venv-jax (made by scripts/setup_venv.sh: .venv's packages plus
#    JAX): the code that is backend-specific (promptopt/backends, the
#    evaluators' compiled loss and gradient, promptopt/distribution with its
#    4 virtual CPU devices and two processes on 127.0.0.1) and one identity
#    test per layer family (soft prompt, suffix prompt, prefixes)
#    that holds the keras.ops code to backend-neutral. The rest of the suite
#    runs the same keras.ops code on TensorFlow; JAX compiles every new shape
#    afresh, and the whole suite cold took over 45 minutes here.
# 3. The same idea on PyTorch, in .venv (torch comes with the compare extra):
#    the backend-specific gradient path and one identity test per layer
#    family. Without torch in .venv the pass is skipped and says so.
#
# JAX_LIST and TORCH_LIST below are the only places those lists live; the
# whole suite passes on both backends when run by hand (KERAS_BACKEND=jax
# .venv-jax/bin/python -m pytest tests), but takes far longer.
set -euo pipefail
cd "$(dirname "$0")/.."
workers="${PYTEST_WORKERS:-auto}"

JAX_LIST=(
    tests/distribution
    tests/evaluators/test_keras_evaluator.py
    tests/evaluators/test_shared_input_evaluator.py
    tests/optimizers/test_backprop_optimizer.py
    tests/prompts/test_soft_prompt.py
    tests/prompts/test_suffix_placement.py
    tests/prefixes/test_prefix_identity.py
)
TORCH_LIST=(
    tests/distribution/test_device_setup.py
    tests/evaluators/test_keras_evaluator.py
    tests/optimizers/test_backprop_optimizer.py
    tests/prompts/test_soft_prompt.py
    tests/prompts/test_suffix_placement.py
    tests/prefixes/test_prefix_identity.py
)

.venv/bin/python -m pytest -q -rs -n "$workers" --dist loadscope "$@"
KERAS_BACKEND=jax .venv-jax/bin/python -m pytest -q -rs -p no:cacheprovider \
    -n "$workers" --dist loadscope "${JAX_LIST[@]}" "$@"
if .venv/bin/python -c "import torch" 2>/dev/null; then
    KERAS_BACKEND=torch .venv/bin/python -m pytest -q -rs -p no:cacheprovider \
        -n "$workers" --dist loadscope "${TORCH_LIST[@]}" "$@"
else
    echo "run_tests: PyTorch pass skipped: torch is not installed in .venv" \
         "(scripts/setup_venv.sh installs it with the compare extra)."
fi
