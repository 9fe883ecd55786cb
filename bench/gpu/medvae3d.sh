#!/usr/bin/env bash
# MedVAE 3D (medvae-8-1-3d, real-size random weights) on one GPU: volumes/min encoding int16 CT
# NIfTI volumes of 512x512x300 through the platform (gateway + worker processes, multipart
# uploads; one volume at a time, and VOLUMES in flight at once) vs the same model called
# directly in the bench process (file read, released preprocessing, sliding-window encode with
# the platform's 160-voxel window and 0.25 overlap), each over REPEATS rounds with per-repeat
# seconds, min/median/max and per-repeat ratios. The direct side also runs under bf16 autocast
# (reference_bfloat16); the MedVAE adapter has no dtype option, so the worker runs fp32 and the
# headline ratios (ratio_c1_over_reference, ratio_c<N>_over_reference) are fp32 vs fp32.
# The model batches one 3D volume per call (manifest max_batch_size 1): volumes in flight
# overlap one volume's upload and preprocessing with another's encode, nothing more.
#
# Run from anywhere on the GPU machine: bash bench/gpu/medvae3d.sh
# Writes $OUT/medvae3d-gpu.json (or bench/results/medvae3d-gpu.json). Budget: about 6 minutes
# on an H100/H200, 580 s at most (timeout): ~1 min to build the weights and write the volumes
# (157 MB each); a volume is 48 windows of 160^3 (1.24 PFLOP at 6.3 MFLOP per voxel, counted
# with torch.utils.flop_counter), estimated 6-12 s in fp32 (cuDNN uses TF32 by default) and
# less in bf16; 28 encodes in all (3 repeats x 2 volumes x 4 sides: c1, c2, direct fp32, direct
# bf16, plus one full-size warm-up per side). If it times out, VOLUMES=1 halves the work.
# Knobs: PYTHON, VOLUMES (2), SHAPE (512,512,300), REPEATS (3).
set -euo pipefail
source "$(dirname "$0")/common.sh"
gpu_setup "import torch, monai, nibabel, fastapi, httpx, aiohttp" "pip install -e '.[worker]'"

VOLUMES="${VOLUMES:-2}"
timeout 580 "$PY" bench/medvae.py \
  --device cuda --dims 3 --volume "${SHAPE:-512,512,300}" --volumes "$VOLUMES" \
  --concurrency "$VOLUMES" --repeats "${REPEATS:-3}" \
  --reference direct --reference-dtypes float32,bfloat16 \
  --out "$RESULTS/medvae3d-gpu.json"
