#!/usr/bin/env bash
# The checks and benchmarks that need a CUDA GPU, in one run (at most 9 minutes; about 6.5 on an H200).
#
#   bash benchmarks/gpu.sh [OUT_DIR]        # scmnet importable; logs in OUT_DIR (default gpu-logs)
#
# 1. tests/test_cuda.py: every family on the GPU against the host (float32 and bfloat16), whole
#    sweeps, the synchronising calls of a prompt's query counted (the same whatever its layers
#    and draws), a model whose device map offloads layers to the host, the command line.
# 2. benchmarks/paper_scale.py on random-weight models: SmolLM2-135M's shapes against a hooks loop
#    (float32 and bfloat16), Llama-2-7B's (bfloat16) with one prompt against a hooks loop, and a
#    1B model at the paper's depth of 64 layers. Each prints tokens/s, achieved TFLOP/s against a
#    matmul rate measured in the same run, and the estimated time of the paper's sweep.
#
# Each step has a time limit, so that one that hangs leaves the others their time; the script
# ends with the exit status of each step.
set -uo pipefail
cd "$(dirname "$0")/.."
out="${1:-gpu-logs}"
mkdir -p "$out"
py="${PYTHON:-python3}"
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PYTHONUNBUFFERED=1
workers="${SCMNET_GPU_TEST_WORKERS:-8}"
status=()

step() {
    local name=$1 limit=$2
    shift 2
    echo "== $name: $*"
    local begin=$SECONDS
    timeout "$limit" "$@" 2>&1 | tee "$out/$name.log"
    local code=${PIPESTATUS[0]}
    echo "== $name: exit $code after $((SECONDS - begin)) s"
    status+=("$name=$code")
}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
"$py" -c 'import torch, transformers, scmnet; print("torch", torch.__version__, "cuda",
torch.version.cuda, "transformers", transformers.__version__, "scmnet", scmnet.__version__)' |
    tee -a "$out/gpu.txt"

step tests 100 "$py" -m pytest tests/test_cuda.py -q -rA -p no:cacheprovider \
    -n "$workers" --dist load
step smollm2-fp32 130 "$py" benchmarks/paper_scale.py --preset smollm2 --dtype float32 \
    --prompts 8 --hooks 3
step 7b-bf16 90 "$py" benchmarks/paper_scale.py --preset 7b --dtype bfloat16 --prompts 8 \
    --hooks 1
step 1b-64-bf16 80 "$py" benchmarks/paper_scale.py --preset 1b --layers 64 --dtype bfloat16 \
    --prompts 4
step smollm2-bf16 140 "$py" benchmarks/paper_scale.py --preset smollm2 --dtype bfloat16 \
    --prompts 8 --hooks 3
echo "== steps: ${status[*]}" | tee "$out/status.txt"
