#!/usr/bin/env bash
# The main job: set up, then write the report. Extra arguments go to the command.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
exec "${SCMNET_VENV:-.venv}/bin/scmnet" toys --out reports/toys "$@"
