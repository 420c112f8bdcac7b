#!/usr/bin/env bash
# Correctness tests and benchmarks of promptopt on a GPU (JAX backend).
#
#   experiments/bench/gpu_check.sh [OUT_DIR]
#
# 1. The backend-independent tests on the GPU, float32 at full matmul
#    precision (JAX_DEFAULT_MATMUL_PRECISION=highest: GPUs otherwise use
#    TF32 for float32 matmuls, which the tests' 1e-5 tolerances are not
#    written for), then tests/models/test_precision*.py for bfloat16.
# 2. The distribution tests (4 virtual CPU devices, 2 processes): they
#    check the sharding logic, which is the same on any device, so they
#    run with JAX_PLATFORMS=cpu.
# 3. experiments/bench/scaling.py on the GPU(s), XLA-compiled steps and
#    op-by-op execution, in float32, bfloat16 and mixed_bfloat16; tables
#    go to OUT_DIR (default experiments/results) as scaling_gpu_<dtype>.md.
#
# PYTHON (default .venv-jax/bin/python) must have jax with CUDA (jax[cuda12]).
# Without a GPU the script stops and says so, unless GPU_CHECK_ALLOW_CPU=1,
# which runs the same steps on the CPU, smaller (to test this script).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-.venv-jax/bin/python}"
OUT_DIR="${1:-experiments/results}"
mkdir -p "$OUT_DIR"
export KERAS_BACKEND=jax

platform="$("$PYTHON" -c 'import jax; print(jax.default_backend())' 2>/dev/null || echo none)"
if [ "$platform" = "none" ]; then
    echo "gpu_check: $PYTHON cannot import jax; set PYTHON to a python with jax[cuda12]." >&2
    exit 2
fi
if [ "$platform" != "gpu" ] && [ "${GPU_CHECK_ALLOW_CPU:-0}" != "1" ]; then
    echo "gpu_check: JAX sees no GPU (default backend: $platform). Install jax[cuda12]" \
         "into $PYTHON's environment, or set GPU_CHECK_ALLOW_CPU=1 to run on the CPU." >&2
    exit 2
fi
"$PYTHON" -c 'import jax; print("gpu_check: devices", jax.devices())'
if [ "$platform" = "gpu" ]; then
    nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
    sizes=(--layers 8 --hidden 1024 --vocabulary 32000 --batch 32 --length 128 --popsize 20)
    tests=(tests/models tests/prompts tests/tasks tests/adapters tests/prefixes
           tests/evaluators/test_keras_evaluator.py tests/evaluators/test_local_evaluator.py)
    devices="1 $("$PYTHON" -c 'import jax; print(jax.device_count())')"
else
    sizes=(--layers 2 --hidden 64 --vocabulary 512 --batch 8 --length 16 --popsize 4 --repeats 3)
    tests=(tests/prompts/test_soft_prompt.py tests/evaluators/test_local_evaluator.py)
    devices="1 2"
fi

echo "gpu_check: 1. correctness on $platform (float32, highest matmul precision)"
JAX_DEFAULT_MATMUL_PRECISION=highest "$PYTHON" -m pytest -q -rs -p no:cacheprovider "${tests[@]}"
echo "gpu_check: 1b. bfloat16"
"$PYTHON" -m pytest -q -rs -p no:cacheprovider tests/models/test_precision.py tests/models/test_precision_identity.py

echo "gpu_check: 2. distribution logic (virtual CPU devices)"
JAX_PLATFORMS=cpu "$PYTHON" -m pytest -q -rs -p no:cacheprovider tests/distribution

echo "gpu_check: 3. benchmarks"
type_flag=()
[ "$platform" = "gpu" ] && type_flag=(--device-type gpu)
for dtype in float32 bfloat16 mixed_bfloat16; do
    # shellcheck disable=SC2086
    "$PYTHON" experiments/bench/scaling.py --devices $devices "${type_flag[@]}" --dtype "$dtype" \
        "${sizes[@]}" --out "$OUT_DIR/scaling_${platform}_${dtype}.md"
done
echo "gpu_check: done; tables in $OUT_DIR/scaling_${platform}_*.md"
