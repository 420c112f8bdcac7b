#!/usr/bin/env bash
# The test command of the README and of CI (.ci/run).
#
# 1. The whole suite on the default backend (TensorFlow), slow tests on the
#    embedded model included.
# 2. The backend-independent part again on JAX: models, prompts, tasks,
#    adapters, prefixes, optimizers, the local evaluators and the
#    TensorBoard logger. promptopt's layers are written with keras.ops, and
#    this is what holds them to it. It runs in .venv-jax (made by
#    scripts/setup_venv.sh: .venv's packages plus JAX), with the
#    distribution tests (tests/distribution: 4 virtual CPU devices and two
#    processes on 127.0.0.1, each in worker processes of their own). The
#    server, the CLI, the runner (numpy, on quadratics) and the HTTP tests
#    exercise no backend-specific code of their own.
# 3. A part of it on PyTorch, in .venv (torch comes with the compare
#    extra): the tasks, prompts, the backprop optimizer and the local
#    evaluators, the code that the torch fixes touched. Torch runs op by op
#    and is the slowest backend here, so the models, adapters, prefixes,
#    search optimizers, generation and TensorBoard tests (all 317 of the
#    JAX list pass on torch, run by hand) are left to TensorFlow and JAX,
#    to keep CI within its time. Without torch in .venv the pass is
#    skipped and says so.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -q -rs "$@"
KERAS_BACKEND=jax .venv-jax/bin/python -m pytest -q -rs -p no:cacheprovider \
    tests/models tests/prompts tests/tasks tests/adapters tests/prefixes \
    tests/optimizers tests/callbacks tests/distribution \
    tests/evaluators/test_keras_evaluator.py tests/evaluators/test_length_buckets.py \
    tests/evaluators/test_local_evaluator.py tests/evaluators/test_shared_input_evaluator.py "$@"
if .venv/bin/python -c "import torch" 2>/dev/null; then
    KERAS_BACKEND=torch .venv/bin/python -m pytest -q -rs -p no:cacheprovider \
        tests/prompts tests/tasks tests/optimizers/test_backprop_optimizer.py \
        tests/distribution/test_device_setup.py \
        tests/evaluators/test_keras_evaluator.py tests/evaluators/test_length_buckets.py \
        tests/evaluators/test_local_evaluator.py "$@"
else
    echo "run_tests: PyTorch pass skipped: torch is not installed in .venv" \
         "(scripts/setup_venv.sh installs it with the compare extra)."
fi
