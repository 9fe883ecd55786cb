"""Builder for the echo model: a config file is all it has."""

from __future__ import annotations

import json
from pathlib import Path

from model_store.manifest import Manifest


def build(manifest: Manifest, target: Path, full_size: bool = False, seed: int = 0) -> None:
    (target / "config.json").write_text(json.dumps({"scale": 1.0, "kind": "echo"}))
