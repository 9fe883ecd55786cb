#!/usr/bin/env bash
# PyTriton (a real Triton server) in its own venv: it pins numpy<2. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env_cache.sh
env_cache .venv-triton "scripts/triton_env.sh"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import pytriton" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q nvidia-pytriton
echo "triton env ready: $VENV"
