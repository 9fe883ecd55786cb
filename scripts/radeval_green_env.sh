#!/usr/bin/env bash
# RadEval 2.2.1 (reference for the GREEN / BLEU / ROUGE / BERTScore parity tests) in its own venv in the
# checkout: it pulls spacy, stanza, medspacy and friends that the product does not need.
# torch/torchvision are pinned to the project's pair so pip takes them from this machine's disk
# and the resolver never swaps in another build. pyarrow is held at 24.0.0: RadEval's spacy 3.7
# (thinc 8.2) keeps numpy below 2, and pyarrow 25+ refuses numpy 1.x at import time (without saying so
# in its metadata), which breaks `import radeval` through `datasets`. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=.venv-radeval
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c "import radeval.metrics.green_score.green" 2>/dev/null; then
  exit 0
fi
python3 -m venv "$VENV"
"$VENV/bin/pip" install -q --upgrade pip
"$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1 radeval==2.2.1 pyarrow==24.0.0
echo "RadEval reference env ready: $VENV"
