"""The layering holds: the gateway runs without torch or model code, and `make lint` refuses
an import that breaks the rules (import-linter contracts in `.importlinter`)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness import ROOT

PACKAGES = ("core", "model_store", "workers", "service", "cli", "medserve_client")
HEAVY = ("torch", "torchvision", "diffusers", "transformers", "accelerate", "monai", "PIL")

GATEWAY_WITHOUT_TORCH = f"""
import importlib.abc, sys
HEAVY = {HEAVY!r}

class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HEAVY:
            raise ImportError(f"{{name}} is not installed in a gateway-only install")
        return None

sys.meta_path.insert(0, Refuse())
from fastapi.testclient import TestClient
from core.settings import GatewaySettings
from service.app import create_app
app = create_app(GatewaySettings(routes={{}}))
with TestClient(app) as client:
    assert client.get("/livez").status_code == 200
    assert client.get("/openapi.json").status_code == 200
    assert client.get("/readyz").status_code == 503  # routes nothing: not ready, no crash
MODEL_CODE = ("adapter", "model", "compute", "tiny")
family = [m for m in sys.modules if m.startswith("workers.") and m.rsplit(".", 1)[-1] in MODEL_CODE]
assert not family, family
runtime = [m for m in sys.modules if m in ("workers.runtime.server", "workers.runtime.batcher")]
assert not runtime, runtime
print("ok")
"""


def test_the_gateway_starts_and_answers_with_torch_and_model_code_absent() -> None:
    result = subprocess.run(
        [sys.executable, "-c", GATEWAY_WITHOUT_TORCH],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0 and result.stdout.strip().endswith("ok"), result.stderr[-3000:]


def _lint(tree: Path) -> subprocess.CompletedProcess[str]:
    binary = Path(sys.executable).with_name("lint-imports")
    return subprocess.run(
        [str(binary), "--no-cache", str(tree / ".importlinter")],
        cwd=tree, capture_output=True, text=True, timeout=300,
        env={"PYTHONPATH": str(tree), "PATH": "/usr/bin:/bin"},
    )  # fmt: skip


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the product packages, to break on purpose."""
    root = tmp_path_factory.mktemp("tree")
    for package in PACKAGES:
        shutil.copytree(ROOT / package, root / package,
                        ignore=shutil.ignore_patterns("__pycache__", "*.yaml", "data"))  # fmt: skip
    shutil.copy(ROOT / ".importlinter", root / ".importlinter")
    return root


def test_the_contracts_hold_on_the_tree_as_it_is(tree: Path) -> None:
    result = _lint(tree)
    assert result.returncode == 0, result.stdout[-3000:]
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "contract"),
    [
        ("workers/runtime/batcher.py", "import service.app", "imports the gateway"),
        ("model_store/store.py", "import workers.runtime.oip", "model_store imports only core"),
        ("service/routes/medvae.py", "import workers.medvae.compute", "imports no model code"),
        ("service/deps.py", "import torch", "no torch"),
    ],
)
def test_lint_fails_on_an_import_that_breaks_the_layering(
    tree: Path, module: str, line: str, contract: str
) -> None:
    path = tree / module
    original = path.read_text()
    try:
        path.write_text(original + f"\n{line}  # a violation, planted by the test\n")
        result = _lint(tree)
    finally:
        path.write_text(original)
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and contract in result.stdout, result.stdout[-3000:]
