#!/usr/bin/env bash
# The test command of the README and of CI (.ci/run).
#
# 1. The whole suite on the default backend (TensorFlow), slow tests on the
#    embedded model included, on every core (pytest-xdist). Most tests keep
#    one core busy (tiny models: Python, tracing and small kernels), so two
#    workers on 2 cores take about half the wall time. `--dist loadscope`
#    keeps each module on one worker, so a module's fixtures (a converted
#    preset, a loaded SmolLM2, a tuned prompt) are built once, and
#    tests/conftest.py starts the slow modules first so that they do not
#    leave the other worker idle at the end.
# 2. JAX, in .venv-jax (made by scripts/setup_venv.sh: .venv's packages plus
#    JAX): the backend-specific code (promptopt/backends through the
#    evaluator's loss and gradient, the backprop optimizer, and
#    promptopt/distribution with 4 virtual CPU devices and two processes on
#    127.0.0.1) and the identity tests of the soft prompt and of the
#    prefixes, which hold the keras.ops code to backend-neutral. JAX
#    compiles every new shape afresh: the longer list this script ran
#    before (317 tests) had not finished after 45 minutes in a CI run with
#    a cold compilation cache.
# 3. The same on PyTorch, in .venv (torch comes with the compare extra),
#    with the suffix placement's and the deep suffix's tests (the latter
#    pass on JAX too, but took 2 minutes there under load against 39 s on
#    PyTorch, so they stay out of the JAX list). Without torch in .venv the pass is
#    skipped and says so.
#
# JAX_LIST and TORCH_LIST below are the only places those lists live. Any
# other test runs on either backend by hand, e.g.
#   KERAS_BACKEND=jax .venv-jax/bin/python -m pytest tests/models
set -euo pipefail
cd "$(dirname "$0")/.."
workers="${PYTEST_WORKERS:-auto}"

JAX_LIST=(
    tests/distribution
    tests/evaluators/test_keras_evaluator.py
    tests/optimizers/test_backprop_optimizer.py
    tests/prompts/test_soft_prompt.py
    tests/prefixes/test_prefix_identity.py
)
TORCH_LIST=(
    tests/distribution/test_device_setup.py
    tests/evaluators/test_keras_evaluator.py
    tests/optimizers/test_backprop_optimizer.py
    tests/prompts/test_soft_prompt.py
    tests/prompts/test_suffix_placement.py
    tests/prefixes/test_prefix_identity.py
    tests/prefixes/test_deep_suffix.py
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
