#!/usr/bin/env bash
# The main job: set up, then run the Hydra-effect analysis on the embedded SmolLM2-135M-Instruct
# and write the report to reports/hydra (an interrupted run resumes there). Extra arguments go to
# `scmnet hydra`, e.g. scripts/report.sh --limit 50 --ablation zero.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 MPLBACKEND=Agg
exec "${SCMNET_VENV:-.venv}/bin/scmnet" hydra --out reports/hydra "$@"
