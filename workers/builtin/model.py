"""Echo's "weights": a config file with the scale applied to every input."""

from __future__ import annotations

import json
from pathlib import Path

from core.errors import WeightsUnavailable


def load_scale(folder: Path) -> float:
    path = folder / "config.json"
    if not path.exists():
        raise WeightsUnavailable(f"{path} is missing; run `medserve models tiny echo`")
    return float(json.loads(path.read_text()).get("scale", 1.0))
