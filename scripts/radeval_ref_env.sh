#!/usr/bin/env bash
# RadEval 2.2.1 (reference for the F1-SRR-BERT, GREEN, BLEU, ROUGE and BERTScore parity tests) in
# its own venv: it pulls spaCy, stanza, medspacy and scikit-learn, none of which the platform
# needs. torch/torchvision pinned to the project's pair so pip takes them from this machine's disk.
# pyarrow is held at 24.0.0: RadEval's spaCy 3.7 keeps numpy below 2, and pyarrow 25+ refuses
# numpy 1.x at import time, which breaks `import radeval` through `datasets`. Also unpacks nltk's
# punkt_tab data, as
# redistributed inside the llama-index-core wheel, into .venv-radeval/nltk_data: RadEval's
# sentence splitter needs it and nltk.download cannot reach its server here. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/env_cache.sh
env_cache .venv-radeval "scripts/radeval_ref_env.sh"
DATA="$VENV/nltk_data/tokenizers/punkt_tab"
if [ -x "$VENV/bin/python" ] && "$VENV/bin/python" -c \
  "import radeval.metrics.SRRBert.srr_bert, radeval.metrics.green_score.green" 2>/dev/null && [ -f "$DATA/english/ortho_context.tab" ]; then
  exit 0
fi
python3 -m venv "$VENV"
# Share the project venv's torch stack (same pins): saves a 5.5 GB unpack.
if [ -x .venv/bin/python ]; then .venv/bin/python scripts/link_torch.py "$VENV"; fi
"$VENV/bin/pip" install -q torch==2.14.1 torchvision==0.29.1 radeval==2.2.1 pyarrow==24.0.0
WHEELS=$(mktemp -d)
"$VENV/bin/pip" download -q --no-deps -d "$WHEELS" llama-index-core==0.14.25
mkdir -p "$DATA"
"$VENV/bin/python" - "$WHEELS"/llama_index_core-*.whl "$DATA" <<'PY'
import sys, zipfile
from pathlib import Path
wheel, target = sys.argv[1], Path(sys.argv[2])
prefix = "llama_index/core/_static/nltk_cache/tokenizers/punkt_tab/"
with zipfile.ZipFile(wheel) as archive:
    for name in archive.namelist():
        if name.startswith(prefix + "english/") and not name.endswith("/"):
            out = target / name[len(prefix):]
            out.parent.mkdir(parents=True, exist_ok=True)
            out.write_bytes(archive.read(name))
PY
rm -rf "$WHEELS"
echo "radeval reference env ready: $VENV"
