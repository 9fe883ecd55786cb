#!/usr/bin/env bash
# RoentGen-v2 on one GPU at bf16, at the paper's setting (512x512, 75 PNDM steps, guidance 3),
# measured directly (not extrapolated): images/s through the platform (worker process + dynamic
# batcher) vs the plain diffusers pipeline call, in three scenarios written to results.*:
#   batch_8        8 concurrent one-image requests vs one plain call of 8 images
#   single         one request of one image vs one plain call of one image (goal >= 1.0x)
#   concurrency_4  4 concurrent requests vs a plain loop of 4 one-image calls (goal >= 1.1x)
# each with both sides' images/s, the ratio, whether the images are the same bytes
# (max_abs_diff), and the worker's batch sizes / compute / queue time. Also: the UNet's FLOPs
# per call on the 8-image CFG batch (torch.utils.flop_counter), its achieved TFLOP/s and the
# fraction of the GPU's peak dense bf16 (unet.fraction_of_peak), and whether a batched image is
# byte-identical to the same image generated alone (batched_vs_alone). The manifest runs whole
# batches per network call on a GPU (micro_batch_gpu: 0) in channels-last memory, so batched
# images may differ from solo and plain ones by bf16 rounding; the JSON says so when they do.
# platform_acceleration records the worker's GPU options and its load-time warm-up (compile) s.
#
# Run from anywhere on the GPU machine: bash bench/gpu/roentgen.sh
# Writes $OUT/roentgen-gpu.json (or bench/results/roentgen-gpu.json). Budget: under 8 minutes
# on an H100/H200 (random full-size weights are built first, ~1-2 min on the CPU; each side
# loads in ~0.5 min and runs ~1 min: 75 steps take ~2-3 s for 8 images, ~1 s for one).
# Knobs: PYTHON, BATCH (8), CONCURRENCY (1,4), STEPS (75), SIZE (512), REPEATS (3),
# PEAK_TFLOPS (override the table), TIMEOUT (450 s), ADAPTER_OPTIONS (worker overrides, JSON:
# '{"micro_batch_gpu": 1}' for byte-identical batches; '{"compile_gpu": "reduce-overhead"}'
# compiles the UNet once per batch shape during the warm-ups, minutes each: raise TIMEOUT).
# With STEPS other than 75 the JSON's paper_setting_512px_75_steps is false.
set -euo pipefail
source "$(dirname "$0")/common.sh"
gpu_setup "import torch, diffusers, transformers, fastapi, aiohttp, pydicom" "pip install -e ."

EXTRA=()
if [ -n "${PEAK_TFLOPS:-}" ]; then EXTRA+=(--peak-tflops "$PEAK_TFLOPS"); fi
if [ -n "${ADAPTER_OPTIONS:-}" ]; then EXTRA+=(--adapter-options "$ADAPTER_OPTIONS"); fi

timeout "${TIMEOUT:-450}" "$PY" bench/roentgen.py \
  --device cuda --dtype bfloat16 \
  --batch "${BATCH:-8}" --concurrency "${CONCURRENCY:-1,4}" \
  --steps "${STEPS:-75}" --size "${SIZE:-512}" --repeats "${REPEATS:-3}" \
  --check-invariance \
  --model-dir "${MODEL_DIR:-/tmp/medserve-bench-models}" \
  --out "$RESULTS/roentgen-gpu.json" ${EXTRA[@]+"${EXTRA[@]}"}
