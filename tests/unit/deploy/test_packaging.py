"""`pip install .` builds without a setuptools warning, and the wheel carries the client, the
console's files and the manifests (package data)."""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.harness import ROOT


def test_the_wheel_builds_without_warnings_and_carries_its_data(tmp_path: Path) -> None:
    listing = ["git", "ls-files", "-co", "--exclude-standard"]
    tracked = subprocess.run(listing, cwd=ROOT, capture_output=True, text=True, check=True)
    names = tracked.stdout.split("\n")
    source = tmp_path / "src"
    for name in filter(None, names):
        if (ROOT / name).is_file():
            (source / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / name, source / name)
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-deps", "--no-build-isolation",
         "--no-index", "-w", str(tmp_path / "dist"), str(source)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout[-3000:] + built.stderr[-3000:]
    output = built.stdout + built.stderr
    assert "SetuptoolsDeprecationWarning" not in output and "License classifiers" not in output
    assert "`project.license` as a TOML table is deprecated" not in output
    (wheel,) = (tmp_path / "dist").glob("medserve-*.whl")
    packed = set(zipfile.ZipFile(wheel).namelist())
    for expected in ("medserve_client/py.typed", "medserve_client/client.py",
                     "service/data/ui/index.html", "service/data/ui/console.js",
                     "model_store/manifests/echo.yaml"):  # fmt: skip
        assert expected in packed, expected
