#!/usr/bin/env bash
# The test command of the README and of CI (.ci/run).
#
# 1. The whole suite on the default backend (TensorFlow), slow tests on the
#    embedded model included.
# 2. The backend-independent part again on JAX: models, prompts, tasks,
#    adapters, prefixes, optimizers, the local evaluators and the
#    TensorBoard logger. promptopt's layers are written with keras.ops, and
#    this is what holds them to it. It runs in .venv-jax (made by
#    scripts/setup_venv.sh: .venv's packages plus JAX). The server, the CLI,
#    the runner (numpy, on quadratics) and the HTTP tests exercise no
#    backend-specific code of their own; PyTorch is not run.
set -euo pipefail
cd "$(dirname "$0")/.."
.venv/bin/python -m pytest -q -rs "$@"
KERAS_BACKEND=jax .venv-jax/bin/python -m pytest -q -rs -p no:cacheprovider \
    tests/models tests/prompts tests/tasks tests/adapters tests/prefixes \
    tests/optimizers tests/callbacks \
    tests/evaluators/test_keras_evaluator.py tests/evaluators/test_length_buckets.py \
    tests/evaluators/test_local_evaluator.py tests/evaluators/test_shared_input_evaluator.py "$@"
