#!/usr/bin/env bash
# The official `medvae` package (reference for the MedVAE parity test) in its own venv: its pins
# (wandb, open_clip, hydra...) clash with ours. torch/torchvision pinned to the project's pair so pip
# takes them from this machine's disk. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env_cache.sh
env_cache .venv-medvae "scripts/medvae_ref_env.sh"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import medvae" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$VENV"
# Share the project venv's torch stack (same pins): saves a 5.5 GB unpack.
if [ -x .venv/bin/python ]; then .venv/bin/python scripts/link_torch.py "$VENV"; fi
"$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1 medvae==0.1.7
echo "medvae reference env ready: $VENV"
