#!/usr/bin/env bash
# Build the documentation offline into docs/_build/html (the course notebooks are executed):
# the same html build as scripts/test.sh, nitpicky, warnings as errors. Open docs/_build/html/index.html.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
venv="${SCMNET_VENV:-.venv}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
"$venv/bin/python" -m sphinx -n -W --keep-going -q -b html docs docs/_build/html
echo "scmnet docs: docs/_build/html/index.html"
