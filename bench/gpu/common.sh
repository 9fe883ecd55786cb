# Sourced by the GPU scripts beside it. `gpu_setup "import a, b" "install hint"`: from the
# repository root, sets PY (PYTHON, else .venv/bin/python, else python3) and RESULTS ($OUT, else
# bench/results), checks the packages import and torch sees CUDA, and prints the GPU.
gpu_setup() {
  cd "$(dirname "${BASH_SOURCE[0]}")/../.."
  PY="${PYTHON:-}"
  if [ -z "$PY" ]; then
    if [ -x .venv/bin/python ]; then PY=.venv/bin/python; else PY=python3; fi
  fi
  RESULTS="${OUT:-bench/results}"
  mkdir -p "$RESULTS"
  if ! "$PY" -c "$1" 2>/dev/null; then
    echo "missing packages: install the project first ($2)" >&2
    exit 2
  fi
  "$PY" -c "import torch; assert torch.cuda.is_available(), 'torch sees no CUDA device'"
  nvidia-smi --query-gpu=name,memory.total,clocks.max.sm,power.limit --format=csv || true
}
