#!/usr/bin/env bash
# RoentGen-v2 on one GPU at bf16: images/s through the platform (worker process + dynamic
# batcher) vs the plain diffusers pipeline call, same batch/steps/size/scheduler; the UNet's
# FLOPs per call (torch.utils.flop_counter), its achieved TFLOP/s and the fraction of the GPU's
# peak dense bf16; whether a batched image is byte-identical to the same image generated alone.
#
# Run from anywhere on the GPU machine: bash bench/gpu/roentgen.sh
# Writes $OUT/roentgen-gpu.json (or bench/results/roentgen-gpu.json). Budget: under 8 minutes
# on an H100/H200 (random full-size weights are built first, ~1-2 min; each side ~1 min).
# Knobs: PYTHON, BATCH (8), STEPS (20), SIZE (512), PEAK_TFLOPS (override the table).
set -euo pipefail
cd "$(dirname "$0")/../.."

PY="${PYTHON:-}"
if [ -z "$PY" ]; then
  if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
fi
RESULTS="${OUT:-bench/results}"
mkdir -p "$RESULTS"

if ! "$PY" -c "import torch, diffusers, transformers, fastapi, aiohttp, pydicom" 2>/dev/null; then
  echo "missing packages: install the project first (pip install -e .)" >&2
  exit 2
fi
"$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'"
nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv || true

EXTRA=()
if [ -n "${PEAK_TFLOPS:-}" ]; then EXTRA+=(--peak-tflops "$PEAK_TFLOPS"); fi

timeout 450 "$PY" bench/roentgen.py \
  --device cuda --dtype bfloat16 \
  --batch "${BATCH:-8}" --steps "${STEPS:-20}" --size "${SIZE:-512}" --repeats 2 \
  --check-invariance \
  --model-dir "${MODEL_DIR:-/tmp/medserve-bench-models}" \
  --out "$RESULTS/roentgen-gpu.json" "${EXTRA[@]}"
