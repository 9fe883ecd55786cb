#!/usr/bin/env bash
# Merlin (I3D ResNet-152 image encoder + Clinical-Longformer-shaped text tower, real-size
# random weights) on one GPU, fp32 (the manifest's dtype): CT volumes per minute for a
# 512x512x600 abdomen phantom (int16 .nii.gz) through the platform (POST /v1/merlin/analyze on
# gateway + worker, embedding + phenotypes, the worker preprocessing each upload) vs a direct
# `compute.encode_images` call on preprocessed tensors in the bench process, at batch 1 (one
# volume at a time) and at the manifest's batch (that many concurrent requests, batched by the
# worker); preprocessing (read, RAS, 1.5x1.5x3 mm, window, pad/crop to 224x224x160) timed on
# its own (direct.preprocess_s). The platform figures include preprocessing on the CPU and the
# direct ones do not, so the ratio shows what the request path costs on top of the model.
#
# Run from anywhere on the GPU machine: bash bench/gpu/merlin.sh
# Writes $OUT/merlin-gpu.json (or bench/results/merlin-gpu.json). Budget: under 8 minutes on an
# H100/H200: ~1-2 min to build the weights and write the CT, preprocessing ~5-15 s per volume
# on the CPU, the model well under 1 s per volume on the GPU.
# Knobs: PYTHON, SHAPE (512,512,600), VOLUMES (batch-1 volumes per side, 3), BATCH (manifest).
set -euo pipefail
source "$(dirname "$0")/common.sh"
gpu_setup "import torch, transformers, nibabel, fastapi, httpx, aiohttp" "pip install -e '.[worker]'"

EXTRA=()
if [ -n "${BATCH:-}" ]; then EXTRA+=(--batch "$BATCH"); fi

timeout 460 "$PY" bench/merlin.py \
  --device cuda --shape "${SHAPE:-512,512,600}" --batch1-volumes "${VOLUMES:-3}" \
  --out "$RESULTS/merlin-gpu.json" ${EXTRA[@]+"${EXTRA[@]}"}
