"""The shape the layout promises: modules of ~400 lines at most, functions of ~80 at most,
one package shape per family, and the test tree mirroring the source tree."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.harness import ROOT
from workers.runtime.registry import FAMILIES

PRODUCT = ("core", "cli", "service", "workers", "model_store", "medserve_client")
MAX_MODULE_LINES = 410
MAX_FUNCTION_LINES = 80
FAMILY_FILES = ("__init__.py", "contract.py", "adapter.py", "model.py", "compute.py", "tiny.py")


def _modules() -> list[Path]:
    return [p for package in PRODUCT for p in sorted((ROOT / package).rglob("*.py"))]


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(ROOT)))
def test_modules_and_functions_stay_small(path: Path) -> None:
    source = path.read_text()
    assert source.count("\n") <= MAX_MODULE_LINES, f"{path.name} is over {MAX_MODULE_LINES} lines"
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
            length = (node.end_lineno or node.lineno) - node.lineno + 1
            assert length <= MAX_FUNCTION_LINES, f"{node.name} is {length} lines"


@pytest.mark.parametrize("family", FAMILIES)
def test_every_family_has_the_same_package_shape(family: str) -> None:
    folder = ROOT / "workers" / family
    missing = [name for name in FAMILY_FILES if not (folder / name).exists()]
    assert not missing, f"workers/{family} lacks {missing}"
    assert (ROOT / "tests" / "unit" / "workers" / family).is_dir(), "no unit tests mirror it"
